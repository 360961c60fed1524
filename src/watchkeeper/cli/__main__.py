from watchkeeper.cli import main

main()
