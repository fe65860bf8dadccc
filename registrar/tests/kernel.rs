//! Kernel tests: `qus-register` against the real `/proc/sys/fs/binfmt_misc`.
//!
//! They need root and Debian's `qemu-user-static` (interpreters in
//! `/usr/bin`). Without them every test reports *ignored* with the reason;
//! with `QUS_REQUIRE_KERNEL=1` (set by `.ci/run`) a missing prerequisite is a
//! failure instead. Tests run one at a time, and each saves the host's entries
//! first and restores them afterwards through a drop guard, whatever happens.

use std::fs;
use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use qus_registrar::binfmt::{Binfmt, DEFAULT_MOUNT, MountState, Snapshot};

/// A test body: `Err` with a message fails it.
type Body = fn(&Binfmt) -> Result<(), Failed>;

/// The aarch64 magic and mask as the kernel prints them, written out here
/// (not computed by the code under test): QEMU's `aarch64_magic`/`_mask`.
const AARCH64_MAGIC: &str = "7f454c460201010000000000000000000200b700";
const AARCH64_MASK: &str = "ffffffffffffff00fffffffffffffffffeffffff";

/// An entry that belongs to someone else; qus must never touch it.
const FOREIGN: &str = "qus-test-foreign";

fn main() {
    let args = Arguments::from_args();
    let tests: &[(&str, Body)] = &[
        (
            "register_reads_back_as_requested",
            register_reads_back_as_requested,
        ),
        ("reregistering_is_a_no_op", reregistering_is_a_no_op),
        (
            "different_entry_needs_replace",
            different_entry_needs_replace,
        ),
        ("reset_keeps_foreign_entries", reset_keeps_foreign_entries),
        (
            "uninstall_touches_only_named_qemu_entries",
            uninstall_touches_only_named_qemu_entries,
        ),
        (
            "persistent_with_missing_interpreter_changes_nothing",
            persistent_with_missing_interpreter_changes_nothing,
        ),
        (
            "persistent_with_dynamic_interpreter_is_refused",
            persistent_with_dynamic_interpreter_is_refused,
        ),
        (
            "eight_registrars_racing_all_succeed",
            eight_registrars_racing_all_succeed,
        ),
        (
            "status_json_lists_what_was_registered",
            status_json_lists_what_was_registered,
        ),
        (
            "registered_handler_runs_a_foreign_binary",
            registered_handler_runs_a_foreign_binary,
        ),
    ];
    let trials = tests
        .iter()
        .map(|&(name, body)| {
            Trial::ignorable_test(name, move || match missing_prerequisite() {
                Some(reason)
                    if std::env::var_os("QUS_REQUIRE_KERNEL").is_some_and(|v| v == "1") =>
                {
                    Err(format!("QUS_REQUIRE_KERNEL=1 but {reason}").into())
                }
                Some(reason) => Ok(Completion::ignored_with(reason)),
                None => guarded(body).map(|()| Completion::Completed),
            })
        })
        .collect();
    // The registry is global: one test at a time.
    let mut args = args;
    args.test_threads = Some(1);
    libtest_mimic::run(&args, trials).exit();
}

/// Why the tests cannot run here, if they cannot.
fn missing_prerequisite() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (writes /proc/sys/fs/binfmt_misc)".into());
    }
    let b = Binfmt::default();
    match b.state() {
        MountState::Missing => return Some("the kernel has no binfmt_misc support".into()),
        MountState::NotMounted => {
            if let Err(e) = b.mount() {
                return Some(format!("cannot mount binfmt_misc: {e}"));
            }
        }
        MountState::Mounted => {}
    }
    if !Path::new("/usr/bin/qemu-aarch64-static").exists() {
        return Some(
            "Debian's qemu-user-static is not installed (/usr/bin/qemu-aarch64-static)".into(),
        );
    }
    None
}

/// Restores the registry when dropped, even after a panic.
struct Restore {
    binfmt: Binfmt,
    snapshot: Snapshot,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(e) = self.binfmt.restore(&self.snapshot) {
            eprintln!("error: failed to restore the host's binfmt_misc entries: {e}");
        }
    }
}

fn guarded(body: Body) -> Result<(), Failed> {
    let binfmt = Binfmt::default();
    let guard = Restore {
        snapshot: binfmt.snapshot().map_err(|e| e.to_string())?,
        binfmt: binfmt.clone(),
    };
    // Start each test from a registry without qemu entries, as a fresh host.
    for e in binfmt.list().map_err(|e| e.to_string())? {
        if e.is_owned() || e.name == FOREIGN {
            binfmt.remove(&e.name).map_err(|e| e.to_string())?;
        }
    }
    let result = body(&binfmt);
    drop(guard);
    let after = binfmt.list().map_err(|e| e.to_string())?;
    let before = Binfmt::default().snapshot().map_err(|e| e.to_string())?;
    if after != before.entries {
        return Err("registry not restored".into());
    }
    result
}

fn register(args: &[&str]) -> Output {
    Command::cargo_bin("qus-register")
        .expect("the qus-register binary is built for integration tests")
        .args(args)
        .output()
        .expect("qus-register runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

fn expect_exit(out: &Output, code: i32) -> Result<(), Failed> {
    check(
        out.status.code() == Some(code),
        format!(
            "expected exit {code}, got {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        ),
    )
}

fn raw(name: &str) -> Option<String> {
    fs::read_to_string(Path::new(DEFAULT_MOUNT).join(name)).ok()
}

fn register_foreign(b: &Binfmt) -> Result<(), Failed> {
    b.register(FOREIGN, &format!(":{FOREIGN}:M::\\x7fQUS::/bin/true:"))
        .map_err(|e| Failed::from(e.to_string()))
}

fn register_reads_back_as_requested(_: &Binfmt) -> Result<(), Failed> {
    let out = register(&["--targets", "arm64,riscv64", "-p", "yes"]);
    expect_exit(&out, 0)?;
    let entry = raw("qemu-aarch64").ok_or("qemu-aarch64 not registered")?;
    for line in [
        "enabled",
        "interpreter /usr/bin/qemu-aarch64-static",
        "flags: F",
        "offset 0",
        &format!("magic {AARCH64_MAGIC}"),
        &format!("mask {AARCH64_MASK}"),
    ] {
        check(
            entry.lines().any(|l| l == line),
            format!("missing `{line}` in:\n{entry}"),
        )?;
    }
    check(raw("qemu-riscv64").is_some(), "qemu-riscv64 not registered")?;
    check(
        raw("qemu-s390x").is_none(),
        "an unrequested target was registered",
    )?;
    // `-c yes -g yes` gives `POCF` on readback (`C` implies `O`).
    let out = register(&["--targets", "s390x", "-p", "yes", "-c", "yes", "-g", "yes"]);
    expect_exit(&out, 0)?;
    let entry = raw("qemu-s390x").ok_or("qemu-s390x not registered")?;
    check(entry.contains("flags: POCF"), format!("flags in:\n{entry}"))?;
    check(
        text(&out.stderr).contains("setuid"),
        "the credential risk is not said",
    )
}

fn reregistering_is_a_no_op(_: &Binfmt) -> Result<(), Failed> {
    expect_exit(&register(&["-p", "yes"]), 0)?;
    let before = raw("qemu-ppc64le").ok_or("qemu-ppc64le not registered")?;
    // The original image failed here with `File exists`.
    let out = register(&["-p", "yes"]);
    expect_exit(&out, 0)?;
    let stdout = text(&out.stdout);
    check(
        stdout.contains("0 registered, 31 unchanged"),
        format!("stdout:\n{stdout}"),
    )?;
    check(raw("qemu-ppc64le") == Some(before), "the entry changed")
}

fn different_entry_needs_replace(_: &Binfmt) -> Result<(), Failed> {
    expect_exit(&register(&["--targets", "arm64"]), 0)?;
    let out = register(&["--targets", "arm64", "-p", "yes"]);
    expect_exit(&out, 1)?;
    let stderr = text(&out.stderr);
    check(
        stderr.contains("qemu-aarch64") && stderr.contains("flags: `` -> `F`"),
        format!("stderr:\n{stderr}"),
    )?;
    check(
        raw("qemu-aarch64").is_some_and(|e| e.contains("flags: \n")),
        "refused but changed",
    )?;
    expect_exit(
        &register(&["--targets", "arm64", "-p", "yes", "--replace"]),
        0,
    )?;
    check(
        raw("qemu-aarch64").is_some_and(|e| e.contains("flags: F")),
        "not replaced",
    )
}

fn reset_keeps_foreign_entries(b: &Binfmt) -> Result<(), Failed> {
    register_foreign(b)?;
    expect_exit(&register(&["--targets", "arm64,ppc64le"]), 0)?;
    let out = register(&["--reset", "--targets", "s390x"]);
    expect_exit(&out, 0)?;
    check(raw(FOREIGN).is_some(), "--reset removed a foreign entry")?;
    check(
        raw("qemu-aarch64").is_none() && raw("qemu-ppc64le").is_none(),
        "--reset kept a qemu entry",
    )?;
    check(raw("qemu-s390x").is_some(), "--reset did not register")?;
    check(
        raw("status").is_some_and(|s| s.trim() == "enabled"),
        "status was written",
    )
}

fn uninstall_touches_only_named_qemu_entries(b: &Binfmt) -> Result<(), Failed> {
    register_foreign(b)?;
    expect_exit(&register(&["--targets", "arm64,s390x"]), 0)?;
    expect_exit(&register(&["--uninstall", "arm64"]), 0)?;
    check(raw("qemu-aarch64").is_none(), "not uninstalled")?;
    check(raw("qemu-s390x").is_some(), "uninstalled too much")?;
    expect_exit(&register(&["--uninstall", "all"]), 0)?;
    check(raw("qemu-s390x").is_none(), "`all` left a qemu entry")?;
    check(
        raw(FOREIGN).is_some(),
        "--uninstall all removed a foreign entry",
    )
}

fn persistent_with_missing_interpreter_changes_nothing(_: &Binfmt) -> Result<(), Failed> {
    expect_exit(&register(&["--targets", "s390x"]), 0)?;
    let before = raw("qemu-s390x");
    let out = register(&["--reset", "-p", "yes", "-Q", "/nonexistent"]);
    expect_exit(&out, 1)?;
    let stderr = text(&out.stderr);
    check(
        stderr.contains("`/nonexistent/qemu-aarch64-static` does not exist"),
        format!("stderr:\n{stderr}"),
    )?;
    check(
        stderr.contains("nothing was changed"),
        format!("stderr:\n{stderr}"),
    )?;
    // Not even the reset happened.
    check(
        raw("qemu-s390x") == before,
        "a refused run changed the registry",
    )?;
    check(
        raw("qemu-aarch64").is_none(),
        "a partial registration was left",
    )
}

fn persistent_with_dynamic_interpreter_is_refused(_: &Binfmt) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let fake = dir.path().join("qemu-aarch64-static");
    // `/bin/sh` is dynamically linked on Debian: a stand-in for a
    // distribution's dynamic `qemu-aarch64`.
    fs::copy("/bin/sh", &fake)?;
    let out = register(&[
        "--targets",
        "arm64",
        "-p",
        "yes",
        "-Q",
        &dir.path().to_string_lossy(),
    ]);
    expect_exit(&out, 1)?;
    let stderr = text(&out.stderr);
    check(
        stderr.contains("dynamically linked"),
        format!("stderr:\n{stderr}"),
    )?;
    check(raw("qemu-aarch64").is_none(), "registered anyway")
}

fn eight_registrars_racing_all_succeed(_: &Binfmt) -> Result<(), Failed> {
    // Eight CI jobs starting at once on an empty registry: each sees no
    // entry, all but one get EEXIST per target, and each must still report
    // success because the entry it wanted is there.
    let bin = assert_cmd::cargo::cargo_bin("qus-register");
    let racers: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(&bin)
                .args(["-p", "yes"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for racer in racers {
        let out = racer.wait_with_output()?;
        check(
            out.status.success(),
            format!("a racer failed: {:?}", out.status),
        )?;
    }
    let names: Vec<_> = Binfmt::default()
        .list()?
        .into_iter()
        .filter(|e| e.is_owned())
        .map(|e| e.name)
        .collect();
    check(
        names.len() == 31,
        format!("{} entries after the race: {names:?}", names.len()),
    )
}

fn status_json_lists_what_was_registered(_: &Binfmt) -> Result<(), Failed> {
    expect_exit(&register(&["--targets", "arm64,s390x", "-p", "yes"]), 0)?;
    let out = register(&["--status", "--json"]);
    expect_exit(&out, 0)?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let strings = |key: &str| -> Vec<String> {
        doc[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let supported = strings("supported");
    for p in ["linux/amd64", "linux/arm64", "linux/s390x"] {
        check(
            supported.iter().any(|s| s == p),
            format!("`{p}` not in supported: {supported:?}"),
        )?;
    }
    check(
        !supported.iter().any(|s| s == "linux/riscv64"),
        "an unregistered platform is listed",
    )?;
    let emulators = strings("emulators");
    check(
        emulators == ["qemu-aarch64", "qemu-s390x"],
        format!("emulators: {emulators:?}"),
    )?;
    let entry = &doc["entries"][0];
    check(
        entry["name"] == "qemu-aarch64" && entry["flags"] == "F" && entry["magic"] == AARCH64_MAGIC,
        format!("{entry}"),
    )
}

fn registered_handler_runs_a_foreign_binary(_: &Binfmt) -> Result<(), Failed> {
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/probes/bin/aarch64");
    expect_exit(&register(&["--targets", "arm64", "-p", "yes"]), 0)?;
    let out = std::process::Command::new(&probe).output()?;
    check(
        text(&out.stdout) == "aarch64\n",
        format!("{} printed {:?}", probe.display(), text(&out.stdout)),
    )?;
    expect_exit(&register(&["--uninstall", "arm64"]), 0)?;
    // Without a handler the kernel cannot run it: ENOEXEC.
    let err = std::process::Command::new(&probe)
        .output()
        .err()
        .ok_or("ran without a handler")?;
    check(
        err.raw_os_error() == Some(8),
        format!("expected ENOEXEC, got {err}"),
    )
}
