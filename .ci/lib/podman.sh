# shellcheck shell=bash
# Podman's Docker-compatible API service, for the harness's podman runtime.
#
# Source this file, then call `start_podman_service`. Podman 4.3 on the CI
# hosts needs runc (crun fails there; see design/ENVIRONMENT.md, "Podman"),
# so the service runs with `--runtime runc`; the harness sends the ulimits
# podman needs in every container's HostConfig. The socket is
# $QUS_PODMAN_SOCKET, else $CONTAINER_HOST, else the rootful default: the
# order `PodmanRuntime::connect` reads them in.

# Whether the service at unix socket path $1 answers `/_ping` with `OK`.
podman_service_answers() {
    [ -S "$1" ] || return 1
    [ "$(curl --silent --max-time 2 --unix-socket "$1" http://d/_ping 2>/dev/null)" = "OK" ]
}

# Starts the podman API service unless one already answers, and waits up
# to 30 s for it to answer. Logs go to $QUS_PODMAN_LOG (default
# /tmp/podman-service.log). Fails, printing the log's tail, when the
# service exits or does not answer in time.
start_podman_service() {
    local endpoint=${QUS_PODMAN_SOCKET:-${CONTAINER_HOST:-unix:///run/podman/podman.sock}}
    local log=${QUS_PODMAN_LOG:-/tmp/podman-service.log}
    local path=${endpoint#unix://}
    if [ "$path" = "$endpoint" ] && [ "${endpoint#*://}" != "$endpoint" ]; then
        echo "error: start_podman_service needs a unix:// socket, not \`$endpoint\`" >&2
        return 1
    fi
    if podman_service_answers "$path"; then
        echo "podman service already answers at unix://$path"
        return 0
    fi
    local tool
    for tool in podman runc curl; do
        if ! command -v "$tool" >/dev/null; then
            echo "error: \`$tool\` is not installed (apt-get install -y podman runc curl)" >&2
            return 1
        fi
    done
    mkdir -p "$(dirname "$path")" || return 1
    # A socket left by a dead service would make the new one fail to bind.
    rm -f "$path"
    # --time=0: never exit when idle. setsid: outlive the calling shell and
    # its job control, as dockerd does in .ci/run.
    setsid podman --runtime runc system service --time=0 "unix://$path" \
        >"$log" 2>&1 </dev/null &
    local pid=$!
    local deadline=$((SECONDS + 30))
    until podman_service_answers "$path"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "error: the podman service exited before answering at unix://$path; last lines of $log:" >&2
            tail -n 20 "$log" >&2
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "error: the podman service (pid $pid) did not answer at unix://$path within 30 s; last lines of $log:" >&2
            tail -n 20 "$log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "podman service (pid $pid) answers at unix://$path; log: $log"
}
