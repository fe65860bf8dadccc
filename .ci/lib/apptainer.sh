# shellcheck shell=bash
# Apptainer on a Debian 12 CI host: `source .ci/lib/apptainer.sh && setup_apptainer`.
#
# Apptainer is not in bookworm; sid has it (1.4.x) but built against sid's
# glibc, so it lives in a sid root filesystem and runs through the wrapper
# fixtures/apptainer/apptainer-sid (see its header and
# /work/shared/design/ENVIRONMENT.md, "Apptainer").
#
# The rootfs is cached in ${QUS_CACHE_DIR:-/var/cache/qus}/apptainer-<hash>,
# where <hash> covers the recipe: the suite, the package list and the text
# of the function that builds it. A changed recipe builds a new cache; an
# intact cache (its apptainer answers --version) is reused as is. The build
# goes to a temporary directory that is renamed into place only once it
# works, so an interrupted build never leaves a cache that looks valid.
# Note: sid moves daily, but the cache does not follow it; bump
# QUS_APPTAINER_RECIPE_REV to force a fresh build.
#
# Needs root. Functions only: sourcing this file changes nothing.

QUS_APPTAINER_SUITE=sid
QUS_APPTAINER_PACKAGES=(apptainer)
QUS_APPTAINER_RECIPE_REV=1
QUS_APPTAINER_MIRROR=${QUS_APPTAINER_MIRROR:-http://deb.debian.org/debian}
QUS_APPTAINER_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The recipe text the cache key is the hash of. The mirror is left out: any
# mirror serves the same suite.
_qus_apptainer_recipe() {
    printf 'rev=%s\nsuite=%s\npackages=%s\n' \
        "$QUS_APPTAINER_RECIPE_REV" "$QUS_APPTAINER_SUITE" "${QUS_APPTAINER_PACKAGES[*]}"
    declare -f _qus_apptainer_build
}

# The cache directory for the current recipe.
apptainer_cache_dir() {
    local hash
    hash=$(_qus_apptainer_recipe | sha256sum | cut -c1-16)
    printf '%s/apptainer-%s\n' "${QUS_CACHE_DIR:-/var/cache/qus}" "$hash"
}

# Whether ROOTFS holds a working apptainer.
_qus_apptainer_works() {
    local rootfs=$1
    [ -x "$rootfs/usr/bin/apptainer" ] &&
        QUS_APPTAINER_ROOT=$rootfs "$QUS_APPTAINER_LIB_DIR/../../fixtures/apptainer/apptainer-sid" \
            --version >/dev/null 2>&1
}

# Unmounts everything below DIR (a failed build may leave /proc mounted).
_qus_apptainer_umount_below() {
    local dir=$1 mnt
    # Deepest first.
    findmnt -rn -o TARGET | { grep -F "$dir/" || true; } | sort -r | while read -r mnt; do
        umount -l "$mnt" || true
    done
}

# Builds a sid rootfs with the packages into ROOTFS (which must not exist).
# Every step checks its status itself: callers run this in an `if`, where
# bash ignores `set -e`.
_qus_apptainer_build() {
    local rootfs=$1
    debootstrap --variant=minbase "$QUS_APPTAINER_SUITE" "$rootfs" "$QUS_APPTAINER_MIRROR" \
        >"$rootfs.debootstrap.log" 2>&1 || {
        tail -n 30 "$rootfs.debootstrap.log" >&2
        return 1
    }
    # apt needs name resolution; apptainer binds /etc/hosts into every
    # container and fails when it is missing (minbase has none). The wrapper
    # binds the host's copies over both at run time.
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf" || return 1
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
        >"$rootfs/etc/hosts" || return 1
    # sid's Release files can be past their Valid-Until on a host with an
    # old clock or a snapshot mirror; the signature is still checked.
    # apt runs in a private mount namespace with /proc mounted: some
    # maintainer scripts read it, and nothing leaks if we are interrupted.
    # shellcheck disable=SC2016 # the inner scripts expand their own "$@"
    unshare --mount --propagation private -- sh -euc '
        mount -t proc proc "$1/proc"
        shift
        exec chroot "$@"
    ' sh "$rootfs" "$rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -euc '
        apt-get -q -o Acquire::Check-Valid-Until=false update
        apt-get -q install -y --no-install-recommends "$@"
        apt-get clean
        rm -rf /var/lib/apt/lists/*
    ' sh "${QUS_APPTAINER_PACKAGES[@]}" >"$rootfs.apt.log" 2>&1 || {
        tail -n 30 "$rootfs.apt.log" >&2
        return 1
    }
    # The wrapper pivots into the rootfs; the old root needs a mount point.
    mkdir -p "$rootfs/.qus-old-root" || return 1
    _qus_apptainer_recipe >"$rootfs/.qus-recipe" || return 1
}

# Removes the rootfs of other recipes from CACHE (all but KEEP): only
# directories this script made (they hold .qus-recipe) and no build in
# progress.
_qus_apptainer_prune() {
    local cache=$1 keep=$2 dir
    for dir in "$cache"/apptainer-*; do
        if [ "$dir" != "$keep" ] && [ -f "$dir/.qus-recipe" ]; then
            echo "apptainer: removing the superseded $dir" >&2
            _qus_apptainer_umount_below "$dir"
            rm -rf --one-file-system "$dir"
        fi
    done
    # Builds killed before their cleanup ran (an hour is far longer than one).
    find "$cache" -mindepth 1 -maxdepth 1 -name '.apptainer-build.*' -mmin +60 \
        -exec rm -rf --one-file-system {} + || true
}

# Installs the wrapper as /usr/local/bin/apptainer-sid, defaulting to ROOTFS
# and showing this repository (scenarios bind files from it) inside.
_qus_apptainer_install_wrapper() {
    local rootfs=$1 src="$QUS_APPTAINER_LIB_DIR/../../fixtures/apptainer/apptainer-sid"
    local tmp repo
    repo=$(cd "$QUS_APPTAINER_LIB_DIR/../.." && pwd -P)
    tmp=$(mktemp /usr/local/bin/.apptainer-sid.XXXXXX)
    sed -e "s|^default_root=.*# @default-root@\$|default_root=$rootfs # @default-root@|" \
        -e "s|^default_binds=.*# @default-binds@\$|default_binds=$repo # @default-binds@|" \
        "$src" >"$tmp"
    grep -qF "default_root=$rootfs " "$tmp" && grep -qF "default_binds=$repo " "$tmp" || {
        rm -f "$tmp"
        echo "error: failed to set the default rootfs and binds in \`$src\`" >&2
        return 1
    }
    chmod 0755 "$tmp"
    mv -f "$tmp" /usr/local/bin/apptainer-sid
}

# Makes `apptainer-sid` available, building the sid rootfs if no intact
# cache exists for the recipe; prints the apptainer version.
setup_apptainer() {
    local cache root build
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: setup_apptainer needs root (debootstrap, unshare -m)" >&2
        return 1
    fi
    root=$(apptainer_cache_dir)
    cache=$(dirname "$root")
    mkdir -p "$cache"
    if [ -d "$root" ] && _qus_apptainer_works "$root"; then
        echo "apptainer: reusing $root" >&2
    else
        if [ -e "$root" ]; then
            echo "apptainer: $root is broken; rebuilding" >&2
            _qus_apptainer_umount_below "$root"
            rm -rf --one-file-system "$root"
        fi
        if ! command -v debootstrap >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                debootstrap >/dev/null
        fi
        echo "apptainer: building $root (debootstrap $QUS_APPTAINER_SUITE)" >&2
        # Same filesystem as the cache, so the final rename is atomic.
        build=$(mktemp -d "$cache/.apptainer-build.XXXXXX")
        if ! (_qus_apptainer_build "$build/rootfs" && _qus_apptainer_works "$build/rootfs"); then
            echo "error: failed to build the apptainer rootfs in \`$build\`" >&2
            _qus_apptainer_umount_below "$build"
            rm -rf --one-file-system "$build"
            return 1
        fi
        mv -T "$build/rootfs" "$root"
        rm -rf "$build"
        _qus_apptainer_prune "$cache" "$root"
    fi
    _qus_apptainer_install_wrapper "$root" || return 1
    /usr/local/bin/apptainer-sid --version
}
