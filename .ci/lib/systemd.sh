# shellcheck shell=bash
# Checks deploy/systemd/qus-register.service for the CI gate (systemd is
# installed on the CI hosts but is not their init, so the unit cannot run):
#
#   source .ci/lib/systemd.sh
#   verify_systemd_unit target/debug/qus-register
#
# `systemd-analyze verify` on a copy of the unit whose ExecStart names
# REGISTRAR (it checks that the program exists and is executable; the
# shipped unit names /usr/local/bin/qus-register). It exits 0 after unknown
# keys and unparsable values too, only saying so: any output fails here.

QUS_SYSTEMD_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

verify_systemd_unit() {
    local registrar unit dir said
    registrar=$(realpath "$1") || return 1
    unit=$QUS_SYSTEMD_LIB_DIR/../../deploy/systemd/qus-register.service
    if ! command -v systemd-analyze >/dev/null; then
        echo "error: \`systemd-analyze\` is needed (apt-get install systemd)" >&2
        return 1
    fi
    grep -q '^ExecStart=/usr/local/bin/qus-register ' "$unit" ||
        { echo "error: $unit: ExecStart does not run /usr/local/bin/qus-register" >&2; return 1; }
    dir=$(mktemp -d /tmp/qus-unit.XXXXXX) || return 1
    sed "s|^ExecStart=/usr/local/bin/qus-register |ExecStart=$registrar |" "$unit" >"$dir/qus-register.service"
    said=$(systemd-analyze verify "$dir/qus-register.service" 2>&1)
    local status=$?
    rm -rf "$dir"
    if [ "$status" -ne 0 ] || [ -n "$said" ]; then
        echo "error: \`systemd-analyze verify\` of $unit (exit $status):" >&2
        printf '%s\n' "$said" >&2
        return 1
    fi
    echo "deploy/systemd/qus-register.service: systemd-analyze verify clean"
}
