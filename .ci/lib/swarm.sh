# shellcheck shell=bash
# The Swarm stage of the CI gate: deploy/swarm/qus.yml deployed for real on
# a one-node swarm (docs/examples.md, "Clusters and fleets").
#
#   source .ci/lib/swarm.sh
#   flock /tmp/qus-binfmt.lock bash -c 'source .ci/lib/swarm.sh && test_swarm_stack'
#
# test_swarm_stack needs root, a running dockerd that is in no swarm, the
# registrar image ($QUS_SWARM_IMAGE, default qus/qemu-user-static:latest,
# built by `qus-harness images build`: a one-node swarm runs local images
# with `--resolve-image never`), an arm64 image ($QUS_SWARM_ARM64_IMAGE,
# default qus-fixtures/arm64:bookworm) and binfmt_misc mounted. It:
#
#  1. saves the host's qemu-* entries, and starts from none (the service
#     then registers every entry itself, whatever the host had);
#  2. `docker swarm init --advertise-addr 127.0.0.1`;
#  3. deploys the stack as shipped (checks every $QUS_INTERVAL s, here 2),
#     waits (bounded) until Docker's healthcheck says healthy, runs `uname
#     -m` in the arm64 image, removes every qemu-* entry by hand and waits
#     for the service to put them back within two intervals, then `docker
#     stack rm`: the entries stay;
#  4. removes them, deploys again with deploy/swarm/uninstall-on-exit.yml:
#     healthy, then `docker stack rm` leaves no qemu-* entry;
#  5. whatever happened (a trap): removes the stack, leaves the swarm,
#     removes the docker_gwbridge network if the swarm made it, puts the
#     saved entries back and compares every binfmt_misc entry with the
#     listing taken before.
#
# The service sees the host's registry through its bind mount, so this must
# run under the machine's binfmt lock. Functions only: sourcing changes
# nothing.

QUS_SWARM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=binfmt.sh
source "$QUS_SWARM_LIB_DIR/binfmt.sh"

# Polls COMMAND... every 0.1 s for up to SECONDS; 0 as soon as it succeeds.
_qus_swarm_until() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# The container of the stack's service on this node (empty when none).
_qus_swarm_container() {
    local ids
    ids=$(docker ps -q --filter "label=com.docker.swarm.service.name=$1_qus-register") || return 1
    printf '%s\n' "${ids%%$'\n'*}"
}

_qus_swarm_healthy() {
    local cid
    cid=$(_qus_swarm_container "$1")
    [ -n "$cid" ] && [ "$(docker inspect --format '{{.State.Health.Status}}' "$cid")" = healthy ]
}

_qus_swarm_gone() {
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$1")" ] &&
        ! docker network inspect "$1_default" >/dev/null 2>&1
}

# Every entry of the list in FILE is registered with flags F.
_qus_swarm_all_back() {
    local name
    while read -r name; do
        grep -qx 'flags: F' "$QUS_BINFMT/$name" 2>/dev/null || return 1
    done <"$1"
}

# The log of STACK's container (not the service's, which goes through the
# swarm, later) has the line TEXT.
_qus_swarm_logged() {
    local log
    log=$(docker logs "$(_qus_swarm_container "$1")" 2>&1) && grep -qF "$2" <<<"$log"
}

# What a failure shows: the service's tasks, its last healthchecks and log.
_qus_swarm_show() {
    local stack=$1 cid
    echo "--- docker service ps $stack""_qus-register" >&2
    docker service ps --no-trunc "${stack}_qus-register" >&2 || true
    cid=$(_qus_swarm_container "$stack")
    if [ -n "$cid" ]; then
        echo "--- the last healthchecks of container $cid" >&2
        docker inspect --format \
            '{{with .State.Health}}{{range .Log}}exit {{.ExitCode}}: {{.Output}}{{println}}{{end}}{{end}}' \
            "$cid" 2>&1 | tail -n 12 >&2 || true
    fi
    echo "--- docker service logs $stack""_qus-register" >&2
    docker service logs --raw "${stack}_qus-register" 2>&1 | tail -n 40 >&2 || true
}

_qus_swarm_fail() {
    echo "error: swarm stage: $1" >&2
    [ -z "${2:-}" ] || _qus_swarm_show "$2"
    return 1
}

# Deploys STACK from the compose files given after it; waits (bounded) until
# Docker's healthcheck says healthy.
_qus_swarm_deploy() {
    local stack=$1 files=() f
    shift
    for f in "$@"; do files+=(-c "$f"); done
    local t0=$SECONDS
    docker stack deploy --resolve-image never --detach=true "${files[@]}" "$stack" >/dev/null ||
        _qus_swarm_fail "\`docker stack deploy $stack\` failed" || return 1
    _qus_swarm_until 60 _qus_swarm_healthy "$stack" ||
        _qus_swarm_fail "the service of \`$stack\` was not healthy within 60 s" "$stack" || return 1
    echo "swarm: $stack healthy after $((SECONDS - t0)) s: $(docker exec "$(_qus_swarm_container "$stack")" \
        /usr/bin/qus-register --check-health | wc -l) entries"
}

# `docker stack rm STACK`, then waits (bounded) until its container and
# network are gone.
_qus_swarm_remove() {
    local stack=$1
    docker stack rm "$stack" >/dev/null || _qus_swarm_fail "\`docker stack rm $stack\` failed" || return 1
    _qus_swarm_until 60 _qus_swarm_gone "$stack" ||
        _qus_swarm_fail "the stack \`$stack\` was not gone 60 s after \`docker stack rm\`" || return 1
}

# `uname -m` in IMAGE; its stderr (Docker warns that an arm64 image is not
# the host's platform) goes to WORK/run.err.
_qus_swarm_uname() {
    docker run --rm "$1" uname -m 2>"$2/run.err" || true
}

# The checks of steps 3 and 4 (see the header); runs with the swarm up.
_qus_swarm_checks() {
    local deploy=$1 work=$2 interval=$3 arm64=$4 out took
    local keep=qus-ci uninstall=qus-ci-uninstall
    # 3. The stack as shipped.
    _qus_swarm_deploy "$keep" "$deploy/qus.yml" || return 1
    qus_binfmt_qemu_entries >"$work/registered"
    [ -s "$work/registered" ] || _qus_swarm_fail "the service registered no qemu-* entry" "$keep" || return 1
    _qus_swarm_all_back "$work/registered" ||
        _qus_swarm_fail "the entries are not all registered with \`F\`" "$keep" || return 1
    out=$(_qus_swarm_uname "$arm64" "$work")
    [ "$out" = aarch64 ] ||
        _qus_swarm_fail "\`docker run $arm64 uname -m\` printed \`$out\`, not \`aarch64\`: $(cat "$work/run.err")" "$keep" || return 1
    echo "swarm: $(wc -l <"$work/registered") entries registered; $arm64 runs: $out"
    # What docs/examples.md tells users to run on a node.
    docker exec "$(_qus_swarm_container "$keep")" /usr/bin/qus-register --status --verify >"$work/status" 2>&1 ||
        _qus_swarm_fail "\`qus-register --status --verify\` in the task failed: $(tail -n 5 "$work/status")" "$keep" ||
        return 1
    # Flushed by hand: back within two intervals.
    qus_binfmt_flush
    took=$(date +%s%N)
    _qus_swarm_until $((2 * interval)) _qus_swarm_all_back "$work/registered" ||
        _qus_swarm_fail "the flushed entries were not all back within $((2 * interval)) s" "$keep" || return 1
    took=$((($(date +%s%N) - took) / 1000000))
    echo "swarm: every flushed entry back after $took ms (interval $interval s)"
    # The daemon logs a check's repairs when the check ends, after the
    # probes have run.
    # shellcheck disable=SC2016 # the backticks are the log's
    _qus_swarm_until $((2 * interval)) _qus_swarm_logged "$keep" 'repairing `qemu-aarch64`: it had vanished' ||
        _qus_swarm_fail "the service's log does not show the repair" "$keep" || return 1
    out=$(_qus_swarm_uname "$arm64" "$work")
    [ "$out" = aarch64 ] ||
        _qus_swarm_fail "after the repair, \`uname -m\` printed \`$out\`: $(cat "$work/run.err")" "$keep" || return 1
    _qus_swarm_remove "$keep" || return 1
    _qus_swarm_all_back "$work/registered" ||
        _qus_swarm_fail "without --uninstall-on-exit, \`docker stack rm\` removed entries" || return 1
    echo "swarm: docker stack rm: entries kept (no --uninstall-on-exit)"
    # 4. With --uninstall-on-exit, from no entry again.
    qus_binfmt_flush
    _qus_swarm_deploy "$uninstall" "$deploy/qus.yml" "$deploy/uninstall-on-exit.yml" || return 1
    _qus_swarm_all_back "$work/registered" ||
        _qus_swarm_fail "the entries are not all registered" "$uninstall" || return 1
    _qus_swarm_remove "$uninstall" || return 1
    out=$(qus_binfmt_qemu_entries)
    [ -z "$out" ] ||
        _qus_swarm_fail "with --uninstall-on-exit, \`docker stack rm\` left: $(echo "$out" | tr '\n' ' ')" || return 1
    echo "swarm: docker stack rm with --uninstall-on-exit: no qemu-* entry left"
}

# Step 5: undoes everything the stage may have done. Never fails early.
_qus_swarm_cleanup() {
    local work=$1 made_gwbridge=$2 stack status=0
    for stack in qus-ci qus-ci-uninstall; do
        if grep -qx "$stack" <<<"$(docker stack ls --format '{{.Name}}' 2>/dev/null)"; then
            docker stack rm "$stack" >/dev/null 2>&1 || true
            _qus_swarm_until 60 _qus_swarm_gone "$stack" || echo "warning: \`$stack\` still going" >&2
        fi
    done
    if [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" != inactive ]; then
        docker swarm leave --force >/dev/null || { echo "error: \`docker swarm leave --force\` failed" >&2; status=1; }
    fi
    if [ -n "$made_gwbridge" ] && docker network inspect docker_gwbridge >/dev/null 2>&1; then
        docker network rm docker_gwbridge >/dev/null || status=1
    fi
    qus_binfmt_restore "$work/saved" || status=1
    qus_binfmt_state >"$work/after"
    if ! diff -u "$work/before" "$work/after" >&2; then
        echo "error: swarm stage: the host's binfmt_misc entries are not as before the stage" >&2
        status=1
    else
        echo "swarm: host binfmt_misc entries restored; swarm left"
    fi
    rm -rf "$work"
    return "$status"
}

# The stage (see the header). Prints what it checked and its time; exit 0
# only when every check passed and the host was put back as it was.
test_swarm_stack() {
    local image=${QUS_SWARM_IMAGE:-qus/qemu-user-static:latest}
    local arm64=${QUS_SWARM_ARM64_IMAGE:-qus-fixtures/arm64:bookworm}
    local interval=2 deploy="$QUS_SWARM_LIB_DIR/../../deploy/swarm" work made_gwbridge='' t0=$SECONDS
    [ "$(id -u)" -eq 0 ] || { echo "error: test_swarm_stack needs root" >&2; return 1; }
    [ -e "$QUS_BINFMT/register" ] || { echo "error: binfmt_misc is not mounted at $QUS_BINFMT" >&2; return 1; }
    docker version --format '{{.Server.Version}}' >/dev/null || { echo "error: dockerd does not answer" >&2; return 1; }
    local i
    for i in "$image" "$arm64"; do
        docker image inspect "$i" >/dev/null 2>&1 ||
            { echo "error: the image \`$i\` is not in Docker (qus-harness images build / images fixtures)" >&2; return 1; }
    done
    if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != inactive ]; then
        echo "error: this Docker engine is already in a swarm; the stage makes and leaves its own" >&2
        return 1
    fi
    docker network inspect docker_gwbridge >/dev/null 2>&1 || made_gwbridge=yes
    work=$(mktemp -d /tmp/qus-swarm.XXXXXX)
    qus_binfmt_state >"$work/before"
    qus_binfmt_save "$work/saved" || { rm -rf "$work"; return 1; }
    # From here on, everything is undone whatever happens. The subshell
    # keeps the trap and `set -e` away from the caller.
    local status=0
    (
        # An EXIT trap's own status is lost unless it exits with it.
        local rc=0
        trap 'rc=$?; _qus_swarm_cleanup "$work" "$made_gwbridge" || rc=1; exit "$rc"' EXIT
        trap 'exit 130' INT TERM
        qus_binfmt_flush || exit 1
        docker swarm init --advertise-addr 127.0.0.1 >/dev/null || _qus_swarm_fail "\`docker swarm init\` failed" || exit 1
        export QUS_IMAGE=$image QUS_INTERVAL=$interval
        _qus_swarm_checks "$deploy" "$work" "$interval" "$arm64" || exit 1
    ) || status=$?
    echo "swarm stage: $([ "$status" -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - t0)) s"
    return "$status"
}
