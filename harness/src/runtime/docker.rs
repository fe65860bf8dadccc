//! [`DockerRuntime`]: the [`Runtime`] on Docker Engine's API, through
//! bollard, and [`ApiEngine`], the core it shares with
//! [`PodmanRuntime`](super::PodmanRuntime) (Podman's Docker-compatible API).
//!
//! A run is exactly create, start, wait, logs and remove: no polling and no
//! inspect on the hot path (Podman 4.3 briefly reports a container state,
//! `stopped`, that bollard cannot parse; waiting never sees it). Every
//! container is removed by a guard, also when the run fails or its future is
//! dropped. Privilege support is detected once (see
//! [`DockerRuntime::probe`](Runtime::probe)) because some hosts refuse
//! `--privileged`; the fallback lives here, never in scenarios. What differs
//! between engines is data: an [`EngineProfile`]. Nothing is ever pulled.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{BuildInfo, ContainerCreateBody, ContainerSummary, HostConfig, ImageSummary};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, ListContainersOptions, ListImagesOptions,
    LogsOptions, RemoveContainerOptions, RemoveImageOptions,
};
use futures_util::StreamExt;
use tokio::sync::OnceCell;
use tracing::{debug, info, warn};

use super::context;
use super::endpoint::Endpoint;
use super::error::{Operation, RuntimeError};
use super::spec::{
    BuildOutcome, BuildSpec, ContextFile, EngineInfo, PrivilegeMode, RunOutcome, RunSpec,
    RuntimeKind, StepCapability,
};
use super::{RUN_LABEL, Runtime};

/// Label on the throwaway image and containers of privilege detection.
const PROBE_LABEL: &str = "io.qus.probe";

/// Repository of the throwaway privilege-detection image.
const PROBE_IMAGE: &str = "qus-probe/privilege";

/// A one-file image: enough to create a container, with nothing to run.
const PROBE_CONTAINERFILE: &str = "FROM scratch\nCOPY marker /marker\n";

/// A command that exists in no image. The engine applies capabilities
/// before it looks the command up, so the start error tells "privileges
/// refused" from "privileges granted, command missing".
const PROBE_COMMAND: &str = "/nonexistent";

/// Bound on building the probe image.
const PROBE_BUILD_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times a listing is retried while Podman answers with a
/// transient error (see `list_labelled_containers`, `list_images`), and how
/// long apart.
const LIST_RETRIES: u32 = 50;
const LIST_RETRY_DELAY: Duration = Duration::from_millis(100);

/// How many times a build that failed on a transient engine error
/// ([`EngineProfile::transient_build_errors`]) is run again, and how long
/// apart.
const BUILD_RETRIES: u32 = 5;
const BUILD_RETRY_DELAY: Duration = Duration::from_millis(200);

/// Docker's words for a cached layer that vanished mid-build (an image ID,
/// never a name the Containerfile gave).
const TRANSIENT_CACHE_MISS: &str = "unable to find image \"sha256:";

/// How long to wait for a killed container to report its exit.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// The exit code a `SIGKILL`ed process reports.
const KILLED: i64 = 128 + 9;

/// Security options of the fallback: `--privileged` also lifts these.
const FALLBACK_SECURITY_OPT: [&str; 2] = ["apparmor=unconfined", "seccomp=unconfined"];

/// Dropped when the host's bounding set cannot be read (remote engines):
/// the capability seen missing on CI VMs.
const DEFAULT_FALLBACK_DROP: &str = "SYS_RESOURCE";

/// Phrases of an engine relaying a failure of the container's process to
/// start (runc or crun), as opposed to a failure of the engine itself.
const PROCESS_START_MARKERS: [&str; 4] = [
    "OCI runtime",
    "runc create failed",
    "unable to start container process",
    "starting container process",
];

/// Phrases of a missing command; the docker CLI exits 127 on them.
const NOT_FOUND_MARKERS: [&str; 3] = [
    "executable file not found",
    "no such file or directory",
    "command that was not found",
];

/// Phrases of a command that is not executable; the docker CLI exits 126.
const NOT_EXECUTABLE_MARKERS: [&str; 2] = ["permission denied", "is a directory"];

/// How privileged runs are configured, decided once per runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PrivilegeState {
    mode: PrivilegeMode,
    /// Capabilities the fallback drops from `ALL`.
    cap_drop: Vec<String>,
    /// The engine's refusal, when `mode` is not `Privileged`.
    note: Option<String>,
}

impl PrivilegeState {
    fn privileged() -> Self {
        Self {
            mode: PrivilegeMode::Privileged,
            cap_drop: Vec::new(),
            note: None,
        }
    }

    fn fallback(cap_drop: Vec<String>) -> Self {
        Self {
            mode: PrivilegeMode::CapabilityFallback,
            cap_drop,
            note: None,
        }
    }

    /// `base` with this state's privileges granted.
    fn grant(&self, base: HostConfig) -> HostConfig {
        match self.mode {
            PrivilegeMode::Privileged => HostConfig {
                privileged: Some(true),
                ..base
            },
            PrivilegeMode::CapabilityFallback => HostConfig {
                cap_add: Some(vec!["ALL".to_owned()]),
                cap_drop: Some(self.cap_drop.clone()),
                security_opt: Some(FALLBACK_SECURITY_OPT.map(str::to_owned).to_vec()),
                ..base
            },
            PrivilegeMode::Unavailable | PrivilegeMode::NotApplicable => base,
        }
    }

    /// The equivalent CLI flags, for messages.
    fn describe(&self) -> String {
        match self.mode {
            PrivilegeMode::CapabilityFallback => {
                let mut flags = String::from("--cap-add ALL");
                for cap in &self.cap_drop {
                    flags.push_str(&format!(" --cap-drop {cap}"));
                }
                for opt in FALLBACK_SECURITY_OPT {
                    flags.push_str(&format!(" --security-opt {opt}"));
                }
                flags
            }
            _ => "--privileged".to_owned(),
        }
    }
}

/// What sets one engine speaking Docker's API apart from another: data,
/// not code paths.
#[derive(Debug, Clone)]
pub(super) struct EngineProfile {
    /// Which engine, for errors, logs and [`EngineInfo`].
    pub(super) kind: RuntimeKind,
    /// Settings every container gets before the spec's and the privilege
    /// state's are layered on top (Podman's ulimits).
    pub(super) host_config: HostConfig,
    /// Whether the engine itself refuses to run a local image for another
    /// platform than requested. Docker does; Podman 4.3's compat API
    /// ignores the platform, so the core checks the image's metadata.
    pub(super) enforces_platform: bool,
    /// Whether images are force-removed. Docker's force only untags an
    /// image with several names and deletes one stopped containers use.
    /// Podman's also removes every container using the image *or one of
    /// its parent layers*, which includes the working containers of other
    /// builds sharing cached layers; there images are removed unforced, by
    /// name.
    pub(super) force_image_removal: bool,
    /// Phrases of a failed build that say the engine's own storage changed
    /// under it (another image removed while the builder looked for cached
    /// layers), not that the Containerfile is wrong. Such a build is run
    /// again, up to [`BUILD_RETRIES`] times, within its timeout.
    pub(super) transient_build_errors: &'static [&'static str],
}

impl EngineProfile {
    /// Docker Engine: no settings beyond the spec's.
    fn docker() -> Self {
        Self {
            kind: RuntimeKind::Docker,
            host_config: HostConfig::default(),
            enforces_platform: true,
            force_image_removal: true,
            // The classic builder found a cached layer, then another run's
            // cleanup removed it before the build used it.
            transient_build_errors: &[TRANSIENT_CACHE_MISS],
        }
    }
}

/// The [`Runtime`] operations on any engine that speaks Docker's API.
///
/// [`DockerRuntime`] and [`PodmanRuntime`](super::PodmanRuntime) wrap one
/// each. Cloning is cheap and clones share the connection and the privilege
/// detection.
#[derive(Debug, Clone)]
pub(super) struct ApiEngine {
    /// The bollard client, with the negotiated API version.
    pub(super) docker: Docker,
    endpoint: String,
    profile: Arc<EngineProfile>,
    privilege: Arc<OnceCell<PrivilegeState>>,
    keep: bool,
}

impl ApiEngine {
    /// Connects to `endpoint` (`unix://`, `tcp://`, `http://`, over TLS
    /// when it says so) and negotiates the API version.
    pub(super) async fn connect(
        profile: EngineProfile,
        endpoint: &Endpoint,
    ) -> Result<Self, RuntimeError> {
        let docker = endpoint
            .connect()
            .await
            .map_err(|source| RuntimeError::Unreachable {
                engine: profile.kind,
                endpoint: endpoint.url().to_owned(),
                operation: Operation::Connect,
                source,
            })?;
        debug!(
            engine = %profile.kind,
            endpoint = %endpoint,
            api = %docker.client_version(),
            "connected"
        );
        Ok(Self {
            docker,
            endpoint: endpoint.url().to_owned(),
            profile: Arc::new(profile),
            privilege: Arc::default(),
            keep: false,
        })
    }

    /// Uses `mode` for privileged runs instead of detecting it.
    pub(super) fn with_privilege_mode(mut self, mode: PrivilegeMode) -> Self {
        let state = match mode {
            PrivilegeMode::CapabilityFallback => PrivilegeState::fallback(self.fallback_drops()),
            mode => PrivilegeState {
                mode,
                cap_drop: Vec::new(),
                note: (mode != PrivilegeMode::Privileged)
                    .then(|| "set by configuration".to_owned()),
            },
        };
        self.privilege = Arc::new(OnceCell::new_with(Some(state)));
        self
    }

    /// Leaves containers in place after runs.
    pub(super) fn with_keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// The endpoint this engine talks to.
    pub(super) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Maps a bollard error of `operation` on `object` for this engine.
    pub(super) fn classify(
        &self,
        operation: Operation,
        object: &str,
        err: BollardError,
    ) -> RuntimeError {
        classify(self.profile.kind, &self.endpoint, operation, object, err)
    }

    /// The privilege state, detecting it on first use.
    async fn privilege(&self) -> Result<&PrivilegeState, RuntimeError> {
        self.privilege
            .get_or_try_init(|| self.detect_privilege())
            .await
    }

    /// Capabilities the fallback drops: those missing from this process's
    /// bounding set when the engine is local (the engine runs under the
    /// same limits), else [`DEFAULT_FALLBACK_DROP`].
    fn fallback_drops(&self) -> Vec<String> {
        let local = self.endpoint.starts_with("unix://");
        let read = || {
            let status = std::fs::read_to_string("/proc/self/status").ok()?;
            let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok()?;
            let bounding = crate::capability::bounding_set(&status)?;
            Some(missing_capabilities(bounding, last.trim().parse().ok()?))
        };
        match local.then(read).flatten() {
            Some(missing) if !missing.is_empty() => missing,
            _ => vec![DEFAULT_FALLBACK_DROP.to_owned()],
        }
    }

    /// Starts `/nonexistent` from a throwaway one-file image, first with
    /// `--privileged`, then with the capability fallback, and keeps the
    /// first the engine accepts.
    async fn detect_privilege(&self) -> Result<PrivilegeState, RuntimeError> {
        let tag = format!("{PROBE_IMAGE}:{}", unique_suffix());
        let spec = BuildSpec::inline(
            PROBE_CONTAINERFILE,
            vec![ContextFile::new("marker", Vec::new())],
            tag.clone(),
        )
        .with_label(PROBE_LABEL, "privilege")
        .with_timeout(PROBE_BUILD_TIMEOUT);
        let built = self.build(&spec).await?;
        if !built.success {
            return Err(RuntimeError::OperationFailed {
                operation: Operation::Probe,
                object: tag,
                status: None,
                message: built.output.trim().to_owned(),
            });
        }
        let image = CleanupGuard::image(
            self.docker.clone(),
            tag.clone(),
            self.profile.force_image_removal,
        );
        let result = self.choose_privilege(&tag).await;
        if let Err(err) = image.remove().await {
            warn!(image = %tag, error = %err, "failed to remove the privilege probe image");
        }
        result
    }

    async fn choose_privilege(&self, image: &str) -> Result<PrivilegeState, RuntimeError> {
        let privileged = PrivilegeState::privileged();
        let Some(refusal) = self.refusal(image, &privileged).await? else {
            info!(engine = %self.profile.kind, "the engine grants --privileged");
            return Ok(privileged);
        };
        let mut fallback = PrivilegeState::fallback(self.fallback_drops());
        match self.refusal(image, &fallback).await? {
            None => {
                warn!(
                    engine = %self.profile.kind,
                    refusal = %refusal,
                    "the engine refused --privileged; privileged steps run with {}",
                    fallback.describe()
                );
                fallback.note = Some(format!(
                    "the engine refused --privileged ({refusal}); using {}",
                    fallback.describe()
                ));
                Ok(fallback)
            }
            Some(fallback_refusal) => {
                let note = format!(
                    "the engine refused --privileged ({refusal}) and {} ({fallback_refusal})",
                    fallback.describe()
                );
                warn!("{note}; privileged steps will be skipped");
                Ok(PrivilegeState {
                    mode: PrivilegeMode::Unavailable,
                    cap_drop: Vec::new(),
                    note: Some(note),
                })
            }
        }
    }

    /// `None` when the engine starts a container with `state`'s privileges
    /// (up to the missing command), else its refusal.
    async fn refusal(
        &self,
        image: &str,
        state: &PrivilegeState,
    ) -> Result<Option<String>, RuntimeError> {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec![PROBE_COMMAND.to_owned()]),
            labels: Some(HashMap::from([(
                PROBE_LABEL.to_owned(),
                "privilege".to_owned(),
            )])),
            host_config: Some(state.grant(self.profile.host_config.clone())),
            ..ContainerCreateBody::default()
        };
        let created = self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(|e| self.classify(Operation::Probe, image, e))?;
        let guard = CleanupGuard::container(self.docker.clone(), created.id.clone(), false);
        let started = self.docker.start_container(&created.id, None).await;
        if let Err(err) = guard.remove().await {
            warn!(container = %created.id, error = %err, "failed to remove a privilege probe container");
        }
        let Err(err) = started else {
            // Unreachable in practice (nothing to run), but it means granted.
            return Ok(None);
        };
        let code = match &err {
            BollardError::DockerResponseServerError { message, .. } => {
                process_start_failure_code(message)
            }
            _ => None,
        };
        match (code, err) {
            // Privileges applied, then the command was looked up: granted.
            (Some(127), _) => Ok(None),
            (Some(_), BollardError::DockerResponseServerError { message, .. }) => {
                Ok(Some(engine_reason(&message)))
            }
            (_, err) => Err(self.classify(Operation::Probe, &created.id, err)),
        }
    }

    /// Starts, waits for (bounded by the spec's timeout) and reads the
    /// output of created container `id`.
    async fn drive(
        &self,
        id: &str,
        spec: &RunSpec,
        started: Instant,
    ) -> Result<RunOutcome, RuntimeError> {
        if let Err(err) = self.docker.start_container(id, None).await {
            // The container's process could not start (missing command,
            // foreign binary without binfmt): an outcome, as for the CLI.
            if let BollardError::DockerResponseServerError { message, .. } = &err
                && let Some(exit_code) = process_start_failure_code(message)
            {
                return Ok(RunOutcome {
                    exit_code,
                    stdout: String::new(),
                    stderr: format!("{message}\n"),
                    duration: started.elapsed(),
                    timed_out: false,
                });
            }
            return Err(self.classify(Operation::StartContainer, id, err));
        }

        let deadline = tokio::time::Instant::from_std(started + spec.timeout);
        let mut wait_error = String::new();
        let (exit_code, timed_out) = match tokio::time::timeout_at(deadline, self.wait(id)).await {
            Ok(result) => (result?.record(&mut wait_error), false),
            Err(_elapsed) => {
                debug!(container = id, timeout = ?spec.timeout, "killing a container past its timeout");
                if let Err(err) = self.docker.kill_container(id, None).await {
                    // It may have exited on its own in the meantime.
                    debug!(container = id, error = %err, "kill failed");
                }
                let code = match tokio::time::timeout(KILL_GRACE, self.wait(id)).await {
                    Ok(Ok(exit)) => exit.record(&mut wait_error),
                    _ => KILLED,
                };
                (code, true)
            }
        };

        let (stdout, mut stderr) = self.logs(id).await?;
        stderr.push_str(&wait_error);
        Ok(RunOutcome {
            exit_code,
            stdout,
            stderr,
            duration: started.elapsed(),
            timed_out,
        })
    }

    /// Waits for container `id` to stop; a non-zero exit is a result.
    async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        let mut stream = self.docker.wait_container(id, None);
        match stream.next().await {
            Some(Ok(response)) => Ok(Exit {
                code: response.status_code,
                error: response.error.and_then(|e| e.message).unwrap_or_default(),
            }),
            // bollard reports a non-zero exit as an error; it is the result.
            Some(Err(BollardError::DockerContainerWaitError { error, code })) => {
                Ok(Exit { code, error })
            }
            Some(Err(err)) => Err(self.classify(Operation::WaitContainer, id, err)),
            None => Err(RuntimeError::OperationFailed {
                operation: Operation::WaitContainer,
                object: id.to_owned(),
                status: None,
                message: "the engine closed the wait without an exit status".to_owned(),
            }),
        }
    }

    /// Reads the whole output of stopped container `id`, split by stream.
    async fn logs(&self, id: &str) -> Result<(String, String), RuntimeError> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            ..LogsOptions::default()
        };
        let mut stream = self.docker.logs(id, Some(options));
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(item) = stream.next().await {
            use bollard::container::LogOutput;
            match item.map_err(|e| self.classify(Operation::ReadLogs, id, e))? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    stdout.extend_from_slice(&message);
                }
                LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok((
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        ))
    }

    async fn remove_labelled_containers(&self, filter: &str) -> Result<usize, RuntimeError> {
        let containers = self.list_labelled_containers(filter).await?;
        let mut removed = 0;
        for id in containers.into_iter().filter_map(|c| c.id) {
            let guard = CleanupGuard::container(self.docker.clone(), id.clone(), false);
            guard
                .remove()
                .await
                .map_err(|e| self.classify(Operation::RemoveContainer, &id, e))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The containers labelled `filter`. Podman 4.3 briefly reports a
    /// stopping container's state as `stopped`, which bollard cannot parse
    /// (here as in inspect); the listing is retried until it settles.
    async fn list_labelled_containers(
        &self,
        filter: &str,
    ) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(label_filter(filter)),
            ..ListContainersOptions::default()
        };
        let mut retries = 0;
        loop {
            match self.docker.list_containers(Some(options.clone())).await {
                Err(BollardError::JsonDataError { message, .. })
                    if retries < LIST_RETRIES && message.contains("unknown variant") =>
                {
                    debug!(label = filter, message, "retrying a container listing");
                    retries += 1;
                    tokio::time::sleep(LIST_RETRY_DELAY).await;
                }
                result => {
                    return result.map_err(|e| self.classify(Operation::ListContainers, filter, e));
                }
            }
        }
    }

    /// Lists images. Podman 4.3 fails a listing with "image not known" when
    /// an image goes while it looks up parents (a concurrent removal); the
    /// listing is retried until it settles.
    async fn list_images(
        &self,
        options: ListImagesOptions,
        filter: &str,
    ) -> Result<Vec<ImageSummary>, RuntimeError> {
        let mut retries = 0;
        loop {
            match self.docker.list_images(Some(options.clone())).await {
                Err(BollardError::DockerResponseServerError {
                    status_code: 500,
                    message,
                }) if retries < LIST_RETRIES && message.contains("image not known") => {
                    debug!(label = filter, message, "retrying an image listing");
                    retries += 1;
                    tokio::time::sleep(LIST_RETRY_DELAY).await;
                }
                result => {
                    return result.map_err(|e| self.classify(Operation::ListImages, filter, e));
                }
            }
        }
    }

    /// The images labelled `filter` (not the layers under them), newest
    /// first: an image built `FROM` another comes before it, as removal
    /// needs.
    async fn list_labelled_images(&self, filter: &str) -> Result<Vec<ImageSummary>, RuntimeError> {
        let options = ListImagesOptions {
            filters: Some(label_filter(filter)),
            ..ListImagesOptions::default()
        };
        let mut images = self.list_images(options, filter).await?;
        images.sort_by(|a, b| (b.created, is_untagged(a)).cmp(&(a.created, is_untagged(b))));
        Ok(images)
    }

    async fn remove_labelled_images(&self, filter: &str) -> Result<usize, RuntimeError> {
        let images = self.list_labelled_images(filter).await?;
        if self.profile.force_image_removal {
            for image in &images {
                let guard = CleanupGuard::image(self.docker.clone(), image.id.clone(), true);
                guard
                    .remove()
                    .await
                    .map_err(|e| self.classify(Operation::RemoveImage, &image.id, e))?;
            }
            return Ok(images.len());
        }
        // Unforced (Podman), named images first, by name: removal by ID
        // fails for an image with several names, and removing its last name
        // deletes it and prunes its unused untagged parents.
        let mut removed = 0;
        for image in images.iter().filter(|i| !is_untagged(i)) {
            for tag in image.repo_tags.iter().filter(|t| *t != UNTAGGED) {
                let guard = CleanupGuard::image(self.docker.clone(), tag.clone(), false);
                guard
                    .remove()
                    .await
                    .map_err(|e| self.classify(Operation::RemoveImage, tag, e))?;
            }
            removed += 1;
        }
        Ok(removed + self.remove_untagged_images(filter).await?)
    }

    /// Removes the untagged images labelled `filter` that are left after
    /// their named children went: layers of failed builds, and layers that
    /// were in use. Podman (which labels every layer of a build) removes an
    /// image without layers of its own from under its children, leaving an
    /// image whose parent is unknown and breaking every image listing; so
    /// an image that is still some image's parent stays, and so does one a
    /// container uses.
    async fn remove_untagged_images(&self, filter: &str) -> Result<usize, RuntimeError> {
        let mut removed = 0;
        loop {
            let options = ListImagesOptions {
                all: true,
                ..ListImagesOptions::default()
            };
            // Podman lists parents without the `sha256:` its IDs have.
            let parents: HashSet<String> = self
                .list_images(options, filter)
                .await?
                .into_iter()
                .map(|i| bare_id(&i.parent_id).to_owned())
                .collect();
            let mut progress = false;
            for image in self.list_labelled_images(filter).await? {
                if !is_untagged(&image) || parents.contains(bare_id(&image.id)) {
                    continue;
                }
                let guard = CleanupGuard::image(self.docker.clone(), image.id.clone(), false);
                match guard.remove().await {
                    Ok(()) => {
                        removed += 1;
                        progress = true;
                    }
                    Err(BollardError::DockerResponseServerError {
                        status_code: 409,
                        message,
                    }) => debug!(image = %image.id, message, "kept a labelled layer in use"),
                    Err(err) => return Err(self.classify(Operation::RemoveImage, &image.id, err)),
                }
            }
            // Each round removes a layer, so the chains it frees are finite.
            if !progress {
                return Ok(removed);
            }
        }
    }

    /// Everything is supported, except privileged runs once
    /// [`probe`](Runtime::probe) found the engine grants no privileges.
    pub(super) fn supports(&self, capability: StepCapability) -> Result<(), String> {
        match (capability, self.privilege.get()) {
            (StepCapability::PrivilegedRun, Some(state))
                if state.mode == PrivilegeMode::Unavailable =>
            {
                Err(state.note.clone().unwrap_or_default())
            }
            _ => Ok(()),
        }
    }

    pub(super) async fn probe(&self) -> Result<EngineInfo, RuntimeError> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|e| self.classify(Operation::Probe, &self.endpoint, e))?;
        let privilege = self.privilege().await?;
        Ok(EngineInfo {
            kind: self.profile.kind,
            version: version.version.unwrap_or_default(),
            api_version: Some(self.docker.client_version().to_string()),
            privilege: privilege.mode,
            privilege_note: privilege.note.clone(),
        })
    }

    pub(super) async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, RuntimeError> {
        let privilege = if spec.privileged {
            let state = self.privilege().await?;
            if state.mode == PrivilegeMode::Unavailable {
                return Err(RuntimeError::Unsupported {
                    runtime: self.profile.kind,
                    capability: StepCapability::PrivilegedRun,
                    reason: state.note.clone().unwrap_or_default(),
                });
            }
            Some(state)
        } else {
            None
        };
        let started = Instant::now();
        if let (false, Some(platform)) = (self.profile.enforces_platform, &spec.platform) {
            self.check_platform(&spec.image, platform).await?;
        }
        let options = CreateContainerOptions {
            name: None,
            platform: spec.platform.clone().unwrap_or_default(),
        };
        let created = self
            .docker
            .create_container(
                Some(options),
                container_config(spec, privilege, &self.profile.host_config),
            )
            .await
            .map_err(|e| self.classify(Operation::CreateContainer, &spec.image, e))?;
        // From here on the container exists: the guard removes it on every
        // path, including this future being dropped.
        let guard = CleanupGuard::container(self.docker.clone(), created.id.clone(), self.keep);
        let result = self.drive(&created.id, spec, started).await;
        if let Err(err) = guard.remove().await {
            warn!(container = %created.id, error = %err, "failed to remove a container");
        }
        result
    }

    /// Refuses, as Docker does, to run local `image` for a `platform` its
    /// metadata does not name.
    async fn check_platform(&self, image: &str, platform: &str) -> Result<(), RuntimeError> {
        let inspect = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|e| self.classify(Operation::CreateContainer, image, e))?;
        let os = inspect.os.unwrap_or_default();
        let arch = inspect.architecture.unwrap_or_default();
        let variant = inspect.variant.filter(|v| !v.is_empty());
        if platform_matches(platform, &os, &arch, variant.as_deref()) {
            return Ok(());
        }
        let actual = match variant {
            Some(variant) => format!("{os}/{arch}/{variant}"),
            None => format!("{os}/{arch}"),
        };
        Err(RuntimeError::ImageNotFound {
            operation: Operation::CreateContainer,
            image: image.to_owned(),
            message: format!(
                "image with reference {image} was found but does not match the specified \
                 platform: wanted {platform}, actual: {actual}"
            ),
        })
    }

    pub(super) async fn build(&self, spec: &BuildSpec) -> Result<BuildOutcome, RuntimeError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + spec.timeout);
        let mut retried = String::new();
        let mut attempt = 0;
        let (mut log, timed_out) = loop {
            let (log, timed_out) = self.build_once(spec, deadline).await?;
            match transient_phrase(self.profile.transient_build_errors, &log) {
                Some(phrase)
                    if !timed_out
                        && attempt < BUILD_RETRIES
                        && tokio::time::Instant::now() + BUILD_RETRY_DELAY < deadline =>
                {
                    attempt += 1;
                    debug!(build = %spec.tag, attempt, phrase, "retrying a build after a transient engine error");
                    retried.push_str(&format!(
                        "{} reported a transient storage error ({phrase}); building again\n",
                        self.profile.kind
                    ));
                    self.remove_layers(&spec.tag, &built_layers(&log.output))
                        .await;
                    tokio::time::sleep(BUILD_RETRY_DELAY).await;
                }
                _ => break (log, timed_out),
            }
        };
        if timed_out {
            log.output
                .push_str(&format!("build timed out after {:?}\n", spec.timeout));
        }
        let success = !timed_out && !log.failed;
        if !success {
            self.remove_layers(&spec.tag, &built_layers(&log.output))
                .await;
        }
        Ok(BuildOutcome {
            success,
            output: retried + &log.output,
            duration: started.elapsed(),
            timed_out,
        })
    }

    /// One build of `spec`, until it ends or `deadline`: its log and
    /// whether the deadline cut it.
    async fn build_once(
        &self,
        spec: &BuildSpec,
        deadline: tokio::time::Instant,
    ) -> Result<(BuildLog, bool), RuntimeError> {
        let (build_context, tag) = (spec.context.clone(), spec.tag.clone());
        let packed = tokio::task::spawn_blocking(move || context::pack(&build_context, &tag))
            .await
            .map_err(|join| RuntimeError::Io {
                operation: Operation::PrepareContext,
                object: spec.tag.clone(),
                source: std::io::Error::other(join),
            })??;
        let to_map = |map: &std::collections::BTreeMap<String, String>| {
            (!map.is_empty()).then(|| map.clone().into_iter().collect::<HashMap<_, _>>())
        };
        let options = BuildImageOptions {
            dockerfile: packed.containerfile,
            t: Some(spec.tag.clone()),
            rm: true,
            forcerm: true,
            nocache: spec.no_cache,
            buildargs: to_map(&spec.build_args),
            labels: to_map(&spec.labels),
            platform: spec.platform.clone().unwrap_or_default(),
            ..BuildImageOptions::default()
        };
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(packed.tar.into())));
        let mut log = BuildLog::default();
        let timed_out = loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                // Dropping the stream closes the connection, which cancels
                // the build in the engine.
                Err(_elapsed) => break true,
                Ok(None) => break false,
                Ok(Some(item)) => log
                    .absorb(item)
                    .map_err(|e| self.classify(Operation::BuildImage, &spec.tag, e))?,
            }
        };
        Ok((log, timed_out))
    }

    /// Removes the layers a failed build committed: no label marks them
    /// (Docker labels only the final image), so nothing else would.
    /// Unforced, leaf first (which prunes its untagged parents too); a
    /// layer that is in use or has other children stays.
    async fn remove_layers(&self, tag: &str, layers: &[String]) {
        for layer in layers.iter().rev() {
            let options = RemoveImageOptions {
                force: false,
                ..RemoveImageOptions::default()
            };
            match self.docker.remove_image(layer, Some(options), None).await {
                Ok(_)
                | Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(err) => {
                    debug!(build = tag, layer, error = %err, "kept a layer of a failed build");
                }
            }
        }
    }

    pub(super) async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        Ok(self.image_id(image).await?.is_some())
    }

    /// The ID (`sha256:…`) of local image `image`, `None` when absent.
    pub(super) async fn image_id(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(Some(inspect.id.unwrap_or_default())),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(err) => Err(self.classify(Operation::InspectImage, image, err)),
        }
    }

    pub(super) async fn remove_labelled(
        &self,
        label_key: &str,
        label_value: &str,
    ) -> Result<usize, RuntimeError> {
        let filter = format!("{label_key}={label_value}");
        // Containers first: an image in use cannot be removed.
        let containers = self.remove_labelled_containers(&filter).await?;
        let images = self.remove_labelled_images(&filter).await?;
        if containers + images > 0 {
            debug!(label = %filter, containers, images, "removed labelled objects");
        }
        Ok(containers + images)
    }
}

/// The [`Runtime`] on Docker Engine.
///
/// Cloning is cheap and clones share the connection and the privilege
/// detection.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    engine: ApiEngine,
}

impl DockerRuntime {
    /// Connects where `DOCKER_HOST` says (the local socket when unset), over
    /// TLS when `DOCKER_TLS_VERIFY` is set (with the files in
    /// `DOCKER_CERT_PATH`), as the docker CLI does, and negotiates the API
    /// version.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Unreachable`] when the engine does not answer; its
    /// cause is a [`TlsConnectError`](super::TlsConnectError) naming what to
    /// fix when TLS failed.
    pub async fn connect() -> Result<Self, RuntimeError> {
        Self::connect_to(&Endpoint::docker_from_env()).await
    }

    /// Connects to `host` (`unix://`, `tcp://`, `http://`), over TLS when
    /// `DOCKER_TLS_VERIFY` is set (as `docker -H` does), and negotiates the
    /// API version.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with_host(host: &str) -> Result<Self, RuntimeError> {
        Self::connect_to(&Endpoint::docker_with_env_tls(host)).await
    }

    /// Connects to `endpoint`, whatever the environment says, and
    /// negotiates the API version.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_to(endpoint: &Endpoint) -> Result<Self, RuntimeError> {
        let engine = ApiEngine::connect(EngineProfile::docker(), endpoint).await?;
        Ok(Self { engine })
    }

    /// Uses `mode` for privileged runs instead of detecting it.
    ///
    /// [`PrivilegeMode::CapabilityFallback`] drops the capabilities missing
    /// from this process's bounding set.
    pub fn with_privilege_mode(self, mode: PrivilegeMode) -> Self {
        Self {
            engine: self.engine.with_privilege_mode(mode),
        }
    }

    /// Leaves containers in place after runs (`--keep`), for debugging.
    pub fn with_keep(self, keep: bool) -> Self {
        Self {
            engine: self.engine.with_keep(keep),
        }
    }

    /// The endpoint this runtime talks to.
    pub fn endpoint(&self) -> &str {
        self.engine.endpoint()
    }

    /// The connected bollard client, for the image builder's direct API
    /// calls.
    pub(crate) fn client(&self) -> &bollard::Docker {
        &self.engine.docker
    }

    /// The shared core, for image transfers between engines.
    pub(super) fn engine(&self) -> &ApiEngine {
        &self.engine
    }
}

impl Runtime for DockerRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Docker
    }

    /// Everything is supported, except privileged runs once
    /// [`probe`](Runtime::probe) found the engine grants no privileges.
    fn supports(&self, capability: StepCapability) -> Result<(), String> {
        self.engine.supports(capability)
    }

    async fn probe(&self) -> Result<EngineInfo, RuntimeError> {
        self.engine.probe().await
    }

    async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, RuntimeError> {
        self.engine.run(spec).await
    }

    async fn build(&self, spec: &BuildSpec) -> Result<BuildOutcome, RuntimeError> {
        self.engine.build(spec).await
    }

    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        self.engine.image_exists(image).await
    }

    async fn remove_labelled(
        &self,
        label_key: &str,
        label_value: &str,
    ) -> Result<usize, RuntimeError> {
        self.engine.remove_labelled(label_key, label_value).await
    }
}

/// The exit status of a container and the engine's error text, if any.
struct Exit {
    code: i64,
    error: String,
}

impl Exit {
    /// Returns the code, appending the engine's error text to `stderr`.
    fn record(self, stderr: &mut String) -> i64 {
        if !self.error.is_empty() {
            stderr.push_str(&self.error);
            stderr.push('\n');
        }
        self.code
    }
}

/// The create request for `spec` on top of the engine's `base` host
/// configuration, with `privilege` when the spec asks for it.
fn container_config(
    spec: &RunSpec,
    privilege: Option<&PrivilegeState>,
    base: &HostConfig,
) -> ContainerCreateBody {
    let base = base.clone();
    let host_config = HostConfig {
        binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
        network_mode: spec.network.clone(),
        ..match privilege {
            Some(state) => state.grant(base),
            None => base,
        }
    };
    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        // An empty command keeps the image's CMD.
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        entrypoint: spec.entrypoint.clone(),
        env: (!env.is_empty()).then_some(env),
        user: spec.user.clone(),
        labels: (!spec.labels.is_empty())
            .then(|| spec.labels.clone().into_iter().collect::<HashMap<_, _>>()),
        tty: Some(false),
        host_config: Some(host_config),
        ..ContainerCreateBody::default()
    }
}

/// Maps a bollard error to a [`RuntimeError`] that says whether the engine
/// is unreachable, the image absent, or the engine refused.
fn classify(
    engine: RuntimeKind,
    endpoint: &str,
    operation: Operation,
    object: &str,
    err: BollardError,
) -> RuntimeError {
    match err {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } if matches!(
            operation,
            Operation::CreateContainer | Operation::InspectImage
        ) =>
        {
            RuntimeError::ImageNotFound {
                operation,
                image: object.to_owned(),
                message,
            }
        }
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => RuntimeError::OperationFailed {
            operation,
            object: object.to_owned(),
            status: Some(status_code),
            message,
        },
        BollardError::DockerStreamError { error } => RuntimeError::OperationFailed {
            operation,
            object: object.to_owned(),
            status: None,
            message: error,
        },
        err @ (BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. }
        | BollardError::RequestTimeoutError
        | BollardError::SocketNotFoundError(_)
        | BollardError::UnsupportedURISchemeError { .. }) => RuntimeError::Unreachable {
            engine,
            endpoint: endpoint.to_owned(),
            operation,
            source: Box::new(err),
        },
        err => RuntimeError::OperationFailed {
            operation,
            object: object.to_owned(),
            status: None,
            message: err.to_string(),
        },
    }
}

/// The exit code the docker CLI gives when the engine could not start the
/// container's process, or `None` when `message` is not such a failure.
fn process_start_failure_code(message: &str) -> Option<i64> {
    if !PROCESS_START_MARKERS.iter().any(|m| message.contains(m)) {
        return None;
    }
    let code = if NOT_FOUND_MARKERS.iter().any(|m| message.contains(m)) {
        127
    } else if NOT_EXECUTABLE_MARKERS.iter().any(|m| message.contains(m)) {
        126
    } else {
        125
    };
    Some(code)
}

/// The interesting tail of an OCI runtime message: after the last
/// "container process: " when present.
fn engine_reason(message: &str) -> String {
    let reason = message
        .rsplit_once("container process: ")
        .map_or(message, |(_, tail)| tail);
    reason.trim_end_matches(": unknown").trim().to_owned()
}

/// Whether an image whose metadata says `os`/`arch`/`variant` satisfies
/// `platform` (`os[/arch[/variant]]`), with the usual aliases
/// (`x86_64` is `amd64`, `aarch64` is `arm64`). A variant only counts when
/// both sides name one; `arm64` is `v8` when unnamed.
fn platform_matches(platform: &str, os: &str, arch: &str, variant: Option<&str>) -> bool {
    let normal = |arch: &str| match arch {
        "x86_64" | "x86-64" => "amd64".to_owned(),
        "aarch64" => "arm64".to_owned(),
        "i386" | "i686" => "386".to_owned(),
        other => other.to_lowercase(),
    };
    let mut wanted = platform.split('/');
    let wanted_os = wanted.next().unwrap_or_default();
    if !wanted_os.eq_ignore_ascii_case(os) {
        return false;
    }
    let Some(wanted_arch) = wanted.next() else {
        return true;
    };
    let arch = normal(arch);
    if normal(wanted_arch) != arch {
        return false;
    }
    let default_variant = (arch == "arm64").then_some("v8");
    match (wanted.next(), variant.or(default_variant)) {
        (Some(wanted), Some(actual)) => wanted.eq_ignore_ascii_case(actual),
        _ => true,
    }
}

/// Names of capabilities `0..=last_cap` missing from `bounding`, as
/// `--cap-drop` spells them (no `CAP_` prefix); bits this harness has no
/// name for cannot be dropped by name and are left out.
fn missing_capabilities(bounding: u64, last_cap: u32) -> Vec<String> {
    crate::capability::missing(bounding, Some(last_cap))
        .into_iter()
        .filter_map(|name| name.strip_prefix("CAP_").map(str::to_owned))
        .collect()
}

/// The image layers a build committed, in order, from its output: the IDs
/// on the builders' `---> <id>` (Docker) and `--> <id>` (Podman) lines,
/// except those reused from the cache, which belong to earlier builds.
fn built_layers(output: &str) -> Vec<String> {
    let mut layers = Vec::new();
    let mut cached = false;
    for line in output.lines() {
        let line = line.trim();
        let Some(rest) = line
            .strip_prefix("--->")
            .or_else(|| line.strip_prefix("-->"))
        else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with("Using cache") {
            // The cached layer's ID follows, on this line or the next.
            cached = true;
        } else if rest.len() >= 11
            && rest.chars().all(|c| c.is_ascii_hexdigit())
            && !std::mem::take(&mut cached)
        {
            layers.push(rest.to_owned());
        }
    }
    layers
}

/// A `label=key=value` filter for list requests.
fn label_filter(filter: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![filter.to_owned()])])
}

/// A string unique to this process and call, valid in image tags.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos}-{n}", std::process::id())
}

/// The classic builder's progress, folded into text and a failure flag.
#[derive(Debug, Default)]
struct BuildLog {
    output: String,
    failed: bool,
}

impl BuildLog {
    /// Folds one stream item in. Errors the builder reports (a failed step,
    /// a Containerfile the engine rejects) mark the build failed; transport
    /// errors are returned.
    fn absorb(&mut self, item: Result<BuildInfo, BollardError>) -> Result<(), BollardError> {
        match item {
            Ok(info) => {
                if let Some(text) = info.stream {
                    self.output.push_str(&text);
                }
                if let Some(status) = info.status {
                    self.output.push_str(&status);
                    self.output.push('\n');
                }
                if let Some(message) = info.error_detail.and_then(|d| d.message) {
                    self.fail(&message);
                }
                Ok(())
            }
            Err(BollardError::DockerStreamError { error })
            | Err(BollardError::DockerResponseServerError { message: error, .. }) => {
                self.fail(&error);
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    fn fail(&mut self, message: &str) {
        self.failed = true;
        if !self.output.is_empty() && !self.output.ends_with('\n') {
            self.output.push('\n');
        }
        self.output.push_str(message);
        self.output.push('\n');
    }
}

/// The first of `phrases` (an engine's transient build errors) that a
/// failed build's output contains; `None` for a build that succeeded.
fn transient_phrase(phrases: &[&'static str], log: &BuildLog) -> Option<&'static str> {
    if !log.failed {
        return None;
    }
    phrases
        .iter()
        .copied()
        .find(|phrase| log.output.contains(phrase))
}

/// How engines list an image without a name.
const UNTAGGED: &str = "<none>:<none>";

/// An image ID without its `sha256:` prefix.
fn bare_id(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// Whether `image` has no name.
fn is_untagged(image: &ImageSummary) -> bool {
    image.repo_tags.iter().all(|t| t == UNTAGGED)
}

/// Something the engine holds that a guard removes.
#[derive(Debug, Clone)]
enum Resource {
    Container(String),
    /// An image by name or ID, and whether to force its removal (see
    /// [`EngineProfile::force_image_removal`]).
    Image {
        reference: String,
        force: bool,
    },
}

/// Removes a container (forced) or image when told to, or when dropped.
///
/// Dropping spawns the removal on the current tokio runtime, so a run
/// whose future is dropped still removes its container. When the runtime
/// itself is shutting down the task may not run: runners also call
/// [`Runtime::remove_labelled`] with [`RUN_LABEL`] at the end of a run.
struct CleanupGuard {
    docker: Docker,
    resource: Option<Resource>,
}

impl CleanupGuard {
    /// Guards container `id`; with `keep` the guard does nothing.
    fn container(docker: Docker, id: String, keep: bool) -> Self {
        Self {
            docker,
            resource: (!keep).then_some(Resource::Container(id)),
        }
    }

    /// Guards image `reference` (a name or an ID).
    fn image(docker: Docker, reference: String, force: bool) -> Self {
        Self {
            docker,
            resource: Some(Resource::Image { reference, force }),
        }
    }

    /// Removes the resource now. A resource already gone counts as removed.
    async fn remove(mut self) -> Result<(), BollardError> {
        let Some(resource) = &self.resource else {
            return Ok(());
        };
        // The resource stays armed during the request, so dropping this
        // future mid-request still removes it.
        let result = remove_resource(&self.docker, resource).await;
        self.resource = None;
        result
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        let Some(resource) = self.resource.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let docker = self.docker.clone();
                handle.spawn(async move {
                    if let Err(err) = remove_resource(&docker, &resource).await {
                        warn!(?resource, error = %err, "failed to remove after cancellation");
                    }
                });
            }
            Err(_) => warn!(
                ?resource,
                "left behind: no async runtime to remove it (remove it by its `{RUN_LABEL}` label)"
            ),
        }
    }
}

async fn remove_resource(docker: &Docker, resource: &Resource) -> Result<(), BollardError> {
    let result = match resource {
        Resource::Container(id) => {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..RemoveContainerOptions::default()
            };
            docker.remove_container(id, Some(options)).await
        }
        Resource::Image { reference, force } => {
            let options = RemoveImageOptions {
                force: *force,
                ..RemoveImageOptions::default()
            };
            docker
                .remove_image(reference, Some(options), None)
                .await
                .map(drop)
        }
    };
    match (resource, result) {
        // Gone already.
        (
            _,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }),
        ) => Ok(()),
        // A container being removed by someone else (another guard, a
        // concurrent `remove_labelled`).
        (
            Resource::Container(_),
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }),
        ) => Ok(()),
        // Unforced, Podman deletes the image, then reports 409 when a parent
        // layer it would also have pruned is in use (another build). The
        // image is gone; the parent stays for its user. An image still
        // there is itself in use, which is a real failure.
        (
            Resource::Image {
                reference,
                force: false,
            },
            Err(
                err @ BollardError::DockerResponseServerError {
                    status_code: 409, ..
                },
            ),
        ) => match docker.inspect_image(reference).await {
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            _ => Err(err),
        },
        (_, other) => other,
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::ResourcesUlimits;

    use super::*;
    use crate::runtime::SCENARIO_LABEL;

    const ENDPOINT: &str = "unix:///var/run/docker.sock";

    fn server_error(status_code: u16, message: &str) -> BollardError {
        BollardError::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn container_config_maps_every_spec_field() {
        let spec = RunSpec::new("img:1", ["echo", "hi"])
            .with_entrypoint(["/probe"])
            .with_env("A", "1")
            .with_bind("/h:/c:ro")
            .with_network("none")
            .with_user("1000:1000")
            .with_run_id("run")
            .with_scenario("sc");
        let body = container_config(&spec, None, &HostConfig::default());
        assert_eq!(body.image.as_deref(), Some("img:1"));
        assert_eq!(body.cmd, Some(vec!["echo".into(), "hi".into()]));
        assert_eq!(body.entrypoint, Some(vec!["/probe".into()]));
        assert_eq!(body.env, Some(vec!["A=1".into()]));
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.tty, Some(false));
        let labels = body.labels.unwrap();
        assert_eq!(labels[RUN_LABEL], "run");
        assert_eq!(labels[SCENARIO_LABEL], "sc");
        let host = body.host_config.unwrap();
        assert_eq!(host.binds, Some(vec!["/h:/c:ro".into()]));
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.privileged, None);
        assert_eq!(host.cap_add, None);
    }

    #[test]
    fn container_config_leaves_image_defaults_alone() {
        let body = container_config(
            &RunSpec::new("img", Vec::<String>::new()),
            None,
            &HostConfig::default(),
        );
        assert_eq!(body.cmd, None);
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.env, None);
        assert_eq!(body.labels, None);
        assert_eq!(body.host_config.unwrap().binds, None);
    }

    #[test]
    fn privileged_state_sets_privileged() {
        let spec = RunSpec::new("img", ["x"])
            .with_privileged(true)
            .with_bind("/a:/b");
        let state = PrivilegeState::privileged();
        let host = container_config(&spec, Some(&state), &HostConfig::default())
            .host_config
            .unwrap();
        assert_eq!(host.privileged, Some(true));
        assert_eq!(host.cap_add, None);
        assert_eq!(host.binds, Some(vec!["/a:/b".into()]));
    }

    #[test]
    fn the_engine_base_survives_spec_and_privilege() {
        let base = HostConfig {
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(4096),
                hard: Some(4096),
            }]),
            ..HostConfig::default()
        };
        let spec = RunSpec::new("img", ["x"])
            .with_privileged(true)
            .with_bind("/a:/b");
        for state in [
            PrivilegeState::privileged(),
            PrivilegeState::fallback(vec!["SYS_RESOURCE".into()]),
        ] {
            let host = container_config(&spec, Some(&state), &base)
                .host_config
                .unwrap();
            assert_eq!(host.ulimits, base.ulimits);
            assert_eq!(host.binds, Some(vec!["/a:/b".into()]));
            assert!(host.privileged == Some(true) || host.cap_add.is_some());
        }
        let plain = container_config(&RunSpec::new("img", ["x"]), None, &base);
        assert_eq!(plain.host_config.unwrap().ulimits, base.ulimits);
    }

    #[test]
    fn fallback_state_adds_all_but_the_missing_capabilities() {
        let state = PrivilegeState::fallback(vec!["SYS_RESOURCE".into()]);
        let host = state.grant(HostConfig::default());
        assert_eq!(host.privileged, None);
        assert_eq!(host.cap_add, Some(vec!["ALL".into()]));
        assert_eq!(host.cap_drop, Some(vec!["SYS_RESOURCE".into()]));
        assert_eq!(
            host.security_opt,
            Some(vec![
                "apparmor=unconfined".into(),
                "seccomp=unconfined".into()
            ])
        );
        assert_eq!(
            state.describe(),
            "--cap-add ALL --cap-drop SYS_RESOURCE --security-opt apparmor=unconfined \
             --security-opt seccomp=unconfined"
        );
    }

    #[test]
    fn missing_capabilities_reads_the_bounding_set() {
        // The CI VM: every capability up to 40 but CAP_SYS_RESOURCE (24).
        let status = "Name:\tx\nCapBnd:\t000001fffeffffff\nCapAmb:\t0\n";
        let bounding = crate::capability::bounding_set(status).unwrap();
        assert_eq!(missing_capabilities(bounding, 40), ["SYS_RESOURCE"]);
        assert!(missing_capabilities(u64::MAX, 40).is_empty());
        // Capabilities the kernel does not know are not reported missing.
        assert_eq!(
            missing_capabilities(0x3f_ffff_ffff, 37),
            Vec::<String>::new()
        );
        assert_eq!(missing_capabilities(0, 1), ["CHOWN", "DAC_OVERRIDE"]);
        assert_eq!(crate::capability::bounding_set("CapEff:\t1\n"), None);
    }

    #[test]
    fn platforms_match_like_docker() {
        assert!(platform_matches("linux/amd64", "linux", "amd64", None));
        assert!(platform_matches("linux/amd64", "linux", "x86_64", None));
        assert!(platform_matches("linux", "linux", "s390x", None));
        assert!(platform_matches(
            "linux/arm64",
            "linux",
            "arm64",
            Some("v8")
        ));
        assert!(platform_matches("linux/arm64/v8", "linux", "aarch64", None));
        assert!(platform_matches("linux/arm/v7", "linux", "arm", None));
        assert!(!platform_matches(
            "linux/arm/v7",
            "linux",
            "arm",
            Some("v6")
        ));
        assert!(!platform_matches("linux/arm64", "linux", "amd64", None));
        assert!(!platform_matches("windows/amd64", "linux", "amd64", None));
    }

    #[test]
    fn not_found_on_create_or_inspect_is_image_not_found() {
        for operation in [Operation::CreateContainer, Operation::InspectImage] {
            let err = classify(
                RuntimeKind::Docker,
                ENDPOINT,
                operation,
                "a:b",
                server_error(404, "No such image: a:b"),
            );
            assert!(
                matches!(&err, RuntimeError::ImageNotFound { image, message, .. }
                    if image == "a:b" && message == "No such image: a:b"),
                "{err:?}"
            );
        }
        let err = classify(
            RuntimeKind::Docker,
            ENDPOINT,
            Operation::StartContainer,
            "id",
            server_error(404, "No such container"),
        );
        assert_eq!(err.status_code(), Some(404));
    }

    #[test]
    fn server_errors_keep_status_and_message() {
        let err = classify(
            RuntimeKind::Docker,
            ENDPOINT,
            Operation::RemoveImage,
            "img",
            server_error(409, "in use"),
        );
        assert!(matches!(
            err,
            RuntimeError::OperationFailed {
                operation: Operation::RemoveImage,
                status: Some(409),
                ref message,
                ..
            } if message == "in use"
        ));
    }

    #[test]
    fn transport_errors_are_unreachable() {
        let errors = [
            BollardError::RequestTimeoutError,
            BollardError::SocketNotFoundError("/x.sock".into()),
            BollardError::IOError {
                err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            },
        ];
        for source in errors {
            let err = classify(
                RuntimeKind::Podman,
                ENDPOINT,
                Operation::Probe,
                ENDPOINT,
                source,
            );
            assert!(
                matches!(&err, RuntimeError::Unreachable { engine: RuntimeKind::Podman, endpoint, .. }
                    if endpoint == ENDPOINT),
                "{err:?}"
            );
            assert!(err.is_engine_failure());
        }
    }

    #[test]
    fn start_failures_map_to_cli_exit_codes() {
        let not_found = "failed to create shim task: OCI runtime create failed: runc create failed: \
            unable to start container process: exec: \"/nonexistent\": stat /nonexistent: \
            no such file or directory: unknown";
        assert_eq!(process_start_failure_code(not_found), Some(127));
        let not_executable = "OCI runtime create failed: runc create failed: unable to start \
            container process: exec: \"/etc\": permission denied: unknown";
        assert_eq!(process_start_failure_code(not_executable), Some(126));
        let foreign = "OCI runtime create failed: runc create failed: unable to start container \
            process: exec: \"/probe\": exec format error: unknown";
        assert_eq!(process_start_failure_code(foreign), Some(125));
        let caps = "failed to create shim task: OCI runtime create failed: runc create failed: \
            unable to start container process: unable to apply caps: operation not permitted: unknown";
        assert_eq!(process_start_failure_code(caps), Some(125));
        assert_eq!(
            engine_reason(caps),
            "unable to apply caps: operation not permitted"
        );
        assert_eq!(process_start_failure_code("No such container: abc"), None);
        assert_eq!(
            process_start_failure_code("driver failed programming"),
            None
        );
    }

    #[test]
    fn build_log_collects_output_and_failures() {
        let mut log = BuildLog::default();
        let step = BuildInfo {
            stream: Some("Step 1/2 : FROM scratch\n".into()),
            ..BuildInfo::default()
        };
        log.absorb(Ok(step)).unwrap();
        assert!(!log.failed);
        log.absorb(Err(BollardError::DockerStreamError {
            error: "COPY failed: file not found".into(),
        }))
        .unwrap();
        assert!(log.failed);
        assert_eq!(
            log.output,
            "Step 1/2 : FROM scratch\nCOPY failed: file not found\n"
        );

        let mut rejected = BuildLog::default();
        rejected
            .absorb(Err(server_error(
                400,
                "dockerfile parse error line 2: unknown instruction: BOGUS",
            )))
            .unwrap();
        assert!(rejected.failed);
        assert!(rejected.output.contains("unknown instruction"));

        let mut broken = BuildLog::default();
        assert!(
            broken
                .absorb(Err(BollardError::RequestTimeoutError))
                .is_err()
        );
    }

    #[test]
    fn only_failed_builds_with_a_listed_phrase_are_transient() {
        let podman = &["layer not known"];
        let lookup = "STEP 2/3: BOGUS x\nchecking if cached image exists from a previous \
            build: getting top layer info: layer not known\n";
        let failed = |output: &str| BuildLog {
            output: output.to_owned(),
            failed: true,
        };
        assert_eq!(
            transient_phrase(podman, &failed(lookup)),
            Some("layer not known")
        );
        assert_eq!(
            transient_phrase(podman, &failed("unknown instruction: BOGUS\n")),
            None
        );
        let succeeded = BuildLog {
            output: lookup.to_owned(),
            failed: false,
        };
        assert_eq!(transient_phrase(podman, &succeeded), None);
        assert_eq!(transient_phrase(&[], &failed(lookup)), None);
        let docker = &[TRANSIENT_CACHE_MISS];
        let vanished = "Step 2/3 : COPY data /data\nunable to find image \
            \"sha256:5fbce0ce7799f0eb7fa06fb08698db3ab72911ed1de40a010f820135a42471ff\"\n";
        assert_eq!(
            transient_phrase(docker, &failed(vanished)),
            Some(TRANSIENT_CACHE_MISS)
        );
        let absent_base = "Step 1/2 : FROM nosuch/image\nunable to find image \"nosuch/image\"\n";
        assert_eq!(transient_phrase(docker, &failed(absent_base)), None);
    }

    #[test]
    fn built_layers_skip_cached_layers_and_containers() {
        let docker = "Step 1/4 : FROM scratch\n ---> \nStep 2/4 : COPY a /a\n ---> Using cache\n \
            ---> 8aaafe3d2fa8\nStep 3/4 : COPY b /b\n ---> 90474c73e37f\nStep 4/4 : RUN x\n \
            ---> Running in a7fcd9b2c6e4\nRemoving intermediate container a7fcd9b2c6e4\n";
        assert_eq!(built_layers(docker), ["90474c73e37f"]);
        let podman = "STEP 1/4: FROM scratch\nSTEP 2/4: COPY a /a\n--> Using cache \
            b36ef9b5272b075960dacb8e7e0960f836e63d35af30216e67eea0f596e56750\n--> b36ef9b5272\n\
            STEP 3/4: COPY b /b\n--> c7456876dcf\nSTEP 4/4: RUN x\nout\n";
        assert_eq!(built_layers(podman), ["c7456876dcf"]);
        assert!(built_layers("--> not-an-id\n---> abc\n").is_empty());
    }

    #[test]
    fn image_ids_and_names() {
        assert_eq!(bare_id("sha256:abc"), "abc");
        assert_eq!(bare_id("abc"), "abc");
        let image = |tags: &[&str]| ImageSummary {
            repo_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..ImageSummary::default()
        };
        assert!(is_untagged(&image(&[])));
        assert!(is_untagged(&image(&["<none>:<none>"])));
        assert!(!is_untagged(&image(&["<none>:<none>", "a:b"])));
    }

    #[test]
    fn unique_suffixes_differ() {
        assert_ne!(unique_suffix(), unique_suffix());
        let tag = format!("{PROBE_IMAGE}:{}", unique_suffix());
        assert!(
            tag.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
        );
    }

    #[tokio::test]
    async fn connecting_to_a_missing_socket_is_unreachable() {
        let err = DockerRuntime::connect_with_host("unix:///nonexistent/qus-docker.sock")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Unreachable { operation: Operation::Connect, endpoint, .. }
                if endpoint == "unix:///nonexistent/qus-docker.sock"),
            "{err:?}"
        );
    }
}
