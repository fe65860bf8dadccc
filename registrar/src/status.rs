//! `--status`: what is registered, as a table or as JSON.
//!
//! The main type is [`Status`], the `--status --json` document; [`status`]
//! reads the registry and prints it. Besides the entries it says which
//! interpreter a registration would use for each target on this host (the
//! choice of `interpreter.rs`), and with `--verify` whether each entry runs
//! its target's probe (`verify.rs`). It never writes the registry (it may mount
//! binfmt_misc, as a registration would).

use std::io::{self, Write};

use crate::app::print_error;
use crate::binfmt::{HostFacts, MountState};
use crate::cli::{Cli, exit};
use crate::entry::{self, Entry};
use crate::interpreter::{self, Choice, ChoiceReason, InterpreterFacts};
use crate::registry::Registry;
use crate::targets;
use crate::verify;

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
    pub entries: Vec<StatusEntry>,
    /// The mount point and its state.
    pub mount: MountStatus,
    /// The interpreter a registration would use for each target, in table
    /// order, and why.
    pub interpreters: Vec<TargetInterpreter>,
}

/// One `qemu-*` entry in the status, with the result of `--verify`.
#[derive(Debug, serde::Serialize)]
pub struct StatusEntry {
    /// Every field of the entry.
    #[serde(flatten)]
    pub entry: Entry,
    /// With `--verify`: whether the target's probe ran through it (absent
    /// without `--verify`, and for targets without a probe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runnable: Option<bool>,
    /// With `--verify`, when not runnable: what happened and the likely cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// The interpreter a registration would choose for one target.
#[derive(Debug, serde::Serialize)]
pub struct TargetInterpreter {
    /// The QEMU target name.
    pub target: &'static str,
    /// The choice and its reason.
    #[serde(flatten)]
    pub choice: Choice,
}

/// Where binfmt_misc is and whether it is mounted.
#[derive(Debug, serde::Serialize)]
pub struct MountStatus {
    /// The mount point.
    pub path: String,
    /// Its state.
    pub state: MountState,
}

/// Builds the status document from a listing and the interpreter choices.
pub fn build_status(
    root: &str,
    state: MountState,
    host: &HostFacts,
    all: Vec<Entry>,
    interpreters: Vec<TargetInterpreter>,
) -> Status {
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
    let entries: Vec<StatusEntry> = all
        .into_iter()
        .filter(Entry::is_owned)
        .map(|entry| StatusEntry {
            entry,
            runnable: None,
            cause: None,
        })
        .collect();
    for e in entries.iter().map(|e| &e.entry).filter(|e| e.enabled) {
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
        interpreters,
    }
}

/// Prints the status; returns the exit status.
pub(crate) fn status(
    cli: &Cli,
    binfmt: &dyn Registry,
    host: &HostFacts,
    run: &verify::ProbeRunner<'_>,
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
    let interpreters = targets::TARGETS
        .iter()
        .map(|t| TargetInterpreter {
            target: t.name,
            choice: interpreter::choose(
                &cli.qemu_path,
                t,
                cli.qemu_suffix.as_deref(),
                &interpreter::facts,
            ),
        })
        .collect();
    let mut doc = build_status(
        &binfmt.root().display().to_string(),
        state,
        host,
        all,
        interpreters,
    );
    let mut failed = false;
    if cli.verify {
        let context = verify::Context::read(binfmt.root(), host.initial_user_namespace);
        for e in &mut doc.entries {
            let Some(t) = e.entry.name.strip_prefix("qemu-").and_then(targets::find) else {
                continue;
            };
            match verify::verify_with(t.name, Some(&e.entry), &context, run) {
                verify::Verdict::Runnable => e.runnable = Some(true),
                verify::Verdict::NotRunnable { cause } => {
                    writeln!(
                        err,
                        "error: `{}` is registered but not runnable: {cause}",
                        e.entry.name
                    )?;
                    failed = true;
                    e.runnable = Some(false);
                    e.cause = Some(cause);
                }
                verify::Verdict::NotRegistered | verify::Verdict::NoProbe => {}
            }
        }
    }
    let code = if failed { exit::FAILED } else { exit::OK };
    if cli.json {
        serde_json::to_writer_pretty(&mut *out, &doc).map_err(|e| match e.io_error_kind() {
            // Keep the kind, so that a closed pipe stays a quiet exit.
            Some(kind) => io::Error::new(kind, e),
            None => io::Error::other(e),
        })?;
        writeln!(out)?;
        return Ok(code);
    }
    let state_text = match state {
        MountState::Missing => "missing: no binfmt support in the kernel",
        MountState::NotMounted => "not mounted",
        MountState::Mounted => "mounted",
    };
    writeln!(out, "binfmt_misc: {} ({state_text})", doc.mount.path)?;
    let runnable_column = if cli.verify { " RUNNABLE" } else { "" };
    writeln!(
        out,
        "{:<20} {:<9} {:<6} INTERPRETER{runnable_column}",
        "ENTRY", "STATE", "FLAGS"
    )?;
    for s in &doc.entries {
        let e = &s.entry;
        let st = if e.enabled { "enabled" } else { "disabled" };
        let runnable = match (cli.verify, s.runnable) {
            (false, _) => "",
            (true, Some(true)) => "  yes",
            (true, Some(false)) => "  NO",
            (true, None) => "  (no probe)",
        };
        writeln!(
            out,
            "{:<20} {:<9} {:<6} {}{runnable}",
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
    print_interpreters(&doc.interpreters, out)?;
    Ok(code)
}

/// One line per kind of choice, naming the targets, then a note for every
/// candidate passed over (a dynamic `qemu-<cpu>`, say).
fn print_interpreters(list: &[TargetInterpreter], out: &mut dyn Write) -> io::Result<()> {
    let group = |keep: &dyn Fn(&ChoiceReason) -> bool| -> Vec<&str> {
        list.iter()
            .filter(|i| keep(&i.choice.reason))
            .map(|i| i.target)
            .collect()
    };
    let groups: [(&str, Vec<&str>); 4] = [
        (
            "interpreters named by --qemu-suffix",
            group(&|r| *r == ChoiceReason::Explicit),
        ),
        (
            "interpreters qemu-<cpu>-static (found)",
            group(&|r| *r == ChoiceReason::StaticSuffix),
        ),
        (
            "interpreters qemu-<cpu> (static, no -static file)",
            group(&|r| matches!(r, ChoiceReason::Plain { .. })),
        ),
        (
            "interpreters not found (qemu-<cpu>-static would be registered)",
            group(&|r| matches!(r, ChoiceReason::Fallback { .. })),
        ),
    ];
    for (what, names) in groups.iter().filter(|(_, n)| !n.is_empty()) {
        writeln!(out, "{what}: {}", names.join(", "))?;
    }
    for i in list {
        if let ChoiceReason::Fallback { passed_over, why } = &i.choice.reason
            && *why != InterpreterFacts::Missing.to_string()
        {
            writeln!(out, "  note: `{passed_over}` was passed over: {why}")?;
        }
    }
    Ok(())
}
