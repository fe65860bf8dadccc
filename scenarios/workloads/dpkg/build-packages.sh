#!/bin/sh
# Builds, under /tmp/dpkg, the packages the dpkg workloads install:
#   libqusdemo1      libqusdemo.so.1 in /usr/lib/<multiarch>/qusdemo, a
#                    directory only its /etc/ld.so.conf.d file names, with
#                    the `activate-noawait ldconfig` trigger every Debian
#                    shared library package has: libc-bin's ldconfig runs;
#   qusdemo-tools    qusdemo-fib, linked to it (Depends: libqusdemo1), a
#                    postinst that records its configuration, and a file
#                    trigger (`interest`) on /usr/share/qusdemo/plugins whose
#                    `triggered` postinst rebuilds an index of the plugins;
#   qusdemo-plugin-a, qusdemo-plugin-b
#                    one file each in that directory.
# Compiling and packaging use the container's own gcc and dpkg-deb.
set -eu
src=$(cd "$(dirname "$0")" && pwd)
arch=$(dpkg --print-architecture)
libdir=/usr/lib/$(gcc -print-multiarch)/qusdemo
out=/tmp/dpkg
mkdir -p "$out/build"
cd "$out/build"
gcc -O2 -fPIC -shared -Wl,-soname,libqusdemo.so.1 -o libqusdemo.so.1.0.0 "$src/qusdemo.c"
ln -sf libqusdemo.so.1.0.0 libqusdemo.so.1
gcc -O2 -I"$src" -o qusdemo-fib "$src/fib.c" -L. -l:libqusdemo.so.1

control() { # package depends description
    printf 'Package: %s\nVersion: 1.0-1\nArchitecture: %s\n' "$1" "$arch"
    printf 'Maintainer: qus <qus@example.invalid>\n'
    [ -z "$2" ] || printf 'Depends: %s\n' "$2"
    printf 'Section: misc\nPriority: optional\nDescription: %s\n qus workload test package.\n' "$3"
}

pkg=libqusdemo1
mkdir -p "$pkg/DEBIAN" "$pkg$libdir" "$pkg/etc/ld.so.conf.d"
cp libqusdemo.so.1.0.0 "$pkg$libdir/"
ln -sf libqusdemo.so.1.0.0 "$pkg$libdir/libqusdemo.so.1"
echo "$libdir" > "$pkg/etc/ld.so.conf.d/qusdemo.conf"
echo /etc/ld.so.conf.d/qusdemo.conf > "$pkg/DEBIAN/conffiles"
control "$pkg" "" "Fibonacci numbers (shared library)" > "$pkg/DEBIAN/control"
echo 'activate-noawait ldconfig' > "$pkg/DEBIAN/triggers"

pkg=qusdemo-tools
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/share/qusdemo/plugins"
cp qusdemo-fib "$pkg/usr/bin/"
control "$pkg" "libqusdemo1 (>= 1.0)" "Fibonacci numbers (tools)" > "$pkg/DEBIAN/control"
echo 'interest /usr/share/qusdemo/plugins' > "$pkg/DEBIAN/triggers"
cat > "$pkg/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
index() {
    ls /usr/share/qusdemo/plugins | tr '\n' ' ' | sed 's/ $//' > /var/lib/qusdemo/plugins
}
case "$1" in
configure)
    mkdir -p /var/lib/qusdemo
    echo "configured" > /var/lib/qusdemo/state
    index
    ;;
triggered)
    echo "triggered by $2" >> /var/lib/qusdemo/triggers
    index
    ;;
esac
SCRIPT
chmod 0755 "$pkg/DEBIAN/postinst"

for name in a b; do
    pkg=qusdemo-plugin-$name
    mkdir -p "$pkg/DEBIAN" "$pkg/usr/share/qusdemo/plugins"
    echo "plugin $name" > "$pkg/usr/share/qusdemo/plugins/$name"
    control "$pkg" "qusdemo-tools" "Fibonacci numbers (plugin $name)" > "$pkg/DEBIAN/control"
done

for pkg in libqusdemo1 qusdemo-tools qusdemo-plugin-a qusdemo-plugin-b; do
    dpkg-deb --root-owner-group --build "$pkg" "$out/$pkg.deb" > /dev/null
done
