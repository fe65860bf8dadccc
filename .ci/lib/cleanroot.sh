# shellcheck shell=bash
# The suite on a machine view with no engine (issue 15): a mount namespace in
# which Docker's and Podman's sockets are hidden (bind-mounted over with
# /dev/null) and every engine program removed from an overlay of /usr/bin and
# /usr/local/bin, optionally every /usr/bin/qemu-* too.
# `qus-harness run --runtime auto` then finds no engine, says so, and runs
# the hermetic host suite: binfmt-writing instances in private binfmt_misc
# namespaces (Linux 6.7+, root), in parallel, the host's registry compared
# before and after. Source it, then call `no_engine_suite HARNESS OUT NAME
# [--no-qemu]`. Needs root, util-linux's unshare, python3.

# The sockets an engine answers on, hidden by a bind mount of /dev/null.
_qus_engine_sockets=(/var/run/docker.sock /run/docker.sock /run/podman/podman.sock)
# The engine programs, removed from an overlay of their directory: a bind
# mount inside /usr/bin would make the harness's own overlay of /usr/bin
# (registrar image views) fail with EINVAL in a user namespace.
_qus_engine_programs=(docker dockerd podman apptainer singularity)

# without_engines [--no-qemu] COMMAND...: COMMAND in a mount namespace that
# hides every engine (and with --no-qemu, every qemu-* of /usr/bin). The
# host's mounts are untouched.
without_engines() {
    local hide_qemu=0
    if [ "${1:-}" = --no-qemu ]; then hide_qemu=1; shift; fi
    # shellcheck disable=SC2016 # expanded by the inner bash
    unshare --mount --propagation private -- bash -c '
        set -euo pipefail
        hide_qemu=$1; shift
        sockets=()
        while [ "$1" != -- ]; do sockets+=("$1"); shift; done
        shift
        programs=()
        while [ "$1" != -- ]; do programs+=("$1"); shift; done
        shift
        for s in "${sockets[@]}"; do
            if [ -e "$s" ] || [ -S "$s" ]; then mount --bind /dev/null "$s"; fi
        done
        scratch=/tmp/qus-cleanroot
        mkdir -p "$scratch"
        mount -t tmpfs qus-cleanroot "$scratch"
        for dir in /usr/bin /usr/local/bin; do
            [ -d "$dir" ] || continue
            name=${dir//\//_}
            mkdir -p "$scratch/$name/upper" "$scratch/$name/work"
            mount -t overlay qus-cleanroot \
                -o "lowerdir=$dir,upperdir=$scratch/$name/upper,workdir=$scratch/$name/work" "$dir"
            for p in "${programs[@]}"; do rm -f "$dir/$p"; done
            if [ "$hide_qemu" = 1 ]; then rm -f "$dir"/qemu-*; fi
        done
        exec "$@"
    ' hide "$hide_qemu" "${_qus_engine_sockets[@]}" -- "${_qus_engine_programs[@]}" -- "$@"
}

# no_engine_suite HARNESS OUT NAME [--no-qemu]: the suite with every engine
# hidden; the report goes to OUT/report-NAME.json, the console to
# OUT/NAME.log. Fails unless the run passed, its first line says no engine
# answered, at least 40 instances executed (MINIMUM) and the host's registry was
# untouched (check-report.py host).
no_engine_suite() {
    local harness=$1 out=$2 name=$3 hide=()
    [ "${4:-}" = --no-qemu ] && hide=(--no-qemu)
    local status=0
    # Unset what would point the harness at an engine the view still shows.
    without_engines "${hide[@]}" env -u DOCKER_HOST -u CONTAINER_HOST \
        -u QUS_PODMAN_SOCKET -u QUS_SINGULARITY_BIN CI=true \
        "$harness" run scenarios/ --runtime auto --json "$out/report-$name.json" \
        > "$out/$name.log" 2>&1 || status=$?
    head -n 8 "$out/$name.log"
    tail -n 12 "$out/$name.log"
    if ! head -n 1 "$out/$name.log" | grep -q '^note: no container engine answered'; then
        echo "error: the run did not start by naming the engines it tried" >&2
        return 1
    fi
    python3 .ci/check-report.py host "$out/report-$name.json" || return 1
    [ "$status" -eq 0 ] || { echo "error: the engine-less suite failed (exit $status)" >&2; return 1; }
}
