//! What one `run` step costs, four ways, on the local Docker Engine.
//!
//! ```console
//! cargo bench -p qus-harness --features docker --bench run_step
//! ```
//!
//! Each way runs a static tool image (`FROM scratch`, built here from
//! `tests/fixtures/tool/tool.c` with `gcc -static`) printing one line:
//!
//! - (a) bare bollard: create, start, wait, logs, remove;
//! - (b) `DockerRuntime::run`;
//! - (c) the harness path: a scenario of `run` steps, loaded, expanded and
//!   planned as the CLI does and executed by `runner::run`;
//! - (d) `docker run --rm` through the CLI.
//!
//! The engine's speed drifts by tens of percent from one second to the
//! next on a shared host, far more than the 5% this bench checks, so the
//! four ways are interleaved run by run: the scenario's engine is a
//! [`Interleaved`] `DockerRuntime` that, each time the runner asks for a
//! container, first runs one (a), one (b) and one (d) (in an order that
//! rotates), timing each, and only then the step's own container. A (c)
//! sample is the time from the end of that side work to the start of the
//! next step's: the step's container, its expectation check, its events,
//! and the runner's way to the next step. Setup (loading, planning, the
//! runner's start and final sweep) is left out, as are the side runs.
//!
//! There are `QUS_BENCH_ROUNDS` rounds (default 7, after one warm-up), each
//! one `runner::run` of a scenario of `QUS_BENCH_STEPS` + 1 steps (default
//! 10 + 1), giving `QUS_BENCH_STEPS` samples of (c) and one more of the
//! others. The table gives the median of every way's samples; the harness's
//! own time per step (a (c) sample minus its time inside
//! `DockerRuntime::run`) is printed too, as the engine's noise does not
//! reach it. The verdict pairs each (c) sample with the (a) and (d) samples
//! taken just before its container: the bench fails (exit 1) unless the
//! median of (c)/(a) is at most 1.05 and the median of (c)/(d) below 1, or
//! if it leaves anything behind. (The ratios of the plain medians are
//! printed next to them.) Without a
//! usable Docker Engine (or gcc) it prints why and exits 0, or 1 with
//! `QUS_REQUIRE_ENGINES=1`. Everything it creates carries its run label and
//! is removed by a guard, whatever happens.

use std::collections::HashMap;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListImagesOptions, LogsOptions,
    RemoveContainerOptions,
};
use futures_util::StreamExt;
use qus_harness::host::HostInfo;
use qus_harness::plan;
use qus_harness::report::{Event, Status};
use qus_harness::runner::{self, RunOptions, TEARDOWN_GRACE};
use qus_harness::runtime::{
    BuildOutcome, BuildSpec, ContextFile, DockerRuntime, EngineInfo, RUN_LABEL, RunOutcome,
    RunSpec, Runtime, RuntimeError, RuntimeKind, StepCapability,
};
use qus_harness::scenario::{self, VarOverrides};

#[path = "../tests/common/tool.rs"]
mod tool;

/// The harness path may cost this much more than bare bollard.
const MAX_OVERHEAD: f64 = 1.05;

/// The four ways, in table order.
const WAYS: [&str; 4] = [
    "(a) bare bollard create/start/wait/logs/remove",
    "(b) DockerRuntime::run",
    "(c) runner::run, per step of a scenario",
    "(d) docker run --rm (CLI)",
];

/// Indices of the side ways, run before each step.
const SIDE: [usize; 3] = [0, 1, 3];

fn main() -> ExitCode {
    let require = std::env::var("QUS_REQUIRE_ENGINES").is_ok_and(|v| v == "1");
    match bench() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(Unavailable(reason)) if require => {
            eprintln!("error: QUS_REQUIRE_ENGINES=1 but {reason}");
            ExitCode::FAILURE
        }
        Err(Unavailable(reason)) => {
            println!("run_step: skipped: {reason}");
            ExitCode::SUCCESS
        }
    }
}

/// A missing prerequisite: why the bench cannot run here.
struct Unavailable(String);

/// A positive integer from the environment, else `default`.
fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// Runs the measurements; `Ok(false)` when a target is missed.
fn bench() -> Result<bool, Unavailable> {
    let steps = setting("QUS_BENCH_STEPS", 10);
    let rounds = setting("QUS_BENCH_ROUNDS", 7);
    let tool = compile_tool()?;
    let cli = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match cli {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(Unavailable(format!(
                "the docker CLI cannot reach the engine: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        Err(e) => return Err(Unavailable(format!("the docker CLI is unavailable: {e}"))),
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime builds");
    let runtime = tokio
        .block_on(async {
            let runtime = DockerRuntime::connect().await?;
            runtime.probe().await.map(|_| runtime)
        })
        .map_err(|e| Unavailable(format!("docker is unavailable: {}", chain(&e))))?;
    let client = tokio
        .block_on(async {
            Docker::connect_with_host(runtime.endpoint())?
                .negotiate_version()
                .await
        })
        .map_err(|e| Unavailable(format!("bollard cannot connect: {e}")))?;

    // The image and the side runs carry `image_run`; the runner's own
    // containers carry `harness_run`, so that its end-of-run sweep does
    // not remove the image.
    let image_run = format!("qus-bench-{}", std::process::id());
    let harness_run = format!("{image_run}-harness");
    let cleanup = Cleanup::new(vec![image_run.clone(), harness_run.clone()]);
    let image = format!("qus-bench/tool:{image_run}");
    let built = tokio
        .block_on(
            runtime.build(
                &BuildSpec::inline(
                    "FROM scratch\nCOPY tool /tool\nENTRYPOINT [\"/tool\"]\n",
                    vec![ContextFile::executable("tool", tool)],
                    image.clone(),
                )
                .with_run_id(image_run.clone()),
            ),
        )
        .map_err(|e| Unavailable(format!("cannot build the tool image: {}", chain(&e))))?;
    if !built.success {
        return Err(Unavailable(format!(
            "cannot build the tool image:\n{}",
            built.output
        )));
    }

    println!(
        "run_step: {rounds} rounds (+1 warm-up) of a {}-step scenario, Docker at `{}`",
        steps + 1,
        runtime.endpoint()
    );
    let side = Arc::new(Side {
        runtime: runtime.clone(),
        client,
        image: image.clone(),
        run_id: image_run.clone(),
        samples: Mutex::default(),
    });
    let mut all = Samples::default();
    for round in 0..=rounds {
        *side.samples.lock().unwrap_or_else(PoisonError::into_inner) = Samples::default();
        scenario_round(&tokio, &runtime, &side, &image, &harness_run, steps);
        let samples =
            std::mem::take(&mut *side.samples.lock().unwrap_or_else(PoisonError::into_inner));
        assert_eq!(
            samples.ways[2].len(),
            steps,
            "one (c) sample per step but the last"
        );
        if round == 0 {
            continue;
        }
        println!(
            "  round {round}: (a) {} (b) {} (c) {} (d) {}",
            ms(median(&samples.ways[0])),
            ms(median(&samples.ways[1])),
            ms(median(&samples.ways[2])),
            ms(median(&samples.ways[3]))
        );
        all.extend(samples);
    }

    let medians: Vec<Duration> = all.ways.iter().map(|t| median(t)).collect();
    println!();
    println!(
        "{:<48} {:>10} {:>10} {:>10} {:>8}",
        "per run step", "median", "p25", "p75", "vs (a)"
    );
    for (way, name) in WAYS.iter().enumerate() {
        println!(
            "{name:<48} {:>10} {:>10} {:>10} {:>7.3}x",
            ms(medians[way]),
            ms(percentile(&all.ways[way], 25)),
            ms(percentile(&all.ways[way], 75)),
            ratio(medians[way], medians[0])
        );
    }
    let own = median(&all.own);
    println!(
        "{:<48} {:>10} ({:.3}% of (a))",
        "    (c) minus its time inside DockerRuntime::run",
        format!("{:.1} us", own.as_secs_f64() * 1e6),
        100.0 * ratio(own, medians[0])
    );
    println!("    {} samples of (c)", all.ways[2].len());

    // The verdict uses the paired ratios: each (c) sample against the (a)
    // and (d) samples taken just before it, so that the engine's drift,
    // which is far larger than the margins checked, cancels out.
    let versus_bare = median_ratio(&all.paired[0]);
    let versus_cli = median_ratio(&all.paired[1]);
    println!("    paired, median of (c)/(a): {versus_bare:.3}, of (c)/(d): {versus_cli:.3}");
    let within = versus_bare <= MAX_OVERHEAD;
    let faster_than_cli = versus_cli < 1.0;
    println!();
    println!(
        "(c) vs (a): {versus_bare:.3} paired, {:.3} by medians (target <= {MAX_OVERHEAD}): {}",
        ratio(medians[2], medians[0]),
        verdict(within)
    );
    println!(
        "(c) vs (d): {versus_cli:.3} paired, {} vs {} by medians (target < 1): {}",
        ms(medians[2]),
        ms(medians[3]),
        verdict(faster_than_cli)
    );
    let clean = match cleanup.finish() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("run_step: cleanup failed: {e}");
            false
        }
    };
    Ok(within && faster_than_cli && clean)
}

/// Runs one scenario of `steps + 1` `run` steps through the runner, on an
/// [`Interleaved`] engine that takes the samples.
fn scenario_round(
    tokio: &tokio::runtime::Runtime,
    runtime: &DockerRuntime,
    side: &Arc<Side>,
    image: &str,
    run_id: &str,
    steps: usize,
) {
    let mut text = String::from(
        "apiVersion: qus/v1\nname: bench-run-steps\nruntimes: [docker]\nvars: { IMAGE: ~ }\nsteps:\n",
    );
    for _ in 0..=steps {
        text.push_str(
            "  - run: { image: \"${IMAGE}\", command: [echo, x], expect: { stdout: \"x\\n\" } }\n",
        );
    }
    let scenario = scenario::load_str("bench/run-steps.yaml", &text).expect("the scenario loads");
    let vars = VarOverrides::new()
        .with_run_id(run_id)
        .with_var("IMAGE", image);
    let instances = scenario::expand(&scenario, &vars).expect("the scenario expands");
    let selected = plan::select(instances, &plan::Selection::default());
    let engine = Interleaved {
        inner: runtime.clone(),
        side: side.clone(),
    };
    let planned = plan::plan(selected, &engine, Ok(()), &HostInfo::read());
    assert!(planned.iter().all(|p| p.skip.is_none()), "{planned:?}");
    let options = RunOptions {
        run_id: run_id.to_owned(),
        jobs: 1,
        fail_fast: false,
        timeout: None,
        step_timeout: Duration::from_secs(60),
        keep: false,
        teardown_grace: TEARDOWN_GRACE,
        sandbox: None,
    };
    let mut passed = 0;
    let end = runner::run(tokio, engine, planned, options, None, |event| {
        if let Event::StepFinished { result, .. } = event
            && result.status == Status::Passed
        {
            passed += 1;
        }
    })
    .expect("the run starts");
    assert_eq!(end.summary.passed, 1, "{end:?}");
    assert_eq!(passed, steps + 1);
}

/// Samples of every way, in the order taken.
#[derive(Debug, Default)]
struct Samples {
    /// Per way, in [`WAYS`] order.
    ways: [Vec<Duration>; 4],
    /// Per (c) sample, the part spent outside `DockerRuntime::run`.
    own: Vec<Duration>,
    /// When the last side work ended, and the step's time inside
    /// `DockerRuntime::run` since.
    last: Option<(Instant, Duration)>,
    /// How many steps the runner has started.
    calls: usize,
    /// Per (c) sample, its ratio to the (a) and the (d) sample taken just
    /// before its container: neighbours in time share the engine's drift.
    paired: [Vec<f64>; 2],
}

impl Samples {
    /// Adds a round's samples, pairing each (c) sample of the round with
    /// the side samples of the same step.
    fn extend(&mut self, round: Samples) {
        for (k, c) in round.ways[2].iter().enumerate() {
            self.paired[0].push(ratio(*c, round.ways[0][k]));
            self.paired[1].push(ratio(*c, round.ways[3][k]));
        }
        for (mine, theirs) in self.ways.iter_mut().zip(round.ways) {
            mine.extend(theirs);
        }
        self.own.extend(round.own);
    }
}

/// What the side runs need.
struct Side {
    runtime: DockerRuntime,
    client: Docker,
    image: String,
    run_id: String,
    samples: Mutex<Samples>,
}

impl Side {
    fn samples(&self) -> std::sync::MutexGuard<'_, Samples> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// (a): one bare create/start/wait/logs/remove.
    async fn bare(&self) {
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(vec!["echo".into(), "x".into()]),
            labels: Some(HashMap::from([(RUN_LABEL.to_owned(), self.run_id.clone())])),
            ..ContainerCreateBody::default()
        };
        let id = self
            .client
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .expect("create")
            .id;
        self.client.start_container(&id, None).await.expect("start");
        let _ = self.client.wait_container(&id, None).next().await;
        let logs = LogsOptions {
            stdout: true,
            stderr: true,
            ..LogsOptions::default()
        };
        let output: Vec<_> = self.client.logs(&id, Some(logs)).collect().await;
        assert!(!output.is_empty(), "the tool printed nothing");
        let remove = RemoveContainerOptions {
            force: true,
            ..RemoveContainerOptions::default()
        };
        self.client
            .remove_container(&id, Some(remove))
            .await
            .expect("remove");
    }

    /// (b): one `DockerRuntime::run`.
    async fn runtime_run(&self) {
        let spec = RunSpec::new(self.image.clone(), ["echo", "x"]).with_run_id(self.run_id.clone());
        let outcome = self.runtime.run(&spec).await.expect("run");
        assert_eq!(outcome.stdout, "x\n");
    }

    /// (d): one `docker run --rm`.
    async fn cli(&self) {
        let label = format!("{RUN_LABEL}={}", self.run_id);
        let out = tokio::process::Command::new("docker")
            .args(["run", "--rm", "--label", &label, &self.image, "echo", "x"])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("docker runs");
        assert!(
            out.status.success() && out.stdout == b"x\n",
            "docker run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A [`DockerRuntime`] that takes the bench's samples: before each step's
/// container it closes the previous (c) sample, runs one of each side way,
/// and opens the next (c) sample.
struct Interleaved {
    inner: DockerRuntime,
    side: Arc<Side>,
}

impl Runtime for Interleaved {
    fn kind(&self) -> RuntimeKind {
        self.inner.kind()
    }

    fn supports(&self, capability: StepCapability) -> Result<(), String> {
        self.inner.supports(capability)
    }

    async fn probe(&self) -> Result<EngineInfo, RuntimeError> {
        self.inner.probe().await
    }

    async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, RuntimeError> {
        let now = Instant::now();
        let call = {
            let mut samples = self.side.samples();
            if let Some((since, inside)) = samples.last.take() {
                let sample = now - since;
                samples.ways[2].push(sample);
                samples.own.push(sample.saturating_sub(inside));
            }
            samples.calls += 1;
            samples.calls
        };
        for k in 0..SIDE.len() {
            let way = SIDE[(k + call) % SIDE.len()];
            let began = Instant::now();
            match way {
                0 => self.side.bare().await,
                1 => self.side.runtime_run().await,
                _ => self.side.cli().await,
            }
            self.side.samples().ways[way].push(began.elapsed());
        }
        let began = Instant::now();
        let outcome = self.inner.run(spec).await;
        let inside = began.elapsed();
        self.side.samples().last = Some((began, inside));
        outcome
    }

    async fn build(&self, spec: &BuildSpec) -> Result<BuildOutcome, RuntimeError> {
        self.inner.build(spec).await
    }

    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        self.inner.image_exists(image).await
    }

    async fn remove_labelled(&self, key: &str, value: &str) -> Result<usize, RuntimeError> {
        self.inner.remove_labelled(key, value).await
    }
}

/// Compiles the static tool; `Err` says why it cannot be.
fn compile_tool() -> Result<Vec<u8>, Unavailable> {
    tool::tool_binary().map(<[u8]>::to_vec).map_err(Unavailable)
}

/// Removes every container and image carrying one of the run labels and
/// checks that nothing is left: [`Cleanup::finish`] on the normal path (its
/// error fails the bench), `Drop` on every other one (a panic included).
struct Cleanup {
    runs: Vec<String>,
    done: bool,
}

impl Cleanup {
    fn new(runs: Vec<String>) -> Self {
        Self { runs, done: false }
    }

    fn finish(mut self) -> Result<(), String> {
        self.done = true;
        sweep(self.runs.clone())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = sweep(self.runs.clone())
        {
            eprintln!("run_step: cleanup failed: {e}");
        }
    }
}

/// The sweep, on its own thread and tokio runtime: the bench's runtime may
/// be the one unwinding.
fn sweep(runs: Vec<String>) -> Result<(), String> {
    let done = std::thread::spawn(move || {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime builds");
        tokio.block_on(async {
            let runtime = DockerRuntime::connect().await.map_err(|e| chain(&e))?;
            let client =
                Docker::connect_with_host(runtime.endpoint()).map_err(|e| e.to_string())?;
            let mut left = Vec::new();
            for run in &runs {
                runtime
                    .remove_labelled(RUN_LABEL, run)
                    .await
                    .map_err(|e| chain(&e))?;
                let filters =
                    HashMap::from([("label".to_owned(), vec![format!("{RUN_LABEL}={run}")])]);
                let containers = client
                    .list_containers(Some(ListContainersOptions {
                        all: true,
                        filters: Some(filters.clone()),
                        ..ListContainersOptions::default()
                    }))
                    .await
                    .map_err(|e| e.to_string())?;
                let images = client
                    .list_images(Some(ListImagesOptions {
                        filters: Some(filters),
                        ..ListImagesOptions::default()
                    }))
                    .await
                    .map_err(|e| e.to_string())?;
                left.extend(containers.into_iter().filter_map(|c| c.id));
                left.extend(images.into_iter().map(|i| i.id));
            }
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left behind: {left:?}"))
            }
        })
    });
    done.join()
        .unwrap_or_else(|_| Err("the cleanup panicked".to_owned()))
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// The `percent`-th percentile of `times` (nearest rank, rounded down).
fn percentile(times: &[Duration], percent: usize) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[(n - 1) * percent / 100],
    }
}

/// The median of `ratios`.
fn median_ratio(ratios: &[f64]) -> f64 {
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

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
