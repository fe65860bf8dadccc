//! What `qus-register` does with a parsed command line.
//!
//! The main function is [`run`]: it resolves the [`Cli`] (targets, mode),
//! then exports files, prints the status, or plans and applies a
//! registration or uninstall. Results go to `out`, warnings and errors to
//! `err`; the return value is the exit status. Applying is all or nothing:
//! a refused plan writes nothing, and a kernel error half-way undoes what
//! this run already did, so the registry is left as it was found.

use std::io::{self, Read as _, Write};
use std::os::unix::fs::PermissionsExt as _;

use crate::binfmt::{Binfmt, BinfmtError, BinfmtErrorKind, HostFacts, MountState};
use crate::cli::{Cli, exit};
use crate::elf;
use crate::entry::{self, Entry, Flags};
use crate::export::{self, ExportOptions, Format};
use crate::plan::{self, Action, InterpreterFacts, Plan, Request, SkipReason};
use crate::targets::{self, Target};

/// A command line that is well formed but names something unknown.
#[derive(Debug, thiserror::Error)]
#[error("invalid value `{value}` for `{option}`: {reason}")]
pub struct UsageError {
    /// The option.
    pub option: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// How much of an interpreter is read to find its program headers. They sit
/// right after the ELF header in every linker's output; reading whole
/// interpreters (several MB each) would dominate the run time.
const ELF_PREFIX: u64 = 64 * 1024;

/// Runs the command; returns the exit status.
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    match resolve(cli) {
        Ok(mode) => execute(cli, mode, out, err),
        Err(e) => {
            writeln!(err, "error: {e}")?;
            Ok(exit::USAGE)
        }
    }
}

/// What the command line asks for, with names resolved.
enum Mode {
    Export(Format, Vec<&'static Target>),
    Status,
    Uninstall(Option<Vec<&'static Target>>),
    Register(Option<Vec<&'static Target>>),
}

fn resolve_list(
    option: &'static str,
    names: &[String],
) -> Result<Vec<&'static Target>, UsageError> {
    let mut list = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let target = targets::find(name).ok_or_else(|| UsageError {
            option,
            value: name.to_owned(),
            reason: format!(
                "unknown target; known targets: {}",
                targets::TARGETS
                    .iter()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        if !list.contains(&target) {
            list.push(target);
        }
    }
    if list.is_empty() {
        return Err(UsageError {
            option,
            value: names.join(","),
            reason: "no target named".into(),
        });
    }
    Ok(list)
}

fn resolve(cli: &Cli) -> Result<Mode, UsageError> {
    let explicit = cli
        .targets
        .as_deref()
        .map(|t| resolve_list("--targets", t))
        .transpose()?;
    if let Some(cpu) = &cli.systemd {
        let list = if cpu == "ALL" {
            None
        } else {
            Some(resolve_list("--systemd", std::slice::from_ref(cpu))?)
        };
        return Ok(Mode::Export(
            Format::Systemd,
            list.or(explicit).unwrap_or_default(),
        ));
    }
    if cli.debian {
        return Ok(Mode::Export(Format::Debian, explicit.unwrap_or_default()));
    }
    if cli.status {
        return Ok(Mode::Status);
    }
    if let Some(list) = &cli.uninstall {
        if list.trim() == "all" {
            return Ok(Mode::Uninstall(None));
        }
        let names: Vec<String> = list.split(',').map(str::to_owned).collect();
        return Ok(Mode::Uninstall(Some(resolve_list("--uninstall", &names)?)));
    }
    Ok(Mode::Register(explicit))
}

fn request(cli: &Cli, targets: Option<Vec<&'static Target>>) -> Request {
    Request {
        targets,
        qemu_path: cli.qemu_path.clone(),
        suffix: cli.qemu_suffix.clone(),
        flags: Flags::requested(
            cli.credential.is_yes(),
            cli.persistent.is_yes(),
            cli.preserve_argv0.is_yes(),
        ),
        ignore_family: cli.ignore_family.is_yes(),
        reset: cli.reset,
        replace: cli.replace,
        force: cli.force,
    }
}

fn execute(cli: &Cli, mode: Mode, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    let host = HostFacts::read(cli.host_arch.as_deref());
    let binfmt = Binfmt::new(&cli.mount);
    match mode {
        Mode::Export(format, list) => export_files(cli, &host, format, list, out, err),
        Mode::Status => status(&binfmt, &host, cli.json, out, err),
        Mode::Uninstall(list) => {
            let Some(current) = open_registry(&binfmt, cli.dry_run, err)? else {
                return Ok(exit::FAILED);
            };
            let plan = plan::plan_uninstall(list.as_deref(), &host, cli.force, &current);
            if plan.actions.is_empty() {
                writeln!(out, "nothing to remove")?;
            }
            finish(&binfmt, &plan, cli.dry_run, out, err)
        }
        Mode::Register(list) => {
            if cli.credential.is_yes() {
                writeln!(
                    err,
                    "warning: `--credential yes` registers with `C`: a setuid-root foreign \
                     binary then runs its interpreter as root (a known local-root risk); \
                     use it only where every foreign binary is trusted"
                )?;
            }
            let Some(current) = open_registry(&binfmt, cli.dry_run, err)? else {
                return Ok(exit::FAILED);
            };
            let request = request(cli, list);
            let plan = plan::plan(&request, &host, &current, &interpreter_facts);
            finish(&binfmt, &plan, cli.dry_run, out, err)
        }
    }
}

/// Makes sure binfmt_misc is mounted (unless only looking) and lists it.
/// `None` after an error was printed.
fn open_registry(
    binfmt: &Binfmt,
    dry_run: bool,
    err: &mut dyn Write,
) -> io::Result<Option<Vec<Entry>>> {
    match binfmt.state() {
        MountState::Missing => {
            writeln!(
                err,
                "error: No binfmt support in the kernel: `{}` does not exist.\n  \
                 Try: '/sbin/modprobe binfmt_misc' from the host",
                binfmt.root().display()
            )?;
            return Ok(None);
        }
        MountState::NotMounted if dry_run => {
            writeln!(
                err,
                "note: binfmt_misc is not mounted on `{}`; a real run mounts it",
                binfmt.root().display()
            )?;
            return Ok(Some(Vec::new()));
        }
        MountState::NotMounted => {
            if let Err(e) = binfmt.mount() {
                print_error(err, &e)?;
                writeln!(
                    err,
                    "  hint: mount it by hand: mount -t binfmt_misc binfmt_misc {}",
                    binfmt.root().display()
                )?;
                return Ok(None);
            }
        }
        MountState::Mounted => {}
    }
    match binfmt.list() {
        Ok(entries) => Ok(Some(entries)),
        Err(e) => {
            print_error(err, &e)?;
            Ok(None)
        }
    }
}

/// Looks at an interpreter file: exists, executable, static.
fn interpreter_facts(path: &str) -> InterpreterFacts {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return InterpreterFacts::Missing,
        Err(e) => return InterpreterFacts::Unreadable(e.to_string()),
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return InterpreterFacts::NotExecutable;
    }
    let mut prefix = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(ELF_PREFIX).read_to_end(&mut prefix));
    if let Err(e) = read {
        return InterpreterFacts::Unreadable(e.to_string());
    }
    match elf::parse(&prefix) {
        Ok(header) => InterpreterFacts::Elf {
            interp: header.interp,
        },
        Err(e) => InterpreterFacts::Unreadable(e.to_string()),
    }
}

/// Prints the plan, then applies it unless it is refused or a dry run.
fn finish(
    binfmt: &Binfmt,
    plan: &Plan,
    dry_run: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    if dry_run {
        print_plan(plan, out)?;
    }
    if !plan.is_applicable() {
        for (target, refusal) in plan.refusals() {
            if target == "*" {
                writeln!(err, "error: refused: {refusal}")?;
            } else {
                writeln!(err, "error: refused `qemu-{target}`: {refusal}")?;
            }
        }
        writeln!(err, "nothing was changed")?;
        return Ok(exit::FAILED);
    }
    if dry_run {
        writeln!(out, "dry run: nothing was changed")?;
        return Ok(exit::OK);
    }
    // Buffer the report: a closed stdout must not stop the loop half-way,
    // with no rollback.
    let (mut report, mut problems) = (Vec::new(), Vec::new());
    let code = apply(binfmt, plan, &mut report, &mut problems)?;
    out.write_all(&report)?;
    err.write_all(&problems)?;
    Ok(code)
}

fn print_plan(plan: &Plan, out: &mut dyn Write) -> io::Result<()> {
    for action in &plan.actions {
        match action {
            Action::Remove { name, .. } => writeln!(out, "remove      {name}")?,
            Action::Register { line, replaces, .. } => {
                let verb = if *replaces {
                    "replace   "
                } else {
                    "register  "
                };
                writeln!(out, "{verb}  {line}")?;
            }
            Action::Skip { target, reason } => {
                writeln!(out, "skip        qemu-{target}  ({})", skip_text(reason))?
            }
            Action::Refuse { target, .. } => writeln!(out, "refuse      qemu-{target}")?,
        }
    }
    Ok(())
}

fn skip_text(reason: &SkipReason) -> &'static str {
    match reason {
        SkipReason::AlreadyRegistered => "already registered",
        SkipReason::HostFamily => "host family: runs natively",
    }
}

/// One action that reached the kernel, kept to undo it.
enum Done {
    Removed(Entry),
    Registered(String),
}

/// Applies an applicable plan; on the first failure undoes what was done.
fn apply(binfmt: &Binfmt, plan: &Plan, out: &mut Vec<u8>, err: &mut Vec<u8>) -> io::Result<u8> {
    let mut done: Vec<Done> = Vec::new();
    let (mut registered, mut unchanged, mut removed) = (0, 0, 0);
    for action in &plan.actions {
        let result = match action {
            Action::Remove { name, previous } => match binfmt.remove(name) {
                Ok(()) => {
                    if let Some(p) = previous {
                        done.push(Done::Removed(p.clone()));
                    }
                    removed += 1;
                    writeln!(out, "removed     {name}")?;
                    Ok(())
                }
                // Another registrar removed it first: the goal is reached.
                Err(e) if e.kind == BinfmtErrorKind::NotFound => Ok(()),
                Err(e) => Err((name.clone(), e)),
            },
            Action::Register {
                line,
                expected,
                replaces,
                ..
            } => match register_checked(binfmt, line, expected) {
                Ok(true) => {
                    done.push(Done::Registered(expected.name.clone()));
                    registered += 1;
                    let verb = if *replaces {
                        "replaced  "
                    } else {
                        "registered"
                    };
                    writeln!(
                        out,
                        "{verb}  {}  {}  flags: {}",
                        expected.name, expected.interpreter, expected.flags
                    )?;
                    Ok(())
                }
                Ok(false) => {
                    unchanged += 1;
                    writeln!(out, "unchanged   {}  already registered", expected.name)?;
                    Ok(())
                }
                Err(e) => Err((expected.name.clone(), e)),
            },
            Action::Skip { target, reason } => {
                if *reason == SkipReason::AlreadyRegistered {
                    unchanged += 1;
                    writeln!(out, "unchanged   qemu-{target}  already registered")?;
                }
                Ok(())
            }
            Action::Refuse { .. } => unreachable!("a refused plan is never applied"),
        };
        if let Err((name, e)) = result {
            writeln!(err, "error: `{name}` failed")?;
            print_error(err, &e)?;
            rollback(binfmt, done, err)?;
            return Ok(exit::FAILED);
        }
    }
    writeln!(
        out,
        "{registered} registered, {unchanged} unchanged, {removed} removed"
    )?;
    Ok(exit::OK)
}

/// Registers one record and checks the kernel's readback. `Ok(false)` when
/// an identical entry appeared meanwhile (a concurrent registrar).
fn register_checked(binfmt: &Binfmt, line: &str, expected: &Entry) -> Result<bool, BinfmtError> {
    let name = &expected.name;
    let written = match binfmt.register(name, line) {
        Ok(()) => true,
        Err(e) if e.kind == BinfmtErrorKind::AlreadyRegistered => false,
        Err(e) => return Err(e),
    };
    let path = binfmt.root().join(name);
    match binfmt.read(name)? {
        Some(now) if now.diff(expected).is_empty() => Ok(written),
        Some(now) => Err(BinfmtError {
            operation: format!(
                "verify `{name}` ({}) in",
                now.diff(expected)
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            path,
            kind: BinfmtErrorKind::Other,
            source: None,
        }),
        None => Err(BinfmtError {
            operation: format!("find `{name}` after registering it in"),
            path,
            kind: BinfmtErrorKind::NotFound,
            source: None,
        }),
    }
}

/// Undoes, newest first, what this run did.
fn rollback(binfmt: &Binfmt, done: Vec<Done>, err: &mut Vec<u8>) -> io::Result<()> {
    if done.is_empty() {
        writeln!(err, "nothing was changed")?;
        return Ok(());
    }
    let mut clean = true;
    for step in done.into_iter().rev() {
        let result = match &step {
            Done::Registered(name) => binfmt.remove(name),
            Done::Removed(entry) => binfmt.register(&entry.name, &entry.to_register_line()),
        };
        if let Err(e) = result {
            clean = false;
            print_error(err, &e)?;
        }
    }
    if clean {
        writeln!(
            err,
            "rolled back: the registry is as it was before this run"
        )?;
    } else {
        writeln!(
            err,
            "error: rollback incomplete: check `qus-register --status`"
        )?;
    }
    Ok(())
}

fn export_files(
    cli: &Cli,
    host: &HostFacts,
    format: Format,
    list: Vec<&'static Target>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    // Like QEMU's script: every target outside the host family unless some
    // are named (a named one is written as asked: exporting never changes
    // this host).
    let req = request(cli, (!list.is_empty()).then_some(list));
    let chosen: Vec<&Target> = plan::selected_targets(&req, host)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let dir = cli.exportdir.clone().unwrap_or_else(|| match format {
        Format::Systemd => "/etc/binfmt.d".into(),
        Format::Debian => "/usr/share/binfmts".into(),
    });
    let opts = ExportOptions {
        qemu_path: cli.qemu_path.clone(),
        suffix: cli.qemu_suffix.clone(),
        credential: cli.credential.is_yes(),
        persistent: cli.persistent.is_yes(),
        preserve_argv0: cli.preserve_argv0.is_yes(),
    };
    if cli.dry_run {
        for t in &chosen {
            writeln!(
                out,
                "would write {}",
                dir.join(format.file_name(t)).display()
            )?;
        }
        return Ok(exit::OK);
    }
    match export::write_files(&dir, &chosen, &opts, format) {
        Ok(paths) => {
            for p in paths {
                writeln!(out, "wrote {}", p.display())?;
            }
            Ok(exit::OK)
        }
        Err(e) => {
            print_error(err, &e)?;
            Ok(exit::FAILED)
        }
    }
}

/// The `--status --json` document. `supported` and `emulators` mean what
/// they mean in tonistiigi/binfmt's output, which docker/setup-qemu-action
/// parses: platforms this host can run, and every registered entry name.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    /// OCI platforms runnable here: the host's own, then those of enabled
    /// `qemu-*` entries.
    pub supported: Vec<String>,
    /// Names of every binfmt_misc entry (any owner), sorted.
    pub emulators: Vec<String>,
    /// Every field of every `qemu-*` entry.
    pub entries: Vec<Entry>,
    /// The mount point and its state.
    pub mount: MountStatus,
}

/// Where binfmt_misc is and whether it is mounted.
#[derive(Debug, serde::Serialize)]
pub struct MountStatus {
    /// The mount point.
    pub path: String,
    /// Its state.
    pub state: MountState,
}

/// Builds the status document from a listing.
pub fn build_status(root: &str, state: MountState, host: &HostFacts, all: Vec<Entry>) -> Status {
    let family = targets::host_family(&host.machine);
    let mut supported: Vec<String> = Vec::new();
    let mut push = |p: &str| {
        if !supported.iter().any(|s| s == p) {
            supported.push(p.to_owned());
        }
    };
    // Native platforms first, in table order.
    if let Some(native) = targets::find(&host.machine) {
        targets::platforms(native).iter().for_each(|p| push(p));
    }
    targets::TARGETS
        .iter()
        .filter(|t| t.family == family)
        .flat_map(|t| targets::platforms(t).iter())
        .for_each(|p| push(p));
    let emulators = all.iter().map(|e| e.name.clone()).collect();
    let entries: Vec<Entry> = all.into_iter().filter(Entry::is_owned).collect();
    for e in entries.iter().filter(|e| e.enabled) {
        if let Some(t) = e.name.strip_prefix("qemu-").and_then(targets::find) {
            targets::platforms(t).iter().for_each(|p| push(p));
        }
    }
    Status {
        supported,
        emulators,
        entries,
        mount: MountStatus {
            path: root.to_owned(),
            state,
        },
    }
}

fn status(
    binfmt: &Binfmt,
    host: &HostFacts,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    // Inside a fresh privileged container binfmt_misc is not mounted yet:
    // mount it (as a registration would) so the status shows the host's
    // registry. Where that is not allowed, it is reported as not mounted.
    if binfmt.state() == MountState::NotMounted {
        let _ = binfmt.mount();
    }
    let state = binfmt.state();
    let all = if state == MountState::Mounted {
        match binfmt.list() {
            Ok(all) => all,
            Err(e) => {
                print_error(err, &e)?;
                return Ok(exit::FAILED);
            }
        }
    } else {
        Vec::new()
    };
    let doc = build_status(&binfmt.root().display().to_string(), state, host, all);
    if json {
        serde_json::to_writer_pretty(&mut *out, &doc).map_err(|e| match e.io_error_kind() {
            // Keep the kind, so that a closed pipe stays a quiet exit.
            Some(kind) => io::Error::new(kind, e),
            None => io::Error::other(e),
        })?;
        writeln!(out)?;
        return Ok(exit::OK);
    }
    let state_text = match state {
        MountState::Missing => "missing: no binfmt support in the kernel",
        MountState::NotMounted => "not mounted",
        MountState::Mounted => "mounted",
    };
    writeln!(out, "binfmt_misc: {} ({state_text})", doc.mount.path)?;
    writeln!(
        out,
        "{:<20} {:<9} {:<6} INTERPRETER",
        "ENTRY", "STATE", "FLAGS"
    )?;
    for e in &doc.entries {
        let st = if e.enabled { "enabled" } else { "disabled" };
        writeln!(
            out,
            "{:<20} {:<9} {:<6} {}",
            e.name,
            st,
            e.flags.to_string(),
            e.interpreter
        )?;
    }
    let others: Vec<&String> = doc
        .emulators
        .iter()
        .filter(|n| !entry::is_owned_name(n))
        .collect();
    if !others.is_empty() {
        let names: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
        writeln!(
            out,
            "other entries (not ours, never touched): {}",
            names.join(", ")
        )?;
    }
    writeln!(out, "supported: {}", doc.supported.join(", "))?;
    Ok(exit::OK)
}

/// Prints `error: …` and the chain of causes.
fn print_error(err: &mut dyn Write, e: &dyn std::error::Error) -> io::Result<()> {
    writeln!(err, "error: {e}")?;
    let mut source = e.source();
    while let Some(cause) = source {
        writeln!(err, "  caused by: {cause}")?;
        source = cause.source();
    }
    Ok(())
}
