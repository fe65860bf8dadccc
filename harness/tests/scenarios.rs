//! One test per scenario instance and runtime: `<runtime>::<instance id>`.
//!
//! Collection is pure and fast (so `--list` and filters cost nothing): every
//! file under the repository's `scenarios/` directory (or
//! `$QUS_SCENARIOS_DIR`) is loaded and expanded, and each instance becomes
//! one trial per runtime this build enables: `host` always, `docker`,
//! `podman` and `singularity` with the cargo features of the same names.
//! A missing or empty directory gives zero tests. Files that do not load,
//! or do not expand, give one failing trial each (`scenarios::load`,
//! `scenarios::expand::<name>`), never a silent pass.
//!
//! A trial runs its one instance through the library as `qus-harness run`
//! does: expansion with the same variables (`--var`s are read from
//! `QUS_VARS` as `K=V,K=V`; declared variables from the environment; a
//! fresh run id), the engine (connected and probed once per process, and
//! only for an instance that could run on it), `plan`, the images it needs
//! and the engine lacks (`prepare::prepare_run`: qus's own are built with
//! Docker, Podman gets copies), then `runner::run` with a `HostGuard` when
//! root. On the host runtime the trial gets the sandbox `qus-harness run`
//! prepares (`sandbox::Sandbox`): where the kernel allows it, an instance
//! that writes binfmt_misc runs in a private registry, and the host's is
//! only compared before and after (a watching `HostGuard`); registrar
//! images run as the host's `qus-register` with the image's emulators.
//! It passes only if the instance passed. An
//! instance the plan skips is *ignored* with the reason: a scenario-level
//! reason (another runtime, root, kernel, a step this runtime cannot
//! express) always, an unusable engine unless `QUS_REQUIRE_ENGINES=1`, which
//! makes that a failure. Trials run one at a time: scenarios may write the
//! host's binfmt_misc.
//!
//! `QUS_SCENARIO_RUNTIMES=host,docker` keeps the trials of those runtimes
//! only (a runtime this build does not enable, or an unknown name, is one
//! failing trial `scenarios::runtimes` naming it). The CI gate sets it to
//! `host`: its suite stages run the engines' instances through
//! `qus-harness run`, on each QEMU it gates, with the reports it checks.
//!
//! ```console
//! cargo test -p qus-harness --features docker --test scenarios -- 'docker::persistent'
//! QUS_VARS=ARM64_IMAGE=arm64v8/ubuntu cargo test -p qus-harness --features docker --test scenarios
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use qus_harness::host::{HostGuard, HostInfo};
use qus_harness::images::{ImageEngine, NoProgress};
use qus_harness::plan::{self, Planned};
use qus_harness::prepare::{ImageStore, PrepareNeeds, prepare_run};
use qus_harness::report::{Event, ScenarioResult, Status};
use qus_harness::runner::{self, RunOptions, TEARDOWN_GRACE};
use qus_harness::runtime::{FakeRuntime, HostRuntime, Runtime, RuntimeKind};
use qus_harness::sandbox::{Sandbox, SandboxOptions};
use qus_harness::scenario::{self, Instance, Scenario, VarOverrides};
use qus_registrar::binfmt::{Binfmt, MountState};

/// Overrides the scenario directory.
const DIR_VAR: &str = "QUS_SCENARIOS_DIR";

/// `--var`s as `K=V,K=V`.
const VARS_VAR: &str = "QUS_VARS";

/// Keeps the trials of the runtimes named, comma-separated.
const RUNTIMES_VAR: &str = "QUS_SCENARIO_RUNTIMES";

/// Turns an unusable engine into a failure.
const REQUIRE_ENGINES: &str = "QUS_REQUIRE_ENGINES";

/// The CLI's default `--step-timeout`.
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// How much of a failing step's output a failure message shows.
const OUTPUT_TAIL: usize = 2000;

fn main() {
    let mut args = Arguments::from_args();
    // Scenarios may write the host's binfmt_misc, which is global.
    args.test_threads = Some(1);
    libtest_mimic::run(&args, trials()).exit();
}

/// The runtimes to test: those this build enables, or the ones
/// `$QUS_SCENARIO_RUNTIMES` names among them.
fn selected_runtimes() -> Result<Vec<RuntimeKind>, String> {
    let enabled = runtimes();
    let Ok(text) = std::env::var(RUNTIMES_VAR) else {
        return Ok(enabled);
    };
    let mut chosen = Vec::new();
    for name in text.split(',').map(str::trim) {
        let kind: RuntimeKind = name.parse().map_err(|_| {
            format!("{RUNTIMES_VAR}: `{name}` is not a runtime (host, docker, podman, singularity)")
        })?;
        if !enabled.contains(&kind) {
            return Err(format!(
                "{RUNTIMES_VAR}: `{name}` is not enabled in this build (its cargo feature is off)"
            ));
        }
        if !chosen.contains(&kind) {
            chosen.push(kind);
        }
    }
    Ok(enabled.into_iter().filter(|k| chosen.contains(k)).collect())
}

/// The runtimes this build tests, in a fixed order.
fn runtimes() -> Vec<RuntimeKind> {
    let mut kinds = Vec::new();
    if cfg!(feature = "docker") {
        kinds.push(RuntimeKind::Docker);
    }
    if cfg!(feature = "podman") {
        kinds.push(RuntimeKind::Podman);
    }
    if cfg!(feature = "singularity") {
        kinds.push(RuntimeKind::Singularity);
    }
    kinds.push(RuntimeKind::Host);
    kinds
}

/// The scenario directory: `$QUS_SCENARIOS_DIR`, else `scenarios/` at the
/// repository root.
fn scenario_dir() -> PathBuf {
    match std::env::var_os(DIR_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios"),
    }
}

/// Every trial: one per instance and runtime, plus one failing trial per
/// file set that does not load or scenario that does not expand.
fn trials() -> Vec<Trial> {
    let dir = scenario_dir();
    if !dir.is_dir() {
        return Vec::new();
    }
    let scenarios = match scenario::load_paths(std::slice::from_ref(&dir)) {
        Ok(scenarios) => scenarios,
        Err(errors) => {
            let text: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
            let message = format!(
                "{} error(s) in scenario files:\n{}",
                text.len(),
                text.join("\n")
            );
            return vec![Trial::test("scenarios::load", move || Err(message.into()))];
        }
    };
    let cli_vars = match cli_vars() {
        Ok(vars) => vars,
        Err(message) => {
            return vec![Trial::test("scenarios::vars", move || Err(message.into()))];
        }
    };
    let kinds = match selected_runtimes() {
        Ok(kinds) => kinds,
        Err(message) => {
            return vec![Trial::test("scenarios::runtimes", move || {
                Err(message.into())
            })];
        }
    };
    let mut trials = Vec::new();
    for scenario in scenarios {
        let scenario = Arc::new(scenario);
        let ids = match scenario::expand(&scenario, &overrides(&cli_vars, scenario::DEFAULT_RUN_ID))
        {
            Ok(instances) => instances.into_iter().map(|i| i.id),
            Err(e) => {
                let message = e.to_string();
                trials.push(Trial::test(
                    format!("scenarios::expand::{}", scenario.name()),
                    move || Err(message.into()),
                ));
                continue;
            }
        };
        for id in ids {
            for &kind in &kinds {
                let (scenario, id, cli_vars) = (scenario.clone(), id.clone(), cli_vars.clone());
                trials.push(Trial::ignorable_test(
                    format!("{}::{id}", kind.as_str()),
                    move || run_trial(kind, &scenario, &id, &cli_vars),
                ));
            }
        }
    }
    trials
}

/// `QUS_VARS`, split at commas into `NAME=value` assignments.
fn cli_vars() -> Result<Vec<String>, String> {
    let Ok(text) = std::env::var(VARS_VAR) else {
        return Ok(Vec::new());
    };
    let vars: Vec<String> = text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
        .collect();
    for var in &vars {
        scenario::parse_var_assignment(var).map_err(|e| format!("{VARS_VAR}: {e}"))?;
    }
    Ok(vars)
}

/// The variables `qus-harness run` would use: `--var`s, the environment,
/// the run id, the host's architecture and the registrar binary.
fn overrides(cli_vars: &[String], run_id: &str) -> VarOverrides {
    let mut vars = VarOverrides::new()
        .with_env(std::env::vars())
        .with_run_id(run_id)
        .with_host_arch(HostInfo::read().machine);
    // `qus-register` next to the harness binary, as the CLI looks for it
    // next to itself; otherwise `PATH` decides.
    let sibling = Path::new(env!("CARGO_BIN_EXE_qus-harness")).with_file_name("qus-register");
    if sibling.is_file() {
        vars = vars.with_registrar_bin(sibling.display().to_string());
    }
    for assignment in cli_vars {
        vars = vars
            .with_assignment(assignment)
            .expect("assignments were checked at collection");
    }
    vars
}

/// A run id unique to this process and trial.
fn run_id() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "qus-scenarios-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn require_engines() -> bool {
    std::env::var(REQUIRE_ENGINES).is_ok_and(|v| v == "1")
}

/// An engine and its probe's verdict: `Err` says why it is unusable.
type Connected = (Engine, Result<(), String>);

/// A connected engine, or the kind of one that could not be reached.
#[derive(Clone)]
enum Engine {
    Host(HostRuntime),
    #[cfg(feature = "docker")]
    Docker(qus_harness::runtime::DockerRuntime),
    #[cfg(feature = "podman")]
    Podman(qus_harness::runtime::PodmanRuntime),
    #[cfg(feature = "singularity")]
    Singularity(qus_harness::runtime::SingularityRuntime),
    /// The engine could not be reached at all.
    Absent,
}

/// The tokio runtime every trial uses. Trials run one at a time; sharing
/// it lets [`engine`] connect and probe each engine once per process (a
/// probe detects privilege support by starting a container: seconds).
fn tokio() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime builds")
    })
}

/// The engine of `kind` and its probe's verdict, connected on first use.
fn engine(kind: RuntimeKind) -> Connected {
    static ENGINES: Mutex<BTreeMap<RuntimeKind, Connected>> = Mutex::new(BTreeMap::new());
    let mut engines = ENGINES.lock().unwrap_or_else(PoisonError::into_inner);
    engines
        .entry(kind)
        .or_insert_with(|| tokio().block_on(connect(kind)))
        .clone()
}

/// Connects the engine of `kind` and probes it; the probe's error, with
/// its causes, is the reason the engine is unusable.
async fn connect(kind: RuntimeKind) -> Connected {
    #[cfg(any(feature = "docker", feature = "podman", feature = "singularity"))]
    async fn probed<R: Runtime>(
        runtime: Result<R, qus_harness::runtime::RuntimeError>,
        wrap: fn(R) -> Engine,
    ) -> Connected {
        match runtime {
            Ok(runtime) => {
                let probe = runtime.probe().await.map(|_| ()).map_err(|e| chain(&e));
                (wrap(runtime), probe)
            }
            Err(e) => (Engine::Absent, Err(chain(&e))),
        }
    }
    match kind {
        #[cfg(feature = "docker")]
        RuntimeKind::Docker => {
            use qus_harness::runtime::DockerRuntime;
            probed(DockerRuntime::connect().await, Engine::Docker).await
        }
        #[cfg(feature = "podman")]
        RuntimeKind::Podman => {
            use qus_harness::runtime::PodmanRuntime;
            probed(PodmanRuntime::connect().await, Engine::Podman).await
        }
        #[cfg(feature = "singularity")]
        RuntimeKind::Singularity => match singularity_binary() {
            Ok(binary) => {
                use qus_harness::runtime::SingularityRuntime;
                // Words before every command (`sudo -n`), as the CLI's
                // `--singularity-prefix` reads them.
                let prefix = std::env::var("QUS_SINGULARITY_PREFIX").unwrap_or_default();
                let runtime = SingularityRuntime::connect(binary)
                    .await
                    .map(|r| r.with_prefix(prefix.split_whitespace().map(str::to_owned)));
                probed(runtime, Engine::Singularity).await
            }
            Err(reason) => (Engine::Absent, Err(reason)),
        },
        RuntimeKind::Host => (Engine::Host(HostRuntime::new()), Ok(())),
        #[allow(unreachable_patterns, reason = "reachable when a feature is off")]
        other => (
            Engine::Absent,
            Err(format!(
                "the `{other}` runtime is not enabled in this build"
            )),
        ),
    }
}

/// `$QUS_SINGULARITY_BIN` (the CLI's `--singularity-bin`), else
/// `apptainer` or `singularity` from `PATH`.
#[cfg(feature = "singularity")]
fn singularity_binary() -> Result<String, String> {
    if let Some(binary) = std::env::var("QUS_SINGULARITY_BIN")
        .ok()
        .filter(|b| !b.is_empty())
    {
        return Ok(binary);
    }
    ["apptainer", "singularity"]
        .into_iter()
        .find(|name| which::which(name).is_ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            "neither `apptainer` nor `singularity` is on PATH (set QUS_SINGULARITY_BIN)".to_owned()
        })
}

/// The error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs instance `id` of `scenario` on the runtime of `kind`.
fn run_trial(
    kind: RuntimeKind,
    scenario: &Scenario,
    id: &str,
    cli_vars: &[String],
) -> Result<Completion, Failed> {
    let run_id = run_id();
    let instance = scenario::expand(scenario, &overrides(cli_vars, &run_id))
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| format!("instance `{id}` vanished on re-expansion"))?;
    let host = HostInfo::read();
    // Reasons that need no engine (another runtime, root, binfmt_misc,
    // kernel), against a stand-in of the same kind that can do anything:
    // no engine is contacted for an instance that cannot run anyway.
    let stand_in = FakeRuntime::of_kind(kind);
    if let Some(reason) = one(plan::plan(vec![instance.clone()], &stand_in, Ok(()), &host)).skip {
        return Ok(Completion::ignored_with(reason));
    }
    let (engine, probe) = engine(kind);
    match &engine {
        Engine::Host(r) => run_on(*r, instance, probe, &host, run_id, ImageStore::None),
        #[cfg(feature = "docker")]
        Engine::Docker(r) => run_on(
            r.clone(),
            instance,
            probe,
            &host,
            run_id,
            ImageStore::Docker(r),
        ),
        #[cfg(feature = "podman")]
        Engine::Podman(r) => run_on(
            r.clone(),
            instance,
            probe,
            &host,
            run_id,
            ImageStore::Podman(r),
        ),
        #[cfg(feature = "singularity")]
        Engine::Singularity(r) => run_on(
            r.clone(),
            instance,
            probe,
            &host,
            run_id,
            ImageStore::FromDocker,
        ),
        // Nothing to run on: the stand-in plans the engine's absence.
        Engine::Absent => run_on(stand_in, instance, probe, &host, run_id, ImageStore::None),
    }
}

/// Plans the instance on `runtime` and, when nothing skips it, makes its
/// images present in `store` as `qus-harness run` does, then runs it.
fn run_on<R: Runtime + 'static>(
    runtime: R,
    instance: Instance,
    probe: Result<(), String>,
    host: &HostInfo,
    run_id: String,
    store: ImageStore<'_>,
) -> Result<Completion, Failed> {
    // A skip with a usable engine belongs to the scenario (a step this
    // runtime cannot express): always ignored.
    let scenario_level = one(plan::plan(vec![instance.clone()], &runtime, Ok(()), host));
    if let Some(reason) = scenario_level.skip {
        return Ok(Completion::ignored_with(reason));
    }
    // What is left is the engine's absence.
    let planned = one(plan::plan(vec![instance], &runtime, probe, host));
    if let Some(reason) = planned.skip {
        return if require_engines() {
            Err(format!("{REQUIRE_ENGINES}=1 but {reason}").into())
        } else {
            Ok(Completion::ignored_with(reason))
        };
    }
    let mut announce = |needs: &PrepareNeeds, builder: &ImageEngine| {
        eprintln!(
            "building what the instance needs with {}: {}",
            builder.name(),
            needs.buildable.join(", ")
        );
    };
    prepare_run(
        tokio(),
        store,
        std::slice::from_ref(&planned),
        &mut announce,
        &NoProgress,
    )
    .map_err(|e| chain(&e))?;
    let sandbox = if runtime.kind() == RuntimeKind::Host {
        Some(Arc::new(sandbox(std::slice::from_ref(&planned))?))
    } else {
        None
    };
    // Save the host's binfmt_misc state whenever the run could change it,
    // as the CLI does; a hermetic run only compares it.
    let guard = if sandbox.as_ref().is_some_and(|s| s.is_private()) {
        let guard = HostGuard::watch(Binfmt::default()).map_err(|e| {
            format!(
                "failed to read the host's binfmt_misc entries: {}",
                chain(&e)
            )
        })?;
        Some(guard)
    } else if host.is_root && host.binfmt != MountState::Missing {
        let guard = HostGuard::take(Binfmt::default()).map_err(|e| {
            format!(
                "failed to save the host's binfmt_misc entries: {}",
                chain(&e)
            )
        })?;
        Some(guard)
    } else {
        None
    };
    let options = RunOptions {
        run_id,
        jobs: 1,
        fail_fast: false,
        timeout: None,
        step_timeout: STEP_TIMEOUT,
        keep: false,
        teardown_grace: TEARDOWN_GRACE,
        sandbox,
    };
    let mut result = None;
    let mut skipped = None;
    let end = runner::run(
        tokio(),
        runtime,
        vec![planned],
        options,
        guard,
        |event| match event {
            Event::ScenarioFinished { result: r, .. } => result = Some(r.clone()),
            Event::ScenarioSkipped { reason, .. } => skipped = Some(reason.clone()),
            _ => {}
        },
    )
    .map_err(|e| format!("the run failed: {e}"))?;
    if let Some(e) = &end.restore_error {
        return Err(format!("failed to restore the host's binfmt_misc entries: {e}").into());
    }
    if let Some(reason) = &end.interrupted {
        return Err(reason.clone().into());
    }
    match (result, skipped) {
        (Some(result), _) if result.status == Status::Passed => Ok(Completion::Completed),
        (Some(result), _) => Err(describe(&result).into()),
        (None, Some(reason)) => Err(format!("not run: {reason}").into()),
        (None, None) => Err("the runner reported no result".into()),
    }
}

/// The host runtime's sandbox for one planned instance, as `qus-harness
/// run` prepares it: this build's `qus-harness` as the helper, the
/// `qus-register` next to it, emulators fetched into the cache where the
/// host has none.
fn sandbox(planned: &[Planned]) -> Result<Sandbox, Failed> {
    let helper = PathBuf::from(env!("CARGO_BIN_EXE_qus-harness"));
    let registrar = helper.with_file_name("qus-register");
    let options = SandboxOptions {
        registrar: if registrar.is_file() {
            registrar.display().to_string()
        } else {
            "qus-register".to_owned()
        },
        helper,
        cache_dir: qus_harness::images::default_cache_dir(),
        host_qemu_dir: qus_harness::sandbox::HOST_QEMU_DIR.into(),
        private: true,
    };
    let images = qus_harness::sandbox::registrar_images(planned);
    tokio()
        .block_on(Sandbox::prepare(&options, &images, &NoProgress))
        .map_err(|e| chain(&e).into())
}

/// The single planned instance of a one-instance plan.
fn one(mut planned: Vec<Planned>) -> Planned {
    assert_eq!(planned.len(), 1, "a plan keeps every instance");
    planned.remove(0)
}

/// A failed instance for people: its status and reason, every step, and
/// the tail of the failing step's output.
fn describe(result: &ScenarioResult) -> String {
    let mut text = format!(
        "{}: {}\n",
        result.status,
        result.failure_message().unwrap_or("no message")
    );
    for (phase, index, name, step) in &result.steps {
        text.push_str(&format!(
            "  {phase} {index} `{name}`: {}{}{}\n",
            step.status,
            if step.attempts > 1 {
                format!(" after {} attempts", step.attempts)
            } else {
                String::new()
            },
            step.message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ));
        if let Some(command) = &step.command {
            text.push_str(&format!("    command: {command}\n"));
        }
    }
    if let Some((_, _, _, step)) = result.failing_step() {
        for (stream, output) in [("stdout", &step.stdout), ("stderr", &step.stderr)] {
            if !output.is_empty() {
                text.push_str(&format!("  {stream}:\n{}\n", tail(output)));
            }
        }
    }
    text
}

/// The last [`OUTPUT_TAIL`] bytes of `s`, on a character boundary.
fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(OUTPUT_TAIL);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
