//! What each `qus-harness` command does with its parsed arguments.
//!
//! The main function is [`main`]: it dispatches a [`Cli`] to `run`,
//! `validate`, `schema`, `list`, `plan`, `doctor`, `images` or `compare`
//! and returns the exit status. A `run` with `--qemu` resolves its QEMUs
//! (`qemu::resolve`) and runs one group of instances per QEMU
//! (`runner::run_matrix`).
//! Results go to stdout, diagnostics to stderr through `tracing`, errors to
//! stderr as `error: …`. Loading is complete (every file, every error)
//! before anything starts.

use std::io::{self, IsTerminal as _};

use crate::cli::{
    Cli, Command, DoctorArgs, ImagesBuildArgs, ImagesCommand, ImagesFixturesArgs, InternalCommand,
    PathsArgs, RunArgs, SelectArgs, exit,
};
use crate::host::{HostGuard, HostInfo};
use crate::plan::{self, Planned, Selection};
use crate::prepare;
use crate::qemu::HostQemuProbe;
use crate::report::{
    ConsoleMode, ConsoleReporter, Event, JsonReporter, JunitReporter, Reporter, Reporters,
};
use crate::runner::{self, QemuMatrix, RunOptions, TEARDOWN_GRACE, error_chain};
use crate::runtime::{
    DockerRuntime, HostRuntime, PodmanRuntime, SingularityRuntime, UnavailableRuntime,
};
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::scenario::{self, Instance, Scenario, VarOverrides};

/// Prints a result line. A closed stdout (`qus-harness list | head`) ends
/// the process quietly, as Unix tools do; it is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*)
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(i32::from(exit::OK));
        }
    }};
}

/// Prints a progress line; losing one (closed stdout) never stops the work.
macro_rules! progress {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Runs a parsed command line; returns the exit status.
pub fn main(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(args) => run(&args, cli.verbose > 0),
        Command::Validate(paths) => validate(&paths),
        Command::Schema => {
            let schema = scenario::json_schema();
            say!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("a JSON value serializes")
            );
            exit::OK
        }
        Command::List(paths) => list(&paths),
        Command::Plan(select) => show_plan(&select),
        Command::Doctor(args) => doctor(&args),
        Command::Images(ImagesCommand::Build(args)) => images_build(&args),
        Command::Images(ImagesCommand::Fixtures(args)) => images_fixtures(&args),
        Command::Compare(args) => compare::compare(&args),
        Command::Images(ImagesCommand::Registrar(args)) => images_registrar(&args),
        Command::Internal(InternalCommand::HoldNamespace) => crate::sandbox::hold(),
        Command::Internal(InternalCommand::ViewExec(args)) => {
            crate::sandbox::view_exec(&args.scratch, &args.emulators, &args.command)
        }
        Command::Images(ImagesCommand::Index(args)) => images_index(&args),
    }
}

/// Loads every file; prints every error (`file:line:col: …`) and returns
/// `None` when any file fails.
fn load(paths: &PathsArgs) -> Option<Vec<Scenario>> {
    match scenario::load_paths(&paths.paths) {
        Ok(scenarios) => Some(scenarios),
        Err(errors) => {
            for e in errors.errors() {
                print_error(e);
            }
            eprintln!("{} error(s) in scenario files", errors.len());
            None
        }
    }
}

fn validate(paths: &PathsArgs) -> u8 {
    let Some(scenarios) = load(paths) else {
        return exit::USAGE;
    };
    let instances: usize = scenarios.iter().map(Scenario::instance_count).sum();
    say!("ok: {} scenarios, {instances} instances", scenarios.len());
    exit::OK
}

fn list(paths: &PathsArgs) -> u8 {
    let Some(scenarios) = load(paths) else {
        return exit::USAGE;
    };
    say!(
        "{:<36} {:>9}  {:<28} {:<30} REQUIRES",
        "SCENARIO",
        "INSTANCES",
        "TAGS",
        "RUNTIMES"
    );
    for s in &scenarios {
        let runtimes: Vec<&str> = s.runtimes().iter().map(|r| r.as_str()).collect();
        let r = s.requires();
        let mut requires = Vec::new();
        if r.root {
            requires.push("root".to_owned());
        }
        match r.binfmt {
            scenario::BinfmtAccess::None => {}
            scenario::BinfmtAccess::Read => requires.push("binfmt:read".into()),
            scenario::BinfmtAccess::Write => requires.push("binfmt:write".into()),
        }
        if let Some(k) = &r.kernel {
            requires.push(format!("kernel>={k}"));
        }
        if r.network {
            requires.push("network".into());
        }
        say!(
            "{:<36} {:>9}  {:<28} {:<30} {}",
            s.name(),
            s.instance_count(),
            s.tags().join(","),
            runtimes.join(","),
            requires.join(",")
        );
    }
    exit::OK
}

/// Variables for expansion: `--var`, the environment, built-ins.
fn overrides(select: &SelectArgs, run_id: &str) -> Result<VarOverrides, String> {
    let host = HostInfo::read();
    let mut vars = VarOverrides::new()
        .with_env(std::env::vars())
        .with_run_id(run_id)
        .with_host_arch(host.machine);
    if let Some(bin) = registrar_bin() {
        vars = vars.with_registrar_bin(bin);
    }
    for assignment in &select.vars {
        vars = vars
            .with_assignment(assignment)
            .map_err(|e| format!("invalid value `{assignment}` for `--var`: {e}"))?;
    }
    Ok(vars)
}

/// `qus-register` next to this binary (a cargo build or an install puts
/// them together), else whatever `PATH` finds.
fn registrar_bin() -> Option<String> {
    let here = std::env::current_exe().ok()?;
    let sibling = here.parent()?.join("qus-register");
    sibling.is_file().then(|| sibling.display().to_string())
}

/// Loads, expands and selects. `Err` holds the exit status after printing.
fn instances(select: &SelectArgs, run_id: &str) -> Result<Vec<Instance>, u8> {
    let scenarios = load_selected(select)?;
    let vars = overrides(select, run_id).map_err(|e| {
        eprintln!("error: {e}");
        exit::USAGE
    })?;
    expand_all(&scenarios, &vars, select)
}

/// Loads every file and checks that each `--var` names a variable some
/// scenario declares (or a built-in). `Err` holds the exit status after
/// printing.
fn load_selected(select: &SelectArgs) -> Result<Vec<Scenario>, u8> {
    let scenarios = load(&select.paths).ok_or(exit::USAGE)?;
    // A `--var` no scenario declares would be ignored: catch the typo.
    for assignment in &select.vars {
        let name = assignment
            .split_once('=')
            .map_or(assignment.as_str(), |(n, _)| n);
        let declared = scenario::BUILTIN_VARS.contains(&name)
            || scenarios
                .iter()
                .any(|s| s.vars().iter().any(|v| v.name == name));
        if !declared {
            eprintln!(
                "error: invalid value `{assignment}` for `--var`: no loaded scenario declares `{name}`"
            );
            return Err(exit::USAGE);
        }
    }
    Ok(scenarios)
}

/// Expands every scenario with `vars` and keeps the selected instances,
/// sorted by id. `Err` holds the exit status after printing.
fn expand_all(
    scenarios: &[Scenario],
    vars: &VarOverrides,
    select: &SelectArgs,
) -> Result<Vec<Instance>, u8> {
    let mut all = Vec::new();
    for s in scenarios {
        match scenario::expand(s, vars) {
            Ok(mut instances) => all.append(&mut instances),
            Err(e) => {
                print_error(&e);
                return Err(exit::USAGE);
            }
        }
    }
    let selection = Selection {
        filter: select.filter.clone(),
        tags: select.tags.clone(),
        partition: select.partition,
    };
    Ok(plan::select(all, &selection))
}

/// A connected engine, whichever was chosen.
enum Engine {
    Docker(DockerRuntime),
    Podman(PodmanRuntime),
    Singularity(SingularityRuntime),
    Host(HostRuntime),
    /// An engine asked for by name that does not answer.
    Unavailable(UnavailableRuntime),
}

/// Runs `$body` with `$rt` bound to the engine's runtime, whatever its type
/// (the runner is generic over the closed set of engines).
macro_rules! with_engine {
    ($engine:expr, $rt:ident => $body:expr) => {
        match $engine {
            Engine::Docker($rt) => $body,
            Engine::Podman($rt) => $body,
            Engine::Singularity($rt) => $body,
            Engine::Host($rt) => $body,
            Engine::Unavailable($rt) => $body,
        }
    };
}

mod compare;
mod connect;
mod fix;
mod qemu;

use connect::{connect, connect_tried, engine_kind};

/// Makes the images the plan needs present in the engine (README: "How a
/// run behaves"); says which absent images qus cannot build. `Err` is the
/// exit code when that fails.
fn prepare_images(
    tokio: &tokio::runtime::Runtime,
    engine: &Engine,
    planned: &[Planned],
) -> Result<(), u8> {
    let store = match engine {
        Engine::Docker(d) => prepare::ImageStore::Docker(d),
        Engine::Podman(p) => prepare::ImageStore::Podman(p),
        Engine::Singularity(_) => prepare::ImageStore::FromDocker,
        Engine::Host(_) | Engine::Unavailable(_) => prepare::ImageStore::None,
    };
    let mut announce = |needs: &prepare::PrepareNeeds, builder: &crate::images::ImageEngine| {
        progress!(
            "prepare        building what the run needs with {}: {}",
            builder.name(),
            needs.buildable.join(", ")
        );
    };
    match prepare::prepare_run(tokio, store, planned, &mut announce, &images_progress) {
        Ok(prepared) => {
            for image in &prepared.copied {
                tracing::info!("copied `{image}` from docker to podman");
            }
            if !prepared.foreign.is_empty() {
                eprintln!(
                    "warning: not found locally and not built by qus (the harness never pulls; \
                     pull or load them first): {}",
                    prepared.foreign.join(", ")
                );
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            match &e {
                prepare::PrepareError::DockerUnreachable { missing, .. } => {
                    eprintln!("  missing: {}", missing.join(", "));
                    eprintln!(
                        "  hint: start Docker, or load the images into this engine and pass \
                         `--no-prepare`"
                    );
                }
                _ => eprintln!(
                    "  hint: `qus-harness images build` and `qus-harness images fixtures` build \
                     the images on their own; `--no-prepare` runs with the engine's images as \
                     they are"
                ),
            }
            Err(exit::ENVIRONMENT)
        }
    }
}

/// The host runtime's sandbox for `planned`: private namespaces where the
/// kernel allows them, and the emulators of the registrar images the
/// instances run (fetched into the cache where the host has none). Says
/// what it found. `Err` is the exit code.
fn prepare_sandbox(tokio: &tokio::runtime::Runtime, planned: &[Planned]) -> Result<Sandbox, u8> {
    let helper = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: failed to find the `qus-harness` binary: {e}");
            return Err(exit::ENVIRONMENT);
        }
    };
    let options = SandboxOptions {
        helper,
        registrar: registrar_bin().unwrap_or_else(|| "qus-register".to_owned()),
        cache_dir: crate::images::default_cache_dir(),
        host_qemu_dir: crate::sandbox::HOST_QEMU_DIR.into(),
        private: true,
    };
    let images = crate::sandbox::registrar_images(planned);
    match tokio.block_on(Sandbox::prepare(&options, &images, &images_progress)) {
        Ok(sandbox) => {
            match sandbox.private_status() {
                Ok(()) => progress!(
                    "hermetic       yes: each instance that writes binfmt_misc runs in a private \
                     registry of its own, in parallel; the host's is only read"
                ),
                Err(why) => progress!(
                    "hermetic       no: instances that write binfmt_misc run one at a time on the \
                     host's registry, saved and restored ({why})"
                ),
            }
            for (image, view) in sandbox.views() {
                progress!("emulators      `{image}`: {}", view.origin);
            }
            Ok(sandbox)
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            eprintln!(
                "  hint: Debian's archive must be reachable to fetch QEMU; or install \
                 `qemu-user-static`, or run the registrar images on a container engine"
            );
            Err(exit::ENVIRONMENT)
        }
    }
}

/// The engine `--engine` names, where its environment says it answers.
fn image_engine(choice: crate::cli::BuildEngine) -> crate::images::ImageEngine {
    match choice {
        crate::cli::BuildEngine::Docker => crate::images::ImageEngine::Docker(None),
        crate::cli::BuildEngine::Podman => crate::images::ImageEngine::Podman(None),
    }
}

fn tokio_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn show_plan(select: &SelectArgs) -> u8 {
    let instances = match instances(select, scenario::DEFAULT_RUN_ID) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let tokio = match tokio_runtime() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return exit::ENVIRONMENT;
        }
    };
    let (engine, probe) = tokio.block_on(connect(select));
    let host = HostInfo::read();
    let planned = with_engine!(&engine, rt => plan::plan(instances, rt, probe, &host));
    // On the host runtime, binfmt writers get private registries where the
    // kernel allows it, as `run` would give them.
    let private = matches!(engine, Engine::Host(_))
        && std::env::current_exe().is_ok_and(|helper| {
            tokio
                .block_on(crate::sandbox::detect_private(&helper))
                .is_ok()
        });
    print_plan(&planned, private);
    exit::OK
}

/// The plan's lines; `private`: binfmt writers run in private registries,
/// in parallel, instead of alone.
fn print_plan(planned: &[Planned], private: bool) {
    let runnable = planned.iter().filter(|p| p.skip.is_none()).count();
    let writer = if private { "PRIVATE " } else { "ALONE  " };
    for p in planned {
        match &p.skip {
            Some(reason) => say!("SKIP   {}: {reason}", p.instance.id),
            None if p.is_disruptive() => say!("{writer}{}", p.instance.id),
            None => say!("RUN    {}", p.instance.id),
        }
    }
    let writers = if private {
        "in private binfmt_misc registries"
    } else {
        "alone, writing binfmt_misc"
    };
    say!(
        "{} instances: {runnable} to run ({} {writers}), {} skipped",
        planned.len(),
        planned
            .iter()
            .filter(|p| p.skip.is_none() && p.is_disruptive())
            .count(),
        planned.len() - runnable
    );
}

fn run(args: &RunArgs, verbose: bool) -> u8 {
    let run_id = args.run_id.clone().unwrap_or_else(default_run_id);
    let scenarios = match load_selected(&args.select) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let vars = match overrides(&args.select, &run_id) {
        Ok(vars) => vars,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let instances = match expand_all(&scenarios, &vars, &args.select) {
        Ok(i) => i,
        Err(code) => return code,
    };
    if instances.is_empty() && !args.allow_empty {
        eprintln!(
            "error: no scenario instance selected (use `--allow-empty` to accept an empty selection)"
        );
        return exit::USAGE;
    }
    let tokio = match tokio_runtime() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return exit::ENVIRONMENT;
        }
    };
    let (engine, probe, tried) = tokio.block_on(connect_tried(&args.select));
    for line in crate::fallback::notice(&tried, engine_kind(&engine)) {
        eprintln!("{line}");
    }
    // `--keep` leaves each container in place too, not only the images.
    let engine = match engine {
        Engine::Docker(d) => Engine::Docker(d.with_keep(args.keep)),
        Engine::Podman(p) => Engine::Podman(p.with_keep(args.keep)),
        Engine::Singularity(s) => Engine::Singularity(s.with_keep(args.keep)),
        other => other,
    };
    let require =
        args.require_engine || std::env::var_os("QUS_REQUIRE_ENGINES").is_some_and(|v| v == "1");
    if let (true, Err(e)) = (require, &probe) {
        eprintln!("error: the engine is required but unusable: {e}");
        eprintln!("  hint: pick another with `--runtime docker|podman|singularity|host`");
        return exit::ENVIRONMENT;
    }
    let host = HostInfo::read();
    // Whether the run may write binfmt_misc: it then saves the host's
    // entries first (and registers each QEMU's handlers as a baseline).
    let writes_host = writes_host(&host);
    let groups = if args.qemu.is_empty() {
        None
    } else {
        match qemu::groups(&tokio, &engine, &probe, args, &vars, &scenarios, &host) {
            Ok(groups) => Some(groups),
            Err(code) => return code,
        }
    };
    let planned = match &groups {
        Some(_) => Vec::new(),
        None => with_engine!(&engine, rt => plan::plan(instances, rt, probe, &host)),
    };
    if !args.no_prepare {
        let all: Vec<Planned> = match &groups {
            Some(groups) => groups
                .iter()
                .flat_map(|g| g.planned.iter().cloned())
                .collect(),
            None => planned.clone(),
        };
        if let Err(code) = prepare_images(&tokio, &engine, &all) {
            return code;
        }
    }
    let all: Vec<Planned> = match &groups {
        Some(groups) => groups
            .iter()
            .flat_map(|g| g.planned.iter().cloned())
            .collect(),
        None => planned.clone(),
    };
    let sandbox = match &engine {
        Engine::Host(_) => match prepare_sandbox(&tokio, &all) {
            Ok(sandbox) => Some(std::sync::Arc::new(sandbox)),
            Err(code) => return code,
        },
        _ => None,
    };
    let hermetic = sandbox.as_ref().is_some_and(|s| s.is_private());
    // Save the host's binfmt_misc state whenever we could change it; a
    // hermetic run writes only private registries, and compares.
    let guard = if hermetic {
        match HostGuard::watch(qus_registrar::binfmt::Binfmt::default()) {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!(
                    "error: failed to read the host's binfmt_misc entries: {}",
                    error_chain(&e)
                );
                return exit::ENVIRONMENT;
            }
        }
    } else if writes_host {
        match HostGuard::take(qus_registrar::binfmt::Binfmt::default()) {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!(
                    "error: failed to save the host's binfmt_misc entries: {}",
                    error_chain(&e)
                );
                return exit::ENVIRONMENT;
            }
        }
    } else {
        None
    };
    let options = RunOptions {
        run_id,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        fail_fast: args.fail_fast,
        timeout: args.timeout,
        step_timeout: args.step_timeout,
        keep: args.keep,
        teardown_grace: TEARDOWN_GRACE,
        sandbox,
    };
    let mut reporters = reporters(args, verbose);
    let mut on_event = |e: &Event| reporters.handle(e);
    let end = match groups {
        Some(groups) => {
            let matrix = QemuMatrix {
                groups,
                probe: (host.binfmt != qus_registrar::binfmt::MountState::Missing)
                    .then(|| std::sync::Arc::new(HostQemuProbe::default()) as std::sync::Arc<_>),
            };
            with_engine!(engine, rt => runner::run_matrix(&tokio, rt, matrix, options, guard, &mut on_event))
        }
        None => {
            with_engine!(engine, rt => runner::run(&tokio, rt, planned, options, guard, &mut on_event))
        }
    };
    let report_result = reporters.finish();
    let end = match end {
        Ok(end) => end,
        Err(e) => {
            eprintln!("error: the run failed: {e}");
            return exit::ENVIRONMENT;
        }
    };
    if let Err(e) = report_result {
        if e.is_broken_pipe() {
            return summary_code(&end.summary);
        }
        eprintln!("error: {}", error_chain(&e));
        return exit::ENVIRONMENT;
    }
    if let Some(e) = &end.restore_error {
        eprintln!("error: failed to restore the host's binfmt_misc entries: {e}");
        return exit::ENVIRONMENT;
    }
    if let Some(reason) = &end.interrupted {
        if end.summary.host_state_restored == Some(true) {
            eprintln!("error: {reason}; the host's binfmt_misc state was restored");
        } else {
            eprintln!("error: {reason}");
        }
        if reason.starts_with("interrupted") {
            return exit::INTERRUPTED;
        }
        return exit::FAILED;
    }
    let summary = &end.summary;
    let executed = summary.passed + summary.failed + summary.errored + summary.timed_out;
    if executed == 0
        && crate::fallback::is_ci(std::env::var(crate::fallback::CI_VAR).ok().as_deref())
    {
        eprintln!(
            "error: `CI` is set and no instance executed ({} skipped): a CI run that proves \
             nothing fails",
            summary.skipped
        );
        eprintln!("  hint: start an engine (see the notes above, or `qus-harness doctor`)");
        return exit::ENVIRONMENT;
    }
    summary_code(&end.summary)
}

/// Whether a run may write the host's binfmt_misc: as root, with
/// binfmt_misc in the kernel.
fn writes_host(host: &HostInfo) -> bool {
    host.is_root && host.binfmt != qus_registrar::binfmt::MountState::Missing
}

fn summary_code(summary: &crate::report::RunSummary) -> u8 {
    u8::try_from(summary.exit_code()).unwrap_or(exit::FAILED)
}

fn reporters(args: &RunArgs, verbose: bool) -> Reporters {
    let stdout = io::stdout();
    let mode = if stdout.is_terminal() && std::env::var_os("CI").is_none() {
        ConsoleMode::Interactive
    } else {
        ConsoleMode::Plain
    };
    let mut reporters =
        Reporters::new().with(ConsoleReporter::new(Box::new(stdout), mode, verbose));
    if let Some(path) = &args.junit {
        reporters.push(JunitReporter::new(path.clone()));
    }
    if let Some(path) = &args.json {
        reporters.push(JsonReporter::new(path.clone()));
    }
    reporters
}

/// `run-<unix seconds>-<pid>`: unique enough to label one run's containers.
fn default_run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("run-{secs}-{}", std::process::id())
}

fn doctor(args: &DoctorArgs) -> u8 {
    let tokio = match tokio_runtime() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return exit::ENVIRONMENT;
        }
    };
    let mut inputs = tokio.block_on(crate::doctor::Inputs::gather());
    if args.fix {
        match fix::fix(&tokio, &inputs, args.dry_run) {
            // Read the host again: the report shows it as fixed.
            Ok(true) => inputs = tokio.block_on(crate::doctor::Inputs::gather()),
            Ok(false) => {}
            Err(code) => return code,
        }
    }
    // Plan the scenarios only when there are some to plan: the default
    // directory may not exist where doctor runs.
    let paths = &args.select.paths.paths;
    if paths.iter().all(|p| p.exists()) {
        let Ok(instances) = instances(&args.select, scenario::DEFAULT_RUN_ID) else {
            return exit::USAGE;
        };
        let (engine, probe) = tokio.block_on(connect(&args.select));
        let host = HostInfo::read();
        let planned = with_engine!(&engine, rt => plan::plan(instances, rt, probe, &host));
        inputs = inputs.with_scenarios(
            planned
                .into_iter()
                .map(|p| (p.instance.id, p.skip))
                .collect(),
        );
    }
    let checks = crate::doctor::checks(&inputs);
    let written = if args.json {
        serde_json::to_writer_pretty(io::stdout().lock(), &crate::doctor::render_json(&checks))
            .map_err(io::Error::other)
            .map(|()| say!())
    } else {
        crate::doctor::render_text(&checks, &mut io::stdout().lock())
    };
    if let Err(e) = written
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        eprintln!("error: failed to write the report: {e}");
        return exit::ENVIRONMENT;
    }
    crate::doctor::exit_code(&checks, args.strict)
}

/// Prints one line per finished step (`done  12.3s  image qus/...:latest`),
/// and one when a step starts, so a slow debootstrap shows it is alive.
fn images_progress(event: &crate::images::ImagesEvent) {
    use crate::images::{ImagesEvent, StepOutcome};
    match event {
        ImagesEvent::StepStarted { step } => progress!("start          {}", describe(step)),
        ImagesEvent::StepFinished {
            step,
            outcome,
            elapsed,
        } => {
            let secs = elapsed.as_secs_f64();
            match outcome {
                StepOutcome::Done => progress!("done   {secs:6.1}s  {}", describe(step)),
                StepOutcome::Skipped { reason } => {
                    progress!("skip   {secs:6.1}s  {}: {reason}", describe(step))
                }
                StepOutcome::Failed { message } => {
                    progress!("FAIL   {secs:6.1}s  {}: {message}", describe(step))
                }
            }
        }
    }
}

fn describe(step: &crate::images::Step) -> String {
    use crate::images::Step;
    match step {
        Step::UpdateLists { suite, dir } => {
            format!("apt-get update {suite} (in {})", dir.display())
        }
        Step::SelectPackage { wanted, suites } => format!(
            "choose {} in {}",
            wanted
                .as_deref()
                .map_or_else(|| "the newest QEMU".to_owned(), |w| format!("QEMU {w}")),
            suites
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Step::FetchDeb {
            package,
            version,
            suite,
            size,
            reason,
        } => {
            let mut text = format!("apt-get download {package}");
            if let Some(version) = version {
                text.push_str(&format!("={version}"));
            }
            if let Some(suite) = suite {
                text.push_str(&format!(" from {suite}"));
            }
            if let Some(size) = size {
                text.push_str(&format!(" ({:.1} MB)", *size as f64 / 1e6));
            }
            if let Some(reason) = reason {
                text.push_str(&format!(": {reason}"));
            }
            text
        }
        Step::UnpackDeb { path } => format!("unpack {}", path.display()),
        Step::CheckEmulators {
            package,
            count,
            machine,
        } => {
            format!("check the {count} emulators of {package} are static and for {machine}")
        }
        Step::CompileRegistrar { workspace } => {
            format!("compile a static qus-register in {}", workspace.display())
        }
        Step::CheckRegistrar { path } => format!("check {} is static", path.display()),
        Step::HashInputs => "hash the inputs (recipe)".into(),
        Step::Image { tags } => format!("image {}", tags.join(", ")),
        Step::WriteArtifacts { dir } => format!("release artifacts in {}", dir.display()),
        Step::RegisterHandlers { entries } => format!("register {}", entries.join(", ")),
        Step::Rootfs { arch, tarball } => format!("debootstrap {arch} ({})", tarball.display()),
        Step::VendorCrates { workspace } => {
            format!("cargo vendor the crates of {}", workspace.display())
        }
        Step::ExportImage { image, layout } => {
            format!("export {image} (OCI layout {})", layout.display())
        }
        Step::PushTag { reference } => format!("push {reference}"),
        Step::CrossCompile { machine, binary } => {
            format!(
                "cross-compile qus-register for {machine} ({})",
                binary.display()
            )
        }
    }
}

fn images_build(args: &ImagesBuildArgs) -> u8 {
    use crate::images::{BuildOptions, DebSource, RegistrarSource};
    let mut options = BuildOptions {
        repo: args.repo.clone(),
        deb: match &args.deb {
            Some(path) => DebSource::File(path.clone()),
            None if args.host_apt => DebSource::Host,
            None => DebSource::Apt {
                version: args.qemu_version.clone(),
                suite: args.suite.map(Into::into),
            },
        },
        output_dir: args.output.clone(),
        host_arch: args.host_arch.clone(),
        force: args.force,
        release: args.release,
        engine: image_engine(args.engine),
        handle_ctrl_c: true,
        ..BuildOptions::default()
    };
    if let Some(path) = &args.registrar {
        options.registrar = RegistrarSource::File(path.clone());
    }
    match crate::images::build(&options, &images_progress) {
        Ok(report) => {
            say!(
                "{} {}{} (QEMU {}, images {}), qus-register {}, host {}{} in {}",
                report.package,
                report.debian_version,
                report
                    .suite
                    .map(|s| format!(" from {s}"))
                    .unwrap_or_default(),
                report.qemu_version,
                report.version,
                report.registrar_version,
                report.host_arch,
                report
                    .platform
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default(),
                report.repo
            );
            print_images(&report.images);
            // One line per newer version holding unversioned tags.
            let mut newer: Vec<&str> = report.kept_newer.iter().map(|(_, v)| v.as_str()).collect();
            newer.sort_by(|a, b| crate::images::compare_image_versions(a, b));
            newer.dedup();
            for version in newer {
                let tags: Vec<&str> = report
                    .kept_newer
                    .iter()
                    .filter(|(_, v)| v == version)
                    .map(|(t, _)| t.rsplit_once(':').map_or(t.as_str(), |(_, tag)| tag))
                    .collect();
                say!(
                    "kept      {} unversioned tags on the newer {version}: {}",
                    tags.len(),
                    tags.join(", ")
                );
            }
            for artifact in &report.artifacts {
                say!("artifact  {}", artifact.display());
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            if e.is_usage() {
                exit::USAGE
            } else if e.is_environment() {
                exit::ENVIRONMENT
            } else {
                exit::FAILED
            }
        }
    }
}

fn images_fixtures(args: &ImagesFixturesArgs) -> u8 {
    use crate::images::{DebianArch, FixtureOptions, Flavor};
    let mut options = FixtureOptions {
        mirror: args.mirror.clone(),
        workloads: DebianArch::WORKLOADS.to_vec(),
        force: args.force,
        engine: image_engine(args.engine),
        handle_ctrl_c: true,
        ..FixtureOptions::default()
    };
    if let Some(dir) = &args.cache_dir {
        options.cache_dir = dir.clone();
    }
    if let Some(list) = &args.arches {
        let (mut arches, mut workloads) = (Vec::new(), Vec::new());
        for name in list
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty() && *s != "none")
        {
            // `workload-<arch>` names a workload fixture; anything else
            // must be an architecture.
            if let Some((Flavor::Workload, arch)) = Flavor::parse_stem(name) {
                workloads.push(arch);
                continue;
            }
            match name.parse::<DebianArch>() {
                Ok(a) => arches.push(a),
                Err(e) => {
                    eprintln!(
                        "error: invalid value `{name}` for `--arches`: {e} (or `workload-<arch>`)"
                    );
                    return exit::USAGE;
                }
            }
        }
        options.arches = arches;
        options.workloads = workloads;
    }
    match crate::images::fixtures(&options, &images_progress) {
        Ok(report) => {
            for r in &report.rootfs {
                let how = if r.debootstrapped {
                    "debootstrapped"
                } else {
                    "from cache"
                };
                say!(
                    "rootfs    {} ({how}, uname {}) {}",
                    r.image,
                    r.uname,
                    r.tarball.display()
                );
            }
            print_images(&report.images);
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            exit::FAILED
        }
    }
}

fn images_registrar(args: &crate::cli::ImagesRegistrarArgs) -> u8 {
    use crate::images::{CROSS_TARGETS, CrossOptions, CrossTarget};
    let mut targets: Vec<&'static CrossTarget> = Vec::new();
    match &args.arch {
        None => targets.extend(CROSS_TARGETS.iter()),
        Some(list) => {
            // Parsed by `cli.rs` already; looked up again for the table row.
            for name in list {
                match CrossTarget::find(name) {
                    Ok(t) => targets.push(t),
                    Err(e) => {
                        eprintln!("error: invalid value `{name}` for `--arch`: {e}");
                        return exit::USAGE;
                    }
                }
            }
        }
    }
    let mut options = CrossOptions {
        force: args.force,
        engine: image_engine(args.engine),
        handle_ctrl_c: true,
        ..CrossOptions::default()
    };
    if let Some(dir) = &args.cache_dir {
        options.cache_dir = dir.clone();
    }
    let built = match crate::images::cross_registrars(&targets, &options, &images_progress) {
        Ok(built) => built,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            return if e.is_usage() {
                exit::USAGE
            } else if e.is_environment() {
                exit::ENVIRONMENT
            } else {
                exit::FAILED
            };
        }
    };
    for binary in &built {
        let how = if binary.compiled {
            "compiled"
        } else {
            "cached"
        };
        let mut path = binary.path.clone();
        if let Some(dir) = &args.output {
            let copy = dir.join(format!("qus-register-{}", binary.machine));
            let copied = std::fs::create_dir_all(dir).and_then(|()| std::fs::copy(&path, &copy));
            if let Err(e) = copied {
                eprintln!(
                    "error: failed to copy `{}` to `{}`: {e}",
                    path.display(),
                    copy.display()
                );
                return exit::FAILED;
            }
            path = copy;
        }
        say!(
            "{} {how} {} {}",
            binary.machine,
            binary.size,
            path.display()
        );
    }
    exit::OK
}

fn images_index(args: &crate::cli::ImagesIndexArgs) -> u8 {
    let options = crate::images::IndexOptions {
        repo: args.repo.clone(),
        destination: args.to.clone(),
        handle_ctrl_c: true,
        ..crate::images::IndexOptions::default()
    };
    match crate::images::index(&options, &images_progress) {
        Ok(report) => {
            for host in &report.hosts {
                say!(
                    "host      {} ({}): {} tags in {}",
                    host.machine,
                    host.platform,
                    host.tags,
                    host.repo
                );
            }
            for tag in &report.pushed {
                say!(
                    "{}  {} {} {}",
                    if tag.is_index { "index" } else { "image" },
                    tag.reference,
                    tag.digest,
                    tag.platforms.join(",")
                );
            }
            let indexes = report.pushed.iter().filter(|t| t.is_index).count();
            say!(
                "{} tags pushed: {indexes} image indexes, {} single-platform images",
                report.pushed.len(),
                report.pushed.len() - indexes
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            if e.is_usage() {
                exit::USAGE
            } else if e.is_environment() {
                exit::ENVIRONMENT
            } else {
                exit::FAILED
            }
        }
    }
}

fn print_images(images: &[crate::images::BuiltImage]) {
    use crate::images::ImageStatus;
    let (mut built, mut unchanged) = (0, 0);
    for image in images {
        let status = match image.status {
            ImageStatus::Built => {
                built += 1;
                "built    "
            }
            ImageStatus::Retagged => {
                built += 1;
                "retagged "
            }
            ImageStatus::Unchanged => {
                unchanged += 1;
                "unchanged"
            }
        };
        say!("{status} {}", image.tags.join(", "));
    }
    say!(
        "{} images: {built} built or retagged, {unchanged} unchanged",
        images.len()
    );
}

/// `error: …` then one indented `caused by:` line per cause.
fn print_error(e: &dyn std::error::Error) {
    eprintln!("error: {e}");
    let mut source = e.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
}
