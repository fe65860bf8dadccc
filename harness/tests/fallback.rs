//! `--runtime auto` with no engine answering, for real: the run names each
//! engine it tried, why it did not answer and the fix, and with `CI=true`
//! a run that executed nothing fails (exit 3); `doctor --fix --dry-run`
//! lists the fix of each engine and performs nothing.
//!
//! Every engine is pointed at a path that does not exist (`DOCKER_HOST`,
//! `QUS_PODMAN_SOCKET`, `QUS_SINGULARITY_BIN`), so these tests hold
//! whatever engines the machine runs. The scenarios only run `true` on the
//! host: nothing writes binfmt_misc.

use std::path::Path;
use std::process::{Command, Output};

const DOCKER_ONLY: &str = "\
apiVersion: qus/v1
name: docker-only
description: needs an engine
runtimes: [docker]
steps:
  - exec: { command: [\"true\"] }
";

const HOST: &str = "\
apiVersion: qus/v1
name: host-true
description: runs on the host
runtimes: [host]
steps:
  - exec: { command: [\"true\"] }
";

/// `qus-harness run --runtime auto FILE` with every engine unreachable;
/// `ci` sets `CI=true`.
fn run_without_engines(dir: &Path, scenario: &str, ci: bool) -> Output {
    let file = dir.join("scenario.yaml");
    std::fs::write(&file, scenario).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_qus-harness"));
    command
        .args(["run", "--runtime", "auto"])
        .arg(&file)
        .env("DOCKER_HOST", "unix:///nonexistent/qus/docker.sock")
        .env("QUS_PODMAN_SOCKET", "/nonexistent/qus/podman.sock")
        .env_remove("CONTAINER_HOST")
        .env("QUS_SINGULARITY_BIN", "/nonexistent/qus/apptainer")
        .env_remove("CI");
    if ci {
        command.env("CI", "true");
    }
    command.output().expect("qus-harness starts")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_run_starts_by_naming_each_engine_tried_why_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_without_engines(dir.path(), DOCKER_ONLY, false);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("note: no container engine answered"),
        "{err}"
    );
    assert!(lines[1].starts_with("  Docker (`docker`): "), "{err}");
    assert!(lines[1].contains("/nonexistent/qus/docker.sock"), "{err}");
    assert!(lines[2].starts_with("    fix: "), "{err}");
    assert!(lines[3].starts_with("  Podman (`podman`): "), "{err}");
    assert!(lines[3].contains("/nonexistent/qus/podman.sock"), "{err}");
    assert!(lines[4].starts_with("    fix: "), "{err}");
    assert!(
        lines[5].starts_with("  Apptainer/Singularity (`singularity`): "),
        "{err}"
    );
    // The Apptainer runtime connects to Docker first, for its images.
    assert!(lines[5].contains("/nonexistent/qus/docker.sock"), "{err}");
    assert!(lines[6].starts_with("    fix: "), "{err}");
    assert!(lines[6].contains("takes its images from Docker"), "{err}");
    // The summary counts the skip by its cause.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 passed, 0 failed, 1 skipped\nskipped by cause:\n     1  needs another runtime than `host`\n"),
        "{stdout}"
    );
}

#[test]
fn with_ci_a_run_that_executed_nothing_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_without_engines(dir.path(), DOCKER_ONLY, true);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        stderr(&out).contains("error: `CI` is set and no instance executed (1 skipped)"),
        "{out:?}"
    );
}

#[test]
fn with_ci_a_run_that_executed_something_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_without_engines(dir.path(), HOST, true);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stderr(&out).starts_with("note: no container engine answered"),
        "{out:?}"
    );
}

#[test]
fn doctor_fix_dry_run_lists_the_fixes_and_performs_none() {
    let out = Command::new(env!("CARGO_BIN_EXE_qus-harness"))
        .args(["doctor", "--fix", "--dry-run", "--runtime", "host"])
        .env("DOCKER_HOST", "unix:///nonexistent/qus/docker.sock")
        .env("QUS_PODMAN_SOCKET", "/nonexistent/qus/podman.sock")
        .env_remove("CONTAINER_HOST")
        .output()
        .expect("qus-harness starts");
    let err = stderr(&out);
    // Each engine is announced with the command that starts (or installs)
    // it, and nothing is run: the sockets still do not exist.
    assert!(err.contains("fix: start dockerd\n  would run: "), "{err}");
    assert!(
        err.contains("fix: start Podman's API service\n  would run: "),
        "{err}"
    );
    assert!(!Path::new("/nonexistent/qus").exists());
    // `--dry-run` alone is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_qus-harness"))
        .args(["doctor", "--dry-run"])
        .output()
        .expect("qus-harness starts");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
