//! The tonistiigi/binfmt-compatible command: what docker/setup-qemu-action
//! runs, answered by qus.
//!
//! The action (`src/main.ts` of docker/setup-qemu-action) runs its `image:`
//! four times: `--version`, `--uninstall qemu-*` (with `reset: true`),
//! `--install <platforms>` (default `all`), and with no argument, whose
//! stdout it parses as JSON for `supported`. After each run it fails the
//! step only when stderr is non-empty *and* the exit status is non-zero,
//! showing the last line of stderr. tonistiigi/binfmt (`cmd/binfmt/main.go`)
//! always exits 0, so the action never notices a failed registration; here
//! every failure exits non-zero with the cause on the last line of stderr.
//!
//! The main function is [`run_with`]. [`BinfmtCli`] is resolved into
//! platforms and entry names (tonistiigi's names, qus's targets and
//! aliases, `qemu-*` globs); installing and uninstalling go through the
//! same plan and all-or-nothing apply as `qus-register` (`plan.rs`,
//! `apply.rs`), with tonistiigi's flags (`CF`, plus `P` with
//! `QEMU_PRESERVE_ARGV0`) and three of its habits: an entry registered
//! differently is kept with a warning, a platform of the host's own family
//! is left to run natively, and `all` takes the targets whose interpreter
//! is present. Progress goes to stderr, the status JSON ([`BinfmtStatus`])
//! to stdout after every run, as tonistiigi does; `supported` is computed
//! by executing probes (`platform.rs`), never read from the entry list.

use std::collections::BTreeSet;
use std::io::{self, Read as _, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::app::{Env, PipeTolerant, UsageError, open_registry};
use crate::apply;
use crate::binfmt::Binfmt;
use crate::cli::{BinfmtCli, exit};
use crate::entry::{self, Entry, Flags};
use crate::interpreter::{self, InterpreterFacts};
use crate::plan::{self, Action, Plan, Refusal, Request};
use crate::platform::{self, Native};
use crate::targets::{self, Target};

/// Where tonistiigi/binfmt looks for interpreters without `QEMU_BINARY_PATH`.
const DEFAULT_BINARY_PATH: &str = "/usr/bin";

/// tonistiigi/binfmt's flags: `C` (credentials from the binary, so `sudo`
/// works) and `F` (the interpreter is opened at registration).
const DEFAULT_FLAGS: &str = "CF";

/// How long `qemu-<cpu> --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The status document printed on stdout: tonistiigi/binfmt's two keys,
/// which docker/setup-qemu-action and docker buildx read, and qus's entries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BinfmtStatus {
    /// OCI platforms that run here, as buildkit lists them: the native one
    /// first, then each whose probe exits 0 (`platform.rs`).
    pub supported: Vec<String>,
    /// Names of the enabled binfmt_misc entries (any owner), sorted.
    pub emulators: Vec<String>,
    /// Every field of every `qemu-*` entry.
    pub entries: Vec<Entry>,
}

/// What `--install` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallList {
    /// `all`: every target outside the host's family whose interpreter is
    /// present.
    All,
    /// These targets, in the order given.
    Named(Vec<&'static Target>),
}

/// One item of `--uninstall`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UninstallItem {
    /// A glob over entry names (`qemu-*`); only `qemu-*` entries it matches
    /// are removed.
    Glob(glob::Pattern),
    /// A target, by entry name, name, alias or platform.
    Target(&'static Target),
    /// A `qemu-*` entry no target of the table names (`qemu-vax`).
    Entry(String),
}

/// A [`BinfmtCli`] with names resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `--install`.
    pub install: Option<InstallList>,
    /// `--uninstall`.
    pub uninstall: Option<Vec<UninstallItem>>,
    /// The flags to register with.
    pub flags: Flags,
    /// The interpreters' directory.
    pub qemu_path: String,
}

/// A target by any name tonistiigi or qus takes: `arm64`, `aarch64`,
/// `qemu-aarch64`, `linux/arm64`, and platforms with a variant or without
/// their OS (`linux/amd64/v2`, `arm/v7`), as containerd's `platforms.Parse`
/// reads them.
pub fn find_platform(name: &str) -> Option<&'static Target> {
    let name = name.trim();
    let mut candidate = name;
    loop {
        if let Some(t) = targets::find(candidate) {
            return Some(t);
        }
        candidate = candidate.rsplit_once('/')?.0;
    }
}

/// `Some(value)` unless absent or empty: tonistiigi treats an empty
/// variable as unset, and so does this command.
fn non_empty(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// Checks and resolves the command line; no I/O.
pub fn resolve(cli: &BinfmtCli) -> Result<Resolved, UsageError> {
    if let Some(prefix) = non_empty(cli.binary_prefix.as_ref()) {
        return Err(UsageError {
            option: "QEMU_BINARY_PREFIX",
            value: prefix.to_owned(),
            reason: "not supported: tonistiigi/binfmt names its entries after the prefixed \
                     file, and qus registers and removes `qemu-*` entries only; put the \
                     interpreters in a directory of their own and name it with QEMU_BINARY_PATH"
                .into(),
        });
    }
    let letters = non_empty(cli.flags.as_ref()).unwrap_or(DEFAULT_FLAGS);
    let mut flags = Flags::parse(letters).map_err(|e| UsageError {
        option: "--flags",
        value: letters.to_owned(),
        reason: format!("{e}; use letters of `POCF`"),
    })?;
    if non_empty(cli.preserve_argv0.as_ref()).is_some() {
        flags.preserve_argv0 = true;
    }
    let qemu_path = non_empty(cli.binary_path.as_ref())
        .unwrap_or(DEFAULT_BINARY_PATH)
        .to_owned();
    let install = cli
        .install
        .as_deref()
        .map(|list| resolve_install(list.trim()))
        .transpose()?;
    let uninstall = cli
        .uninstall
        .as_deref()
        .map(resolve_uninstall)
        .transpose()?;
    Ok(Resolved {
        install,
        uninstall,
        flags,
        qemu_path,
    })
}

fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn resolve_install(list: &str) -> Result<InstallList, UsageError> {
    if list == "all" {
        return Ok(InstallList::All);
    }
    let mut named: Vec<&'static Target> = Vec::new();
    for item in items(list) {
        let target = find_platform(item).ok_or_else(|| UsageError {
            option: "--install",
            value: item.to_owned(),
            reason: format!(
                "unknown platform; known: all, {}, or a qus target ({})",
                platform::CANDIDATES
                    .iter()
                    .map(|(arch, _)| *arch)
                    .collect::<Vec<_>>()
                    .join(", "),
                targets::TARGETS
                    .iter()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        if !named.contains(&target) {
            named.push(target);
        }
    }
    if named.is_empty() {
        return Err(UsageError {
            option: "--install",
            value: list.to_owned(),
            reason: "no platform named".into(),
        });
    }
    Ok(InstallList::Named(named))
}

fn resolve_uninstall(list: &str) -> Result<Vec<UninstallItem>, UsageError> {
    let mut out = Vec::new();
    for item in items(list) {
        let error = |reason: String| UsageError {
            option: "--uninstall",
            value: item.to_owned(),
            reason,
        };
        let resolved = if item.contains(['*', '?', '[']) {
            UninstallItem::Glob(
                glob::Pattern::new(item).map_err(|e| error(format!("not a valid glob: {e}")))?,
            )
        } else if let Some(t) = find_platform(item) {
            UninstallItem::Target(t)
        } else if entry::is_owned_name(item) {
            UninstallItem::Entry(item.to_owned())
        } else {
            return Err(error(
                "not a `qemu-*` entry, a target or a platform: qus never removes entries of \
                 other software"
                    .into(),
            ));
        };
        out.push(resolved);
    }
    if out.is_empty() {
        return Err(UsageError {
            option: "--uninstall",
            value: list.to_owned(),
            reason: "nothing named".into(),
        });
    }
    Ok(out)
}

/// Runs the command on this host; returns the exit status.
pub fn run(cli: &BinfmtCli, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    let binfmt = Binfmt::new(&cli.mount);
    let env = Env::host(&binfmt, cli.host_arch.as_deref());
    run_with(cli, &env, &Native::detect(), out, err)
}

/// Runs the command on `env`, for a registrar native to `native`; returns
/// the exit status. On failure the last line written to `err` is an
/// `error:` line naming the first cause (the line the action shows).
pub fn run_with(
    cli: &BinfmtCli,
    env: &Env<'_>,
    native: &Native,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    let mut out = PipeTolerant(out);
    let resolved = match resolve(cli) {
        Ok(r) => r,
        Err(e) => {
            writeln!(err, "error: {e}")?;
            return Ok(exit::USAGE);
        }
    };
    if cli.version {
        let qemu = qemu_version(env, &resolved.qemu_path).unwrap_or_else(|| "unknown".into());
        writeln!(out, "binfmt/qus-{} qemu/{qemu}", env!("CARGO_PKG_VERSION"))?;
        return Ok(exit::OK);
    }
    // Progress and errors are kept until the end, so the summary can quote
    // the first error and be the last line.
    let mut log = Vec::new();
    let (failed, doc) = act(&resolved, env, native, &mut log)?;
    err.write_all(&log)?;
    if !failed.is_empty() {
        writeln!(
            err,
            "error: {} failed: {}",
            failed.join(" and "),
            first_cause(&String::from_utf8_lossy(&log))
        )?;
    }
    if let Some(doc) = doc {
        serde_json::to_writer_pretty(&mut out, &doc).map_err(io::Error::other)?;
        writeln!(out)?;
    }
    Ok(if failed.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// The first error of a run's messages, on one line with its causes: the
/// first `error:` line other than apply's "`qemu-x` failed" header (which
/// the cause follows), and its `caused by:` lines.
fn first_cause(log: &str) -> String {
    let errors: Vec<(usize, &str)> = log
        .lines()
        .enumerate()
        .filter_map(|(i, l)| l.strip_prefix("error: ").map(|e| (i, e)))
        .collect();
    let is_header = |e: &str| e.starts_with('`') && e.ends_with("` failed");
    let Some(&(at, first)) = errors
        .iter()
        .find(|(_, e)| !is_header(e))
        .or(errors.first())
    else {
        return "see the messages above".into();
    };
    let causes = log
        .lines()
        .skip(at + 1)
        .map_while(|l| l.strip_prefix("  caused by: "));
    std::iter::once(first)
        .chain(causes)
        .collect::<Vec<_>>()
        .join(": ")
}

/// Uninstalls, installs, then builds the status. Returns what failed
/// (`--install arm64`...) and the status when the registry could be read.
fn act(
    r: &Resolved,
    env: &Env<'_>,
    native: &Native,
    log: &mut Vec<u8>,
) -> io::Result<(Vec<String>, Option<BinfmtStatus>)> {
    let mut failed = Vec::new();
    let Some(mut current) = open_registry(env.registry, false, log)? else {
        failed.push("reading binfmt_misc".to_owned());
        return Ok((failed, None));
    };
    let relist = |log: &mut Vec<u8>, failed: &mut Vec<String>| match env.registry.list() {
        Ok(now) => Ok(Some(now)),
        Err(e) => {
            crate::app::print_error(log, &e)?;
            failed.push("reading binfmt_misc".to_owned());
            Ok::<_, io::Error>(None)
        }
    };
    if let Some(items) = &r.uninstall {
        if !uninstall(items, env, &current, log)? {
            failed.push("`--uninstall`".to_owned());
        }
        match relist(log, &mut failed)? {
            Some(now) => current = now,
            None => return Ok((failed, None)),
        }
    }
    if let Some(list) = &r.install {
        if !install(list, r, env, &current, log)? {
            failed.push("`--install`".to_owned());
        }
        match relist(log, &mut failed)? {
            Some(now) => current = now,
            None => return Ok((failed, None)),
        }
    }
    Ok((failed, Some(status(env, native, current))))
}

/// The status document for `entries`, `supported` from running probes.
pub fn status(env: &Env<'_>, native: &Native, entries: Vec<Entry>) -> BinfmtStatus {
    let supported = platform::supported(native, &mut |t| platform::probe_runs(env.probe, t));
    BinfmtStatus {
        supported,
        emulators: entries
            .iter()
            .filter(|e| e.enabled)
            .map(|e| e.name.clone())
            .collect(),
        entries: entries.into_iter().filter(Entry::is_owned).collect(),
    }
}

/// A registration of `targets` with the interpreters of `qemu_path` (each
/// target's own choice, `interpreter.rs`), nothing forced or replaced.
fn request(qemu_path: &str, flags: Flags, targets: Option<Vec<&'static Target>>) -> Request {
    Request {
        targets,
        qemu_path: qemu_path.to_owned(),
        suffix: None,
        flags,
        ignore_family: false,
        reset: false,
        replace: false,
        force: false,
        private: false,
    }
}

/// `--install`: `Ok(false)` after printing why it failed.
fn install(
    list: &InstallList,
    r: &Resolved,
    env: &Env<'_>,
    current: &[Entry],
    log: &mut Vec<u8>,
) -> io::Result<bool> {
    let host = &env.host;
    let family = targets::host_family(&host.machine);
    let choice = |t: &Target| interpreter::choose(&r.qemu_path, t, None, env.interpreter);
    let absent = |c: &interpreter::Choice| c.facts == Some(InterpreterFacts::Missing);
    let mut wanted: Vec<&'static Target> = Vec::new();
    match list {
        InstallList::All => {
            let mut skipped = Vec::new();
            for (t, _) in plan::selected_targets(&request(&r.qemu_path, r.flags, None), host) {
                if absent(&choice(t)) {
                    skipped.push(t.name);
                } else {
                    wanted.push(t);
                }
            }
            if wanted.is_empty() {
                writeln!(
                    log,
                    "error: no QEMU interpreter in `{}` (looked for `qemu-<cpu>-static` and \
                     `qemu-<cpu>` of {} targets): `--install all` has nothing to install; use \
                     an image that ships the emulators, or set QEMU_BINARY_PATH",
                    r.qemu_path,
                    skipped.len()
                )?;
                return Ok(false);
            }
            if !skipped.is_empty() {
                writeln!(
                    log,
                    "note: no interpreter in `{}` for {}: not installed",
                    r.qemu_path,
                    skipped.join(", ")
                )?;
            }
        }
        InstallList::Named(named) => {
            let mut missing = false;
            for &t in named {
                if t.family == family {
                    writeln!(
                        log,
                        "note: `{}` is of this `{}` host's own family and runs natively: \
                         not registered",
                        t.name, host.machine
                    )?;
                    continue;
                }
                let c = choice(t);
                if absent(&c) {
                    missing = true;
                    writeln!(
                        log,
                        "error: no interpreter for `{}`: `{}` does not exist{}; use an image \
                         that ships it, or set QEMU_BINARY_PATH",
                        t.name,
                        c.path,
                        c.passed_over_note()
                            .map(|n| format!(" and {n}"))
                            .unwrap_or_default()
                    )?;
                    continue;
                }
                wanted.push(t);
            }
            if missing {
                writeln!(log, "nothing was changed")?;
                return Ok(false);
            }
        }
    }
    let mut request = request(&r.qemu_path, r.flags, Some(wanted));
    let mut plan = plan::plan(&request, host, current, env.interpreter);
    // tonistiigi/binfmt keeps an entry of that name (EEXIST) and goes on;
    // so does this command, saying what differs.
    let kept: Vec<(&'static str, String)> = plan
        .refusals()
        .filter_map(|(t, refusal)| match refusal {
            Refusal::Differs { fields } => Some((
                t,
                fields
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
            _ => None,
        })
        .collect();
    if !kept.is_empty() {
        for (t, fields) in &kept {
            writeln!(
                log,
                "warning: `qemu-{t}` is registered differently ({fields}); kept as it is: \
                 uninstall it first (`--uninstall qemu-{t}`, the action's `reset: true`) to \
                 replace it"
            )?;
        }
        if let Some(list) = request.targets.as_mut() {
            list.retain(|t| !kept.iter().any(|(k, _)| *k == t.name));
        }
        plan = plan::plan(&request, host, current, env.interpreter);
    }
    if request.targets.as_ref().is_some_and(Vec::is_empty) {
        writeln!(log, "nothing to install")?;
        return Ok(true);
    }
    let mut report = Vec::new();
    let code = apply::finish(env.registry, current, &plan, false, &mut report, log)?;
    log.write_all(&report)?;
    Ok(code == exit::OK)
}

/// `--uninstall`: `Ok(false)` after printing why it failed.
fn uninstall(
    items: &[UninstallItem],
    env: &Env<'_>,
    current: &[Entry],
    log: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut names = BTreeSet::new();
    let mut named = Vec::new();
    for item in items {
        match item {
            UninstallItem::Glob(pattern) => {
                for e in current.iter().filter(|e| pattern.matches(&e.name)) {
                    if e.is_owned() {
                        names.insert(e.name.clone());
                    } else {
                        writeln!(
                            log,
                            "note: `{}` matches `{pattern}` but is not a `qemu-*` entry: \
                             never touched",
                            e.name
                        )?;
                    }
                }
            }
            UninstallItem::Target(t) => named.push(t.entry_name()),
            UninstallItem::Entry(name) => named.push(name.clone()),
        }
    }
    for name in named {
        if current.iter().any(|e| e.name == name) {
            names.insert(name);
        } else {
            writeln!(log, "note: `{name}` is not registered")?;
        }
    }
    // The whole-registry plan brings the refusals (a private user
    // namespace); only the named removals are kept.
    let all = plan::plan_uninstall(None, &env.host, false, current);
    let plan = Plan {
        actions: all
            .actions
            .into_iter()
            .filter(|a| match a {
                Action::Remove { name, .. } => names.contains(name),
                _ => true,
            })
            .collect(),
        choices: Vec::new(),
    };
    if plan.is_applicable() && !plan.changes_anything() {
        writeln!(log, "nothing to remove")?;
        return Ok(true);
    }
    let mut report = Vec::new();
    let code = apply::finish(env.registry, current, &plan, false, &mut report, log)?;
    log.write_all(&report)?;
    Ok(code == exit::OK)
}

/// The version of the first present interpreter of a foreign target
/// (`7.2.22` from `qemu-aarch64 version 7.2.22 (Debian ...)`); `None` when
/// there is none or it does not answer.
fn qemu_version(env: &Env<'_>, dir: &str) -> Option<String> {
    let path = plan::selected_targets(&request(dir, Flags::default(), None), &env.host)
        .into_iter()
        .map(|(t, _)| interpreter::choose(dir, t, None, env.interpreter))
        .find(|c| matches!(c.facts, Some(InterpreterFacts::Elf { .. })))?
        .path;
    let mut child = Command::new(&path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    loop {
        if child.try_wait().ok()?.is_some() {
            break;
        }
        if started.elapsed() > VERSION_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut text = String::new();
    child.stdout.take()?.read_to_string(&mut text).ok()?;
    parse_qemu_version(&text)
}

/// `qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)` →
/// `7.2.22`.
pub fn parse_qemu_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.contains(" version "))?;
    let (_, rest) = line.split_once(" version ")?;
    rest.split_whitespace().next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn cli(args: &[&str]) -> BinfmtCli {
        BinfmtCli::try_parse_from(std::iter::once("binfmt").chain(args.iter().copied())).unwrap()
    }

    /// Parses `args` with the environment's values (QEMU_BINARY_PATH...)
    /// dropped: the test process's environment must not decide.
    fn bare(args: &[&str]) -> BinfmtCli {
        let mut c = cli(args);
        let given = |flag: &str| args.contains(&flag);
        if !given("--binary-path") {
            c.binary_path = None;
        }
        if !given("--flags") {
            c.flags = None;
        }
        c.preserve_argv0 = None;
        c.binary_prefix = None;
        c
    }

    #[test]
    fn tonistiigis_names_resolve_to_targets() {
        for (name, target) in [
            ("arm64", "aarch64"),
            ("riscv64", "riscv64"),
            ("arm", "arm"),
            ("linux/arm/v7", "arm"),
            ("arm/v6", "arm"),
            ("amd64", "x86_64"),
            ("linux/amd64/v2", "x86_64"),
            ("386", "i386"),
            ("ppc64le", "ppc64le"),
            ("s390x", "s390x"),
            ("mips64le", "mips64el"),
            ("mips64", "mips64"),
            ("loong64", "loongarch64"),
            ("qemu-aarch64", "aarch64"),
            ("linux/arm64/v8", "aarch64"),
        ] {
            assert_eq!(find_platform(name).map(|t| t.name), Some(target), "{name}");
        }
        for name in ["windows/vax", "linux", "vax", ""] {
            assert_eq!(find_platform(name), None, "{name}");
        }
    }

    #[test]
    fn defaults_are_tonistiigis_flags() {
        let r = resolve(&bare(&[])).unwrap();
        assert_eq!(r.flags.to_string(), "OCF");
        assert_eq!(r.qemu_path, "/usr/bin");
        assert_eq!((r.install, r.uninstall), (None, None));
        let mut c = bare(&["--install", "all"]);
        c.preserve_argv0 = Some("1".into());
        let r = resolve(&c).unwrap();
        assert_eq!(r.flags.to_string(), "POCF");
        assert_eq!(r.install, Some(InstallList::All));
        // Empty values are unset, as tonistiigi reads them.
        c.preserve_argv0 = Some(String::new());
        c.flags = Some(" ".into());
        c.binary_path = Some(String::new());
        let r = resolve(&c).unwrap();
        assert_eq!(
            (r.flags.to_string().as_str(), r.qemu_path.as_str()),
            ("OCF", "/usr/bin")
        );
        c.flags = Some("F".into());
        c.binary_path = Some("/opt/q".into());
        let r = resolve(&c).unwrap();
        assert_eq!(
            (r.flags.to_string().as_str(), r.qemu_path.as_str()),
            ("F", "/opt/q")
        );
    }

    #[test]
    fn bad_values_name_the_option_and_value() {
        for (args, option, value) in [
            (&["--install", "arm64,vax"][..], "--install", "vax"),
            (&["--install", ","], "--install", ","),
            (&["--uninstall", "python3.11"], "--uninstall", "python3.11"),
            (&["--uninstall", "qemu-[a"], "--uninstall", "qemu-[a"),
            (&["--flags", "CFX"], "--flags", "CFX"),
        ] {
            let e = resolve(&bare(args)).unwrap_err();
            assert_eq!((e.option, e.value.as_str()), (option, value), "{args:?}");
        }
        let mut c = bare(&[]);
        c.binary_prefix = Some("buildkit-".into());
        assert_eq!(resolve(&c).unwrap_err().option, "QEMU_BINARY_PREFIX");
    }

    #[test]
    fn uninstall_items_are_globs_targets_or_qemu_names() {
        let r = resolve(&bare(&["--uninstall", "qemu-*, arm64 ,qemu-vax"])).unwrap();
        let items = r.uninstall.unwrap();
        assert!(matches!(&items[0], UninstallItem::Glob(p) if p.as_str() == "qemu-*"));
        assert!(matches!(items[1], UninstallItem::Target(t) if t.name == "aarch64"));
        assert_eq!(items[2], UninstallItem::Entry("qemu-vax".into()));
    }

    #[test]
    fn the_summary_quotes_the_first_cause_with_its_chain() {
        let log = "registered  qemu-aarch64\nerror: `qemu-alpha` failed\n\
                   error: failed to register `qemu-alpha` via `/m/register`\n  \
                   caused by: Input/output error (os error 5)\nrolled back: ...\n";
        assert_eq!(
            first_cause(log),
            "failed to register `qemu-alpha` via `/m/register`: Input/output error (os error 5)"
        );
        assert_eq!(first_cause("error: `x` failed\n"), "`x` failed");
        assert_eq!(first_cause("nothing\n"), "see the messages above");
    }

    #[test]
    fn qemu_version_lines_parse() {
        assert_eq!(
            parse_qemu_version(
                "qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n"
            )
            .as_deref(),
            Some("7.2.22")
        );
        assert_eq!(parse_qemu_version("nothing\n"), None);
    }
}
