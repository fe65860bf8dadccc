//! The tonistiigi/binfmt-compatible command (`binfmt`, `qus-register
//! --compat binfmt`), without root.
//!
//! docker/setup-qemu-action runs `--version`, `--uninstall qemu-*` (with
//! `reset: true`), `--install <platforms>`, then no argument, and after each
//! run fails the step only when stderr is non-empty and the exit status is
//! non-zero, showing stderr's last line; it JSON-parses the stdout of the
//! last run. The command lines go through the real binary (a symlink named
//! `binfmt`, a temporary directory as `--mount`); registrations go through
//! `compat::run_with` on the in-memory kernel model (`registry::Model`),
//! with probes answered from that model. The real kernel is in `kernel.rs`.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use clap::Parser as _;
use qus_registrar::app::Env;
use qus_registrar::binfmt::HostFacts;
use qus_registrar::cli::{BinfmtCli, Invocation};
use qus_registrar::compat;
use qus_registrar::entry::{Entry, Flags};
use qus_registrar::interpreter::InterpreterFacts;
use qus_registrar::platform::Native;
use qus_registrar::registry::{Fault, Faulty, Model, Registry};
use qus_registrar::targets::{self, TARGETS};
use qus_registrar::verify::{self, ProbeError, ProbeOutput};
use tempfile::TempDir;

/// What the action does with one run: it throws (showing stderr's last
/// line) only when stderr is non-empty and the status is non-zero.
fn action_error(code: i32, stderr: &str) -> Option<String> {
    (!stderr.is_empty() && code != 0).then(|| {
        stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim()
            .to_owned()
    })
}

/// The action's `JSON.parse(res.stdout.trim())` and `platforms.supported`.
fn supported_of(stdout: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_str(stdout.trim()).expect("stdout is JSON");
    doc["supported"]
        .as_array()
        .expect("`supported` is an array")
        .iter()
        .map(|v| v.as_str().expect("platform strings").to_owned())
        .collect()
}

// ---- the real binary ------------------------------------------------------

/// A directory holding `binfmt`, a symlink to the built `qus-register`.
fn binfmt_link() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("binfmt");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("qus-register"), &link).unwrap();
    (dir, link)
}

/// `binfmt` with the tonistiigi variables cleared.
fn binfmt(link: &Path) -> Command {
    let mut c = Command::new(link);
    for var in [
        "QEMU_BINARY_PATH",
        "QEMU_BINARY_PREFIX",
        "QEMU_PRESERVE_ARGV0",
        "QUS_BINFMT_FLAGS",
        "QUS_BINFMT_MOUNT",
    ] {
        c.env_remove(var);
    }
    c.env("HOST_ARCH", "x86_64");
    c
}

/// A directory that looks like a mounted binfmt_misc.
fn fake_mount(entries: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("register"), "").unwrap();
    fs::write(dir.path().join("status"), "enabled\n").unwrap();
    for (name, text) in entries {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const AARCH64_F: &str = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
const PYTHON: &str =
    "disabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n";

#[test]
fn the_name_binfmt_and_compat_binfmt_select_tonistiigis_command_line() {
    let (_d, link) = binfmt_link();
    for mut c in [
        binfmt(&link),
        {
            let mut c = Command::cargo_bin("qus-register").unwrap();
            c.arg("--compat").arg("binfmt");
            c
        },
        {
            let mut c = Command::cargo_bin("qus-register").unwrap();
            c.arg("--compat=binfmt");
            c
        },
    ] {
        let out = c.arg("--help").output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0));
        for flag in [
            "--install",
            "--uninstall",
            "--version",
            "--mount",
            "QEMU_BINARY_PATH",
            "QEMU_PRESERVE_ARGV0",
            "QUS_BINFMT_FLAGS",
            "Exit status",
        ] {
            assert!(help.contains(flag), "`{flag}` missing:\n{help}");
        }
    }
    // Not first: a usage error, not a silent switch.
    let out = Command::cargo_bin("qus-register")
        .unwrap()
        .args(["--status", "--compat", "binfmt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be the first argument"));
}

#[test]
fn version_names_qus_and_says_unknown_without_an_emulator() {
    let (_d, link) = binfmt_link();
    let empty = tempfile::tempdir().unwrap();
    // Go's flag package takes `-version` as well.
    for flag in ["--version", "-version"] {
        let out = binfmt(&link)
            .arg(flag)
            .env("QEMU_BINARY_PATH", empty.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("binfmt/qus-{} qemu/unknown\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn every_usage_error_meets_the_actions_error_rule() {
    let (_d, link) = binfmt_link();
    let m = fake_mount(&[]);
    for (args, env, says) in [
        (
            &["--install", "vax"][..],
            None,
            "invalid value `vax` for `--install`",
        ),
        (&["--install", ""], None, "no platform named"),
        (
            &["--uninstall", "python3.11"],
            None,
            "qus never removes entries of other software",
        ),
        (&["--flags", "CZ"], None, "unknown flag letter `Z`"),
        (&["--no-such-flag"], None, "--no-such-flag"),
        (
            &[],
            Some(("QEMU_BINARY_PREFIX", "buildkit-")),
            "QEMU_BINARY_PREFIX",
        ),
    ] {
        let mut c = binfmt(&link);
        c.arg("--mount").arg(m.path()).args(args);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let error = action_error(out.status.code().unwrap(), &stderr)
            .unwrap_or_else(|| panic!("{args:?}: the action would go on: {stderr}"));
        assert!(error.contains(says), "{args:?}: {error}");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    assert_eq!(fs::read_to_string(m.path().join("register")).unwrap(), "");
}

#[test]
fn no_argument_prints_the_status_json_with_every_entry() {
    let (_d, link) = binfmt_link();
    let m = fake_mount(&[("qemu-aarch64", AARCH64_F), ("python3.11", PYTHON)]);
    let out = binfmt(&link).arg("--mount").arg(m.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let doc: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    // tonistiigi's `emulators`: enabled entries only (python3.11 is disabled).
    assert_eq!(doc["emulators"], serde_json::json!(["qemu-aarch64"]));
    // qus's entries: every field of every qemu-* entry.
    assert_eq!(doc["entries"][0]["name"], "qemu-aarch64");
    assert_eq!(doc["entries"][0]["flags"], "F");
    assert_eq!(doc["entries"].as_array().unwrap().len(), 1);
    // `supported` comes from what the kernel runs, not from this mount: the
    // native platform first, then only buildkit's names.
    let supported = supported_of(&stdout);
    assert_eq!(supported[0], Native::detect().platform());
    let everything = qus_registrar::platform::supported(
        &Native {
            amd64_level: Some(4),
            ..Native::detect()
        },
        &mut |_| true,
    );
    assert!(
        supported.iter().all(|p| everything.contains(p)),
        "{supported:?}"
    );
    // Nothing was written.
    assert_eq!(fs::read_to_string(m.path().join("register")).unwrap(), "");
}

#[test]
fn uninstalling_what_is_not_there_succeeds_and_prints_the_status() {
    let (_d, link) = binfmt_link();
    let m = fake_mount(&[("python3.11", PYTHON)]);
    let out = binfmt(&link)
        .args(["--uninstall", "qemu-*"])
        .arg("--mount")
        .arg(m.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("nothing to remove"), "{stderr}");
    supported_of(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        fs::read_to_string(m.path().join("python3.11")).unwrap(),
        PYTHON
    );
}

#[test]
fn single_dash_options_are_gos() {
    let args = [
        "binfmt",
        "-install=arm64",
        "-uninstall",
        "qemu-*",
        "-mount",
        "/m",
    ];
    match Invocation::parse(args).map_err(|e| e.error).unwrap() {
        Invocation::Binfmt(c) => {
            assert_eq!(c.install.as_deref(), Some("arm64"));
            assert_eq!(c.uninstall.as_deref(), Some("qemu-*"));
            assert_eq!(c.mount, Path::new("/m"));
        }
        other => panic!("{other:?}"),
    }
    // A path ending in `binfmt` counts; `qus-register` stays itself.
    assert!(matches!(
        Invocation::parse(["/usr/bin/binfmt", "--install", "all"])
            .map_err(|e| e.error)
            .unwrap(),
        Invocation::Binfmt(_)
    ));
    assert!(matches!(
        Invocation::parse(["qus-register", "--reset"])
            .map_err(|e| e.error)
            .unwrap(),
        Invocation::Register(_)
    ));
}

// ---- the in-memory kernel -------------------------------------------------

fn host() -> HostFacts {
    HostFacts {
        machine: "x86_64".into(),
        kernel_release: "6.1.0".into(),
        kernel: Some((6, 1)),
        initial_user_namespace: true,
        emulation: None,
    }
}

fn native() -> Native {
    Native {
        arch: "amd64",
        variant: None,
        amd64_level: Some(2),
    }
}

fn foreign() -> Vec<Entry> {
    vec![Entry::parse("python3.11", PYTHON).unwrap()]
}

/// Interpreters present in `/usr/bin` as `qemu-<cpu>-static`, except
/// those named.
fn interpreters_except(absent: &'static [&'static str]) -> impl Fn(&str) -> InterpreterFacts {
    move |path: &str| {
        let present = path.starts_with("/usr/bin/qemu-")
            && path.ends_with("-static")
            && !absent
                .iter()
                .any(|a| path == format!("/usr/bin/qemu-{a}-static"));
        if present {
            InterpreterFacts::Elf { interp: None }
        } else {
            InterpreterFacts::Missing
        }
    }
}

/// A probe runs when the model has an enabled entry for its target, or
/// natively (the x86 family on this x86_64 host), as the kernel would.
fn probe_from(model: &dyn Registry) -> impl Fn(&str) -> Result<ProbeOutput, ProbeError> + '_ {
    move |target: &str| {
        let (_, expected) = verify::probe(target).expect("a probe");
        let native = targets::find(target).is_some_and(|t| t.family == "i386");
        let handled = model
            .read(&format!("qemu-{target}"))
            .ok()
            .flatten()
            .is_some_and(|e| e.enabled);
        if native || handled {
            Ok(ProbeOutput {
                code: Some(0),
                stdout: expected.into(),
                stderr: String::new(),
            })
        } else {
            Err(ProbeError::Exec {
                target: target.into(),
                source: io::Error::from_raw_os_error(libc::ENOEXEC),
            })
        }
    }
}

/// One run of the command on `registry`.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The action's verdict on this run.
    fn action_error(&self) -> Option<String> {
        action_error(self.code, &self.stderr)
    }
}

fn run_on(
    registry: &dyn Registry,
    probes: &dyn Registry,
    interpreters: &dyn Fn(&str) -> InterpreterFacts,
    args: &[&str],
) -> Ran {
    let mut cli = BinfmtCli::try_parse_from(std::iter::once("binfmt").chain(args.iter().copied()))
        .expect("a valid command line");
    // The test process's environment must not decide.
    if !args.contains(&"--flags") {
        cli.flags = None;
    }
    cli.binary_path = None;
    cli.binary_prefix = None;
    if !args.contains(&"--preserve-argv0") {
        cli.preserve_argv0 = None;
    }
    let probe = probe_from(probes);
    let env = Env {
        registry,
        host: host(),
        interpreter: interpreters,
        probe: &probe,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = compat::run_with(&cli, &env, &native(), &mut out, &mut err).expect("Vec writes");
    Ran {
        code: i32::from(code),
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    }
}

fn run(model: &Model, args: &[&str]) -> Ran {
    run_on(model, model, &interpreters_except(&[]), args)
}

/// The action's sequence; panics where the action would fail. Returns the
/// `supported` list it would output.
fn action_sequence(model: &Model, reset: bool, platforms: &str) -> Vec<String> {
    let mut steps: Vec<Vec<&str>> = vec![vec!["--version"]];
    if reset {
        steps.push(vec!["--uninstall", "qemu-*"]);
    }
    steps.push(vec!["--install", platforms]);
    steps.push(vec![]);
    let mut last = None;
    for step in steps {
        let ran = run(model, &step);
        if let Some(e) = ran.action_error() {
            panic!("the action fails at {step:?}: {e}\n{}", ran.stderr);
        }
        assert_eq!(ran.code, 0, "{step:?}: {}", ran.stderr);
        last = Some(ran);
    }
    supported_of(&last.unwrap().stdout)
}

/// Every target an x86_64 host registers, with tonistiigi's flags.
fn all_with(flags: &str) -> Vec<Entry> {
    TARGETS
        .iter()
        .filter(|t| t.family != "i386")
        .map(|t| {
            Entry::expected(
                t,
                &format!("/usr/bin/{}-static", t.interpreter),
                Flags::parse(flags).unwrap(),
            )
        })
        .collect()
}

fn sorted(mut v: Vec<Entry>) -> Vec<Entry> {
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

#[test]
fn the_actions_sequence_registers_every_target_with_cf() {
    for reset in [false, true] {
        let model = Model::new("/m", foreign());
        let supported = action_sequence(&model, reset, "all");
        let mut wanted = foreign();
        wanted.extend(all_with("CF"));
        assert_eq!(model.entries(), sorted(wanted), "reset {reset}");
        // buildkit's list: every candidate runs (x86 natively).
        assert_eq!(
            supported,
            [
                "linux/amd64",
                "linux/amd64/v2",
                "linux/arm64",
                "linux/riscv64",
                "linux/ppc64",
                "linux/ppc64le",
                "linux/s390x",
                "linux/386",
                "linux/mips64le",
                "linux/mips64",
                "linux/loong64",
                "linux/arm/v7",
                "linux/arm/v6",
            ]
        );
    }
}

#[test]
fn a_differing_entry_is_kept_without_reset_and_replaced_with_it() {
    let aarch64 = targets::find("aarch64").unwrap();
    let mine = Entry::expected(
        aarch64,
        "/usr/bin/qemu-aarch64-static",
        Flags::parse("F").unwrap(),
    );
    let mut start = foreign();
    start.push(mine.clone());
    let model = Model::new("/m", start);
    let ran = run(&model, &["--install", "arm64,riscv64"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("warning: `qemu-aarch64` is registered differently (flags: `F` -> `OCF`)"),
        "{}",
        ran.stderr
    );
    assert_eq!(model.read("qemu-aarch64").unwrap(), Some(mine));
    assert!(model.read("qemu-riscv64").unwrap().is_some());
    // The action's `reset: true` replaces it.
    action_sequence(&model, true, "arm64,riscv64");
    assert_eq!(
        model
            .read("qemu-aarch64")
            .unwrap()
            .unwrap()
            .flags
            .to_string(),
        "OCF"
    );
    assert!(model.read("python3.11").unwrap().is_some());
}

#[test]
fn a_missing_interpreter_fails_as_the_action_sees_failures() {
    let model = Model::new("/m", foreign());
    // Named: refused whole, nothing changed.
    let ran = run_on(
        &model,
        &model,
        &interpreters_except(&["riscv64"]),
        &["--install", "arm64,riscv64"],
    );
    let error = ran.action_error().expect("the action stops");
    assert!(
        error.starts_with("error: `--install` failed: no interpreter for `riscv64`")
            && error.contains("/usr/bin/qemu-riscv64-static"),
        "{error}"
    );
    assert_eq!(model.entries(), foreign());
    // The status is still printed, as tonistiigi prints it after every run.
    supported_of(&ran.stdout);
    // `all` with no interpreter at all.
    let nothing: &'static [&'static str] = Box::leak(
        TARGETS
            .iter()
            .map(|t| t.interpreter.trim_start_matches("qemu-"))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let ran = run_on(
        &model,
        &model,
        &interpreters_except(nothing),
        &["--install", "all"],
    );
    let error = ran.action_error().expect("the action stops");
    assert!(
        error.contains("no QEMU interpreter in `/usr/bin`"),
        "{error}"
    );
    assert_eq!(model.entries(), foreign());
    // `all` takes what is there and names what is not.
    let ran = run_on(
        &model,
        &model,
        &interpreters_except(&["riscv64", "s390x"]),
        &["--install", "all"],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("note: no interpreter in `/usr/bin` for riscv64, s390x: not installed"),
        "{}",
        ran.stderr
    );
    assert_eq!(model.entries().len(), 1 + 31 - 2);
}

#[test]
fn the_hosts_own_family_is_left_to_run_natively() {
    let model = Model::new("/m", vec![]);
    let ran = run(&model, &["--install", "amd64,386,arm64"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("note: `x86_64` is of this `x86_64` host's own family and runs natively"),
        "{}",
        ran.stderr
    );
    let names: Vec<_> = model.entries().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["qemu-aarch64"]);
    let supported = supported_of(&ran.stdout);
    assert!(supported.contains(&"linux/386".to_owned()), "{supported:?}");
}

#[test]
fn uninstall_takes_globs_names_and_platforms_and_never_touches_others() {
    let mut start = foreign();
    start.extend(all_with("CF"));
    let model = Model::new("/m", start);
    // `*` matches python3.11 too; it is named and kept.
    let ran = run(&model, &["--uninstall", "*"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("`python3.11` matches `*` but is not a `qemu-*` entry")
    );
    assert_eq!(model.entries(), foreign());
    let model = Model::new("/m", sorted([foreign(), all_with("CF")].concat()));
    let ran = run(
        &model,
        &["--uninstall", "arm64,qemu-riscv64,linux/s390x,qemu-mips*"],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let gone: BTreeSet<String> = all_with("CF")
        .into_iter()
        .map(|e| e.name)
        .filter(|n| model.read(n).unwrap().is_none())
        .collect();
    let expected: BTreeSet<String> = [
        "qemu-aarch64",
        "qemu-riscv64",
        "qemu-s390x",
        "qemu-mips",
        "qemu-mips64",
        "qemu-mips64el",
        "qemu-mipsel",
        "qemu-mipsn32",
        "qemu-mipsn32el",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(gone, expected);
    // What is not there is a note, not a failure: the goal is reached.
    let ran = run(&model, &["--uninstall", "arm64"]);
    assert_eq!(ran.code, 0);
    assert!(
        ran.stderr
            .contains("note: `qemu-aarch64` is not registered")
    );
}

#[test]
fn supported_is_what_runs_not_what_is_listed() {
    let model = Model::new("/m", sorted([foreign(), all_with("CF")].concat()));
    let before = supported_of(&run(&model, &[]).stdout);
    assert!(before.contains(&"linux/riscv64".to_owned()));
    // A disabled entry is listed and does not run.
    model.set_enabled("qemu-riscv64", false).unwrap();
    let ran = run(&model, &[]);
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert!(
        doc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "qemu-riscv64" && e["enabled"] == false)
    );
    assert!(
        !doc["emulators"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "qemu-riscv64")
    );
    let after = supported_of(&ran.stdout);
    let mut expected = before.clone();
    expected.retain(|p| p != "linux/riscv64");
    assert_eq!(after, expected);
    // The probes are what decides: an empty registry that runs everything
    // (handlers elsewhere) lists everything.
    let empty = Model::new("/m", vec![]);
    let ran = run_on(&empty, &model, &interpreters_except(&[]), &[]);
    assert_eq!(supported_of(&ran.stdout), after);
}

#[test]
fn preserve_argv0_and_flags_change_what_is_registered() {
    let model = Model::new("/m", vec![]);
    let ran = run(&model, &["--install", "arm64", "--preserve-argv0", "1"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        model
            .read("qemu-aarch64")
            .unwrap()
            .unwrap()
            .flags
            .to_string(),
        "POCF"
    );
    let model = Model::new("/m", vec![]);
    let ran = run(&model, &["--install", "arm64", "--flags", "F"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        model
            .read("qemu-aarch64")
            .unwrap()
            .unwrap()
            .flags
            .to_string(),
        "F"
    );
}

#[test]
fn a_kernel_failure_half_way_is_rolled_back_and_named_last() {
    let start = foreign();
    let faulty = Faulty::new(
        Model::new("/m", start.clone()),
        5,
        Fault::Errno(libc::EIO),
        false,
    );
    let ran = run_on(
        &faulty,
        faulty.inner(),
        &interpreters_except(&[]),
        &["--install", "all"],
    );
    let error = ran.action_error().expect("the action stops");
    assert!(
        error.starts_with("error: `--install` failed: failed to register `qemu-")
            && error.ends_with("Input/output error (os error 5)"),
        "{error}"
    );
    assert!(
        ran.stderr
            .contains("rolled back: the registry is as it was before this run"),
        "{}",
        ran.stderr
    );
    assert_eq!(faulty.inner().entries(), start);
}
