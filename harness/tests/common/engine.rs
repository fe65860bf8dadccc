//! Real-engine test helpers shared by `docker_runtime.rs` and
//! `podman_runtime.rs`, and the behaviours both engines must show.
//!
//! Each trial builds its own `FROM scratch` image holding the static test
//! tool as `/probe` ([`tool`]), labels everything it creates
//! with its own run id, and removes it all in a guard ([`LabelGuard`]), on
//! every path. A trial whose engine (or gcc) is unavailable is reported as
//! ignored with the reason; with `QUS_REQUIRE_ENGINES=1` it fails instead.
//! After the guard ran, the trial checks that nothing with its run id is
//! left; after all trials, [`leftovers`] looks for anything this process
//! created, probe images included.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, HostConfig, ImageSummary, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListImagesOptions, LogsOptions,
    RemoveContainerOptions,
};
use futures_util::StreamExt;
use libtest_mimic::{Completion, Failed, Trial};
use qus_harness::runtime::{
    BuildSpec, ContextFile, DockerRuntime, PodmanRuntime, PrivilegeMode, RUN_LABEL, RunOutcome,
    RunSpec, Runtime, RuntimeError, RuntimeKind,
};

#[path = "tool.rs"]
mod tool;

/// The label the runtimes put on their privilege-probe image and
/// containers (a contract with `runtime/docker.rs`).
const PROBE_LABEL: &str = "io.qus.probe";

/// The variable that turns an absent engine into a failure.
const REQUIRE_ENGINES: &str = "QUS_REQUIRE_ENGINES";

/// The probe image: the probe as entrypoint, `echo default` as command,
/// over a first layer holding the run id. That layer keeps each trial's
/// layers its own: Podman labels the cached layers of a build with the run
/// that built them, and a layer another trial's build is using when its run
/// is removed would outlive the removal (see
/// `removing_images_spares_containers_on_shared_layers`).
const PROBE_CONTAINERFILE: &str = "FROM scratch\nCOPY run-id /qus-run-id\nCOPY probe /probe\n\
    ENTRYPOINT [\"/probe\"]\nCMD [\"echo\", \"default\"]\n";

/// Generous per-run limit: these containers finish in milliseconds.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// An engine runtime under test, which the helpers can connect to afresh.
pub trait Engine: Runtime + Clone + Send + Sync + 'static {
    /// The engine's name in messages.
    const NAME: &'static str;
    /// Which kind the runtime reports.
    const KIND: RuntimeKind;

    /// Connects the way the harness does.
    fn connect() -> impl Future<Output = Result<Self, RuntimeError>> + Send;

    /// The endpoint the runtime talks to.
    fn endpoint(&self) -> &str;

    /// What every container needs on this engine, for containers the
    /// tests create with bare bollard.
    fn base_host_config() -> HostConfig;
}

impl Engine for DockerRuntime {
    const NAME: &'static str = "docker";
    const KIND: RuntimeKind = RuntimeKind::Docker;

    fn connect() -> impl Future<Output = Result<Self, RuntimeError>> + Send {
        DockerRuntime::connect()
    }

    fn endpoint(&self) -> &str {
        DockerRuntime::endpoint(self)
    }

    fn base_host_config() -> HostConfig {
        HostConfig::default()
    }
}

impl Engine for PodmanRuntime {
    const NAME: &'static str = "podman";
    const KIND: RuntimeKind = RuntimeKind::Podman;

    fn connect() -> impl Future<Output = Result<Self, RuntimeError>> + Send {
        PodmanRuntime::connect()
    }

    fn endpoint(&self) -> &str {
        PodmanRuntime::endpoint(self)
    }

    /// Podman 4.3 asks runc for rlimits above the hosts' hard limits
    /// unless told otherwise (design/ENVIRONMENT.md, "Podman").
    fn base_host_config() -> HostConfig {
        let limit = |name: &str| ResourcesUlimits {
            name: Some(name.to_owned()),
            soft: Some(4096),
            hard: Some(4096),
        };
        HostConfig {
            ulimits: Some(vec![limit("nofile"), limit("nproc")]),
            ..HostConfig::default()
        }
    }
}

/// What a test body may return: nothing (passed), a [`Completion`], or a
/// [`Completion`] or failure.
pub trait IntoCompletion {
    /// The trial's result.
    fn into_completion(self) -> Result<Completion, Failed>;
}

impl IntoCompletion for () {
    fn into_completion(self) -> Result<Completion, Failed> {
        Ok(Completion::Completed)
    }
}

impl IntoCompletion for Completion {
    fn into_completion(self) -> Result<Completion, Failed> {
        Ok(self)
    }
}

impl IntoCompletion for Result<Completion, Failed> {
    fn into_completion(self) -> Self {
        self
    }
}

/// An unusable prerequisite: ignored with `reason`, or a failure when
/// `QUS_REQUIRE_ENGINES=1`.
pub fn unavailable(reason: &str) -> Result<Completion, Failed> {
    if std::env::var(REQUIRE_ENGINES).is_ok_and(|v| v == "1") {
        Err(format!("{REQUIRE_ENGINES}=1 but {reason}").into())
    } else {
        Ok(Completion::ignored_with(reason))
    }
}

/// A trial running `body` with a fresh [`Fixture`] on engine `E`, on its
/// own single-threaded tokio runtime (as `#[tokio::test]` would).
pub fn trial<E, F, Fut>(name: &str, body: F) -> Trial
where
    E: Engine,
    F: FnOnce(Fixture<E>) -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: IntoCompletion,
{
    let test = name.to_owned();
    Trial::ignorable_test(name, move || {
        block_on(async move {
            let fixture = match Fixture::<E>::new(&test).await {
                Ok(fixture) => fixture,
                Err(reason) => return unavailable(&reason),
            };
            let (client, run_id) = (fixture.client.clone(), fixture.run_id.clone());
            // The body owns the fixture: its guard has run when this returns.
            let completion = body(fixture).await.into_completion()?;
            let left = labelled(&client, &label_filter(RUN_LABEL, &run_id)).await;
            if !left.is_empty() {
                return Err(format!("left behind with `{RUN_LABEL}={run_id}`: {left:?}").into());
            }
            Ok(completion)
        })
    })
    .with_kind(E::NAME)
}

/// Runs `future` to completion on a fresh current-thread runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(future)
}

/// The prefix of every run id this process uses.
fn run_id_prefix() -> String {
    format!("qus-test-{}-", std::process::id())
}

/// A run id unique to this process and call.
pub fn unique(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}{test}-{}",
        run_id_prefix(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Connects to engine `E`, or says why it cannot, with the whole chain of
/// causes.
pub async fn connect<E: Engine>() -> Result<(E, Docker), String> {
    let runtime = E::connect().await.map_err(|err| {
        let mut reason = format!("{} is unavailable: {err}", E::NAME);
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            reason.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        reason
    })?;
    let client = Docker::connect_with_host(runtime.endpoint())
        .expect("bollard connects where the runtime connected")
        .negotiate_version()
        .await
        .expect("the engine answered the runtime");
    Ok((runtime, client))
}

/// Force-removes everything labelled with a run id on engine `E` when
/// dropped, on a fresh thread and connection: the test's runtime may be
/// unwinding, or blocked in this very call.
pub struct LabelGuard<E: Engine> {
    run_id: String,
    engine: std::marker::PhantomData<E>,
}

impl<E: Engine> LabelGuard<E> {
    /// Guards everything labelled `RUN_LABEL=run_id` on `E`.
    pub fn new(run_id: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            engine: std::marker::PhantomData,
        }
    }
}

impl<E: Engine> Drop for LabelGuard<E> {
    fn drop(&mut self) {
        let run_id = self.run_id.clone();
        let cleanup = std::thread::spawn(move || {
            block_on(async {
                let runtime = E::connect().await?;
                runtime.remove_labelled(RUN_LABEL, &run_id).await
            })
        });
        match cleanup.join() {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => eprintln!("cleanup of `{}` on {} failed: {err}", self.run_id, E::NAME),
            Err(_) => eprintln!("cleanup of `{}` on {} panicked", self.run_id, E::NAME),
        }
    }
}

/// One test's engine connection, probe image and run id; dropping it
/// removes everything labelled with the run id.
pub struct Fixture<E: Engine> {
    /// The runtime under test.
    pub runtime: E,
    /// A bare bollard client on the same engine, to look behind the runtime.
    pub client: Docker,
    /// The run id on everything this test creates.
    pub run_id: String,
    /// The probe image, built on `E`.
    pub image: String,
    _guard: LabelGuard<E>,
}

impl<E: Engine> Fixture<E> {
    /// Connects and builds the probe image; `Err` says why the engine (or
    /// gcc) is unavailable.
    pub async fn new(test: &str) -> Result<Self, String> {
        let binary =
            tool::tool_binary().map_err(|e| format!("cannot build the probe program: {e}"))?;
        let (runtime, client) = connect::<E>().await?;
        let run_id = unique(test);
        let image = format!("qus-test/probe:{run_id}");
        let fixture = Self {
            runtime,
            client,
            _guard: LabelGuard::new(run_id.clone()),
            run_id,
            image,
        };
        let spec = BuildSpec::inline(
            PROBE_CONTAINERFILE,
            vec![
                ContextFile::new("run-id", fixture.run_id.clone()),
                ContextFile::executable("probe", binary.to_vec()),
            ],
            fixture.image.clone(),
        )
        .with_run_id(fixture.run_id.clone());
        let built = fixture.runtime.build(&spec).await.expect("build runs");
        assert!(built.success, "probe image build failed:\n{}", built.output);
        Ok(fixture)
    }

    /// A spec running the probe with `command`, labelled with the run id.
    pub fn spec<const N: usize>(&self, command: [&str; N]) -> RunSpec {
        RunSpec::new(self.image.clone(), command)
            .with_run_id(self.run_id.clone())
            .with_timeout(RUN_TIMEOUT)
    }

    /// Runs `spec` and checks that its container is gone afterwards.
    pub async fn run(&self, spec: &RunSpec) -> RunOutcome {
        let outcome = self.runtime.run(spec).await.expect("run succeeds");
        assert_eq!(self.containers().await, 0, "run left a container behind");
        outcome
    }

    /// How many containers carry this test's run id.
    pub async fn containers(&self) -> usize {
        let options = ListContainersOptions {
            all: true,
            filters: Some(self.filter()),
            ..ListContainersOptions::default()
        };
        list_containers(&self.client, options).await.unwrap().len()
    }

    /// How many images carry this test's run id.
    pub async fn images(&self) -> usize {
        let options = ListImagesOptions {
            filters: Some(self.filter()),
            ..ListImagesOptions::default()
        };
        list_images(&self.client, options).await.unwrap().len()
    }

    /// The sorted tags of the images carrying this test's run id, without
    /// the registry Podman prefixes (`docker.io/`, `localhost/`).
    pub async fn tagged_images(&self) -> Vec<String> {
        let options = ListImagesOptions {
            filters: Some(self.filter()),
            ..ListImagesOptions::default()
        };
        let images = list_images(&self.client, options).await.unwrap();
        let mut tags: Vec<String> = images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t != "<none>:<none>")
            .map(|t| {
                let t = t.strip_prefix("docker.io/").unwrap_or(&t);
                t.strip_prefix("localhost/").unwrap_or(t).to_owned()
            })
            .collect();
        tags.sort();
        tags
    }

    fn filter(&self) -> HashMap<String, Vec<String>> {
        label_filter(RUN_LABEL, &self.run_id)
    }

    /// Creates (without starting) a container from the probe image,
    /// labelled with the run id, with bare bollard.
    pub async fn create_bare(&self, entrypoint: Option<&str>, host_config: HostConfig) -> String {
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: entrypoint.map(|e| vec![e.to_owned()]),
            labels: Some(HashMap::from([(RUN_LABEL.to_owned(), self.run_id.clone())])),
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
        };
        self.client
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .unwrap()
            .id
    }
}

/// Lists containers, retrying while Podman reports the transient state
/// `stopped`, which bollard cannot parse.
pub async fn list_containers(
    client: &Docker,
    options: ListContainersOptions,
) -> Result<Vec<ContainerSummary>, bollard::errors::Error> {
    for _ in 0..50 {
        match client.list_containers(Some(options.clone())).await {
            Err(bollard::errors::Error::JsonDataError { message, .. })
                if message.contains("unknown variant") =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result => return result,
        }
    }
    client.list_containers(Some(options)).await
}

/// Lists images, retrying while Podman fails a listing that races an image
/// removal ("image not known").
pub async fn list_images(
    client: &Docker,
    options: ListImagesOptions,
) -> Result<Vec<ImageSummary>, bollard::errors::Error> {
    for _ in 0..50 {
        match client.list_images(Some(options.clone())).await {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message,
            }) if message.contains("image not known") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result => return result,
        }
    }
    client.list_images(Some(options)).await
}

/// A `label=key=value` filter.
fn label_filter(key: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{key}={value}")])])
}

/// Containers and images matching `filters`, described.
async fn labelled(client: &Docker, filters: &HashMap<String, Vec<String>>) -> Vec<String> {
    let containers = ListContainersOptions {
        all: true,
        filters: Some(filters.clone()),
        ..ListContainersOptions::default()
    };
    let images = ListImagesOptions {
        filters: Some(filters.clone()),
        ..ListImagesOptions::default()
    };
    let mut found: Vec<String> = match list_containers(client, containers).await {
        Ok(list) => list
            .into_iter()
            .map(|c| format!("container {} ({:?})", c.id.unwrap_or_default(), c.labels))
            .collect(),
        Err(err) => vec![format!("containers not listed: {err}")],
    };
    match list_images(client, images).await {
        Ok(list) => found.extend(
            list.into_iter()
                .map(|i| format!("image {} {:?} ({:?})", i.id, i.repo_tags, i.labels)),
        ),
        Err(err) => found.push(format!("images not listed: {err}")),
    }
    found
}

/// Everything on engine `E` that this process created and did not remove:
/// objects whose run id has this process's prefix, and privilege-probe
/// images and containers whose tag has this process's id. Empty when the
/// engine is unavailable.
pub fn leftovers<E: Engine>() -> Vec<String> {
    let pid_tag = format!(":{}-", std::process::id());
    let prefix = run_id_prefix();
    block_on(async {
        let Ok((_, client)) = connect::<E>().await else {
            return Vec::new();
        };
        let mine = |labels: &HashMap<String, String>, names: &[String]| {
            labels
                .get(RUN_LABEL)
                .is_some_and(|v| v.starts_with(&prefix))
                || (labels.contains_key(PROBE_LABEL) && names.iter().any(|n| n.contains(&pid_tag)))
        };
        let key = |key: &str| HashMap::from([("label".to_owned(), vec![key.to_owned()])]);
        let mut found = Vec::new();
        for filter in [key(RUN_LABEL), key(PROBE_LABEL)] {
            let options = ListContainersOptions {
                all: true,
                filters: Some(filter.clone()),
                ..ListContainersOptions::default()
            };
            match list_containers(&client, options).await {
                Ok(containers) => {
                    for c in containers {
                        let image = vec![c.image.clone().unwrap_or_default()];
                        if mine(&c.labels.clone().unwrap_or_default(), &image) {
                            found.push(format!("{} container {:?}", E::NAME, c.id));
                        }
                    }
                }
                Err(err) => found.push(format!("{} containers not listed: {err}", E::NAME)),
            }
            let options = ListImagesOptions {
                filters: Some(filter),
                ..ListImagesOptions::default()
            };
            match list_images(&client, options).await {
                Ok(images) => {
                    for i in images {
                        if mine(&i.labels, &i.repo_tags) {
                            found.push(format!("{} image {} {:?}", E::NAME, i.id, i.repo_tags));
                        }
                    }
                }
                Err(err) => found.push(format!("{} images not listed: {err}", E::NAME)),
            }
        }
        found.sort();
        found.dedup();
        found
    })
}

/// The shared behaviours, as trials on engine `E`.
pub fn shared_trials<E: Engine>() -> Vec<Trial> {
    vec![
        trial::<E, _, _>(
            "run_reports_exit_zero_and_stdout",
            run_reports_exit_zero_and_stdout,
        ),
        trial::<E, _, _>("non_zero_exit_is_an_outcome", non_zero_exit_is_an_outcome),
        trial::<E, _, _>(
            "stderr_is_separated_from_stdout",
            stderr_is_separated_from_stdout,
        ),
        trial::<E, _, _>(
            "command_and_entrypoint_follow_engine_semantics",
            command_and_entrypoint_follow_engine_semantics,
        ),
        trial::<E, _, _>(
            "env_binds_user_and_network_are_applied",
            env_binds_user_and_network_are_applied,
        ),
        trial::<E, _, _>(
            "timeout_kills_reports_timed_out_and_removes_the_container",
            timeout_kills_reports_timed_out_and_removes_the_container,
        ),
        trial::<E, _, _>(
            "missing_command_is_exit_127_not_an_error",
            missing_command_is_exit_127_not_an_error,
        ),
        trial::<E, _, _>(
            "dropping_a_run_still_removes_its_container",
            dropping_a_run_still_removes_its_container,
        ),
        trial::<E, _, _>(
            "absent_image_is_image_not_found",
            absent_image_is_image_not_found,
        ),
        trial::<E, _, _>(
            "platform_is_passed_to_the_engine",
            platform_is_passed_to_the_engine,
        ),
        trial::<E, _, _>(
            "privileged_runs_work_through_the_detected_mode",
            privileged_runs_work_through_the_detected_mode,
        ),
        trial::<E, _, _>(
            "builds_succeed_fail_and_label_images",
            builds_succeed_fail_and_label_images,
        ),
        trial::<E, _, _>(
            "remove_labelled_removes_containers_and_images",
            remove_labelled_removes_containers_and_images,
        ),
        trial::<E, _, _>(
            "run_overhead_over_bare_bollard_is_small",
            run_overhead_over_bare_bollard_is_small,
        ),
    ]
}

async fn run_reports_exit_zero_and_stdout<E: Engine>(fx: Fixture<E>) {
    let outcome = fx.run(&fx.spec(["echo", "hello"])).await;
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(outcome.stdout, "hello\n");
    assert_eq!(outcome.stderr, "");
    assert!(!outcome.timed_out);
    assert!(outcome.duration > Duration::ZERO);
}

async fn non_zero_exit_is_an_outcome<E: Engine>(fx: Fixture<E>) {
    let outcome = fx.run(&fx.spec(["echo", "before", "exit", "42"])).await;
    assert_eq!(outcome.exit_code, 42);
    assert_eq!(outcome.stdout, "before\n");
    assert!(!outcome.is_success());
}

async fn stderr_is_separated_from_stdout<E: Engine>(fx: Fixture<E>) {
    let outcome = fx
        .run(&fx.spec(["echo", "o1", "err", "e1", "echo", "o2"]))
        .await;
    assert_eq!(outcome.stdout, "o1\no2\n");
    assert_eq!(outcome.stderr, "e1\n");
}

async fn command_and_entrypoint_follow_engine_semantics<E: Engine>(fx: Fixture<E>) {
    let image_default = fx.run(&fx.spec([])).await;
    assert_eq!(image_default.stdout, "default\n");
    let overridden = fx
        .run(&fx.spec(["x"]).with_entrypoint(["/probe", "err"]))
        .await;
    assert_eq!(overridden.stderr, "x\n");
    assert_eq!(overridden.stdout, "");
}

async fn env_binds_user_and_network_are_applied<E: Engine>(fx: Fixture<E>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "from the host\n").unwrap();

    let spec = fx
        .spec(["env", "QUS_A", "env", "QUS_B", "cat", "/data/file"])
        .with_env("QUS_A", "one")
        .with_env("QUS_B", "two words")
        .with_mount(dir.path(), "/data", true);
    let outcome = fx.run(&spec).await;
    assert_eq!(
        outcome.stdout, "one\ntwo words\nfrom the host\n",
        "{outcome:?}"
    );

    let read_only = fx
        .run(
            &fx.spec(["write", "/data/new"])
                .with_mount(dir.path(), "/data", true),
        )
        .await;
    assert_eq!(read_only.exit_code, 3, "{read_only:?}");
    let writable = fx
        .run(
            &fx.spec(["write", "/data/new"])
                .with_mount(dir.path(), "/data", false),
        )
        .await;
    assert_eq!(writable.exit_code, 0, "{writable:?}");
    assert!(dir.path().join("new").exists());

    let user = fx.run(&fx.spec(["id"]).with_user("1234:5678")).await;
    assert_eq!(user.stdout, "1234:5678\n");

    let isolated = fx.run(&fx.spec(["netdev"]).with_network("none")).await;
    assert_eq!(isolated.stdout, "lo\n");
    let bridged = fx.run(&fx.spec(["netdev"])).await;
    assert!(bridged.stdout.lines().count() > 1, "{bridged:?}");
}

async fn timeout_kills_reports_timed_out_and_removes_the_container<E: Engine>(fx: Fixture<E>) {
    let spec = fx
        .spec(["echo", "started", "sleep", "120"])
        .with_timeout(Duration::from_secs(2));
    let began = Instant::now();
    let outcome = fx.run(&spec).await;
    assert!(outcome.timed_out, "{outcome:?}");
    assert_eq!(outcome.exit_code, 137);
    assert_eq!(outcome.stdout, "started\n");
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
}

async fn missing_command_is_exit_127_not_an_error<E: Engine>(fx: Fixture<E>) {
    let outcome = fx.run(&fx.spec([]).with_entrypoint(["/nonexistent"])).await;
    assert_eq!(outcome.exit_code, 127, "{outcome:?}");
    assert!(
        outcome
            .stderr
            .to_lowercase()
            .contains("no such file or directory"),
        "{outcome:?}"
    );
}

async fn dropping_a_run_still_removes_its_container<E: Engine>(fx: Fixture<E>) {
    let spec = fx.spec(["sleep", "120"]);
    let dropped = tokio::time::timeout(Duration::from_secs(2), fx.runtime.run(&spec)).await;
    assert!(dropped.is_err(), "the run should still be going");
    let began = Instant::now();
    while fx.containers().await > 0 {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the dropped run's container was not removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn absent_image_is_image_not_found<E: Engine>(fx: Fixture<E>) {
    let absent = format!("qus-test/absent:{}", fx.run_id);
    assert!(!fx.runtime.image_exists(&absent).await.unwrap());
    assert!(fx.runtime.image_exists(&fx.image).await.unwrap());
    let err = fx
        .runtime
        .run(&RunSpec::new(absent.clone(), ["x"]).with_run_id(fx.run_id.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::ImageNotFound { image, .. } if *image == absent),
        "{err:?}"
    );
    assert!(!err.is_engine_failure());
}

async fn platform_is_passed_to_the_engine<E: Engine>(fx: Fixture<E>) -> Result<Completion, Failed> {
    let (native, foreign) = match std::env::consts::ARCH {
        "x86_64" => ("linux/amd64", "linux/arm64"),
        "aarch64" => ("linux/arm64", "linux/amd64"),
        other => return unavailable(&format!("no platform pair for host `{other}`")),
    };
    let outcome = fx.run(&fx.spec(["echo", "ok"]).with_platform(native)).await;
    assert_eq!(outcome.stdout, "ok\n");
    let err = fx
        .runtime
        .run(&fx.spec(["echo", "ok"]).with_platform(foreign))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::ImageNotFound { .. }), "{err:?}");
    assert_eq!(fx.containers().await, 0);
    Ok(Completion::Completed)
}

async fn privileged_runs_work_through_the_detected_mode<E: Engine>(fx: Fixture<E>) {
    let info = fx.runtime.probe().await.unwrap();
    eprintln!(
        "{} {} (api {:?}), privilege {} ({:?})",
        E::NAME,
        info.version,
        info.api_version,
        info.privilege,
        info.privilege_note
    );
    assert_eq!(info.kind, E::KIND);
    assert!(!info.version.is_empty());
    assert!(info.api_version.is_some());

    // Cross-check the detection against a plain `--privileged` start.
    let host_config = HostConfig {
        privileged: Some(true),
        ..E::base_host_config()
    };
    let id = fx.create_bare(Some("/nonexistent"), host_config).await;
    let start = fx.client.start_container(&id, None).await;
    let remove = RemoveContainerOptions {
        force: true,
        ..RemoveContainerOptions::default()
    };
    fx.client.remove_container(&id, Some(remove)).await.unwrap();
    let refused = format!("{start:?}").contains("unable to apply caps");
    let expected = if refused {
        PrivilegeMode::CapabilityFallback
    } else {
        PrivilegeMode::Privileged
    };
    assert_eq!(info.privilege, expected, "start: {start:?}");
    assert_eq!(info.privilege_note.is_some(), refused);

    let privileged = fx.run(&fx.spec(["mount"]).with_privileged(true)).await;
    assert_eq!(privileged.exit_code, 0, "{privileged:?}");
    assert_eq!(privileged.stdout, "mounted\n");
    let unprivileged = fx.run(&fx.spec(["mount"])).await;
    assert_eq!(unprivileged.exit_code, 4, "{unprivileged:?}");
}

async fn builds_succeed_fail_and_label_images<E: Engine>(fx: Fixture<E>) {
    let tag = format!("qus-test/built:{}", fx.run_id);
    let ok = BuildSpec::inline(
        "FROM scratch\nCOPY data /data\n",
        vec![ContextFile::new("data", b"payload".to_vec())],
        tag.clone(),
    )
    .with_run_id(fx.run_id.clone());
    let built = fx.runtime.build(&ok).await.unwrap();
    assert!(built.success, "{}", built.output);
    assert!(!built.timed_out);
    assert!(
        built.output.contains("Successfully tagged"),
        "{}",
        built.output
    );
    assert!(fx.runtime.image_exists(&tag).await.unwrap());

    // A platform is recorded in an image built `FROM scratch`. (Other
    // content than above: Docker 20.10's build cache ignores the platform.)
    let cross_tag = format!("qus-test/cross:{}", fx.run_id);
    let cross = BuildSpec::inline(
        "FROM scratch\nCOPY data /data\n",
        vec![ContextFile::new("data", format!("s390x {}", fx.run_id))],
        cross_tag.clone(),
    )
    .with_platform("linux/s390x")
    .with_run_id(fx.run_id.clone());
    let built = fx.runtime.build(&cross).await.unwrap();
    assert!(built.success, "{}", built.output);
    let inspect = fx.client.inspect_image(&cross_tag).await.unwrap();
    assert_eq!(
        (inspect.os.as_deref(), inspect.architecture.as_deref()),
        (Some("linux"), Some("s390x")),
        "{inspect:?}"
    );
    let native = fx.client.inspect_image(&tag).await.unwrap();
    assert_ne!(native.architecture.as_deref(), Some("s390x"));

    let missing_tag = format!("qus-test/missing:{}", fx.run_id);
    let missing = BuildSpec::inline(
        "FROM scratch\nCOPY missing /missing\n",
        Vec::new(),
        missing_tag.clone(),
    )
    .with_run_id(fx.run_id.clone());
    let failed = fx.runtime.build(&missing).await.unwrap();
    assert!(!failed.success);
    assert!(failed.output.contains("missing"), "{}", failed.output);
    assert!(!fx.runtime.image_exists(&missing_tag).await.unwrap());

    let bogus = BuildSpec::inline("FROM scratch\nBOGUS x\n", Vec::new(), missing_tag.clone())
        .with_run_id(fx.run_id.clone());
    let rejected = fx.runtime.build(&bogus).await.unwrap();
    assert!(!rejected.success);
    assert!(
        rejected
            .output
            .to_lowercase()
            .contains("unknown instruction"),
        "{}",
        rejected.output
    );

    // A step that runs the probe, failing: the build fails with its output,
    // and the layers it committed before are removed (unlabelled on Docker,
    // nothing else would remove them).
    let run_fails = BuildSpec::inline(
        "FROM scratch\nCOPY run-id /qus-run-id\nCOPY probe /probe\n\
         RUN [\"/probe\", \"echo\", \"in-build\", \"exit\", \"7\"]\n",
        vec![
            ContextFile::new("run-id", format!("{}-fail", fx.run_id)),
            ContextFile::executable("probe", tool::tool_binary().unwrap().to_vec()),
        ],
        missing_tag.clone(),
    )
    .with_run_id(fx.run_id.clone());
    let run_failed = fx.runtime.build(&run_fails).await.unwrap();
    assert!(!run_failed.success, "{}", run_failed.output);
    assert!(
        run_failed.output.contains("in-build"),
        "{}",
        run_failed.output
    );
    assert!(!fx.runtime.image_exists(&missing_tag).await.unwrap());
    assert!(
        !run_failed.output.contains("Using cache"),
        "{}",
        run_failed.output
    );
    let layers: Vec<&str> = run_failed
        .output
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("--->")
                .or(l.trim().strip_prefix("-->"))
        })
        .map(str::trim)
        .filter(|id| id.len() >= 11 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert!(!layers.is_empty(), "{}", run_failed.output);
    for layer in layers {
        assert!(
            !fx.runtime.image_exists(layer).await.unwrap(),
            "layer {layer} of the failed build is left"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Containerfile"),
        "FROM scratch\nARG NAME\nCOPY ${NAME} /f\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let from_dir = BuildSpec::dir(PathBuf::from(dir.path()), format!("{tag}-dir"))
        .with_build_arg("NAME", "file")
        .with_run_id(fx.run_id.clone());
    let built = fx.runtime.build(&from_dir).await.unwrap();
    assert!(built.success, "{}", built.output);

    // Probe image, inline builds and directory build carry the label (on
    // Podman so do the untagged layers a failed build leaves, which the
    // label then removes).
    assert_eq!(
        fx.tagged_images().await,
        [
            format!("qus-test/built:{}", fx.run_id),
            format!("qus-test/built:{}-dir", fx.run_id),
            cross_tag,
            fx.image.clone(),
        ],
        "{:#?}",
        labelled(&fx.client, &fx.filter()).await
    );
}

async fn remove_labelled_removes_containers_and_images<E: Engine>(fx: Fixture<E>) {
    for _ in 0..2 {
        fx.create_bare(None, E::base_host_config()).await;
    }
    assert_eq!(fx.containers().await, 2);
    assert_eq!(fx.images().await, 1);
    let removed = fx
        .runtime
        .remove_labelled(RUN_LABEL, &fx.run_id)
        .await
        .unwrap();
    assert_eq!(removed, 3);
    assert_eq!(fx.containers().await, 0);
    assert_eq!(fx.images().await, 0);
    assert_eq!(
        fx.runtime
            .remove_labelled(RUN_LABEL, &fx.run_id)
            .await
            .unwrap(),
        0
    );
}

/// Bare bollard create/start/wait/logs/remove, for the overhead comparison.
async fn bare_run<E: Engine>(fx: &Fixture<E>) {
    let body = ContainerCreateBody {
        image: Some(fx.image.clone()),
        cmd: Some(vec!["echo".into(), "x".into()]),
        labels: Some(HashMap::from([(RUN_LABEL.to_owned(), fx.run_id.clone())])),
        host_config: Some(E::base_host_config()),
        ..ContainerCreateBody::default()
    };
    let id = fx
        .client
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .unwrap()
        .id;
    fx.client.start_container(&id, None).await.unwrap();
    let _ = fx.client.wait_container(&id, None).next().await;
    let logs = LogsOptions {
        stdout: true,
        stderr: true,
        ..LogsOptions::default()
    };
    let output: Vec<_> = fx.client.logs(&id, Some(logs)).collect().await;
    assert!(!output.is_empty());
    let remove = RemoveContainerOptions {
        force: true,
        ..RemoveContainerOptions::default()
    };
    fx.client.remove_container(&id, Some(remove)).await.unwrap();
}

async fn run_overhead_over_bare_bollard_is_small<E: Engine>(fx: Fixture<E>) {
    const RUNS: u32 = 20;
    // Warm up both paths (connection pool, page cache).
    bare_run(&fx).await;
    fx.run(&fx.spec(["echo", "x"])).await;

    // Interleave the two paths so that engine drift affects both alike.
    let (mut bare, mut harness) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..RUNS {
        let began = Instant::now();
        bare_run(&fx).await;
        bare += began.elapsed();
        let began = Instant::now();
        let outcome = fx.runtime.run(&fx.spec(["echo", "x"])).await.unwrap();
        harness += began.elapsed();
        assert_eq!(outcome.stdout, "x\n");
    }
    let (bare, harness) = (bare / RUNS, harness / RUNS);
    eprintln!(
        "{}: mean per run: Runtime::run {harness:?}, bare bollard {bare:?}",
        E::NAME
    );
    assert!(
        harness < bare * 2 + Duration::from_millis(100),
        "run {harness:?} vs bare {bare:?}"
    );
}
