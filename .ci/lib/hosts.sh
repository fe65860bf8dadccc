# Images for another host (aarch64) and the multi-platform names, for the CI
# gate (README.md, "Hosts"). Source this file, then call
#     hosts_images HARNESS OUT
# after `images build --output OUT/artifacts` (this host's images) and before
# the tests: it installs Debian's docker-registry and skopeo (the `hosts`
# test needs them too), builds the aarch64 host's images into
# qus/qemu-user-static-aarch64 and its tarballs into OUT/artifacts (one
# SHA256SUMS over both hosts), checks them with `file`, starts a registry on
# 127.0.0.1:5000 (storage in a temporary directory), pushes every tag with
# `images index` (latest, register, binfmt, versions: OCI image indexes over
# linux/amd64 and linux/arm64), checks what the registry serves, and stops
# the registry. It never writes the host's binfmt_misc registry (the
# emulated runs are the `hosts` test's, under its own guard).

hosts_registry_pid=
hosts_registry_dir=

hosts_stop_registry() {
    if [ -n "$hosts_registry_pid" ]; then
        kill "$hosts_registry_pid" 2>/dev/null || true
        wait "$hosts_registry_pid" 2>/dev/null || true
        hosts_registry_pid=
    fi
    if [ -n "$hosts_registry_dir" ]; then
        rm -rf "$hosts_registry_dir"
        hosts_registry_dir=
    fi
}

# hosts_start_registry ADDRESS: Debian's docker-registry on ADDRESS
# (127.0.0.1:5000), in the background; waits for it to answer.
hosts_start_registry() {
    local address=$1 i
    # Debian's package starts its own service on :5000 where an init system
    # runs it (with htpasswd auth): that one cannot be pushed to.
    if curl -sS -o /dev/null "http://$address/v2/" 2>/dev/null; then
        echo "error: \`$address\` is already in use (Debian's docker-registry service? \`service docker-registry stop\`, or set QUS_HOSTS_REGISTRY)" >&2
        return 1
    fi
    hosts_registry_dir=$(mktemp -d /tmp/qus-registry.XXXXXX)
    cat > "$hosts_registry_dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $hosts_registry_dir/store
http:
  addr: $address
EOF
    docker-registry serve "$hosts_registry_dir/config.yml" >"$hosts_registry_dir/registry.log" 2>&1 &
    hosts_registry_pid=$!
    for i in $(seq 50); do
        if ! kill -0 "$hosts_registry_pid" 2>/dev/null; then
            break
        fi
        if curl -fsS "http://$address/v2/" >/dev/null 2>&1; then
            echo "docker-registry on $address (pid $hosts_registry_pid)"
            return 0
        fi
        sleep 0.2
    done
    echo "error: docker-registry did not answer on $address within 10 s" >&2
    cat "$hosts_registry_dir/registry.log" >&2
    hosts_stop_registry
    return 1
}

# hosts_check_file FILE: FILE is an ARM aarch64 statically linked executable.
hosts_check_file() {
    local what
    what=$(file -b "$1")
    case "$what" in
        *"ARM aarch64"*static*) ;;
        *) echo "error: \`$1\` is not a static aarch64 executable: $what" >&2; return 1 ;;
    esac
}

hosts_images() {
    local harness=$1 out=$2
    # QUS_REPO (the harness reads it too) and QUS_HOSTS_REGISTRY let a
    # developer try this beside the gate's own images and registry.
    local repo=${QUS_REPO:-qus/qemu-user-static} address=${QUS_HOSTS_REGISTRY:-127.0.0.1:5000}
    local destination=$address/$repo scratch status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker-registry skopeo curl file >/dev/null

    # The aarch64 host's QEMU is the default, as for this host's `latest`:
    # the newest of Debian's suites, through a private APT directory for
    # arm64, so both hosts' version tags name the same QEMU.
    "$harness" images build --repo "$repo" --host-arch aarch64 --output "$out/artifacts"
    (cd "$out/artifacts" && sha256sum -c --quiet SHA256SUMS)
    scratch=$(mktemp -d /tmp/qus-hosts.XXXXXX)
    tar -xzf "$out/artifacts/aarch64_qemu-x86_64-static.tar.gz" -C "$scratch"
    hosts_check_file "$scratch/qemu-x86_64-static" || status=1
    local id
    id=$(docker create --platform linux/arm64 "$repo-aarch64:latest")
    docker cp "$id:/usr/bin/qus-register" "$scratch/qus-register" >/dev/null
    docker rm "$id" >/dev/null
    hosts_check_file "$scratch/qus-register" || status=1
    rm -rf "$scratch"
    [ "$status" -eq 0 ] || return 1

    hosts_start_registry "$address" || return 1
    "$harness" images index --repo "$repo" --to "$destination" || status=$?
    if [ "$status" -eq 0 ]; then
        local tag platforms
        for tag in latest register binfmt; do
            platforms=$(skopeo inspect --raw --tls-verify=false "docker://$destination:$tag" |
                jq -r '[.manifests[].platform | .os + "/" + .architecture] | join(",")') || status=1
            echo "$destination:$tag: $platforms"
            [ "$platforms" = "linux/amd64,linux/arm64" ] || {
                echo "error: \`$destination:$tag\` is not an index over linux/amd64 and linux/arm64" >&2
                status=1
            }
        done
    fi
    hosts_stop_registry
    return "$status"
}
