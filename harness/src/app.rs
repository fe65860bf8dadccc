//! What each `qus-harness` command does with its parsed arguments.
//!
//! The main function is [`main`]: it dispatches a [`Cli`] to `run`,
//! `validate`, `schema`, `list` or `plan` and returns the exit status.
//! Results go to stdout, diagnostics to stderr through `tracing`, errors to
//! stderr as `error: …`. Loading is complete (every file, every error)
//! before anything starts.

use std::io::{self, IsTerminal as _};

use crate::cli::{Cli, Command, PathsArgs, RunArgs, RuntimeChoice, SelectArgs, exit};
use crate::host::{HostGuard, HostInfo};
use crate::plan::{self, Planned, Selection};
use crate::report::{
    ConsoleMode, ConsoleReporter, Event, JsonReporter, JunitReporter, Reporter, Reporters,
};
use crate::runner::{self, RunOptions, error_chain};
use crate::runtime::{DockerRuntime, HostRuntime, Runtime};
use crate::scenario::{self, Instance, Scenario, VarOverrides};

/// Runs a parsed command line; returns the exit status.
pub fn main(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(args) => run(&args, cli.verbose > 0),
        Command::Validate(paths) => validate(&paths),
        Command::Schema => {
            let schema = scenario::json_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("a JSON value serializes")
            );
            exit::OK
        }
        Command::List(paths) => list(&paths),
        Command::Plan(select) => show_plan(&select),
    }
}

/// Loads every file; prints every error (`file:line:col: …`) and returns
/// `None` when any file fails.
fn load(paths: &PathsArgs) -> Option<Vec<Scenario>> {
    match scenario::load_paths(&paths.paths) {
        Ok(scenarios) => Some(scenarios),
        Err(errors) => {
            for e in errors.errors() {
                eprintln!("error: {e}");
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
    println!("ok: {} scenarios, {instances} instances", scenarios.len());
    exit::OK
}

fn list(paths: &PathsArgs) -> u8 {
    let Some(scenarios) = load(paths) else {
        return exit::USAGE;
    };
    println!(
        "{:<36} {:>9}  {:<28} {:<30} REQUIRES",
        "SCENARIO", "INSTANCES", "TAGS", "RUNTIMES"
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
        println!(
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
    let scenarios = load(&select.paths).ok_or(exit::USAGE)?;
    let vars = overrides(select, run_id).map_err(|e| {
        eprintln!("error: {e}");
        exit::USAGE
    })?;
    let mut all = Vec::new();
    for s in &scenarios {
        match scenario::expand(s, &vars) {
            Ok(mut instances) => all.append(&mut instances),
            Err(e) => {
                eprintln!("error: {e}");
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
    Host(HostRuntime),
}

/// Connects the chosen engine. For `auto`, the first that answers; for an
/// explicit choice, that engine or the error saying why it is unusable.
async fn connect(choice: RuntimeChoice) -> (Engine, Result<(), String>) {
    match choice {
        RuntimeChoice::Docker => match DockerRuntime::connect().await {
            Ok(d) => {
                let probe = d.probe().await.map(|_| ()).map_err(|e| error_chain(&e));
                (Engine::Docker(d), probe)
            }
            Err(e) => (Engine::Host(HostRuntime::new()), Err(error_chain(&e))),
        },
        RuntimeChoice::Auto => {
            if let Ok(d) = DockerRuntime::connect().await
                && d.probe().await.is_ok()
            {
                return (Engine::Docker(d), Ok(()));
            }
            (Engine::Host(HostRuntime::new()), Ok(()))
        }
        RuntimeChoice::Host => (Engine::Host(HostRuntime::new()), Ok(())),
        RuntimeChoice::Podman | RuntimeChoice::Singularity => (
            Engine::Host(HostRuntime::new()),
            Err(format!(
                "the `{choice:?}` runtime is not available in this build"
            )),
        ),
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
    let (engine, probe) = tokio.block_on(connect(select.runtime));
    let host = HostInfo::read();
    let planned = match &engine {
        Engine::Docker(d) => plan::plan(instances, d, probe, &host),
        Engine::Host(h) => plan::plan(instances, h, probe, &host),
    };
    print_plan(&planned);
    exit::OK
}

fn print_plan(planned: &[Planned]) {
    let runnable = planned.iter().filter(|p| p.skip.is_none()).count();
    for p in planned {
        match &p.skip {
            Some(reason) => println!("SKIP   {}: {reason}", p.instance.id),
            None if p.is_disruptive() => println!("ALONE  {}", p.instance.id),
            None => println!("RUN    {}", p.instance.id),
        }
    }
    println!(
        "{} instances: {runnable} to run ({} alone, writing binfmt_misc), {} skipped",
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
    let instances = match instances(&args.select, &run_id) {
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
    let (engine, probe) = tokio.block_on(connect(args.select.runtime));
    let require =
        args.require_engine || std::env::var_os("QUS_REQUIRE_ENGINES").is_some_and(|v| v == "1");
    if let (true, Err(e)) = (require, &probe) {
        eprintln!("error: the engine is required but unusable: {e}");
        eprintln!("  hint: pick another with `--runtime docker|podman|singularity|host`");
        return exit::ENVIRONMENT;
    }
    let host = HostInfo::read();
    let planned = match &engine {
        Engine::Docker(d) => plan::plan(instances, d, probe, &host),
        Engine::Host(h) => plan::plan(instances, h, probe, &host),
    };
    // Save the host's binfmt_misc state whenever we could change it.
    let guard = if host.is_root && host.binfmt != qus_registrar::binfmt::MountState::Missing {
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
    };
    let mut reporters = reporters(args, verbose);
    let mut on_event = |e: &Event| reporters.handle(e);
    let end = match engine {
        Engine::Docker(d) => runner::run(&tokio, d, planned, options, guard, &mut on_event),
        Engine::Host(h) => runner::run(&tokio, h, planned, options, guard, &mut on_event),
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
        eprintln!("error: {reason}; the host's binfmt_misc state was restored");
        if reason.starts_with("interrupted") {
            return exit::INTERRUPTED;
        }
        return exit::FAILED;
    }
    summary_code(&end.summary)
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
