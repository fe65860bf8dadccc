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
        (
            "binfmt_action_sequence_without_reset",
            binfmt_action_sequence_without_reset,
        ),
        (
            "binfmt_action_sequence_with_reset",
            binfmt_action_sequence_with_reset,
        ),
        (
            "binfmt_missing_interpreter_stops_the_action",
            binfmt_missing_interpreter_stops_the_action,
        ),
        (
            "binfmt_supported_is_what_the_probes_run",
            binfmt_supported_is_what_the_probes_run,
        ),
        (
            "private_registry_as_root_leaves_the_host_alone",
            private_registry_as_root_leaves_the_host_alone,
        ),
        (
            "private_registry_as_nobody_leaves_the_host_alone",
            private_registry_as_nobody_leaves_the_host_alone,
        ),
        (
            "private_passes_on_the_commands_status",
            private_passes_on_the_commands_status,
        ),
        (
            "private_without_user_namespaces_says_why",
            private_without_user_namespaces_says_why,
        ),
        (
            "wait_repairs_and_uninstall_on_exit_restores",
            wait_repairs_and_uninstall_on_exit_restores,
        ),
        (
            "wait_through_a_bind_mounted_registry",
            wait_through_a_bind_mounted_registry,
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
        probe: &qus_registrar::verify::execute_probe,
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

// ---- the tonistiigi/binfmt-compatible command ------------------------------

/// `qus-register` invoked as `binfmt` (a symlink), with `env` set and
/// tonistiigi's variables otherwise cleared.
fn binfmt(args: &[&str], env: &[(&str, &str)]) -> Result<Output, Failed> {
    let dir = tempfile::tempdir()?;
    let link = dir.path().join("binfmt");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("qus-register"), &link)?;
    let mut c = std::process::Command::new(&link);
    for var in [
        "QEMU_BINARY_PATH",
        "QEMU_BINARY_PREFIX",
        "QEMU_PRESERVE_ARGV0",
        "QUS_BINFMT_FLAGS",
        "QUS_BINFMT_MOUNT",
        "HOST_ARCH",
    ] {
        c.env_remove(var);
    }
    Ok(c.args(args).envs(env.iter().copied()).output()?)
}

/// docker/setup-qemu-action's rule after each run: it throws, showing the
/// last line of stderr, when stderr is non-empty and the status non-zero.
fn action_error(out: &Output) -> Option<String> {
    let stderr = text(&out.stderr);
    (!stderr.is_empty() && out.status.code() != Some(0)).then(|| {
        stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim()
            .to_owned()
    })
}

/// The action's `JSON.parse(res.stdout.trim()).supported`.
fn supported(out: &Output) -> Result<Vec<String>, Failed> {
    let doc: serde_json::Value = serde_json::from_str(text(&out.stdout).trim())
        .map_err(|e| format!("stdout is not JSON ({e}):\n{}", text(&out.stdout)))?;
    Ok(doc["supported"]
        .as_array()
        .ok_or("no `supported` array")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect())
}

/// The action's four runs (`reset` adds `--uninstall qemu-*`); fails where
/// the action would. Returns the no-argument run.
fn action_sequence(reset: bool, platforms: &str) -> Result<Output, Failed> {
    let mut steps: Vec<Vec<&str>> = vec![vec!["--version"]];
    if reset {
        steps.push(vec!["--uninstall", "qemu-*"]);
    }
    steps.push(vec!["--install", platforms]);
    steps.push(vec![]);
    let mut last = None;
    for step in steps {
        let out = binfmt(&step, &[])?;
        if let Some(e) = action_error(&out) {
            return Err(format!(
                "the action stops at {step:?}: {e}\nstderr:\n{}",
                text(&out.stderr)
            )
            .into());
        }
        expect_exit(&out, 0)?;
        last = Some(out);
    }
    let last = last.ok_or("no step ran")?;
    supported(&last)?;
    Ok(last)
}

/// For each of buildkit's candidates, whether its probe runs now.
fn probes_run() -> Vec<(&'static str, bool)> {
    qus_registrar::platform::CANDIDATES
        .iter()
        .map(|&(arch, target)| {
            let ran =
                qus_registrar::verify::run_probe(target, &[]).is_ok_and(|o| o.code == Some(0));
            (arch, ran)
        })
        .collect()
}

/// `supported` must list exactly the candidates whose probe runs, plus the
/// native platform and its levels.
fn check_supported_against_probes(list: &[String]) -> Result<(), Failed> {
    check(
        list.first().map(String::as_str) == Some("linux/amd64"),
        format!("the native platform is not first: {list:?}"),
    )?;
    for (arch, ran) in probes_run() {
        if arch == "amd64" {
            continue;
        }
        let platform = if arch == "arm" {
            "linux/arm/v7".to_owned()
        } else {
            format!("linux/{arch}")
        };
        check(
            list.contains(&platform) == ran,
            format!("`{platform}`: probe ran {ran}, supported {list:?}"),
        )?;
    }
    Ok(())
}

fn binfmt_action_sequence_without_reset(b: &Binfmt) -> Result<(), Failed> {
    // A host with an entry of its own (qus's default flags): the action
    // without `reset` keeps it, as tonistiigi/binfmt does, and says so.
    expect_exit(&register(&["--targets", "arm64", "-p", "yes"]), 0)?;
    let kept = raw("qemu-aarch64");
    let version = binfmt(&["--version"], &[])?;
    expect_exit(&version, 0)?;
    let line = text(&version.stdout);
    check(
        line.starts_with("binfmt/qus-")
            && line
                .split_once(" qemu/")
                .is_some_and(|(_, v)| v.starts_with(|c: char| c.is_ascii_digit()))
            && line.ends_with('\n'),
        format!("--version printed {line:?}"),
    )?;
    let install = binfmt(&["--install", "all"], &[])?;
    check(
        action_error(&install).is_none(),
        format!("stderr:\n{}", text(&install.stderr)),
    )?;
    check(
        text(&install.stderr).contains("warning: `qemu-aarch64` is registered differently"),
        format!("stderr:\n{}", text(&install.stderr)),
    )?;
    check(
        raw("qemu-aarch64") == kept,
        "a differing entry was replaced without reset",
    )?;
    let last = action_sequence(false, "all")?;
    let entry = raw("qemu-riscv64").ok_or("qemu-riscv64 not registered")?;
    check(
        entry.contains("flags: OCF") && entry.contains("interpreter /usr/bin/qemu-riscv64-static"),
        format!("qemu-riscv64:\n{entry}"),
    )?;
    let list = supported(&last)?;
    check_supported_against_probes(&list)?;
    for p in [
        "linux/arm64",
        "linux/riscv64",
        "linux/s390x",
        "linux/arm/v7",
    ] {
        check(
            list.iter().any(|s| s == p),
            format!("`{p}` not in {list:?}"),
        )?;
    }
    // An arm64 binary runs.
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/probes/bin/aarch64");
    let run = std::process::Command::new(&probe).output()?;
    check(
        text(&run.stdout) == "aarch64\n",
        format!("the probe printed {:?}", text(&run.stdout)),
    )?;
    let _ = b;
    Ok(())
}

fn binfmt_action_sequence_with_reset(b: &Binfmt) -> Result<(), Failed> {
    register_foreign(b)?;
    expect_exit(&register(&["--targets", "arm64,s390x", "-p", "yes"]), 0)?;
    let last = action_sequence(true, "arm64,riscv64")?;
    // Reset removed every qemu-* entry (s390x too), never the foreign one.
    check(raw(FOREIGN).is_some(), "the reset removed a foreign entry")?;
    check(raw("qemu-s390x").is_none(), "the reset kept qemu-s390x")?;
    for name in ["qemu-aarch64", "qemu-riscv64"] {
        let entry = raw(name).ok_or(format!("{name} not registered"))?;
        check(entry.contains("flags: OCF"), format!("{name}:\n{entry}"))?;
    }
    let list = supported(&last)?;
    check_supported_against_probes(&list)?;
    check(
        !list.iter().any(|p| p == "linux/s390x"),
        format!("linux/s390x still listed: {list:?}"),
    )?;
    // `QEMU_PRESERVE_ARGV0` adds `P`, as in tonistiigi's image.
    let out = binfmt(&["--uninstall", "qemu-*"], &[])?;
    expect_exit(&out, 0)?;
    let out = binfmt(&["--install", "arm64"], &[("QEMU_PRESERVE_ARGV0", "1")])?;
    expect_exit(&out, 0)?;
    let entry = raw("qemu-aarch64").ok_or("qemu-aarch64 not registered")?;
    check(
        entry.contains("flags: POCF"),
        format!("qemu-aarch64:\n{entry}"),
    )
}

fn binfmt_missing_interpreter_stops_the_action(b: &Binfmt) -> Result<(), Failed> {
    let before = entries(b)?;
    // No emulator at all (the `register` image): `all` has nothing.
    let empty = tempfile::tempdir()?;
    let path = empty.path().to_string_lossy().into_owned();
    let out = binfmt(&["--install", "all"], &[("QEMU_BINARY_PATH", &path)])?;
    let error = action_error(&out).ok_or("the action would go on")?;
    check(
        error.contains("no QEMU interpreter in") && error.contains(&path),
        format!("last line: {error}"),
    )?;
    // One emulator missing of two named: refused whole.
    fs::copy(
        "/usr/bin/qemu-aarch64-static",
        empty.path().join("qemu-aarch64-static"),
    )?;
    let out = binfmt(
        &["--install", "arm64,riscv64"],
        &[("QEMU_BINARY_PATH", &path)],
    )?;
    let error = action_error(&out).ok_or("the action would go on")?;
    check(
        error.contains("no interpreter for `riscv64`")
            && error.contains(&format!("{path}/qemu-riscv64-static")),
        format!("last line: {error}"),
    )?;
    // The status was still printed, and nothing changed.
    supported(&out)?;
    let after = entries(b)?;
    check(
        after == before,
        format!("changed:\nbefore: {before:#?}\nafter: {after:#?}"),
    )
}

fn binfmt_supported_is_what_the_probes_run(_: &Binfmt) -> Result<(), Failed> {
    let out = binfmt(&["--install", "arm64,riscv64,s390x"], &[])?;
    expect_exit(&out, 0)?;
    let list = supported(&binfmt(&[], &[])?)?;
    check_supported_against_probes(&list)?;
    check(
        list.iter().any(|p| p == "linux/riscv64"),
        format!("linux/riscv64 missing: {list:?}"),
    )?;
    let out = binfmt(&["--uninstall", "riscv64"], &[])?;
    expect_exit(&out, 0)?;
    let now = supported(&binfmt(&[], &[])?)?;
    check_supported_against_probes(&now)?;
    let mut expected = list.clone();
    expected.retain(|p| p != "linux/riscv64");
    check(
        now == expected,
        format!("after removing riscv64: {now:?}, expected {expected:?}"),
    )
}

// ---- --private --------------------------------------------------------------

/// Every file of the host's binfmt_misc, name and bytes: compared before
/// and after a `--private` run, which must not change one byte.
fn host_registry_bytes() -> Result<std::collections::BTreeMap<String, Vec<u8>>, Failed> {
    let mut all = std::collections::BTreeMap::new();
    for item in fs::read_dir(DEFAULT_MOUNT)? {
        let item = item?;
        // `register` is write-only.
        if item.file_name() == "register" {
            continue;
        }
        all.insert(
            item.file_name().to_string_lossy().into_owned(),
            fs::read(item.path())?,
        );
    }
    Ok(all)
}

/// The registrar and the aarch64 and riscv64 probes copied into a
/// directory anyone may read and enter (mode 755), for runs as `nobody`.
fn world_readable_copies() -> Result<(tempfile::TempDir, std::path::PathBuf), Failed> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir()?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
    let probes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/probes/bin");
    for (from, to) in [
        (assert_cmd::cargo::cargo_bin("qus-register"), "qus-register"),
        (probes.join("aarch64"), "aarch64"),
        (probes.join("riscv64"), "riscv64"),
    ] {
        let path = dir.path().join(to);
        fs::copy(from, &path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    }
    let bin = dir.path().to_owned();
    Ok((dir, bin))
}

/// `qus-register --private --targets aarch64,riscv64 -p yes -- sh -c ...`
/// running both probes, then the aarch64 one again in a nested user
/// namespace; `prefix` runs it as another user.
fn private_probes(prefix: &[&str]) -> Result<(), Failed> {
    let (_dir, bin) = world_readable_copies()?;
    let before = host_registry_bytes()?;
    let script = format!(
        "{b}/aarch64 && {b}/riscv64 && unshare -Ur {b}/aarch64",
        b = bin.display()
    );
    let qus = bin.join("qus-register");
    let mut argv: Vec<&std::ffi::OsStr> = prefix.iter().map(std::ffi::OsStr::new).collect();
    argv.push(qus.as_os_str());
    let rest = [
        "--private",
        "--targets",
        "aarch64,riscv64",
        "-p",
        "yes",
        "--",
        "sh",
        "-c",
        &script,
    ];
    argv.extend(rest.iter().map(std::ffi::OsStr::new));
    let out = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(&bin)
        .output()?;
    expect_exit(&out, 0)?;
    check(
        text(&out.stdout) == "aarch64\nriscv64\naarch64\n",
        format!(
            "stdout: {:?}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        ),
    )?;
    check(
        text(&out.stderr)
            .contains("private binfmt_misc at `/proc/sys/fs/binfmt_misc`: 2 registered"),
        format!("stderr:\n{}", text(&out.stderr)),
    )?;
    // The host has no qemu-aarch64 (the guard removed it): only the private
    // registry ran the probes. Not one byte of the host's changed.
    check(
        raw("qemu-aarch64").is_none(),
        "qemu-aarch64 appeared on the host",
    )?;
    let after = host_registry_bytes()?;
    check(
        after == before,
        format!(
            "the host's registry changed: before {:?}, after {:?}",
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>()
        ),
    )
}

fn private_registry_as_root_leaves_the_host_alone(_: &Binfmt) -> Result<(), Failed> {
    private_probes(&[])
}

fn private_registry_as_nobody_leaves_the_host_alone(_: &Binfmt) -> Result<(), Failed> {
    private_probes(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ])
}

fn private_passes_on_the_commands_status(_: &Binfmt) -> Result<(), Failed> {
    use std::os::unix::process::ExitStatusExt as _;
    let before = host_registry_bytes()?;
    let private = |command: &[&str]| {
        let mut args = vec!["--private", "--targets", "aarch64", "--"];
        args.extend_from_slice(command);
        register(&args)
    };
    expect_exit(&private(&["sh", "-c", "exit 7"]), 7)?;
    expect_exit(&private(&["/nonexistent/qus-command"]), 127)?;
    expect_exit(&private(&["/"]), 126)?;
    // The command replaced the registrar: a signal that kills it kills
    // "the registrar".
    let out = private(&["sh", "-c", "kill -TERM $$"]);
    check(
        out.status.signal() == Some(libc::SIGTERM),
        format!("status {:?}", out.status),
    )?;
    // A registration that fails runs nothing: exit 125.
    let dir = tempfile::tempdir()?;
    let marker = dir.path().join("ran");
    let out = register(&[
        "--private",
        "--targets",
        "aarch64",
        "-p",
        "yes",
        "-Q",
        "/nonexistent",
        "--",
        "touch",
        &marker.to_string_lossy(),
    ]);
    expect_exit(&out, 125)?;
    check(
        !marker.exists(),
        "the command ran after a failed registration",
    )?;
    check(
        text(&out.stderr).contains("`/nonexistent/qemu-aarch64-static` does not exist")
            && text(&out.stderr).contains("was not run"),
        format!("stderr:\n{}", text(&out.stderr)),
    )?;
    check(
        host_registry_bytes()? == before,
        "the host's registry changed",
    )
}

fn private_without_user_namespaces_says_why(_: &Binfmt) -> Result<(), Failed> {
    // Inside a user namespace whose limit on nested ones is 0, as on hosts
    // that disable them with `user.max_user_namespaces=0`.
    let qus = assert_cmd::cargo::cargo_bin("qus-register");
    let out = std::process::Command::new("unshare")
        .args(["-Ur", "sh", "-c"])
        .arg(format!(
            "echo 0 > /proc/sys/user/max_user_namespaces && exec {} --private -- true",
            qus.display()
        ))
        .output()?;
    expect_exit(&out, 125)?;
    let stderr = text(&out.stderr);
    check(
        stderr.contains("cannot create a user namespace: user namespaces are disabled (`user.max_user_namespaces` is 0)")
            && stderr.contains("hint: as root: `sysctl -w user.max_user_namespaces="),
        format!("stderr:\n{stderr}"),
    )
}

// ---- --wait -----------------------------------------------------------------

/// A `--wait` daemon, killed (and reaped) if a test fails half-way.
struct Daemon {
    child: std::process::Child,
    stderr: std::path::PathBuf,
}

impl Daemon {
    /// Starts `program args` with stderr to a file in `dir`.
    fn start(dir: &Path, program: &Path, args: &[&str]) -> Result<Self, Failed> {
        let stderr = dir.join("daemon.stderr");
        let child = std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(&stderr)?)
            .spawn()?;
        Ok(Self { child, stderr })
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// utime + stime of the daemon, in clock ticks (`/proc/<pid>/stat`).
    fn cpu_ticks(&self) -> Result<u64, Failed> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name, which is in parentheses.
        let after = stat.rsplit_once(')').ok_or("no `)` in stat")?.1;
        let f: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat: 12 and 13 here.
        Ok(f.get(11).ok_or("short stat")?.parse::<u64>()?
            + f.get(12).ok_or("short stat")?.parse::<u64>()?)
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> Result<std::process::ExitStatus, Failed> {
        let pid =
            rustix::process::Pid::from_raw(i32::try_from(self.child.id())?).ok_or("no pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > std::time::Duration::from_secs(10) {
                return Err("the daemon did not stop within 10 s of SIGTERM".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 20 ms for up to `limit`; the time it took.
fn within(limit: std::time::Duration, cond: impl Fn() -> bool) -> Option<std::time::Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() <= limit {
        if cond() {
            return Some(started.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

fn wait_repairs_and_uninstall_on_exit_restores(b: &Binfmt) -> Result<(), Failed> {
    use std::time::Duration;
    // Someone else's entries: a foreign one, and an s390x entry identical to
    // what the daemon asks for (it must survive `--uninstall-on-exit`).
    register_foreign(b)?;
    expect_exit(&register(&["--targets", "s390x", "-p", "yes"]), 0)?;
    let before = entries(b)?;
    let dir = tempfile::tempdir()?;
    let health = dir.path().join("ready");
    let daemon = Daemon::start(
        dir.path(),
        &assert_cmd::cargo::cargo_bin("qus-register"),
        &[
            "--targets",
            "arm64,riscv64,s390x",
            "-p",
            "yes",
            "--wait",
            "--interval",
            "1",
            "--uninstall-on-exit",
            "--health-file",
            &health.to_string_lossy(),
        ],
    )?;
    within(Duration::from_secs(10), || health.exists())
        .ok_or_else(|| format!("no health file; log:\n{}", daemon.log()))?;
    check(
        fs::read_to_string(&health)? == "qemu-aarch64\nqemu-riscv64\nqemu-s390x\n",
        "health file content",
    )?;
    // Flushed by hand: back within two intervals.
    let registered = raw("qemu-aarch64");
    b.remove("qemu-aarch64")?;
    let took = within(Duration::from_secs(2), || raw("qemu-aarch64") == registered)
        .ok_or_else(|| format!("not repaired within 2 s; log:\n{}", daemon.log()))?;
    eprintln!("repaired in {took:?}");
    check(
        daemon
            .log()
            .contains("repairing `qemu-aarch64`: it had vanished"),
        format!("log:\n{}", daemon.log()),
    )?;
    // Idle: a second of CPU ticks over five seconds would be a busy loop.
    let t0 = daemon.cpu_ticks()?;
    std::thread::sleep(Duration::from_secs(5));
    let idle = daemon.cpu_ticks()? - t0;
    eprintln!("idle CPU over 5 s at --interval 1: {idle} ticks");
    check(idle <= 10, format!("{idle} ticks of CPU in 5 s idle"))?;
    let log_before_stop = daemon.log();
    let status = daemon.stop()?;
    check(
        status.code() == Some(0),
        format!("exit {status:?}; log:\n{log_before_stop}"),
    )?;
    check(!health.exists(), "the health file outlived the daemon")?;
    let after = entries(b)?;
    check(
        after == before,
        format!("not as before the daemon:\nbefore: {before:#?}\nafter: {after:#?}"),
    )
}

fn wait_through_a_bind_mounted_registry(b: &Binfmt) -> Result<(), Failed> {
    use std::time::Duration;
    // As in an unprivileged container given the host's binfmt_misc with
    // `-v /proc/sys/fs/binfmt_misc:/binfmt`: the bind mount lives in a
    // mount namespace of its own and goes with it.
    let dir = tempfile::tempdir()?;
    let binfmt_dir = dir.path().join("binfmt");
    fs::create_dir(&binfmt_dir)?;
    let qus = assert_cmd::cargo::cargo_bin("qus-register");
    let script = format!(
        "mount --bind {DEFAULT_MOUNT} {m} && exec {q} --mount {m} --targets riscv64 -p yes \
         --wait --interval 1 --uninstall-on-exit",
        m = binfmt_dir.display(),
        q = qus.display()
    );
    let before = entries(b)?;
    let daemon = Daemon::start(
        dir.path(),
        Path::new("unshare"),
        &["-m", "--propagation", "private", "sh", "-c", &script],
    )?;
    within(Duration::from_secs(10), || raw("qemu-riscv64").is_some())
        .ok_or_else(|| format!("not registered; log:\n{}", daemon.log()))?;
    b.remove("qemu-riscv64")?;
    within(Duration::from_secs(2), || raw("qemu-riscv64").is_some())
        .ok_or_else(|| format!("not repaired within 2 s; log:\n{}", daemon.log()))?;
    let status = daemon.stop()?;
    check(status.code() == Some(0), format!("exit {status:?}"))?;
    check(entries(b)? == before, "not as before the daemon")
}
