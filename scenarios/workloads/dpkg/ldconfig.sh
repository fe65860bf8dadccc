#!/bin/sh
# dpkg -i of a shared library package (and a program linked to it) fires
# libc-bin's ldconfig trigger; ldconfig, run by dpkg under emulation, must
# put the library in /etc/ld.so.cache, where the dynamic loader finds it.
set -eu
src=$(cd "$(dirname "$0")" && pwd)
echo "machine: $(uname -m)"
sh "$src/build-packages.sh"
cd /tmp/dpkg
dpkg -i libqusdemo1.deb qusdemo-tools.deb > install.log 2>&1 || { cat install.log; exit 1; }
grep -o '^Processing triggers for libc-bin' install.log
dpkg-query -W -f '${Package} ${Version} ${Status}\n' libqusdemo1 qusdemo-tools
libdir=/usr/lib/$(gcc -print-multiarch)/qusdemo
echo "ld.so.cache: $(ldconfig -p | grep -c "libqusdemo.so.1 (.*) => $libdir/libqusdemo.so.1\$")"
qusdemo-fib
