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
use qus_registrar::app::{self, Env};
use qus_registrar::binfmt::{Binfmt, DEFAULT_MOUNT, HostFacts, MountState, Snapshot};
use qus_registrar::interpreter::InterpreterFacts;

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
        (
            "a_failure_rolls_back_a_disabled_entry_disabled",
            a_failure_rolls_back_a_disabled_entry_disabled,
        ),
        (
            "an_interpreter_deleted_after_planning_is_rolled_back",
            an_interpreter_deleted_after_planning_is_rolled_back,
        ),
        (
            "persistent_accepts_debians_static_pie_qemu",
            persistent_accepts_debians_static_pie_qemu,
        ),
        (
            "verify_finds_every_registered_target_runnable",
            verify_finds_every_registered_target_runnable,
        ),
        (
            "verify_reports_a_replaced_interpreter",
            verify_reports_a_replaced_interpreter,
        ),
    ];
    let trials = tests
        .iter()
        .map(|&(name, body)| {
            let missing = move || {
                missing_prerequisite().or_else(|| match name {
                    "persistent_accepts_debians_static_pie_qemu" => missing_static_pie_qemu(),
                    _ => None,
                })
            };
            Trial::ignorable_test(name, move || match missing() {
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

/// Puts the registry back as it was before a test. [`Restore::finish`]
/// restores and checks; dropping it unfinished (a panic) restores too, and
/// can only print what failed.
struct Restore {
    binfmt: Binfmt,
    snapshot: Option<Snapshot>,
}

impl Restore {
    /// Restores the snapshot, then compares the registry with it: a
    /// difference fails the test.
    fn finish(mut self) -> Result<(), Failed> {
        let snapshot = self.snapshot.take().expect("finish runs once");
        self.binfmt
            .restore(&snapshot)
            .map_err(|e| format!("failed to restore the host's binfmt_misc entries: {e}"))?;
        let now = self.binfmt.list().map_err(|e| e.to_string())?;
        if now != snapshot.entries {
            return Err(format!(
                "registry not restored:\nbefore: {:#?}\nafter: {now:#?}",
                snapshot.entries
            )
            .into());
        }
        Ok(())
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(snapshot) = self.snapshot.take()
            && let Err(e) = self.binfmt.restore(&snapshot)
        {
            eprintln!("error: failed to restore the host's binfmt_misc entries: {e}");
        }
    }
}

fn guarded(body: Body) -> Result<(), Failed> {
    let binfmt = Binfmt::default();
    // Taken before anything changes; the comparison at the end is against it.
    let guard = Restore {
        snapshot: Some(binfmt.snapshot().map_err(|e| e.to_string())?),
        binfmt: binfmt.clone(),
    };
    // Start each test from a registry without qemu entries, as a fresh host.
    for e in binfmt.list().map_err(|e| e.to_string())? {
        if e.is_owned() || e.name == FOREIGN {
            binfmt.remove(&e.name).map_err(|e| e.to_string())?;
        }
    }
    let result = body(&binfmt);
    match (result, guard.finish()) {
        (Ok(()), restored) => restored,
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(r)) => Err(format!(
            "{}\nand then: {}",
            e.message().unwrap_or_default(),
            r.message().unwrap_or_default()
        )
        .into()),
    }
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

/// Runs the qemu-user binary from Debian's `qemu-user` package (QEMU 9.1 or
/// later, static-pie), named by this variable.
const STATIC_PIE_QEMU: &str = "QUS_TEST_STATIC_PIE_QEMU";

fn missing_static_pie_qemu() -> Option<String> {
    match std::env::var_os(STATIC_PIE_QEMU) {
        None => Some(format!(
            "{STATIC_PIE_QEMU} is not set (the path of `qemu-aarch64` from Debian's \
             `qemu-user` 9.1 or later, e.g. extracted from qemu-user_11.1.3+ds-1_amd64.deb)"
        )),
        Some(p) if !Path::new(&p).is_file() => Some(format!(
            "{STATIC_PIE_QEMU}={} is not a file",
            Path::new(&p).display()
        )),
        Some(_) => None,
    }
}

/// Snapshot of every entry, for comparisons inside a test.
fn entries(b: &Binfmt) -> Result<Vec<qus_registrar::entry::Entry>, Failed> {
    b.list().map_err(|e| Failed::from(e.to_string()))
}

fn a_failure_rolls_back_a_disabled_entry_disabled(b: &Binfmt) -> Result<(), Failed> {
    // A disabled entry that `--reset` removes; then aarch64 registers and
    // mips fails: its record is longer than the kernel's 1920 bytes (MIPS
    // has a 40-byte magic) while aarch64's is not, with one long `-Q`.
    expect_exit(&register(&["--targets", "s390x"]), 0)?;
    b.set_enabled("qemu-s390x", false)?;
    let before = entries(b)?;
    let long: String = std::iter::once("/qus-test".to_owned())
        .chain(std::iter::repeat_n(format!("/{}", "d".repeat(99)), 17))
        .collect();
    let out = register(&[
        "--reset",
        "--targets",
        "arm64,mips",
        "-F",
        "-static",
        "-Q",
        &long,
    ]);
    expect_exit(&out, 1)?;
    let stderr = text(&out.stderr);
    check(
        stderr.contains("error: `qemu-mips` failed")
            && stderr.contains("rolled back: the registry is as it was before this run"),
        format!("stderr:\n{stderr}"),
    )?;
    let after = entries(b)?;
    check(
        after == before,
        format!("not rolled back:\nbefore: {before:#?}\nafter: {after:#?}"),
    )?;
    check(
        raw("qemu-s390x").is_some_and(|e| e.starts_with("disabled")),
        "the disabled entry came back enabled",
    )
}

fn an_interpreter_deleted_after_planning_is_rolled_back(b: &Binfmt) -> Result<(), Failed> {
    // The plan sees both interpreters (the facts say so); when the records
    // are written, qemu-s390x-static is gone and the kernel answers ENOENT
    // for its `F` record, after aarch64 was registered.
    let dir = tempfile::tempdir()?;
    fs::copy(
        "/usr/bin/qemu-aarch64-static",
        dir.path().join("qemu-aarch64-static"),
    )?;
    let before = entries(b)?;
    let cli = <qus_registrar::cli::Cli as clap::Parser>::try_parse_from([
        "qus-register",
        "--targets",
        "arm64,s390x",
        "-p",
        "yes",
        "-Q",
        &dir.path().to_string_lossy(),
    ])?;
    let env = Env {
        registry: b,
        host: HostFacts::read(None),
        interpreter: &|_: &str| InterpreterFacts::Elf { interp: None },
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = app::run_with(&cli, &env, &mut out, &mut err)?;
    let stderr = text(&err);
    check(code == 1, format!("exit {code}\nstderr:\n{stderr}"))?;
    check(
        stderr.contains("error: `qemu-s390x` failed")
            && stderr.contains("the interpreter does not exist")
            && stderr.contains("rolled back: the registry is as it was before this run"),
        format!("stderr:\n{stderr}"),
    )?;
    let after = entries(b)?;
    check(
        after == before,
        format!("not rolled back:\nbefore: {before:#?}\nafter: {after:#?}"),
    )
}

fn persistent_accepts_debians_static_pie_qemu(_: &Binfmt) -> Result<(), Failed> {
    let qemu = std::path::PathBuf::from(std::env::var_os(STATIC_PIE_QEMU).ok_or("unset")?);
    // The new layout: `qemu-aarch64` alone in its directory, no `-static`.
    let dir = tempfile::tempdir()?;
    let interp = dir.path().join("qemu-aarch64");
    fs::copy(&qemu, &interp)?;
    let header = qus_registrar::elf::read_file(&interp)?;
    check(
        header.is_static() && header.kind == 3,
        format!("{} is not static-pie: {header:?}", qemu.display()),
    )?;
    let out = register(&[
        "--targets",
        "arm64",
        "-p",
        "yes",
        "-Q",
        &dir.path().to_string_lossy(),
    ]);
    expect_exit(&out, 0)?;
    let entry = raw("qemu-aarch64").ok_or("qemu-aarch64 not registered")?;
    check(
        entry.contains(&format!("interpreter {}\n", interp.display()))
            && entry.contains("flags: F"),
        format!("entry:\n{entry}"),
    )?;
    // `F` pins the file: deleting it does not stop the handler.
    drop(dir);
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/probes/bin/aarch64");
    let run = std::process::Command::new(&probe).output()?;
    check(
        text(&run.stdout) == "aarch64\n",
        format!("the probe printed {:?}", text(&run.stdout)),
    )
}

fn verify_finds_every_registered_target_runnable(_: &Binfmt) -> Result<(), Failed> {
    let out = register(&["--reset", "-p", "yes", "--verify"]);
    expect_exit(&out, 0)?;
    let stdout = text(&out.stdout);
    // 31 targets on x86_64; three have no probe (microblaze, microblazeel,
    // xtensaeb).
    check(
        stdout
            .lines()
            .filter(|l| l.starts_with("runnable "))
            .count()
            == 28
            && stdout
                .lines()
                .filter(|l| l.starts_with("not checked "))
                .count()
                == 3,
        format!("stdout:\n{stdout}"),
    )?;
    // Alone, and in the status.
    let out = register(&["--verify"]);
    expect_exit(&out, 0)?;
    let out = register(&["--status", "--json", "--verify"]);
    expect_exit(&out, 0)?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let aarch64 = doc["entries"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "qemu-aarch64"))
        .ok_or("no qemu-aarch64 entry")?;
    check(aarch64["runnable"] == true, format!("{aarch64}"))
}

fn verify_reports_a_replaced_interpreter(_: &Binfmt) -> Result<(), Failed> {
    use std::os::unix::fs::PermissionsExt as _;
    // Registered without `F`: the kernel opens the interpreter at each exec,
    // so replacing it breaks the handler while the entry stays.
    let dir = tempfile::tempdir()?;
    let interp = dir.path().join("qemu-aarch64-static");
    fs::copy("/usr/bin/qemu-aarch64-static", &interp)?;
    let q = dir.path().to_string_lossy().into_owned();
    expect_exit(&register(&["--targets", "arm64", "-Q", &q, "--verify"]), 0)?;
    fs::remove_file(&interp)?;
    fs::write(&interp, "#!/bin/sh\nexit 1\n")?;
    fs::set_permissions(&interp, fs::Permissions::from_mode(0o755))?;
    let out = register(&["--verify"]);
    expect_exit(&out, 1)?;
    let stderr = text(&out.stderr);
    check(
        stderr.contains("error: `qemu-aarch64` is registered but not runnable")
            && stderr.contains("exited with 1")
            && stderr.contains("replaced since it was registered"),
        format!("stderr:\n{stderr}"),
    )?;
    check(
        text(&out.stdout).contains("not runnable    qemu-aarch64"),
        format!("stdout:\n{}", text(&out.stdout)),
    )
}
