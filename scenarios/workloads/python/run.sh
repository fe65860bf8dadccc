#!/bin/sh
# The Python workload: pip installs a pure-Python package into /tmp from the
# wheel the scenario fetched from PyPI on the host and bound at /wheels
# (resolution, unpacking, byte-compilation, all under emulation), then
# Python computes with it.
set -eu
src=$(cd "$(dirname "$0")" && pwd)
python3 -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    --root-user-action=ignore --no-index --find-links /wheels --target /tmp/python \
    mpmath==1.3.0
PYTHONPATH=/tmp/python python3 "$src/compute.py"
