#!/usr/bin/env python3
"""Checks a `qus-harness run --json` report for the CI gate.

Usage: check-report.py RUNTIME REPORT.json

Prints the executed and skipped counts, and fails when:
- the run was not complete or the host's binfmt state was not restored;
- on docker, fewer than 40 instances ran, or any was skipped;
- on any runtime, an instance was skipped for a reason other than a
  scenario or step the runtime cannot express (for example an absent
  engine, missing root or a missing image);
- on host (the suite with no engine, .ci/lib/cleanroot.sh), fewer than 35
  instances ran, or the host's registry was not compared and found
  untouched (binfmt-writing instances run in private namespaces).
"""
import json
import sys

ALLOWED_SKIPS = ("applies to runtimes", "cannot run on")


def main() -> int:
    runtime, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    instances = report["instances"]
    skipped = [i for i in instances if i["status"] == "skipped"]
    executed = [i for i in instances if i["status"] != "skipped"]
    problems = []
    print(f"{runtime}: {len(executed)} executed, {len(skipped)} skipped")
    for i in skipped:
        print(f"  skipped {i['id']}: {i['skip_reason']}")
        if not i["skip_reason"] or not i["skip_reason"].startswith(ALLOWED_SKIPS):
            problems.append(f"{i['id']} skipped: {i['skip_reason']}")
    if runtime == "docker":
        if skipped:
            problems.append(f"{len(skipped)} docker instances skipped")
        if len(executed) < 40:
            problems.append(f"only {len(executed)} docker instances executed (at least 40 expected)")
    if runtime == "host":
        if len(executed) < 35:
            problems.append(f"only {len(executed)} host instances executed (at least 35 expected)")
        checked = report["summary"].get("host_state_checked")
        if not checked or checked.get("untouched") is not True:
            problems.append(f"the host's registry was not found untouched: {checked}")
    elif report["summary"].get("host_state_restored") is not True:
        problems.append("the host's binfmt state was not reported as restored")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
