#!/bin/sh
# dpkg --unpack, then dpkg --configure -a, as apt drives dpkg (unpacking
# with --no-triggers, so that every trigger waits for the configure run),
# twice: first the library and its tools (libc-bin's ldconfig trigger is
# processed at the end), then two plugins, whose files activate a file
# trigger of the already installed tools package (its postinst
# `triggered`).
set -eu
src=$(cd "$(dirname "$0")" && pwd)
echo "machine: $(uname -m)"
sh "$src/build-packages.sh"
cd /tmp/dpkg
status() {
    dpkg-query -W -f '${Package} ${Status}\n' libqusdemo1 qusdemo-tools qusdemo-plugin-a qusdemo-plugin-b 2> /dev/null || true
}
configure() {
    dpkg --configure -a > configure.log 2>&1 || { cat configure.log; exit 1; }
    grep -o '^Processing triggers for [a-z-]*' configure.log | sort -u
}
dpkg --unpack --no-triggers libqusdemo1.deb qusdemo-tools.deb > unpack.log 2>&1 || { cat unpack.log; exit 1; }
status
if qusdemo-fib > /dev/null 2>&1; then echo "unconfigured: qusdemo-fib runs"; else echo "unconfigured: qusdemo-fib fails"; fi
configure
status
dpkg --unpack --no-triggers qusdemo-plugin-a.deb qusdemo-plugin-b.deb > unpack.log 2>&1 || { cat unpack.log; exit 1; }
status
configure
status
echo "audit: $(dpkg --audit | wc -l) lines"
echo "state: $(cat /var/lib/qusdemo/state), plugins: $(cat /var/lib/qusdemo/plugins)"
cat /var/lib/qusdemo/triggers
qusdemo-fib
