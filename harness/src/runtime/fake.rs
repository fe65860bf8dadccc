//! [`FakeRuntime`]: a scripted runtime for runner and reporter tests.
//!
//! It replays queued outcomes (or asks a closure keyed on the spec), records
//! every spec it receives, and can simulate an unreachable engine, timeouts
//! and unsupported steps. It starts no process and touches no engine.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::Runtime;
use super::error::{Operation, RuntimeError};
use super::spec::{
    BuildOutcome, BuildSpec, EngineInfo, PrivilegeMode, RunOutcome, RunSpec, RuntimeKind,
    StepCapability,
};

/// The exit code a timed-out container reports (killed by `SIGKILL`).
const KILLED: i64 = 128 + 9;

type RunHandler = Box<dyn Fn(&RunSpec) -> Result<RunOutcome, RuntimeError> + Send + Sync>;
type BuildHandler = Box<dyn Fn(&BuildSpec) -> Result<BuildOutcome, RuntimeError> + Send + Sync>;

/// What the fake has been asked to do, in order.
#[derive(Debug, Default)]
struct Recorded {
    runs: Vec<RunSpec>,
    builds: Vec<BuildSpec>,
    removals: Vec<(String, String)>,
    images: BTreeSet<String>,
}

/// A scripted [`Runtime`].
///
/// Runs take, in order: the next queued result, else the handler's answer,
/// else exit 0 with no output. A run whose outcome's `duration` (or the
/// configured latency) exceeds the spec's timeout comes back timed out with
/// exit code 137, as a real engine's would.
///
/// ```
/// use qus_harness::runtime::{FakeRuntime, RunOutcome, RunSpec, Runtime};
///
/// # tokio_test_block_on(async {
/// let fake = FakeRuntime::new().with_run_outcome(RunOutcome::exited(0, "aarch64\n", ""));
/// let outcome = fake.run(&RunSpec::new("arm64", ["uname", "-m"])).await.unwrap();
/// assert_eq!(outcome.stdout, "aarch64\n");
/// assert_eq!(fake.runs()[0].command, ["uname", "-m"]);
/// # });
/// # fn tokio_test_block_on(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
pub struct FakeRuntime {
    kind: RuntimeKind,
    info: EngineInfo,
    probe_failure: Option<String>,
    unsupported: BTreeMap<StepCapability, String>,
    latency: Duration,
    run_queue: Mutex<VecDeque<Result<RunOutcome, RuntimeError>>>,
    run_handler: Option<RunHandler>,
    build_queue: Mutex<VecDeque<Result<BuildOutcome, RuntimeError>>>,
    build_handler: Option<BuildHandler>,
    recorded: Mutex<Recorded>,
}

impl fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeRuntime")
            .field("kind", &self.kind)
            .field("probe_failure", &self.probe_failure)
            .field("unsupported", &self.unsupported)
            .field("latency", &self.latency)
            .finish_non_exhaustive()
    }
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    /// A fake Docker that succeeds at everything.
    pub fn new() -> Self {
        Self::of_kind(RuntimeKind::Docker)
    }

    /// A fake that reports itself as `kind`.
    pub fn of_kind(kind: RuntimeKind) -> Self {
        Self {
            kind,
            info: EngineInfo {
                kind,
                version: "0.0.0-fake".to_owned(),
                api_version: None,
                privilege: PrivilegeMode::Privileged,
                privilege_note: None,
            },
            probe_failure: None,
            unsupported: BTreeMap::new(),
            latency: Duration::ZERO,
            run_queue: Mutex::default(),
            run_handler: None,
            build_queue: Mutex::default(),
            build_handler: None,
            recorded: Mutex::default(),
        }
    }

    /// Makes `probe` fail as an unreachable engine with `message` as cause.
    pub fn with_probe_failure(mut self, message: impl Into<String>) -> Self {
        self.probe_failure = Some(message.into());
        self
    }

    /// Makes `probe` report `mode`.
    pub fn with_privilege(mut self, mode: PrivilegeMode) -> Self {
        self.info.privilege = mode;
        self
    }

    /// Makes `supports(capability)` fail with `reason`, and specs needing it
    /// fail with [`RuntimeError::Unsupported`].
    pub fn with_unsupported(mut self, capability: StepCapability, reason: &str) -> Self {
        self.unsupported.insert(capability, reason.to_owned());
        self
    }

    /// Makes every run take `latency` (bounded by the spec's timeout).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Queues the outcome of the next unscripted run.
    pub fn with_run_outcome(self, outcome: RunOutcome) -> Self {
        self.with_run_result(Ok(outcome))
    }

    /// Queues the result (outcome or error) of the next unscripted run.
    pub fn with_run_result(self, result: Result<RunOutcome, RuntimeError>) -> Self {
        lock(&self.run_queue).push_back(result);
        self
    }

    /// Answers runs from `handler` once the queue is empty.
    pub fn with_run_handler(
        mut self,
        handler: impl Fn(&RunSpec) -> Result<RunOutcome, RuntimeError> + Send + Sync + 'static,
    ) -> Self {
        self.run_handler = Some(Box::new(handler));
        self
    }

    /// Queues the result of the next build.
    pub fn with_build_result(self, result: Result<BuildOutcome, RuntimeError>) -> Self {
        lock(&self.build_queue).push_back(result);
        self
    }

    /// Answers builds from `handler` once the queue is empty.
    pub fn with_build_handler(
        mut self,
        handler: impl Fn(&BuildSpec) -> Result<BuildOutcome, RuntimeError> + Send + Sync + 'static,
    ) -> Self {
        self.build_handler = Some(Box::new(handler));
        self
    }

    /// Makes `image_exists(image)` true; successful builds add their tag.
    pub fn with_image(self, image: impl Into<String>) -> Self {
        lock(&self.recorded).images.insert(image.into());
        self
    }

    /// Every run spec received, in order.
    pub fn runs(&self) -> Vec<RunSpec> {
        lock(&self.recorded).runs.clone()
    }

    /// Every build spec received, in order.
    pub fn builds(&self) -> Vec<BuildSpec> {
        lock(&self.recorded).builds.clone()
    }

    /// Every `remove_labelled` call, as `(key, value)`, in order.
    pub fn removals(&self) -> Vec<(String, String)> {
        lock(&self.recorded).removals.clone()
    }

    fn check(&self, capability: StepCapability) -> Result<(), RuntimeError> {
        match self.unsupported.get(&capability) {
            Some(reason) => Err(RuntimeError::Unsupported {
                runtime: self.kind,
                capability,
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Locks `mutex`, ignoring poisoning: a panicking test thread must not
/// hide what the fake recorded.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Runtime for FakeRuntime {
    fn kind(&self) -> RuntimeKind {
        self.kind
    }

    fn supports(&self, capability: StepCapability) -> Result<(), String> {
        self.unsupported
            .get(&capability)
            .map_or(Ok(()), |reason| Err(reason.clone()))
    }

    async fn probe(&self) -> Result<EngineInfo, RuntimeError> {
        match &self.probe_failure {
            Some(message) => Err(RuntimeError::Unreachable {
                engine: self.kind,
                endpoint: "fake://".to_owned(),
                operation: Operation::Probe,
                source: message.clone().into(),
            }),
            None => Ok(self.info.clone()),
        }
    }

    async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, RuntimeError> {
        lock(&self.recorded).runs.push(spec.clone());
        for capability in spec.required_capabilities() {
            self.check(capability)?;
        }
        let scripted = lock(&self.run_queue).pop_front();
        let mut outcome = match (scripted, &self.run_handler) {
            (Some(result), _) => result?,
            (None, Some(handler)) => handler(spec)?,
            (None, None) => RunOutcome::default(),
        };
        let simulated = outcome.duration.max(self.latency);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency.min(spec.timeout)).await;
        }
        if simulated > spec.timeout {
            outcome.exit_code = KILLED;
            outcome.timed_out = true;
            outcome.duration = spec.timeout;
        } else {
            outcome.duration = simulated;
        }
        Ok(outcome)
    }

    async fn build(&self, spec: &BuildSpec) -> Result<BuildOutcome, RuntimeError> {
        lock(&self.recorded).builds.push(spec.clone());
        self.check(StepCapability::Build)?;
        let scripted = lock(&self.build_queue).pop_front();
        let outcome = match (scripted, &self.build_handler) {
            (Some(result), _) => result?,
            (None, Some(handler)) => handler(spec)?,
            (None, None) => BuildOutcome {
                success: true,
                ..BuildOutcome::default()
            },
        };
        if outcome.success {
            lock(&self.recorded).images.insert(spec.tag.clone());
        }
        Ok(outcome)
    }

    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        Ok(lock(&self.recorded).images.contains(image))
    }

    /// Records the call and returns how many received specs (runs and
    /// builds) carry the label, as if each had left something behind.
    async fn remove_labelled(&self, key: &str, value: &str) -> Result<usize, RuntimeError> {
        let mut recorded = lock(&self.recorded);
        recorded.removals.push((key.to_owned(), value.to_owned()));
        let labelled =
            |labels: &BTreeMap<String, String>| labels.get(key).is_some_and(|v| v == value);
        let runs = recorded.runs.iter().filter(|s| labelled(&s.labels)).count();
        let builds = recorded
            .builds
            .iter()
            .filter(|s| labelled(&s.labels))
            .count();
        Ok(runs + builds)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::runtime::RUN_LABEL;

    #[tokio::test]
    async fn replays_the_queue_then_the_handler_then_success() {
        let fake = FakeRuntime::new()
            .with_run_outcome(RunOutcome::exited(3, "first", ""))
            .with_run_result(Err(RuntimeError::Cancelled {
                operation: Operation::WaitContainer,
            }))
            .with_run_handler(|spec| Ok(RunOutcome::exited(0, spec.image.clone(), "")));
        let spec = RunSpec::new("img", ["x"]);
        assert_eq!(fake.run(&spec).await.unwrap().exit_code, 3);
        assert!(matches!(
            fake.run(&spec).await,
            Err(RuntimeError::Cancelled { .. })
        ));
        assert_eq!(fake.run(&spec).await.unwrap().stdout, "img");
        assert_eq!(fake.runs().len(), 3);

        let plain = FakeRuntime::new();
        assert!(plain.run(&spec).await.unwrap().is_success());
    }

    #[tokio::test]
    async fn simulates_probe_failure() {
        let fake = FakeRuntime::of_kind(RuntimeKind::Podman).with_probe_failure("no socket");
        let err = fake.probe().await.unwrap_err();
        assert!(err.is_engine_failure());
        assert!(matches!(
            err,
            RuntimeError::Unreachable {
                engine: RuntimeKind::Podman,
                ..
            }
        ));
        let ok = FakeRuntime::new()
            .with_privilege(PrivilegeMode::CapabilityFallback)
            .probe()
            .await
            .unwrap();
        assert_eq!(ok.privilege, PrivilegeMode::CapabilityFallback);
    }

    #[tokio::test]
    async fn simulates_timeouts_from_scripted_durations() {
        let slow = RunOutcome {
            duration: Duration::from_secs(60),
            ..RunOutcome::exited(0, "partial", "")
        };
        let fake = FakeRuntime::new().with_run_outcome(slow);
        let spec = RunSpec::new("img", ["sleep"]).with_timeout(Duration::from_secs(5));
        let outcome = fake.run(&spec).await.unwrap();
        assert!(outcome.timed_out);
        assert_eq!(outcome.exit_code, KILLED);
        assert_eq!(outcome.duration, Duration::from_secs(5));
        assert_eq!(outcome.stdout, "partial");
    }

    #[tokio::test]
    async fn latency_is_bounded_by_the_timeout() {
        let fake = FakeRuntime::new().with_latency(Duration::from_secs(30));
        let spec = RunSpec::new("img", ["x"]).with_timeout(Duration::from_millis(50));
        let started = Instant::now();
        let outcome = fake.run(&spec).await.unwrap();
        assert!(outcome.timed_out);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn unsupported_capabilities_fail_with_reason() {
        let fake = FakeRuntime::of_kind(RuntimeKind::Singularity)
            .with_unsupported(StepCapability::Network, "no networks in singularity");
        assert_eq!(
            fake.supports(StepCapability::Network),
            Err("no networks in singularity".to_owned())
        );
        let spec = RunSpec::new("img", ["x"]).with_network("none");
        assert_eq!(
            fake.supports_spec(&spec),
            Err("no networks in singularity".to_owned())
        );
        let err = fake.run(&spec).await.unwrap_err();
        assert_eq!(err.skip_reason(), Some("no networks in singularity"));
    }

    #[tokio::test]
    async fn builds_register_images_and_labels_are_counted() {
        let fake = FakeRuntime::new()
            .with_image("base")
            .with_build_result(Ok(BuildOutcome::default()));
        assert!(fake.image_exists("base").await.unwrap());
        let failed = BuildSpec::inline("FROM scratch\n", Vec::new(), "t:failed").with_run_id("r1");
        assert!(!fake.build(&failed).await.unwrap().success);
        assert!(!fake.image_exists("t:failed").await.unwrap());
        let built = BuildSpec::inline("FROM scratch\n", Vec::new(), "t:ok").with_run_id("r1");
        assert!(fake.build(&built).await.unwrap().success);
        assert!(fake.image_exists("t:ok").await.unwrap());
        fake.run(&RunSpec::new("t:ok", ["x"]).with_run_id("r1"))
            .await
            .unwrap();
        fake.run(&RunSpec::new("t:ok", ["x"]).with_run_id("r2"))
            .await
            .unwrap();
        assert_eq!(fake.remove_labelled(RUN_LABEL, "r1").await.unwrap(), 3);
        assert_eq!(fake.removals(), [(RUN_LABEL.to_owned(), "r1".to_owned())]);
        assert_eq!(fake.builds().len(), 2);
    }
}
