# shellcheck shell=bash
# README's two commands on a fresh machine (issue 15): a clean Debian 12
# (bookworm) root filesystem made by the host's debootstrap (default
# variant, as a plain install has), with only Rust added: the host's
# toolchain bind-mounted read-only at /opt/rust and what rustup lists as
# Rust's prerequisites on Debian (`gcc`, `libc6-dev`, `ca-certificates`).
# The committed tree goes to /root/qus; the root filesystem is entered with
# pivot_root in new mount and pid namespaces (a chroot cannot make user
# namespaces, which the hermetic host suite needs), with proc, sysfs, /dev,
# devpts, a tmpfs /tmp, the host's resolv.conf and CA bundle (the network's
# settings) and the kernel's binfmt_misc at /proc/sys/fs/binfmt_misc; no engine socket or program. There it runs,
# as root with CI=true, the commands of README's Quick start (each block's
# `# ` lines, in order, stopping at the first that fails), read from the
# blocks after `<!-- fresh-machine: main -->` and `<!-- fresh-machine:
# tests -->`. Fails if either fails, if the main command executed fewer
# than QUS_FRESHROOT_MIN_INSTANCES (35) instances, or if the host's
# binfmt_misc entries differ afterwards.
# The root filesystem is cached as a tarball under
# ${QUS_CACHE_DIR:-/var/cache/qus}/freshroot/, named by a hash of its recipe;
# cargo's downloads and the target directory are cached beside it (a build
# cache); the harness's own cache inside starts empty each run.
# Source it, then call `fresh_machine_commands REPO OUT`. Needs root,
# debootstrap, util-linux (unshare, pivot_root), rustc and git on the host.

_freshroot_suite=bookworm
_freshroot_mirror=http://deb.debian.org/debian
_freshroot_packages=(gcc libc6-dev ca-certificates)

# _freshroot_make DIR: debootstrap into DIR, then the packages with the
# root filesystem's own apt. Its text is part of the cache key.
_freshroot_make() {
    local dir=$1 t
    t=$(date +%s)
    debootstrap "$_freshroot_suite" "$dir" "$_freshroot_mirror" >/dev/null
    echo "freshroot: debootstrap in $(( $(date +%s) - t ))s"
    t=$(date +%s)
    cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
    # apt in the root filesystem, in a mount namespace of its own.
    # shellcheck disable=SC2016 # expanded by the inner bash
    unshare --mount --propagation private -- bash -c '
        set -euo pipefail
        dir=$1; shift
        mount -t proc proc "$dir/proc"
        mount --bind /dev "$dir/dev"
        mount -t devpts -o newinstance devpts "$dir/dev/pts"
        chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
        chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "$@" >/dev/null
        chroot "$dir" apt-get clean
    ' make "$dir" "${_freshroot_packages[@]}"
    rm -rf "$dir"/var/lib/apt/lists/*
    echo "freshroot: apt-get install in $(( $(date +%s) - t ))s"
}

# _freshroot_key: the recipe's hash.
_freshroot_key() {
    {
        printf '%s\n' "$_freshroot_suite" default "$_freshroot_mirror" "${_freshroot_packages[@]}"
        declare -f _freshroot_make
    } | sha256sum | cut -c1-16
}

# The kernel's binfmt_misc entries, as text: qus_binfmt_state.
# shellcheck source=binfmt.sh
source "$(dirname "${BASH_SOURCE[0]}")/binfmt.sh"

# _freshroot_block README NAME: the commands (`# ` lines) of the fenced
# block after `<!-- fresh-machine: NAME -->`, one per line.
_freshroot_block() {
    awk -v marker="<!-- fresh-machine: $2 -->" '
        $0 == marker { armed = 1; next }
        armed && /^```/ { if (inside) exit; inside = 1; next }
        inside && /^# / { print substr($0, 3) }
    ' "$1"
}

# freshroot_tarball: makes the cached root filesystem unless it exists
# (it writes no binfmt_misc: callers may run it before taking the lock).
freshroot_tarball() {
    local cache=${QUS_CACHE_DIR:-/var/cache/qus}/freshroot key tarball t0 make_dir
    key=$(_freshroot_key)
    tarball=$cache/rootfs-$_freshroot_suite-$key.tar
    if [ -f "$tarball" ]; then
        echo "freshroot: reusing $tarball"
        return 0
    fi
    mkdir -p "$cache"
    t0=$(date +%s)
    echo "freshroot: making $tarball (debootstrap $_freshroot_suite, then ${_freshroot_packages[*]})"
    make_dir=$(mktemp -d /tmp/qus-freshroot-make.XXXXXX)
    if ! _freshroot_make "$make_dir/root"; then
        rm -rf "$make_dir"
        echo "error: the fresh root filesystem could not be made" >&2
        return 1
    fi
    # Written under a temporary name, renamed when whole.
    tar --numeric-owner -C "$make_dir/root" -cf "$tarball.tmp.$$" . &&
        mv "$tarball.tmp.$$" "$tarball"
    rm -rf "$make_dir" "$tarball.tmp.$$"
    [ -f "$tarball" ] || { echo "error: failed to write \`$tarball\`" >&2; return 1; }
    echo "freshroot: root filesystem made in $(( $(date +%s) - t0 ))s"
}

# fresh_machine_commands REPO OUT: see the header. Logs go to
# OUT/fresh-main.log and OUT/fresh-tests.log.
fresh_machine_commands() {
    local repo=$1 out=$2
    local cache=${QUS_CACHE_DIR:-/var/cache/qus}/freshroot
    local minimum=${QUS_FRESHROOT_MIN_INSTANCES:-35}
    local key t0 scratch tarball status=0
    key=$(_freshroot_key)
    t0=$(date +%s)
    freshroot_tarball || return 1
    tarball=$cache/rootfs-$_freshroot_suite-$key.tar
    mkdir -p "$cache/cargo-home" "$cache/target-$key" "$out"

    scratch=$(mktemp -d /tmp/qus-freshroot.XXXXXX)
    tar --numeric-owner -C "$scratch" -xpf "$tarball"
    mkdir -p "$scratch/root/qus" "$scratch/opt/rust" "$scratch/root/.cargo"
    git -C "$repo" archive HEAD | tar -C "$scratch/root/qus" -xf -
    mkdir -p "$scratch/root/qus/target"
    # The network's settings, as a machine on it has them: its resolver
    # and the certificate authorities it trusts (a TLS-intercepting egress
    # proxy's among them, where there is one).
    cp -L /etc/resolv.conf "$scratch/etc/resolv.conf"
    cp -L /etc/ssl/certs/ca-certificates.crt "$scratch/etc/ssl/certs/ca-certificates.crt"
    local readme=$scratch/root/qus/README.md main tests
    main=$(_freshroot_block "$readme" main)
    tests=$(_freshroot_block "$readme" tests)
    if [ -z "$main" ] || [ -z "$tests" ]; then
        rm -rf "$scratch"
        echo "error: README.md has no \`<!-- fresh-machine: main|tests -->\` block of \`# \` commands" >&2
        return 1
    fi
    echo "freshroot: main command: $main"
    echo "freshroot: test command: $tests"
    echo "freshroot: root filesystem ready in $(( $(date +%s) - t0 ))s"

    local before after
    before=$(mktemp) after=$(mktemp)
    qus_binfmt_state > "$before"
    # New mount and pid namespaces; every mount below dies with them.
    # shellcheck disable=SC2016 # expanded by the inner bash
    unshare --mount --propagation private --pid --fork -- bash -c '
        set -euo pipefail
        root=$1 sysroot=$2 cache=$3 key=$4 out=$5 minimum=$6 main=$7 tests=$8
        mount --bind "$root" "$root"
        mount -t proc proc "$root/proc"
        mount -t sysfs sysfs "$root/sys"
        mount --bind /dev "$root/dev"
        mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
        mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx"
        mount -t tmpfs tmpfs "$root/dev/shm"
        mount -t tmpfs tmpfs "$root/tmp"
        mount -t binfmt_misc binfmt_misc "$root/proc/sys/fs/binfmt_misc"
        mount --bind "$sysroot" "$root/opt/rust"
        mount -o remount,bind,ro "$root/opt/rust"
        mount --bind "$cache/cargo-home" "$root/root/.cargo"
        mount --bind "$cache/target-$key" "$root/root/qus/target"
        mkdir -p "$root/.oldroot"
        cd "$root"
        pivot_root . .oldroot
        umount -l /.oldroot
        rmdir /.oldroot
        cd /root/qus
        # The commands run with the fresh machine'"'"'s environment, and CI=true.
        run() {
            env -i HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 TERM=dumb CI=true \
                PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                bash -e -o pipefail -c "$1"
        }
        t=$(date +%s)
        status=0
        run "$main" 2>&1 | tee /tmp/qus-main.log >&3 || status=$?
        echo "freshroot: main command exit $status in $(( $(date +%s) - t ))s" >&4
        [ "$status" -eq 0 ] || exit 10
        # The summary'"'"'s first line: `N passed, N failed, N skipped`.
        executed=$(awk '"'"'/^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$/ { n += $1 + $3 } END { print n + 0 }'"'"' /tmp/qus-main.log)
        echo "freshroot: main command executed $executed instances (at least $minimum must)" >&4
        [ "$executed" -ge "$minimum" ] || exit 12
        t=$(date +%s)
        run "$tests" > /dev/fd/5 2>&1 || status=$?
        echo "freshroot: test command exit $status in $(( $(date +%s) - t ))s" >&4
        [ "$status" -eq 0 ] || exit 11
    ' freshroot "$scratch" "$(rustc --print sysroot)" "$cache" "$key" "$out" "$minimum" "$main" "$tests" \
        3>"$out/fresh-main.log" 4>&1 5>"$out/fresh-tests.log" || status=$?
    qus_binfmt_state > "$after"
    rm -rf "$scratch"

    echo "--- main command (tail of $out/fresh-main.log)"
    grep -E '^ *Finished ' "$out/fresh-main.log" || true
    tail -n 8 "$out/fresh-main.log"
    if [ -s "$out/fresh-tests.log" ]; then
        echo "--- test command ($out/fresh-tests.log: test results)"
        grep -E '^ *Finished |^test result:' "$out/fresh-tests.log" || true
        tail -n 4 "$out/fresh-tests.log"
    fi
    local binfmt_same=1
    if ! diff -u "$before" "$after"; then binfmt_same=0; fi
    rm -f "$before" "$after"
    echo "freshroot: done in $(( $(date +%s) - t0 ))s"
    case $status in
        0) ;;
        10) echo "error: README's main command failed on a fresh Debian 12" >&2; return 1 ;;
        11) echo "error: README's test command failed on a fresh Debian 12" >&2; return 1 ;;
        12) echo "error: README's main command executed fewer than $minimum instances on a fresh Debian 12" >&2; return 1 ;;
        *) echo "error: the fresh Debian 12 root filesystem could not be entered (exit $status)" >&2; return 1 ;;
    esac
    [ "$binfmt_same" = 1 ] || { echo "error: the host's binfmt_misc entries changed during README's commands" >&2; return 1; }
    echo "freshroot: README's two commands pass on a fresh Debian 12 (host binfmt_misc unchanged)"
}
