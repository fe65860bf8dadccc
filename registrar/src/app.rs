//! What `qus-register` does with a parsed command line.
//!
//! The main function is [`run`]: it resolves the [`Cli`] (targets, mode),
//! then exports files, prints the status, or plans and applies a
//! registration or uninstall. Results go to `out`, warnings and errors to
//! `err`; the return value is the exit status. Applying is all or nothing:
//! a refused plan writes nothing, and a kernel error half-way undoes what
//! this run already did, so the registry is left as it was found.

use std::io::{self, Write};

use crate::binfmt::{Binfmt, BinfmtError, BinfmtErrorKind, HostFacts, MountState};
use crate::cli::{Cli, exit};
use crate::entry::{Entry, Flags};
use crate::export::{self, ExportOptions, Format};
use crate::interpreter::{self, ChoiceReason};
use crate::plan::{self, Action, Plan, Request, SkipReason};
use crate::status;
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
        Mode::Status => status::status(cli, &binfmt, &host, out, err),
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
            let plan = plan::plan(&request, &host, &current, &interpreter::facts);
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
                continue;
            }
            writeln!(err, "error: refused `qemu-{target}`: {refusal}")?;
            // Say why the other candidate was not used either.
            let note = plan
                .choices
                .iter()
                .find(|(t, _)| *t == target)
                .and_then(|(_, c)| c.passed_over_note());
            if let Some(note) = note {
                writeln!(err, "  note: {note}")?;
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
    for (target, choice) in &plan.choices {
        writeln!(out, "interpreter qemu-{target}  {choice}")?;
    }
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
    // The interpreter is chosen as for a registration on this host, so the
    // files name what systemd-binfmt or update-binfmts will find here. Each
    // choice is a suffix: `-static`, or none for a static `qemu-<cpu>`.
    let mut files = Vec::with_capacity(chosen.len());
    for t in chosen {
        let choice = interpreter::choose(
            &cli.qemu_path,
            t,
            cli.qemu_suffix.as_deref(),
            &interpreter::facts,
        );
        let suffix = match (&cli.qemu_suffix, &choice.reason) {
            (Some(s), _) => s.clone(),
            (None, ChoiceReason::Plain { .. }) => String::new(),
            (None, _) => interpreter::STATIC_SUFFIX.to_owned(),
        };
        if cli.dry_run && choice.reason != ChoiceReason::Explicit {
            writeln!(out, "interpreter qemu-{}  {choice}", t.name)?;
        }
        let opts = ExportOptions {
            qemu_path: cli.qemu_path.clone(),
            suffix,
            credential: cli.credential.is_yes(),
            persistent: cli.persistent.is_yes(),
            preserve_argv0: cli.preserve_argv0.is_yes(),
        };
        files.push((t, opts));
    }
    if cli.dry_run {
        for (t, _) in &files {
            writeln!(
                out,
                "would write {}",
                dir.join(format.file_name(t)).display()
            )?;
        }
        return Ok(exit::OK);
    }
    for (t, opts) in &files {
        match export::write_files(&dir, &[t], opts, format) {
            Ok(paths) => {
                for p in paths {
                    writeln!(out, "wrote {}", p.display())?;
                }
            }
            Err(e) => {
                print_error(err, &e)?;
                return Ok(exit::FAILED);
            }
        }
    }
    Ok(exit::OK)
}

/// Prints `error: …` and the chain of causes.
pub(crate) fn print_error(err: &mut dyn Write, e: &dyn std::error::Error) -> io::Result<()> {
    writeln!(err, "error: {e}")?;
    let mut source = e.source();
    while let Some(cause) = source {
        writeln!(err, "  caused by: {cause}")?;
        source = cause.source();
    }
    Ok(())
}
