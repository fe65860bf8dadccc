#!/usr/bin/env bash
# The qus GitHub Action's step (action.yml runs it; README.md, "The qus
# GitHub Action", documents it): registers QEMU's handlers in the runner's
# binfmt_misc by running the qus registrar image once, writes the platforms
# the runner now supports to the `platforms` output, and with `run-suite`
# runs the conformance suite (`qus-harness run`) and names its JUnit report
# in the `junit` output.
#
# Inputs arrive as the runner names them for actions, with `-` spelled `_`
# (action.yml maps each one): INPUT_IMAGE, INPUT_PLATFORMS, INPUT_RESET,
# INPUT_PERSISTENT, INPUT_CREDENTIAL, INPUT_PRESERVE_ARGV0, INPUT_RUN_SUITE,
# INPUT_SUITE_TAGS. Outputs go to the file GITHUB_OUTPUT names. QUS_HARNESS
# names a qus-harness binary to use instead of building one.
#
# Exit status: 0 done; 1 the registration, the status or the suite failed
# (the registrar's or the harness's message is above the `::error::` line);
# 2 an input is invalid.
set -euo pipefail

action_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

error() { printf '::error title=qus::%s\n' "$*"; }

fail_input() { error "$*"; exit 2; }

# Sets variable $1 to input $2's value ($3, else the default $4) as the
# registrar spells booleans (`yes`/`no`).
boolean() {
    local value=${3:-$4}
    case "${value,,}" in
        true | yes) printf -v "$1" yes ;;
        false | no) printf -v "$1" no ;;
        *) fail_input "input \`$2\` must be \`true\` or \`false\`, got \`$value\`" ;;
    esac
}

image=${INPUT_IMAGE:-qus/qemu-user-static:latest}
boolean reset reset "${INPUT_RESET:-}" false
boolean persistent persistent "${INPUT_PERSISTENT:-}" true
boolean credential credential "${INPUT_CREDENTIAL:-}" false
boolean preserve_argv0 preserve-argv0 "${INPUT_PRESERVE_ARGV0:-}" false
boolean run_suite run-suite "${INPUT_RUN_SUITE:-}" false
suite_tags=${INPUT_SUITE_TAGS:-smoke}
# `linux/arm64, riscv64` or one per line: a comma-separated list.
platforms=$(printf '%s' "${INPUT_PLATFORMS:-all}" | tr -s ' \t\r\n,' ',' | sed 's/^,//; s/,$//')
[ -n "$platforms" ] || fail_input "input \`platforms\` names no platform"
[ -n "${GITHUB_OUTPUT:-}" ] || fail_input "GITHUB_OUTPUT is not set: this script is the qus action's step"
for tool in docker jq; do
    command -v "$tool" >/dev/null || {
        error "\`$tool\` is not installed on this runner (GitHub's hosted runners have it)"
        exit 1
    }
done

# Capabilities by number (include/uapi/linux/capability.h), for the
# fallback below.
capabilities=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
    LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
    SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
    SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
    MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
    CHECKPOINT_RESTORE)

# `--cap-drop` flags for the capabilities missing from this host's bounding
# set (SYS_RESOURCE when it cannot be read).
missing_capabilities() {
    local bounding last i found=
    bounding=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status 2>/dev/null) || true
    last=$(cat /proc/sys/kernel/cap_last_cap 2>/dev/null) || true
    if [ -n "$bounding" ] && [ -n "$last" ]; then
        for ((i = 0; i <= last && i < ${#capabilities[@]}; i++)); do
            if (((16#$bounding >> i & 1) == 0)); then
                printf -- '--cap-drop\n%s\n' "${capabilities[i]}"
                found=yes
            fi
        done
    fi
    [ -n "$found" ] || printf -- '--cap-drop\nSYS_RESOURCE\n'
}

# Runs the registrar image with "$@" (stdout passes through). Hosts whose
# capability bounding set is incomplete refuse `--privileged` before the
# container starts ("unable to apply caps"); there every capability the host
# has is granted instead, as qus-harness does.
privilege=(--privileged)
registrar() {
    local err status=0
    err=$(mktemp)
    docker run --rm "${privilege[@]}" "$image" "$@" 2>"$err" || status=$?
    if [ "$status" -ge 125 ] && [ "${privilege[0]}" = --privileged ] &&
        grep -q 'unable to apply caps' "$err"; then
        mapfile -t privilege < <(printf '%s\n' --cap-add ALL; missing_capabilities;
            printf '%s\n' --security-opt apparmor=unconfined --security-opt seccomp=unconfined)
        echo "::notice title=qus::this host refuses --privileged; running the registrar with ${privilege[*]}"
        status=0
        docker run --rm "${privilege[@]}" "$image" "$@" 2>"$err" || status=$?
    fi
    cat "$err" >&2
    rm -f "$err"
    return "$status"
}

args=()
[ "$reset" = no ] || args+=(--reset)
[ "$platforms" = all ] || args+=(--targets "$platforms")
# The wanted entries replace different ones already there (hosted runners
# may come with entries of their own); identical ones are left alone.
args+=(-p "$persistent" -c "$credential" -g "$preserve_argv0" --replace)
echo "qus: docker run --rm ${privilege[*]} $image ${args[*]}"
if ! registrar "${args[@]}"; then
    error "the registrar image \`$image\` failed to register \`$platforms\` (its message is above)"
    exit 1
fi

if ! status=$(registrar --status --json); then
    error "the registrar image \`$image\` failed to report the status (its message is above)"
    exit 1
fi
if ! supported=$(jq -er '.supported | join(",")' <<<"$status"); then
    error "the registrar image \`$image\` printed no \`supported\` list: $status"
    exit 1
fi
echo "platforms=$supported" >>"$GITHUB_OUTPUT"
echo "qus: supported platforms: $supported"

[ "$run_suite" = yes ] || exit 0

harness=${QUS_HARNESS:-}
if [ -z "$harness" ]; then
    command -v cargo >/dev/null || {
        error "run-suite builds qus-harness with cargo, which is not installed (or set QUS_HARNESS)"
        exit 1
    }
    target_dir=${RUNNER_TEMP:-/tmp}/qus-target
    echo "qus: building qus-harness from $action_root"
    cargo build --locked --quiet --manifest-path "$action_root/Cargo.toml" -p qus-harness \
        --target-dir "$target_dir"
    harness=$target_dir/debug/qus-harness
fi
junit=${RUNNER_TEMP:-/tmp}/qus-junit.xml
# The suite writes binfmt_misc (and puts it back): root.
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo -E env "PATH=$PATH")
echo "qus: qus-harness run $action_root/scenarios --tags '$suite_tags'"
suite=0
"${as_root[@]}" "$harness" run "$action_root/scenarios" --runtime docker --require-engine \
    --tags "$suite_tags" --junit "$junit" || suite=$?
[ ! -f "$junit" ] || echo "junit=$junit" >>"$GITHUB_OUTPUT"
if [ "$suite" -ne 0 ]; then
    error "the conformance suite failed on this runner (exit $suite; the report is above)"
    exit 1
fi
