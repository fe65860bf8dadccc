//! `--wait`'s loop on the in-memory kernel model, with a scripted clock:
//! repairs, the health file, what `--uninstall-on-exit` removes and puts
//! back. The real kernel and real signals are in `kernel.rs`.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser as _;
use qus_registrar::app::Env;
use qus_registrar::binfmt::HostFacts;
use qus_registrar::cli::Cli;
use qus_registrar::daemon::{self, Options, Waiter, Wake};
use qus_registrar::entry::{Entry, Flags};
use qus_registrar::interpreter::InterpreterFacts;
use qus_registrar::registry::{Model, Registry};
use qus_registrar::targets;
use qus_registrar::verify::{self, ProbeError, ProbeOutput};

fn host() -> HostFacts {
    HostFacts {
        machine: "x86_64".into(),
        kernel_release: "6.1.0".into(),
        kernel: Some((6, 1)),
        initial_user_namespace: true,
        emulation: None,
    }
}

fn static_interpreters(_: &str) -> InterpreterFacts {
    InterpreterFacts::Elf { interp: None }
}

fn entry(target: &str, flags: &str) -> Entry {
    let t = targets::find(target).unwrap();
    Entry::expected(
        t,
        &format!("/usr/bin/{}-static", t.interpreter),
        Flags::parse(flags).unwrap(),
    )
}

fn python() -> Entry {
    Entry::parse(
        "python3.11",
        "enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n",
    )
    .unwrap()
}

/// One scripted wait: looks at the model and the health file as the last
/// check left them, may change the model, and says what ends the wait.
type Step<'a> = Box<dyn FnMut(&Model, Option<String>) -> Wake + 'a>;

/// Runs the steps in order at each wait; after the last, SIGTERM.
struct Script<'a> {
    model: &'a Model,
    health: PathBuf,
    steps: Vec<Step<'a>>,
    waits: usize,
}

impl Waiter for Script<'_> {
    fn wait(&mut self, interval: Duration) -> io::Result<Wake> {
        assert_eq!(interval, Duration::from_secs(3));
        self.waits += 1;
        let health = std::fs::read_to_string(&self.health).ok();
        if self.steps.is_empty() {
            return Ok(Wake::Stop("SIGTERM"));
        }
        let mut step = self.steps.remove(0);
        Ok(step(self.model, health))
    }
}

/// A probe runs when the model has an enabled entry for it, unless its
/// target is in `broken`.
fn probe_from<'a>(
    model: &'a Model,
    broken: &'a RefCell<Vec<&'static str>>,
) -> impl Fn(&str) -> Result<ProbeOutput, ProbeError> + 'a {
    move |target: &str| {
        let runs = !broken.borrow().contains(&target)
            && model
                .read(&format!("qemu-{target}"))
                .ok()
                .flatten()
                .is_some_and(|e| e.enabled);
        if runs {
            let (_, expected) = verify::probe(target).unwrap();
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

struct Ran {
    code: u8,
    stderr: String,
    waits: usize,
}

fn run(
    model: &Model,
    args: &[&str],
    health: &Path,
    broken: &RefCell<Vec<&'static str>>,
    steps: Vec<Step<'_>>,
) -> Ran {
    let cli = Cli::try_parse_from(
        [
            "qus-register",
            "-Q",
            "/usr/bin",
            "--wait",
            "--interval",
            "3",
        ]
        .iter()
        .chain(args),
    )
    .unwrap();
    let mut options = Options::from_cli(&cli);
    options.health_file = Some(health.to_owned());
    let probe = probe_from(model, broken);
    let env = Env {
        registry: model,
        host: host(),
        interpreter: &static_interpreters,
        probe: &probe,
    };
    let mut script = Script {
        model,
        health: health.to_owned(),
        steps,
        waits: 0,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = daemon::run_with(&cli, &env, &options, &mut script, &mut out, &mut err).unwrap();
    Ran {
        code,
        stderr: String::from_utf8(err).unwrap(),
        waits: script.waits,
    }
}

fn sorted(mut v: Vec<Entry>) -> Vec<Entry> {
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

#[test]
fn vanished_and_changed_entries_are_repaired_and_exit_restores_the_start() {
    // Someone's python entry, someone's identical s390x entry, and an
    // aarch64 entry without flags that `--replace` replaces.
    let start = sorted(vec![python(), entry("s390x", "F"), entry("aarch64", "")]);
    let model = Model::new("/m", start.clone());
    let dir = tempfile::tempdir().unwrap();
    let health = dir.path().join("ready");
    let broken = RefCell::new(Vec::new());
    let ran = run(
        &model,
        &[
            "--targets",
            "arm64,riscv64,s390x",
            "-p",
            "yes",
            "--replace",
            "--uninstall-on-exit",
        ],
        &health,
        &broken,
        vec![
            Box::new(|m, health| {
                assert_eq!(
                    health.as_deref(),
                    Some("qemu-aarch64\nqemu-riscv64\nqemu-s390x\n")
                );
                // systemd-binfmt flushed one.
                m.remove("qemu-riscv64").unwrap();
                Wake::Tick
            }),
            Box::new(|m, health| {
                assert!(health.is_some(), "repaired, so healthy");
                assert_eq!(m.read("qemu-riscv64").unwrap(), Some(entry("riscv64", "F")));
                m.set_enabled("qemu-aarch64", false).unwrap();
                Wake::Tick
            }),
            Box::new(|m, _| {
                assert_eq!(m.read("qemu-aarch64").unwrap(), Some(entry("aarch64", "F")));
                // Another tool removes the entry this daemon found.
                m.remove("qemu-s390x").unwrap();
                Wake::Tick
            }),
            Box::new(|m, health| {
                assert!(health.is_some());
                assert_eq!(m.read("qemu-s390x").unwrap(), Some(entry("s390x", "F")));
                Wake::Stop("SIGINT")
            }),
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.waits, 4);
    for says in [
        "watching 3 entries every 3 s",
        "repairing `qemu-riscv64`: it had vanished",
        "repairing `qemu-aarch64`: it had changed (enabled: `false` -> `true`)",
        "repairing `qemu-s390x`: it had vanished",
        "SIGINT: stopping",
        "removed `qemu-riscv64`",
        "put back the `qemu-aarch64` it had replaced",
    ] {
        assert!(
            ran.stderr.contains(says),
            "`{says}` missing:\n{}",
            ran.stderr
        );
    }
    // The s390x entry was found registered: someone else's, kept.
    assert!(
        !ran.stderr.contains("removed `qemu-s390x`"),
        "{}",
        ran.stderr
    );
    assert_eq!(model.entries(), start);
    assert!(!health.exists(), "the health file outlived the daemon");
}

#[test]
fn without_uninstall_on_exit_everything_stays() {
    let model = Model::new("/m", vec![python()]);
    let dir = tempfile::tempdir().unwrap();
    let health = dir.path().join("ready");
    let broken = RefCell::new(Vec::new());
    let ran = run(
        &model,
        &["--targets", "arm64", "-p", "yes"],
        &health,
        &broken,
        vec![],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        model.entries(),
        sorted(vec![python(), entry("aarch64", "F")])
    );
}

#[test]
fn the_health_file_follows_the_probes_and_problems_are_logged_once() {
    let model = Model::new("/m", vec![]);
    let dir = tempfile::tempdir().unwrap();
    let health = dir.path().join("ready");
    let broken = RefCell::new(Vec::new());
    let ran = run(
        &model,
        &["--targets", "arm64,riscv64", "-p", "yes", "--verify"],
        &health,
        &broken,
        vec![
            Box::new(|_, health| {
                assert!(health.is_some());
                // The riscv64 interpreter breaks: registered, not runnable.
                broken.borrow_mut().push("riscv64");
                Wake::Tick
            }),
            Box::new(|_, health| {
                assert_eq!(health, None, "unhealthy: the file must go");
                Wake::Tick
            }),
            Box::new(|_, health| {
                assert_eq!(health, None);
                broken.borrow_mut().clear();
                Wake::Tick
            }),
            Box::new(|_, health| {
                assert!(health.is_some(), "healthy again");
                Wake::Stop("SIGTERM")
            }),
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.stderr
            .matches("`qemu-riscv64` is registered but not runnable")
            .count(),
        1,
        "logged at every tick:\n{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("every watched entry is registered again"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_refused_first_registration_watches_nothing() {
    let model = Model::new("/m", vec![entry("aarch64", "")]);
    let dir = tempfile::tempdir().unwrap();
    let health = dir.path().join("ready");
    // Left by an earlier daemon (killed, or a container restarted in a pod
    // whose volume outlived it): it must not say ready for this one.
    std::fs::write(&health, "qemu-aarch64\n").unwrap();
    let broken = RefCell::new(Vec::new());
    // A different entry, no `--replace`: refused, exit 1, no wait.
    let ran = run(
        &model,
        &["--targets", "arm64", "-p", "yes"],
        &health,
        &broken,
        vec![Box::new(|_, _| panic!("waited after a refusal"))],
    );
    assert_eq!(ran.code, 1);
    assert_eq!(ran.waits, 0);
    assert!(!health.exists(), "a stale health file says ready");
    assert!(
        ran.stderr.contains("refused `qemu-aarch64`"),
        "{}",
        ran.stderr
    );
    assert!(!health.exists());
}

#[test]
fn an_entry_changed_by_someone_else_is_kept_on_exit() {
    let model = Model::new("/m", vec![]);
    let dir = tempfile::tempdir().unwrap();
    let health = dir.path().join("ready");
    let broken = RefCell::new(Vec::new());
    let theirs = entry("riscv64", "OCF");
    let ran = run(
        &model,
        &["--targets", "riscv64", "-p", "yes", "--uninstall-on-exit"],
        &health,
        &broken,
        // Replaced right before the stop: no check saw it.
        vec![Box::new(|m, _| {
            m.remove("qemu-riscv64").unwrap();
            let t = targets::find("riscv64").unwrap();
            m.register(
                "qemu-riscv64",
                &qus_registrar::entry::register_line(
                    t,
                    "/usr/bin/qemu-riscv64-static",
                    Flags::parse("OCF").unwrap(),
                ),
            )
            .unwrap();
            Wake::Stop("SIGTERM")
        })],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("changed by someone else"),
        "{}",
        ran.stderr
    );
    assert_eq!(model.entries(), vec![theirs]);
}
