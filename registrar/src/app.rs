//! What `qus-register` does with a parsed command line.
//!
//! The main function is [`run`]: it resolves the [`Cli`] (targets, mode),
//! then exports files, prints the status, or plans and applies a
//! registration or uninstall (`apply.rs`). Results go to `out`, warnings and
//! errors to `err`; the return value is the exit status. [`run_with`] does
//! the same on an [`Env`] of the caller's: tests pass an in-memory registry
//! (`registry.rs`) and their own host facts.

use std::io::{self, Write};

use crate::apply;
use crate::binfmt::{Binfmt, HostFacts, MountState};
use crate::cli::{Cli, exit};
use crate::entry::{Entry, Flags};
use crate::export::{self, ExportOptions, Format};
use crate::interpreter::{self, ChoiceReason, InterpreterFacts};
use crate::plan::{self, Request};
use crate::registry::Registry;
use crate::status;
use crate::targets::{self, Target};
use crate::verify;

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

/// What a run works on: the registry, the host, and how interpreter files
/// are looked at. [`run`] builds the real one.
pub struct Env<'a> {
    /// The binfmt_misc registry.
    pub registry: &'a dyn Registry,
    /// Facts about the host.
    pub host: HostFacts,
    /// Answers what an interpreter file is ([`interpreter::facts`]).
    pub interpreter: &'a dyn Fn(&str) -> InterpreterFacts,
    /// Runs a target's embedded probe ([`verify::execute_probe`]).
    pub probe: &'a verify::ProbeRunner<'a>,
}

impl<'a> Env<'a> {
    /// The real host: the kernel registry at `binfmt`, the host's facts
    /// (`HOST_ARCH` as `host_arch` says), real interpreter files and probes.
    pub fn host(binfmt: &'a Binfmt, host_arch: Option<&str>) -> Self {
        Self {
            registry: binfmt,
            host: HostFacts::read(host_arch),
            interpreter: &interpreter::facts,
            probe: &verify::execute_probe,
        }
    }
}

/// Runs the command on this host; returns the exit status. With
/// `--private` it does not return when the command starts
/// ([`private::run`](crate::private::run)); with `--wait` it returns when a
/// signal stops it ([`daemon::run`](crate::daemon::run)); `--check-health`
/// reads that process's health file and nothing else
/// ([`daemon::check_health`](crate::daemon::check_health)).
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    if cli.private {
        return crate::private::run(cli, err);
    }
    if cli.wait {
        return crate::daemon::run(cli, out, err);
    }
    if cli.check_health {
        return crate::daemon::check_health_cli(cli, std::time::SystemTime::now(), out, err);
    }
    let binfmt = Binfmt::new(&cli.mount);
    let env = Env::host(&binfmt, cli.host_arch.as_deref());
    run_with(cli, &env, out, err)
}

/// Runs the command on `env`; returns the exit status. A reader that went
/// away (`qus-register ... | head`) loses the rest of the report, never the
/// errors on `err` nor the exit status. `--private` and `--wait` are
/// [`run`]'s: here they register once (see `private.rs` and
/// [`daemon::run_with`](crate::daemon::run_with)).
pub fn run_with(
    cli: &Cli,
    env: &Env<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    let mut out = PipeTolerant(out);
    match resolve(cli) {
        Ok(mode) => execute(cli, env, mode, &mut out, err),
        Err(e) => {
            writeln!(err, "error: {e}")?;
            Ok(exit::USAGE)
        }
    }
}

/// Stdout that drops what it cannot write once the reader has gone
/// (`EPIPE`), so the run goes on to its errors and its exit status.
pub(crate) struct PipeTolerant<'a>(pub(crate) &'a mut dyn Write);

impl Write for PipeTolerant<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(buf.len()),
            r => r,
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.0.flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        }
    }
}

/// What the command line asks for, with names resolved.
enum Mode {
    Export(Format, Vec<&'static Target>),
    Status,
    Verify,
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
    if let Some(tool) = cli.compat {
        // `Invocation::parse` takes it when it comes first.
        return Err(UsageError {
            option: "--compat",
            value: format!("{tool:?}").to_lowercase(),
            reason: "it must be the first argument: the rest of the command line is then \
                     that tool's"
                .into(),
        });
    }
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
    let registers = cli.reset
        || cli.targets.is_some()
        || cli.replace
        || cli.persistent.is_yes()
        || cli.credential.is_yes()
        || cli.preserve_argv0.is_yes()
        || cli.ignore_family.is_yes();
    if cli.verify && !registers {
        return Ok(Mode::Verify);
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

/// The registration `cli` asks for, `--targets` resolved: what `--wait`
/// keeps registered.
pub fn registration(cli: &Cli) -> Result<Request, UsageError> {
    let explicit = cli
        .targets
        .as_deref()
        .map(|t| resolve_list("--targets", t))
        .transpose()?;
    Ok(request(cli, explicit))
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
        private: cli.private,
    }
}

fn execute(
    cli: &Cli,
    env: &Env<'_>,
    mode: Mode,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    let (registry, host) = (env.registry, &env.host);
    match mode {
        Mode::Export(format, list) => export_files(cli, host, format, list, out, err),
        Mode::Status => status::status(cli, registry, host, env.probe, out, err),
        Mode::Verify => {
            let Some(current) = open_registry(registry, false, err)? else {
                return Ok(exit::FAILED);
            };
            let names: Vec<&'static str> = current
                .iter()
                .filter_map(|e| e.name.strip_prefix("qemu-").and_then(targets::find))
                .map(|t| t.name)
                .collect();
            if names.is_empty() {
                writeln!(out, "no qemu-* entry is registered")?;
            }
            verify::report(registry, host, env.probe, &names, out, err)
        }
        Mode::Uninstall(list) => {
            let Some(current) = open_registry(registry, cli.dry_run, err)? else {
                return Ok(exit::FAILED);
            };
            let plan = plan::plan_uninstall(list.as_deref(), host, cli.force, &current);
            if plan.actions.is_empty() {
                writeln!(out, "nothing to remove")?;
            }
            apply::finish(registry, &current, &plan, cli.dry_run, out, err)
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
            if cli.preserve_argv0.is_yes() && host.kernel_older_than(5, 12) {
                // Linux 5.12 tells the interpreter through AT_FLAGS that
                // `P` is set; QEMU reads that flag and otherwise cannot know
                // that argv[0] is the original one.
                writeln!(
                    err,
                    "warning: `--preserve-argv0 yes` registers with `P`, but kernel `{}` is \
                     older than 5.12 and does not tell QEMU that `P` is set: QEMU then \
                     takes the original argv[0] for the program's path",
                    host.kernel_release
                )?;
            }
            let Some(current) = open_registry(registry, cli.dry_run, err)? else {
                return Ok(exit::FAILED);
            };
            let request = request(cli, list);
            // A dry run under emulation shows the plan of the emulated host
            // and says what a real run would refuse.
            let emulated = host.emulation.clone().filter(|_| cli.dry_run);
            let plan_host = HostFacts {
                emulation: host.emulation.clone().filter(|_| !cli.dry_run),
                ..host.clone()
            };
            let plan = plan::plan(&request, &plan_host, &current, env.interpreter);
            if let Some(em) = emulated {
                let would = plan::plan(&request, host, &current, env.interpreter);
                for (target, refusal) in would.refusals() {
                    if matches!(refusal, plan::Refusal::UnderEmulation { .. }) {
                        writeln!(err, "note: a real run refuses `qemu-{target}`: {refusal}")?;
                    }
                }
                writeln!(
                    err,
                    "note: this registrar runs under QEMU emulation (`{}` via `{}` on a `{}` host)",
                    em.emulated,
                    em.real_exe.display(),
                    em.real
                )?;
            }
            let code = apply::finish(registry, &current, &plan, cli.dry_run, out, err)?;
            if code != exit::OK || !cli.verify {
                return Ok(code);
            }
            verify::report(registry, host, env.probe, &plan.wanted_targets(), out, err)
        }
    }
}

/// Makes sure binfmt_misc is mounted (unless only looking) and lists it.
/// `None` after an error was printed.
pub(crate) fn open_registry(
    binfmt: &dyn Registry,
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
