# Docker Engine for the CI gate. Source this file, then call start_dockerd.
# Debian's docker.io (engine 20.10, API 1.41) runs here without systemd, so
# the daemon is started in the background and we wait for its socket.

start_dockerd() {
    if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io runc >/dev/null
    fi
    nohup dockerd >/tmp/qus-dockerd.log 2>&1 &
    local i
    for i in $(seq 60); do
        if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
            echo "dockerd $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
            return 0
        fi
        sleep 1
    done
    echo "error: dockerd did not answer within 60 s" >&2
    tail -n 30 /tmp/qus-dockerd.log >&2
    return 1
}
