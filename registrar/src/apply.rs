//! Applying a plan to a [`Registry`], all or nothing, and saying truthfully
//! what the registry holds afterwards.
//!
//! The main function is [`finish`]: it prints a dry run, the refusals of a
//! refused plan, or applies an applicable one. Applying stops at the first
//! failure and undoes, newest first, everything this run changed: every
//! entry it registered is removed and every entry it removed is registered
//! again with its enabled state. Whether a write took effect is never
//! assumed from its return value alone: after a failed write the entry is
//! read back, because a short write may have registered it and an ENOENT
//! on a removal may hide an entry that is still there.
//!
//! Then the registry is listed and compared with the listing taken before
//! the run, and the message says what is true: "nothing was changed" or
//! "rolled back" only when every entry is as it was, otherwise "rollback
//! incomplete" with exactly the entries that differ. Errors go to `err`
//! before the report goes to `out`, so a closed stdout can lose the report
//! but never the errors or the exit status.

use std::io::{self, Write};

use crate::app::print_error;
use crate::binfmt::{BinfmtError, BinfmtErrorKind};
use crate::cli::exit;
use crate::entry::Entry;
use crate::plan::{Action, Plan, SkipReason};
use crate::registry::Registry;

/// Prints the plan (dry run), the refusals (refused plan), or applies it.
/// `before` is every entry listed before planning. Returns the exit status.
pub(crate) fn finish(
    registry: &dyn Registry,
    before: &[Entry],
    plan: &Plan,
    dry_run: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    if !plan.is_applicable() {
        // Errors first: they must reach stderr even if stdout is gone.
        print_refusals(plan, err)?;
        if dry_run {
            print_plan(plan, out)?;
        }
        return Ok(exit::FAILED);
    }
    if dry_run {
        print_plan(plan, out)?;
        writeln!(out, "dry run: nothing was changed")?;
        return Ok(exit::OK);
    }
    // Buffer both: nothing may stop the loop half-way, with no rollback.
    let (mut report, mut problems) = (Vec::new(), Vec::new());
    let code = apply(registry, before, plan, &mut report, &mut problems)?;
    err.write_all(&problems)?;
    out.write_all(&report)?;
    Ok(code)
}

fn print_refusals(plan: &Plan, err: &mut dyn Write) -> io::Result<()> {
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
    writeln!(err, "nothing was changed")
}

/// The plan as `--dry-run` prints it: the interpreter choices, then one
/// line per action.
pub(crate) fn print_plan(plan: &Plan, out: &mut dyn Write) -> io::Result<()> {
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

/// One change that reached the kernel, kept to undo it.
enum Done {
    /// This run removed the entry; it was this.
    Removed(Entry),
    /// This run registered the entry of this name.
    Registered(String),
}

/// Applies an applicable plan; on the first failure undoes what was done
/// and reports the registry's real state.
fn apply(
    registry: &dyn Registry,
    before: &[Entry],
    plan: &Plan,
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> io::Result<u8> {
    let mut done: Vec<Done> = Vec::new();
    let (mut registered, mut unchanged, mut removed) = (0, 0, 0);
    for action in &plan.actions {
        let result = match action {
            Action::Remove { name, previous } => {
                match remove_checked(registry, name, previous.as_ref(), &mut done) {
                    Ok(true) => {
                        removed += 1;
                        writeln!(out, "removed     {name}")?;
                        Ok(())
                    }
                    // Someone else removed it first: the goal is reached.
                    Ok(false) => Ok(()),
                    Err(e) => Err((name.clone(), e)),
                }
            }
            Action::Register {
                line,
                expected,
                replaces,
                ..
            } => match register_checked(registry, line, expected, &mut done) {
                Ok(true) => {
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
            rollback(registry, before, done, err)?;
            return Ok(exit::FAILED);
        }
    }
    writeln!(
        out,
        "{registered} registered, {unchanged} unchanged, {removed} removed"
    )?;
    Ok(exit::OK)
}

/// Removes one entry. `Ok(false)` when it was already gone (checked by
/// reading it: an ENOENT that leaves the entry in place is an error).
fn remove_checked(
    registry: &dyn Registry,
    name: &str,
    previous: Option<&Entry>,
    done: &mut Vec<Done>,
) -> Result<bool, BinfmtError> {
    let failure = match registry.remove(name) {
        Ok(()) => {
            if let Some(p) = previous {
                done.push(Done::Removed(p.clone()));
            }
            return Ok(true);
        }
        Err(e) => e,
    };
    // Did the write take effect after all (a short write), or is an ENOENT
    // true? Only a readback tells.
    if matches!(registry.read(name), Ok(None)) {
        if failure.kind == BinfmtErrorKind::NotFound {
            return Ok(false);
        }
        if let Some(p) = previous {
            done.push(Done::Removed(p.clone()));
        }
    }
    Err(failure)
}

/// Registers one record and checks the kernel's readback. `Ok(false)` when
/// an identical entry appeared meanwhile (a concurrent registrar). Whenever
/// the entry may be there because of this write, it is recorded in `done`,
/// error or not, so a rollback removes it.
fn register_checked(
    registry: &dyn Registry,
    line: &str,
    expected: &Entry,
    done: &mut Vec<Done>,
) -> Result<bool, BinfmtError> {
    let name = &expected.name;
    let written = match registry.register(name, line) {
        Ok(()) => true,
        Err(e) if e.kind == BinfmtErrorKind::AlreadyRegistered => false,
        Err(e) => {
            // The name was free when this run got here (the plan found it
            // absent or removed it), so an entry now is this write's.
            if !matches!(registry.read(name), Ok(None)) {
                done.push(Done::Registered(name.clone()));
            }
            return Err(e);
        }
    };
    let path = registry.root().join(name);
    let now = registry.read(name);
    // An entry this write made is undone on failure, even if it reads back
    // wrong or cannot be read; an absent one needs no undoing.
    if written && !matches!(now, Ok(None)) {
        done.push(Done::Registered(name.clone()));
    }
    match now? {
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

/// Undoes, newest first, what this run did, then compares the registry
/// with `before` and says what is true.
fn rollback(
    registry: &dyn Registry,
    before: &[Entry],
    done: Vec<Done>,
    err: &mut Vec<u8>,
) -> io::Result<()> {
    let changed_anything = !done.is_empty();
    for step in done.into_iter().rev() {
        let result = match &step {
            Done::Registered(name) => match registry.remove(name) {
                Err(e) if e.kind == BinfmtErrorKind::NotFound => Ok(()),
                r => r,
            },
            // Registered again as it was, disabled if it was disabled.
            Done::Removed(entry) => registry
                .register(&entry.name, &entry.to_register_line())
                .and_then(|()| match entry.enabled {
                    true => Ok(()),
                    false => registry.set_enabled(&entry.name, false),
                }),
        };
        if let Err(e) = result {
            print_error(err, &e)?;
        }
    }
    // The message comes from the registry, not from what the writes said.
    let now = match registry.list() {
        Ok(now) => now,
        Err(e) => {
            print_error(err, &e)?;
            writeln!(
                err,
                "error: rollback incomplete: the registry cannot be read to check it; \
                 check `qus-register --status`"
            )?;
            return Ok(());
        }
    };
    let differing = differences(before, &now);
    if differing.is_empty() {
        if changed_anything {
            writeln!(
                err,
                "rolled back: the registry is as it was before this run"
            )?;
        } else {
            writeln!(err, "nothing was changed")?;
        }
        return Ok(());
    }
    writeln!(
        err,
        "error: rollback incomplete: {} {} differ from before this run:",
        differing.len(),
        if differing.len() == 1 {
            "entry"
        } else {
            "entries"
        }
    )?;
    for line in &differing {
        writeln!(err, "  {line}")?;
    }
    writeln!(err, "  check `qus-register --status`")
}

/// One line per entry that differs between two listings, by name:
/// "`qemu-x`: absent before, present now" and the like.
pub fn differences(before: &[Entry], now: &[Entry]) -> Vec<String> {
    let mut names: Vec<&str> = before.iter().chain(now).map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let find = |list: &'_ [Entry], name: &str| list.iter().find(|e| e.name == name).cloned();
    names
        .into_iter()
        .filter_map(|name| match (find(before, name), find(now, name)) {
            (Some(_), None) => Some(format!("`{name}`: registered before, absent now")),
            (None, Some(_)) => Some(format!("`{name}`: absent before, registered now")),
            (Some(b), Some(n)) if b != n => Some(format!(
                "`{name}`: {}",
                n.diff(&b)
                    .iter()
                    .map(|d| format!("{}: `{}` (was `{}`)", d.field, d.current, d.wanted))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            _ => None,
        })
        .collect()
}
