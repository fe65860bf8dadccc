# shellcheck shell=bash
# Offline validation of deploy/kubernetes/ for the CI gate (no cluster here):
#
#   source .ci/lib/kubernetes.sh
#   validate_kubernetes "$out/venv" "$out/kubernetes"
#
# 1. Renders each variant with `kubectl kustomize` (the kustomize built into
#    kubectl; 1.21 or later for components): deploy/kubernetes,
#    deploy/kubernetes/uninstall-on-exit, deploy/kubernetes/privileged, into
#    OUT_DIR/<variant>.yaml.
# 2. Validates every rendered object with kubernetes-validate (PyPI, pinned;
#    the JSON schemas ship inside the package, so nothing is fetched at
#    check time), `--strict` (an unknown field is an error, so a misspelt
#    key cannot pass), against the oldest and the newest Kubernetes it
#    ships schemas for ($QUS_KUBERNETES_VERSIONS).
# 3. Checks that the DaemonSet runs what deploy/swarm/qus.yml runs (the same
#    arguments, the same QUS_* environment but for the interval, the same
#    probe command), since the Swarm stage (.ci/lib/swarm.sh) is where that
#    command line runs for real; and that the variants differ from the base
#    only as they say.
#
# Needs python3 with venv and PyPI reachable once (VENV_DIR is created if
# missing, and may be the one .ci/run makes for check-jsonschema).

QUS_KUBERNETES_VALIDATE=${QUS_KUBERNETES_VALIDATE:-kubernetes-validate==1.37.0}
QUS_KUBERNETES_VERSIONS=${QUS_KUBERNETES_VERSIONS:-1.25.0 1.37.0}
QUS_KUBERNETES_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

validate_kubernetes() {
    local venv=$1 outdir=$2 repo variant version files=()
    repo=$(cd "$QUS_KUBERNETES_LIB_DIR/../.." && pwd)
    if ! command -v kubectl >/dev/null; then
        echo "error: \`kubectl\` (1.21 or later) is needed to render deploy/kubernetes with kustomize" >&2
        return 1
    fi
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" || return 1
    "$venv/bin/pip" install -q --disable-pip-version-check "$QUS_KUBERNETES_VALIDATE" || return 1
    mkdir -p "$outdir" || return 1
    for variant in base uninstall-on-exit privileged; do
        local dir=$repo/deploy/kubernetes
        [ "$variant" = base ] || dir=$dir/$variant
        kubectl kustomize "$dir" >"$outdir/$variant.yaml" ||
            { echo "error: \`kubectl kustomize $dir\` failed" >&2; return 1; }
        files+=("$outdir/$variant.yaml")
    done
    for version in $QUS_KUBERNETES_VERSIONS; do
        "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${files[@]}" ||
            { echo "error: deploy/kubernetes does not validate against Kubernetes $version" >&2; return 1; }
    done
    "$venv/bin/python" - "$outdir" "$repo/deploy/swarm/qus.yml" <<'PY' || return 1
"""The DaemonSet runs what the Swarm stack runs; the variants change what they say."""
import sys

import yaml

outdir, stack_file = sys.argv[1], sys.argv[2]
problems = []


def daemonset(variant):
    with open(f"{outdir}/{variant}.yaml") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    kinds = sorted(d["kind"] for d in docs)
    if kinds != ["DaemonSet", "Namespace"]:
        problems.append(f"{variant}: objects {kinds}, expected a DaemonSet and a Namespace")
    (ds,) = [d for d in docs if d["kind"] == "DaemonSet"]
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    return ds, c


base_ds, base = daemonset("base")
with open(stack_file) as f:
    service = yaml.safe_load(f)["services"]["qus-register"]

if base["args"] != service["command"]:
    problems.append(f"args {base['args']} differ from the stack's command {service['command']}")
env = {e["name"]: e["value"] for e in base["env"]}
stack_env = dict(service["environment"])
for name in ("QUS_INTERVAL",):  # the stack takes it from the deploying shell
    env.pop(name, None)
    stack_env.pop(name, None)
if env != stack_env:
    problems.append(f"environment {env} differs from the stack's {stack_env}")
probe = base["readinessProbe"]["exec"]["command"]
if ["CMD", *probe] != service["healthcheck"]["test"]:
    problems.append(f"readiness probe {probe} differs from the stack's healthcheck")
mounts = {m["mountPath"]: m["name"] for m in base["volumeMounts"]}
volumes = {v["name"]: v for v in base_ds["spec"]["template"]["spec"]["volumes"]}
binfmt = volumes.get(mounts.get(env.get("QUS_BINFMT_MOUNT")), {})
if binfmt.get("hostPath", {}).get("path") != "/proc/sys/fs/binfmt_misc":
    problems.append("QUS_BINFMT_MOUNT is not the hostPath volume of /proc/sys/fs/binfmt_misc")
if base["securityContext"].get("privileged") is not False:
    problems.append("the base DaemonSet must not be privileged")
if {"operator": "Exists"} not in base_ds["spec"]["template"]["spec"]["tolerations"]:
    problems.append("the DaemonSet does not tolerate every taint")

_, uninstall = daemonset("uninstall-on-exit")
if uninstall["args"] != base["args"] + ["--uninstall-on-exit"]:
    problems.append(f"uninstall-on-exit: args {uninstall['args']}")
_, privileged = daemonset("privileged")
if privileged["securityContext"].get("privileged") is not True:
    problems.append("privileged: the container is not privileged")
for name, c in (("uninstall-on-exit", uninstall), ("privileged", privileged)):
    for key in ("image", "env", "readinessProbe", "volumeMounts", "resources"):
        if c.get(key) != base.get(key):
            problems.append(f"{name}: `{key}` differs from the base")

for p in problems:
    print(f"error: deploy/kubernetes: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
    echo "deploy/kubernetes: base, uninstall-on-exit, privileged render and validate (Kubernetes $QUS_KUBERNETES_VERSIONS, strict)"
}
