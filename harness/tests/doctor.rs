//! `qus-harness doctor` through the library's public API: every recorded
//! host in `tests/fixtures/doctor/` gives the expected exit code and
//! renders, and `Inputs::gather` works on the machine running the tests.

use std::path::Path;

use qus_harness::doctor::{self, Inputs, Status};

fn fixture(case: &str) -> Inputs {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/doctor")
        .join(case);
    Inputs::from_fixture_dir(&dir).unwrap_or_else(|e| panic!("fixture `{case}`: {e:?}"))
}

#[test]
fn every_recorded_host_has_its_expected_exit_code() {
    // (case, exit code, with --strict): every recorded host warns of
    // something, so --strict fails them all.
    for (case, code, strict) in [
        ("ci-host", 0, 1),
        ("systemd-host", 0, 1),
        ("broken-host", 1, 1),
        ("broken-entries", 1, 1),
        ("rootless-container", 1, 1),
        ("no-binfmt", 1, 1),
    ] {
        let checks = doctor::checks(&fixture(case));
        assert_eq!(
            doctor::exit_code(&checks, false),
            code,
            "{case}: {checks:#?}"
        );
        assert_eq!(
            doctor::exit_code(&checks, true),
            strict,
            "{case}: {checks:#?}"
        );
        let mut text = Vec::new();
        doctor::render_text(&checks, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(
            text.lines().filter(|l| !l.starts_with(' ')).count(),
            checks.len() + 1,
            "{case}: one line per check and a total:\n{text}"
        );
        let json = doctor::render_json(&checks);
        assert_eq!(
            json["summary"]["fail"],
            checks.iter().filter(|c| c.status == Status::Fail).count()
        );
    }
}

/// Reads this machine for real (and probes whatever engines answer). What
/// the machine looks like is not asserted: only that gathering completes
/// and the kernel is reported.
#[tokio::test(flavor = "multi_thread")]
async fn gather_reads_this_host() {
    let inputs = Inputs::gather().await;
    assert!(!inputs.kernel_release.is_empty());
    let checks = doctor::checks(&inputs);
    let kernel = checks
        .iter()
        .find(|c| c.id == "kernel")
        .expect("a kernel check");
    let mut text = Vec::new();
    doctor::render_text(&checks, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(kernel.summary.starts_with(&inputs.kernel_release), "{text}");
    assert_eq!(inputs.engines.len(), 3, "{text}");
    // Shown with `--nocapture`: what the doctor says about this machine.
    eprintln!("{text}");
}

/// The fixes `doctor --fix` plans for a recorded host, as `describe: commands`.
fn fixes(case: &str, host_qemu: bool) -> Vec<String> {
    doctor::plan_fixes(&fixture(case), host_qemu)
        .iter()
        .map(|f| {
            let commands: Vec<String> = f.commands().iter().map(|c| c.join(" ")).collect();
            format!("{}: {}", f.describe(), commands.join("; "))
        })
        .collect()
}

#[test]
fn fixes_planned_for_the_recorded_hosts() {
    // A healthy host needs nothing; without Debian's emulators, them.
    assert_eq!(fixes("ci-host", true), Vec::<String>::new());
    assert_eq!(
        fixes("ci-host", false),
        ["install qemu-user-static: apt-get update; \
          apt-get install -y --no-install-recommends qemu-user-static"]
    );
    // No binfmt_misc at all: load it, mount it; Podman absent, no systemd.
    assert_eq!(
        fixes("no-binfmt", true),
        [
            "mount binfmt_misc at `/proc/sys/fs/binfmt_misc`: modprobe binfmt_misc; \
             mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc",
            "install podman: apt-get update; apt-get install -y --no-install-recommends podman",
            "start Podman's API service: setsid -f podman system service --time=0 \
             unix:///run/podman/podman.sock",
        ]
    );
    // Docker installed but down, under systemd: started, not installed.
    assert_eq!(
        fixes("broken-host", true)[1],
        "start dockerd: systemctl start docker"
    );
    // Not mounted, no engine: mount, install both, start both.
    assert_eq!(fixes("rootless-container", false).len(), 4);
}
