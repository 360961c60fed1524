from watchkeeper.demo._main import main

raise SystemExit(main())
