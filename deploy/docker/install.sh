#!/bin/sh
# Install watchkeeper with the given extras into a fresh virtual environment.
#
#   sh deploy/docker/install.sh VENV SOURCE EXTRAS
#
# The Dockerfile's build stage runs exactly this; tests/deploy/test_dockerfile.py runs it too,
# in a temporary folder, to prove the image's install and entry point work without a container
# engine. EXTRAS is a comma-separated list of the package's extras (e.g. serve,monitor,postgres).
# uv (https://docs.astral.sh/uv/) resolves and installs; it must be on PATH.
set -eu
venv="$1"
source_dir="$2"
extras="$3"
uv venv --quiet --python python3 "$venv"
if [ -n "$extras" ]; then
  uv pip install --quiet --python "$venv/bin/python" "${source_dir}[${extras}]"
else
  uv pip install --quiet --python "$venv/bin/python" "$source_dir"
fi
# Fail the build here, not at the first request, if the entry point cannot start.
"$venv/bin/watchkeeper" --help >/dev/null
