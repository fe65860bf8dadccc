#!/bin/sh
# The C workload: build a small static library and a program with make and
# gcc, out of tree under /tmp (the sources are bound read-only),
# then run it.
set -eu
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p /tmp/c
cd /tmp/c
make -s -j2 -f "$src/Makefile" VPATH="$src"
./workload
