//! `--wait`: register, then keep the registration as long as this runs.
//!
//! Entries vanish under running hosts: `systemd-binfmt` flushes every entry
//! when it restarts, an automount remounts binfmt_misc empty, another tool
//! runs `--uninstall`. [`run_with`] registers as asked (the plan and the
//! all-or-nothing apply of `plan.rs` and `apply.rs`), then every interval
//! checks the requested targets again: it mounts binfmt_misc if it is gone,
//! re-registers an entry that vanished, replaces one that changed (flags,
//! interpreter, disabled), logs each repair, and with `--verify` runs the
//! targets' probes. `--health-file` exists exactly while every requested
//! target is registered as asked (and runnable, with `--verify`), for
//! readiness probes; it is rewritten at every check, so its mtime shows the
//! last one. [`check_health`] (`--check-health`) is the probe: the
//! registrar images are `FROM scratch`, with no shell and no `test -f`.
//!
//! Between checks the process sleeps in one `recv` with a timeout on a
//! socket that the SIGTERM and SIGINT handlers write to ([`Signals`]): no
//! polling thread, no busy loop. A signal ends the loop; with
//! `--uninstall-on-exit` the entries this process registered, and only
//! those, are removed first, if they are still as it registered them.
//! Entries it found registered when it started belong to whoever registered
//! them and stay. The waiting is behind the [`Waiter`] trait so the loop can
//! be tested on the in-memory registry with a scripted clock.

use std::collections::BTreeMap;
use std::io::{self, Read as _, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::app::{self, Env, print_error};
use crate::apply;
use crate::binfmt::Binfmt;
use crate::cli::{Cli, exit};
use crate::entry::Entry;
use crate::plan::{self, Action, Plan, Request};
use crate::targets::{self, Target};
use crate::verify;

/// What ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The interval passed: check again.
    Tick,
    /// A signal asked the process to end (its name).
    Stop(&'static str),
}

/// Sleeps between checks until the interval passes or a stop is asked.
pub trait Waiter {
    /// Waits up to `interval`.
    fn wait(&mut self, interval: Duration) -> io::Result<Wake>;
}

/// The real [`Waiter`]: SIGTERM and SIGINT handlers that write a byte to a
/// socket this process sleeps on (`recv` with a timeout).
pub struct Signals {
    wake: UnixStream,
    which: Arc<AtomicUsize>,
}

/// The signals that stop the loop, with their names.
const STOP_SIGNALS: [(i32, &str); 2] = [
    (signal_hook::consts::SIGTERM, "SIGTERM"),
    (signal_hook::consts::SIGINT, "SIGINT"),
];

impl Signals {
    /// Installs the handlers. From now on SIGTERM and SIGINT no longer end
    /// the process at once: the loop sees them at its next wait.
    pub fn install() -> io::Result<Self> {
        let (wake, write) = UnixStream::pair()?;
        let which = Arc::new(AtomicUsize::new(0));
        for (i, (signal, _)) in STOP_SIGNALS.iter().enumerate() {
            signal_hook::flag::register_usize(*signal, Arc::clone(&which), i + 1)?;
            signal_hook::low_level::pipe::register(*signal, write.try_clone()?)?;
        }
        Ok(Self { wake, which })
    }

    fn stopped(&self) -> Option<Wake> {
        match self.which.load(Ordering::SeqCst) {
            0 => None,
            n => Some(Wake::Stop(
                STOP_SIGNALS.get(n - 1).map_or("a signal", |s| s.1),
            )),
        }
    }
}

impl Waiter for Signals {
    fn wait(&mut self, interval: Duration) -> io::Result<Wake> {
        let until = Instant::now() + interval;
        loop {
            if let Some(stop) = self.stopped() {
                return Ok(stop);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Wake::Tick);
            }
            self.wake.set_read_timeout(Some(left))?;
            match self.wake.read(&mut [0u8; 16]) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The `--wait` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Time between checks.
    pub interval: Duration,
    /// Written while healthy, removed otherwise.
    pub health_file: Option<PathBuf>,
    /// Remove what this process registered when it stops.
    pub uninstall_on_exit: bool,
    /// Run the probes at each check.
    pub verify: bool,
}

impl Options {
    /// The settings of a command line.
    pub fn from_cli(cli: &Cli) -> Self {
        Self {
            interval: Duration::from_secs(cli.interval),
            health_file: cli.health_file.clone(),
            uninstall_on_exit: cli.uninstall_on_exit,
            verify: cli.verify,
        }
    }
}

/// Runs `--wait` on this host until SIGTERM or SIGINT; returns the exit
/// status.
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    // First, so that a signal during the first registration is not lost
    // and does not kill the process half-way.
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            writeln!(err, "error: failed to install the signal handlers: {e}")?;
            return Ok(exit::FAILED);
        }
    };
    let binfmt = Binfmt::new(&cli.mount);
    let env = Env::host(&binfmt, cli.host_arch.as_deref());
    run_with(cli, &env, &Options::from_cli(cli), &mut signals, out, err)
}

/// An entry this process registered when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Registered {
    /// The entry as registered.
    entry: Entry,
    /// The entry it replaced (`--replace`, `--reset`), put back on exit.
    previous: Option<Entry>,
}

/// What this process registered when it started, by name. Entries it found
/// registered as asked are not in it, even after it repaired them: they
/// are someone else's.
type Owned = BTreeMap<String, Registered>;

/// Registers as `cli` asks, then checks and repairs at every tick of
/// `waiter` until it says stop. Returns the exit status: 1 when the first
/// registration failed (nothing is watched then) or removing on exit
/// failed, else 0.
pub fn run_with(
    cli: &Cli,
    env: &Env<'_>,
    options: &Options,
    waiter: &mut dyn Waiter,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    let request = match app::registration(cli) {
        Ok(r) => r,
        Err(e) => {
            writeln!(err, "error: {e}")?;
            return Ok(exit::USAGE);
        }
    };
    // A file left by an earlier process (killed, or a container restarted
    // in a pod whose `emptyDir` outlives it) must not say ready before this
    // one has checked anything, nor after it failed to register.
    health_file(options.health_file.as_deref(), None, err)?;
    let Some(before) = app::open_registry(env.registry, false, err)? else {
        return Ok(exit::FAILED);
    };
    let first = plan::plan(&request, &env.host, &before, env.interpreter);
    let code = apply::finish(env.registry, &before, &first, false, out, err)?;
    if code != exit::OK {
        return Ok(code);
    }
    let wanted: Vec<&'static Target> = first
        .wanted_targets()
        .into_iter()
        .filter_map(targets::find)
        .collect();
    let owned = registered_by(env, &before, &first);
    // Repairs ask for the same entries, replacing one that changed.
    let repair = Request {
        targets: Some(wanted.clone()),
        reset: false,
        replace: true,
        ..request
    };
    writeln!(
        err,
        "qus-register: watching {} {} every {} s{}",
        wanted.len(),
        if wanted.len() == 1 {
            "entry"
        } else {
            "entries"
        },
        options.interval.as_secs(),
        if options.verify { ", with probes" } else { "" }
    )?;
    let mut last_problem = String::new();
    let stopped_by = loop {
        let healthy = check(env, &repair, &wanted, options, &mut last_problem, err)?;
        health_file(options.health_file.as_deref(), healthy.as_deref(), err)?;
        match waiter.wait(options.interval)? {
            Wake::Tick => {}
            Wake::Stop(signal) => break signal,
        }
    };
    health_file(options.health_file.as_deref(), None, err)?;
    writeln!(err, "qus-register: {stopped_by}: stopping")?;
    if !options.uninstall_on_exit {
        return Ok(exit::OK);
    }
    uninstall_owned(env, &owned, err)
}

/// The entries the first `plan` registered: absent or different in
/// `before`, and now as the plan wanted them, with what they replaced.
fn registered_by(env: &Env<'_>, before: &[Entry], plan: &Plan) -> Owned {
    let mut owned = Owned::new();
    for action in &plan.actions {
        let Action::Register { expected, .. } = action else {
            continue;
        };
        let was = before.iter().find(|e| e.name == expected.name);
        let now = env.registry.read(&expected.name).ok().flatten();
        if was != Some(expected) && now.as_ref() == Some(expected) {
            owned.insert(
                expected.name.clone(),
                Registered {
                    entry: expected.clone(),
                    previous: was.cloned(),
                },
            );
        }
    }
    owned
}

/// One check: mounts if needed, repairs, and says whether every wanted
/// target is as asked (and runnable, with `--verify`): `Some(names)` when
/// healthy. A problem is logged when it first appears, not at every tick.
fn check(
    env: &Env<'_>,
    repair: &Request,
    wanted: &[&'static Target],
    options: &Options,
    last_problem: &mut String,
    err: &mut dyn Write,
) -> io::Result<Option<Vec<String>>> {
    let mut problems = Vec::new();
    let mut log = Vec::new();
    let healthy = check_once(env, repair, wanted, options, &mut problems, &mut log)?;
    err.write_all(&log)?;
    let problem = problems.join("\n");
    if problem != *last_problem {
        if !problem.is_empty() {
            writeln!(err, "{problem}")?;
        } else if !last_problem.is_empty() {
            writeln!(err, "qus-register: every watched entry is registered again")?;
        }
        *last_problem = problem;
    }
    Ok(healthy)
}

fn check_once(
    env: &Env<'_>,
    repair: &Request,
    wanted: &[&'static Target],
    options: &Options,
    problems: &mut Vec<String>,
    log: &mut Vec<u8>,
) -> io::Result<Option<Vec<String>>> {
    let mut opening = Vec::new();
    let Some(current) = app::open_registry(env.registry, false, &mut opening)? else {
        problems.push(String::from_utf8_lossy(&opening).trim_end().to_owned());
        return Ok(None);
    };
    log.write_all(&opening)?;
    let plan = plan::plan(repair, &env.host, &current, env.interpreter);
    if !plan.is_applicable() {
        for (target, refusal) in plan.refusals() {
            problems.push(format!("error: cannot repair `qemu-{target}`: {refusal}"));
        }
        return Ok(None);
    }
    if plan.changes_anything() {
        for action in &plan.actions {
            let Action::Register {
                target,
                expected,
                replaces,
                ..
            } = action
            else {
                continue;
            };
            let why = match current.iter().find(|e| e.name == expected.name) {
                Some(now) if *replaces => format!(
                    "it had changed ({})",
                    now.diff(expected)
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                _ => "it had vanished".to_owned(),
            };
            writeln!(log, "qus-register: repairing `qemu-{target}`: {why}")?;
        }
        let (mut report, mut errors) = (Vec::new(), Vec::new());
        let code = apply::finish(
            env.registry,
            &current,
            &plan,
            false,
            &mut report,
            &mut errors,
        )?;
        if code != exit::OK {
            problems.push(String::from_utf8_lossy(&errors).trim_end().to_owned());
            return Ok(None);
        }
        log.write_all(&errors)?;
        for line in String::from_utf8_lossy(&report).lines() {
            writeln!(log, "qus-register: {line}")?;
        }
    }
    // Healthy: every wanted entry reads back as asked, and runs.
    let context = verify::Context::read(env.registry.root(), env.host.initial_user_namespace);
    let mut names = Vec::new();
    for t in wanted {
        let name = t.entry_name();
        let entry = match env.registry.read(&name) {
            Ok(Some(e)) => e,
            Ok(None) => {
                problems.push(format!("error: `{name}` is not registered"));
                continue;
            }
            Err(e) => {
                problems.push(format!("error: {e}"));
                continue;
            }
        };
        if options.verify
            && let verify::Verdict::NotRunnable { cause } =
                verify::verify_with(t.name, Some(&entry), &context, env.probe)
        {
            problems.push(format!(
                "error: `{name}` is registered but not runnable: {cause}"
            ));
            continue;
        }
        names.push(name);
    }
    Ok(problems.is_empty().then_some(names))
}

/// Writes the health file (one entry name a line) when `healthy`, removes
/// it otherwise. Written to a temporary file and renamed, so a reader never
/// sees half of it.
fn health_file(
    path: Option<&Path>,
    healthy: Option<&[String]>,
    err: &mut dyn Write,
) -> io::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let result = match healthy {
        Some(names) => {
            let tmp = path.with_extension("qus-tmp");
            let mut text = String::new();
            for n in names {
                text.push_str(n);
                text.push('\n');
            }
            // `/run/qus/ready` in a `FROM scratch` image: there is no
            // `/run`. Make the directory, as `--verify` makes `/tmp`.
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            parent
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&tmp, text))
                .and_then(|()| std::fs::rename(&tmp, path))
        }
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        },
    };
    if let Err(e) = result {
        writeln!(
            err,
            "error: failed to update the health file `{}`: {e}",
            path.display()
        )?;
    }
    Ok(())
}

/// How old the health file may be and still say healthy, for `interval`:
/// the `--wait` process rewrites it after every check, and checks are an
/// interval apart plus their own duration. Two intervals tolerate one late
/// check; the minute covers checks that run probes (each may take up to
/// 10 s) on a loaded node.
pub fn health_max_age(interval: Duration) -> Duration {
    interval
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(60))
}

/// `--check-health`: the command line's health file and interval, checked
/// at `now` ([`check_health`]).
pub fn check_health_cli(
    cli: &Cli,
    now: SystemTime,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    let Some(path) = cli.health_file.as_deref() else {
        writeln!(
            err,
            "error: `--check-health` needs `--health-file PATH` (or `QUS_HEALTH_FILE`): \
             the file the `--wait` process writes"
        )?;
        return Ok(exit::USAGE);
    };
    check_health(path, Duration::from_secs(cli.interval), now, out, err)
}

/// Whether the health file at `path` of a `--wait` process checking every
/// `interval` says healthy at `now`: it exists and was written at most
/// [`health_max_age`] ago. Prints its entry names on `out` and returns 0
/// if so; otherwise says why on `err` and returns 1. A file written after
/// `now` (a clock stepped back) counts as fresh.
pub fn check_health(
    path: &Path,
    interval: Duration,
    now: SystemTime,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    let read = std::fs::File::open(path).and_then(|mut f| {
        let written = f.metadata()?.modified()?;
        let mut text = String::new();
        f.read_to_string(&mut text)?;
        Ok((written, text))
    });
    let (written, text) = match read {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            writeln!(
                err,
                "error: not healthy: the health file `{}` does not exist: the `--wait` \
                 process has not finished its first check, sees an entry missing or not \
                 runnable, or is not running (its log says which)",
                path.display()
            )?;
            return Ok(exit::FAILED);
        }
        Err(e) => {
            writeln!(
                err,
                "error: failed to read the health file `{}`: {e}",
                path.display()
            )?;
            return Ok(exit::FAILED);
        }
    };
    let age = now.duration_since(written).unwrap_or_default();
    let max = health_max_age(interval);
    if age > max {
        writeln!(
            err,
            "error: not healthy: the health file `{}` was last written {} s ago, more than \
             {} s (two intervals of {} s and a minute): the `--wait` process has stopped \
             checking (is it stuck, or is `--interval` not the one it runs with?)",
            path.display(),
            age.as_secs(),
            max.as_secs(),
            interval.as_secs()
        )?;
        return Ok(exit::FAILED);
    }
    out.write_all(text.as_bytes())?;
    Ok(exit::OK)
}

/// `--uninstall-on-exit`: removes each entry this process registered that
/// is still as it registered it, and puts back the entry it replaced;
/// leaves the others, saying so.
fn uninstall_owned(env: &Env<'_>, owned: &Owned, err: &mut dyn Write) -> io::Result<u8> {
    let mut code = exit::OK;
    for (name, mine) in owned {
        let result = match env.registry.read(name) {
            Ok(Some(now)) if now == mine.entry => env.registry.remove(name).map(|()| true),
            Ok(Some(_)) => {
                writeln!(
                    err,
                    "qus-register: `{name}` was changed by someone else since it was \
                     registered: kept"
                )?;
                continue;
            }
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        let result = result.and_then(|removed| {
            if removed {
                writeln!(err, "qus-register: removed `{name}`").ok();
            }
            match &mine.previous {
                Some(previous) => env
                    .registry
                    .register(name, &previous.to_register_line())
                    .and_then(|()| match previous.enabled {
                        true => Ok(()),
                        false => env.registry.set_enabled(name, false),
                    })
                    .map(|()| {
                        writeln!(err, "qus-register: put back the `{name}` it had replaced").ok();
                    }),
                None => Ok(()),
            }
        });
        if let Err(e) = result {
            print_error(err, &e)?;
            code = exit::FAILED;
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_end_a_wait_and_time_ends_it_otherwise() {
        let mut signals = Signals::install().unwrap();
        let started = Instant::now();
        assert_eq!(
            signals.wait(Duration::from_millis(200)).unwrap(),
            Wake::Tick
        );
        let slept = started.elapsed();
        assert!(
            slept >= Duration::from_millis(200) && slept < Duration::from_secs(2),
            "{slept:?}"
        );
        // A signal wakes the sleeper at once, and says which.
        signal_hook::low_level::raise(signal_hook::consts::SIGINT).unwrap();
        let started = Instant::now();
        assert_eq!(
            signals.wait(Duration::from_secs(30)).unwrap(),
            Wake::Stop("SIGINT")
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn the_health_file_is_written_whole_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready");
        let mut err = Vec::new();
        let names = vec!["qemu-aarch64".to_owned(), "qemu-riscv64".to_owned()];
        health_file(Some(&path), Some(&names), &mut err).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "qemu-aarch64\nqemu-riscv64\n"
        );
        health_file(Some(&path), None, &mut err).unwrap();
        assert!(!path.exists());
        // Removing what is not there is fine.
        health_file(Some(&path), None, &mut err).unwrap();
        assert!(err.is_empty());
        // A missing directory is made (`/run/qus` in a `FROM scratch`
        // image).
        let deep = dir.path().join("run/qus/ready");
        health_file(Some(&deep), Some(&names), &mut err).unwrap();
        assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
        assert_eq!(
            std::fs::read_to_string(&deep).unwrap(),
            "qemu-aarch64\nqemu-riscv64\n"
        );
        // One that cannot be made is an error, said, not fatal.
        std::fs::write(dir.path().join("file"), "").unwrap();
        let impossible = dir.path().join("file/ready");
        health_file(Some(&impossible), Some(&names), &mut err).unwrap();
        assert!(
            String::from_utf8(err)
                .unwrap()
                .contains("failed to update the health file"),
        );
    }

    /// `check_health` on `path` at `now`, every 10 s: (status, stdout,
    /// stderr).
    fn checked(path: &Path, now: SystemTime) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = check_health(path, Duration::from_secs(10), now, &mut out, &mut err).unwrap();
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn check_health_wants_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready");
        let (code, out, err) = checked(&path, SystemTime::now());
        assert_eq!((code, out.as_str()), (exit::FAILED, ""));
        assert!(err.contains("does not exist"), "{err}");

        std::fs::write(&path, "qemu-aarch64\n").unwrap();
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        // Two intervals of 10 s and a minute: 80 s.
        assert_eq!(
            health_max_age(Duration::from_secs(10)),
            Duration::from_secs(80)
        );
        for (age, healthy) in [(0, true), (80, true), (81, false), (3600, false)] {
            let (code, out, err) = checked(&path, written + Duration::from_secs(age));
            if healthy {
                assert_eq!(
                    (code, out.as_str(), err.as_str()),
                    (exit::OK, "qemu-aarch64\n", "")
                );
            } else {
                assert_eq!((code, out.as_str()), (exit::FAILED, ""), "{age} s");
                assert!(
                    err.contains(&format!("last written {age} s ago, more than 80 s")),
                    "{err}"
                );
            }
        }
        // Written "in the future" (the clock went back): fresh.
        let (code, _, _) = checked(&path, written - Duration::from_secs(3600));
        assert_eq!(code, exit::OK);
        // Unreadable as a file: said, with the path.
        let (code, _, err) = checked(dir.path(), SystemTime::now());
        assert_eq!(code, exit::FAILED);
        assert!(err.contains("failed to read the health file"), "{err}");
    }
}
