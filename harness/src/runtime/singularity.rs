//! [`SingularityRuntime`]: the [`Runtime`] on the Singularity/Apptainer CLI.
//!
//! Scenarios name Docker images and nothing is ever pulled, so images come
//! from the local Docker engine: each is unpacked once per image ID into a
//! sandbox directory (create a container, export its filesystem, unpack;
//! through bollard) and run with `<binary> exec`. The command is
//! configurable: `apptainer`, `singularity`, or a wrapper such as
//! `apptainer-sid` (`fixtures/apptainer/`), behind an optional prefix such
//! as `sudo`.
//!
//! Runs approximate `docker run`: `--containall --cleanenv --no-init
//! --no-umask --no-eval` (Apptainer's `--compat` set), the image's
//! entrypoint, command, environment, working directory and user, and a
//! writable layer that is thrown away (an overlay directory on disk as root,
//! `--writable-tmpfs` otherwise). As root, unprivileged runs get
//! `--no-privs` and privileged ones keep root's capabilities, minus those
//! the host's bounding set lacks (`--drop-caps`). The container shares the
//! host's network.
//!
//! This runtime builds no images, selects no platform and no network other
//! than the host's: such steps are reported unsupported, with the reason.
//!
//! # Sandbox policy
//!
//! Sandboxes live under a root directory ([`SingularityRuntime::DEFAULT_SANDBOX_ROOT`]
//! unless [`with_sandbox_root`](SingularityRuntime::with_sandbox_root)); keep
//! it under `/tmp` when the command is the `apptainer-sid` wrapper, which
//! shares only the host's `/tmp` and the repository's directory.
//!
//! - By default sandboxes belong to the runtime value and its clones
//!   (`<root>/session-<pid>-<n>/<image id>`): unpacked on first use, reused by
//!   later runs while the image ID is unchanged, and deleted by
//!   [`remove_labelled`](Runtime::remove_labelled) for the label of the run
//!   that created them, once no run uses them. Nothing is shared with other
//!   processes, so no run loses its sandbox to another one's cleanup.
//!   Sessions left by processes that died are swept on first use.
//! - With [`with_keep(true)`](SingularityRuntime::with_keep) (the CLI's
//!   `--keep`) sandboxes go to the shared cache `<root>/<image id>`, which
//!   later runs and other processes reuse while the image ID is unchanged.
//!   The harness never deletes the shared cache: delete `<root>` by hand when
//!   no run is active (sandboxes of replaced images accumulate there).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions,
};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tracing::{debug, warn};

use super::Runtime;
use super::endpoint::Endpoint;
use super::error::{Operation, RuntimeError};
use super::exec::exit_code;
use super::spec::{
    BuildOutcome, BuildSpec, EngineInfo, PrivilegeMode, RunOutcome, RunSpec, RuntimeKind,
    StepCapability,
};

/// Where bollard connects when `DOCKER_HOST` is unset.
const DEFAULT_DOCKER_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// Why build steps are skipped.
const NO_BUILD: &str = "singularity builds no images from Containerfiles in this harness";

/// Why platform selection is skipped.
const NO_PLATFORM: &str =
    "singularity runs an image's files as they are and cannot select a platform";

/// Why network selection is skipped (except `host`, which is what it does).
const NO_NETWORK: &str =
    "singularity runs containers in the host's network namespace; only `network: host` is honoured";

/// Why privileged runs are skipped when the harness is not root.
const NEEDS_ROOT: &str = "privileged singularity runs need root: only root keeps capabilities";

/// Why `user` is refused when the harness is not root.
const USER_NEEDS_ROOT: &str = "singularity runs as the calling user; choosing another needs root";

/// Options of every `exec`: Apptainer's `--compat` set but its
/// `--writable-tmpfs`, which is chosen per run. `--no-eval` passes
/// environment values and arguments verbatim, as Docker does.
const EXEC_OPTIONS: [&str; 5] = [
    "--containall",
    "--cleanenv",
    "--no-init",
    "--no-umask",
    "--no-eval",
];

/// Label on the containers created to export an image's filesystem.
const SANDBOX_LABEL: &str = "io.qus.sandbox";

/// Command of those containers, which are never started: `create` only
/// needs one when the image has neither entrypoint nor command.
const EXPORT_PLACEHOLDER: &str = "/qus-export-only";

/// Bound on `<binary> --version`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to keep reading output after the process exited (a background
/// grandchild may hold the pipes open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Exit status of Apptainer's own fatal errors.
const ENGINE_FATAL: i64 = 255;

/// Environment prefixes that pass variables into containers even with
/// `--cleanenv`. The harness's own are removed; spec values with a comma
/// travel this way (`--env` splits `A=x,B=y` into two variables).
const ENV_PREFIXES: [&str; 2] = ["APPTAINERENV_", "SINGULARITYENV_"];

/// Phrases of Apptainer failing to set the container up, as opposed to the
/// container's command failing to start.
const ENGINE_FAILURE_MARKERS: [&str; 4] = [
    "container creation failed",
    "could not open image",
    "while checking container",
    "requesting capability set",
];

/// The [`Runtime`] on the Singularity/Apptainer command line, with images
/// taken from the local Docker engine.
///
/// Cloning is cheap; clones share the Docker connection and the sandboxes.
#[derive(Debug, Clone)]
pub struct SingularityRuntime {
    binary: String,
    prefix: Vec<String>,
    docker: Docker,
    docker_endpoint: String,
    sandbox_root: PathBuf,
    keep: bool,
    privilege: Privilege,
    state: Arc<State>,
}

/// What this process may grant a privileged run, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Privilege {
    /// Whether the effective user is root.
    is_root: bool,
    /// Capabilities (`CAP_…`) missing from the bounding set, which
    /// Apptainer would fail to grant.
    missing: Vec<String>,
}

/// Sandboxes shared by a runtime and its clones.
#[derive(Debug)]
struct State {
    /// This runtime's directory below the root: `session-<pid>-<n>`.
    session: String,
    /// Serialises unpacking and removal, so that no run picks up a sandbox
    /// being removed and no image is unpacked twice at once.
    sandboxes: tokio::sync::Mutex<()>,
    book: Mutex<Book>,
}

/// Which sandboxes this runtime created, and which are in use.
#[derive(Debug, Default)]
struct Book {
    /// Sandbox directories created for runs with each label.
    created: BTreeMap<(String, String), BTreeSet<PathBuf>>,
    /// Runs in progress per sandbox directory.
    in_use: BTreeMap<PathBuf, usize>,
    /// Whether sessions of dead processes were swept.
    swept: bool,
}

impl Book {
    fn release(&mut self, dir: &Path) {
        if let Some(count) = self.in_use.get_mut(dir) {
            *count -= 1;
            if *count == 0 {
                self.in_use.remove(dir);
            }
        }
    }
}

/// What a run needs from the image's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ImageFacts {
    /// Image ID (`sha256:…`).
    id: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    /// `KEY=value` entries.
    env: Vec<String>,
    working_dir: String,
    user: String,
}

/// A resolved command line and the variables to add to its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Invocation {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

/// What a finished process did, before interpretation.
#[derive(Debug)]
struct Finished {
    exit_code: i64,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

impl SingularityRuntime {
    /// Where sandboxes are unpacked unless told otherwise: under `/tmp`,
    /// which the `apptainer-sid` wrapper shares with the host.
    pub const DEFAULT_SANDBOX_ROOT: &'static str = "/tmp/qus-singularity";

    /// A runtime running `binary` (`apptainer`, `singularity`, a wrapper),
    /// with images from the Docker engine where `DOCKER_HOST` says (the
    /// local socket when unset).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Unreachable`] when the Docker engine does not answer.
    pub async fn connect(binary: impl Into<String>) -> Result<Self, RuntimeError> {
        let endpoint =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_DOCKER_ENDPOINT.to_owned());
        Self::connect_with_docker_host(binary, &endpoint).await
    }

    /// A runtime running `binary`, with images from the Docker engine at
    /// `host` (`unix://`, `tcp://`, `http://`).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Unreachable`] when the Docker engine does not answer.
    pub async fn connect_with_docker_host(
        binary: impl Into<String>,
        host: &str,
    ) -> Result<Self, RuntimeError> {
        let docker = Endpoint::docker_with_env_tls(host)
            .connect()
            .await
            .map_err(|source| RuntimeError::Unreachable {
                engine: RuntimeKind::Docker,
                endpoint: host.to_owned(),
                operation: Operation::Connect,
                source,
            })?;
        Ok(Self {
            binary: binary.into(),
            prefix: Vec::new(),
            docker,
            docker_endpoint: host.to_owned(),
            sandbox_root: PathBuf::from(Self::DEFAULT_SANDBOX_ROOT),
            keep: false,
            privilege: Privilege::detect(),
            state: Arc::new(State {
                session: format!("session-{}-{}", std::process::id(), unique()),
                sandboxes: tokio::sync::Mutex::new(()),
                book: Mutex::default(),
            }),
        })
    }

    /// Runs the binary behind `prefix` (`["sudo", "-n"]`).
    pub fn with_prefix<I, S>(mut self, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.prefix = prefix.into_iter().map(Into::into).collect();
        self
    }

    /// Unpacks sandboxes under `root` instead of
    /// [`DEFAULT_SANDBOX_ROOT`](Self::DEFAULT_SANDBOX_ROOT).
    pub fn with_sandbox_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.sandbox_root = root.into();
        self
    }

    /// Keeps sandboxes in the shared cache for later runs (`--keep`)
    /// instead of removing them with the run's label; see the module docs.
    pub fn with_keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// The binary this runtime runs.
    pub fn binary(&self) -> &str {
        &self.binary
    }

    /// The words put before the binary.
    pub fn prefix(&self) -> &[String] {
        &self.prefix
    }

    /// The directory sandboxes are unpacked under.
    pub fn sandbox_root(&self) -> &Path {
        &self.sandbox_root
    }

    /// The directory of this runtime's own sandboxes and writable layers.
    fn session_dir(&self) -> PathBuf {
        self.sandbox_root.join(&self.state.session)
    }

    /// Where the sandbox of image `id` goes under the current policy.
    fn sandbox_path(&self, id: &str) -> PathBuf {
        let name = id.strip_prefix("sha256:").unwrap_or(id).replace(':', "-");
        if self.keep {
            self.sandbox_root.join(name)
        } else {
            self.session_dir().join(name)
        }
    }

    /// The command line as text, for messages.
    fn command_text(&self) -> String {
        self.prefix
            .iter()
            .chain(std::iter::once(&self.binary))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `prefix binary args…`.
    fn command_line<I, S>(&self, args: I) -> Vec<String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.prefix
            .iter()
            .cloned()
            .chain(std::iter::once(self.binary.clone()))
            .chain(args.into_iter().map(Into::into))
            .collect()
    }

    fn unsupported(capability: StepCapability, reason: &str) -> RuntimeError {
        RuntimeError::Unsupported {
            runtime: RuntimeKind::Singularity,
            capability,
            reason: reason.to_owned(),
        }
    }

    /// The first thing `spec` asks for that this runtime cannot do.
    fn check(&self, spec: &RunSpec) -> Result<(), RuntimeError> {
        for capability in spec.required_capabilities() {
            if let Err(reason) = self.supports_in(capability, Some(spec)) {
                return Err(Self::unsupported(capability, &reason));
            }
        }
        if spec.user.is_some() && !self.privilege.is_root {
            return Err(Self::unsupported(StepCapability::Run, USER_NEEDS_ROOT));
        }
        Ok(())
    }

    /// [`Runtime::supports`], knowing the spec when there is one.
    fn supports_in(
        &self,
        capability: StepCapability,
        spec: Option<&RunSpec>,
    ) -> Result<(), String> {
        match capability {
            StepCapability::Run | StepCapability::Bind => Ok(()),
            StepCapability::PrivilegedRun if self.privilege.is_root => Ok(()),
            StepCapability::PrivilegedRun => Err(NEEDS_ROOT.to_owned()),
            StepCapability::Network
                if spec.is_some_and(|s| s.network.as_deref() == Some("host")) =>
            {
                Ok(())
            }
            StepCapability::Network => Err(NO_NETWORK.to_owned()),
            StepCapability::Platform => Err(NO_PLATFORM.to_owned()),
            StepCapability::Build => Err(NO_BUILD.to_owned()),
        }
    }

    /// Maps a bollard error of the image source.
    fn docker_error(&self, operation: Operation, object: &str, err: BollardError) -> RuntimeError {
        match err {
            BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            } if matches!(
                operation,
                Operation::InspectImage | Operation::CreateContainer
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
            err @ (BollardError::HyperLegacyError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
            | BollardError::RequestTimeoutError
            | BollardError::SocketNotFoundError(_)) => RuntimeError::Unreachable {
                engine: RuntimeKind::Docker,
                endpoint: self.docker_endpoint.clone(),
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

    /// The image's ID and run configuration, from Docker.
    async fn inspect(&self, image: &str) -> Result<ImageFacts, RuntimeError> {
        let inspected = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|e| self.docker_error(Operation::InspectImage, image, e))?;
        let config = inspected.config.unwrap_or_default();
        Ok(ImageFacts {
            id: inspected.id.ok_or_else(|| RuntimeError::OperationFailed {
                operation: Operation::InspectImage,
                object: image.to_owned(),
                status: None,
                message: "the engine reported no image ID".to_owned(),
            })?,
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
            env: config.env.unwrap_or_default(),
            working_dir: config.working_dir.unwrap_or_default(),
            user: config.user.unwrap_or_default(),
        })
    }

    /// The sandbox of `facts.id`, unpacked if needed, marked in use until
    /// the returned lease is dropped.
    async fn sandbox(
        &self,
        image: &str,
        facts: &ImageFacts,
        labels: &BTreeMap<String, String>,
    ) -> Result<Lease, RuntimeError> {
        let dir = self.sandbox_path(&facts.id);
        let _serial = self.state.sandboxes.lock().await;
        self.sweep_dead_sessions().await;
        if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            self.materialise(image, &dir, labels).await?;
            if !self.keep {
                let mut book = self.book();
                for (key, value) in labels {
                    book.created
                        .entry((key.clone(), value.clone()))
                        .or_default()
                        .insert(dir.clone());
                }
            }
        }
        *self.book().in_use.entry(dir.clone()).or_default() += 1;
        Ok(Lease {
            state: Arc::clone(&self.state),
            dir,
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // The book stays consistent even if a holder panicked: every update
        // is a single insertion or removal.
        self.state
            .book
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the sessions of processes that no longer exist, once.
    async fn sweep_dead_sessions(&self) {
        if std::mem::replace(&mut self.book().swept, true) {
            return;
        }
        let root = self.sandbox_root.clone();
        let swept = tokio::task::spawn_blocking(move || sweep(&root)).await;
        if let Ok(removed) = swept {
            for dir in removed {
                debug!(dir = %dir.display(), "removed the sandboxes of a dead process");
            }
        }
    }

    /// Unpacks `image` into `dir`: a container is created (never started),
    /// its filesystem exported and unpacked into a temporary directory next
    /// to `dir`, which is renamed into place once complete.
    async fn materialise(
        &self,
        image: &str,
        dir: &Path,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let started = Instant::now();
        let io_error = |source| RuntimeError::Io {
            operation: Operation::CreateContainer,
            object: image.to_owned(),
            source,
        };
        let parent = dir.parent().unwrap_or(&self.sandbox_root);
        tokio::fs::create_dir_all(parent).await.map_err(io_error)?;
        let tmp = RemoveOnDrop(Some(parent.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            unique()
        ))));
        let mut container_labels: HashMap<String, String> = labels.clone().into_iter().collect();
        container_labels.insert(SANDBOX_LABEL.to_owned(), image.to_owned());
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec![EXPORT_PLACEHOLDER.to_owned()]),
            labels: Some(container_labels),
            network_disabled: Some(true),
            ..ContainerCreateBody::default()
        };
        let created = self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(|e| self.docker_error(Operation::CreateContainer, image, e))?;
        let container = ContainerGuard::new(self.docker.clone(), created.id.clone());
        let target = tmp.path().to_path_buf();
        let is_root = self.privilege.is_root;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let unpacking =
            tokio::task::spawn_blocking(move || unpack(ChunkReader::new(rx), &target, is_root));
        let mut stream = self.docker.export_container(&created.id);
        let mut export_error = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                // A closed channel means the unpacking failed: its error says why.
                Ok(bytes) => {
                    if tx.send(bytes).await.is_err() {
                        break;
                    }
                }
                Err(err) => {
                    export_error = Some(err);
                    break;
                }
            }
        }
        drop(tx);
        let unpacked = unpacking
            .await
            .map_err(|join| io_error(io::Error::other(join)))?;
        if let Some(err) = export_error {
            return Err(self.docker_error(Operation::CreateContainer, image, err));
        }
        unpacked.map_err(io_error)?;
        if let Err(err) = container.remove().await {
            warn!(container = %created.id, error = %err, "failed to remove an export container");
        }
        match tokio::fs::rename(tmp.path(), dir).await {
            Ok(()) => tmp.disarm(),
            // Another process unpacked the same image into the shared
            // cache first; the temporary copy goes with its guard.
            Err(_) if tokio::fs::try_exists(dir).await.unwrap_or(false) => {}
            Err(err) => return Err(io_error(err)),
        }
        debug!(image, dir = %dir.display(), elapsed = ?started.elapsed(), "unpacked a sandbox");
        Ok(())
    }

    /// The command line and environment that run `spec` from `sandbox`.
    fn invocation(
        &self,
        spec: &RunSpec,
        facts: &ImageFacts,
        sandbox: &Path,
        overlay: Option<&Path>,
        user: Option<(u32, u32)>,
    ) -> Result<Invocation, RuntimeError> {
        let entrypoint = spec.entrypoint.as_ref().unwrap_or(&facts.entrypoint);
        // As with Docker, a new entrypoint drops the image's command.
        let command = match (&spec.command, &spec.entrypoint) {
            (command, _) if !command.is_empty() => command,
            (_, Some(_)) => &Vec::new(),
            (_, None) => &facts.cmd,
        };
        let payload: Vec<String> = entrypoint.iter().chain(command).cloned().collect();
        if payload.is_empty() {
            return Err(RuntimeError::InvalidSpec {
                reason: format!(
                    "neither the spec nor image `{}` names a command to run",
                    spec.image
                ),
            });
        }

        let mut args: Vec<String> = vec!["--silent".into(), "exec".into()];
        args.extend(EXEC_OPTIONS.map(str::to_owned));
        match overlay {
            Some(dir) => args.extend(["--overlay".to_owned(), dir.display().to_string()]),
            None => args.push("--writable-tmpfs".to_owned()),
        }
        if self.privilege.is_root {
            if !spec.privileged {
                args.push("--no-privs".to_owned());
            } else if !self.privilege.missing.is_empty() {
                args.extend(["--drop-caps".to_owned(), self.privilege.missing.join(",")]);
            }
        }
        if let Some((uid, gid)) = user {
            args.extend(["--security".to_owned(), format!("uid:{uid},gid:{gid}")]);
        }
        let workdir = match facts.working_dir.as_str() {
            "" => "/",
            dir => dir,
        };
        args.extend(["--pwd".to_owned(), workdir.to_owned()]);
        for bind in &spec.binds {
            if !bind.starts_with('/') {
                return Err(RuntimeError::InvalidSpec {
                    reason: format!(
                        "bind `{bind}`: singularity binds host paths only (absolute, `/host:/ctr[:ro]`)"
                    ),
                });
            }
            args.extend(["--bind".to_owned(), bind.clone()]);
        }

        let mut env = Vec::new();
        for (name, value) in merged_env(&facts.env, &spec.env) {
            if value.contains(',') {
                for prefix in ENV_PREFIXES {
                    env.push((format!("{prefix}{name}"), value.clone()));
                }
            } else {
                args.extend(["--env".to_owned(), format!("{name}={value}")]);
            }
        }
        args.push(sandbox.display().to_string());
        args.extend(payload);
        Ok(Invocation {
            argv: self.command_line(args),
            env,
        })
    }

    /// The uid and gid `spec` or the image asks for, resolved against the
    /// sandbox's `/etc/passwd` and `/etc/group` for names.
    async fn user(
        &self,
        spec: &RunSpec,
        facts: &ImageFacts,
        sandbox: &Path,
    ) -> Result<Option<(u32, u32)>, RuntimeError> {
        let user = match (&spec.user, facts.user.as_str()) {
            (Some(user), _) => user.as_str(),
            // Without root the caller is the only user a run can have
            // (`check` refuses a spec that asks for another).
            (None, _) if !self.privilege.is_root => return Ok(None),
            (None, "") => return Ok(None),
            (None, user) => user,
        };
        let read = |name: &str| {
            let path = sandbox.join(name);
            async move { tokio::fs::read_to_string(path).await.unwrap_or_default() }
        };
        let passwd = read("etc/passwd").await;
        let group = read("etc/group").await;
        resolve_user(user, &passwd, &group)
            .map(Some)
            .map_err(|reason| RuntimeError::InvalidSpec {
                reason: format!("user `{user}` of image `{}`: {reason}", spec.image),
            })
    }

    /// A fresh writable layer for one run (root only: overlay directories
    /// need it), removed when the guard drops.
    async fn overlay(&self) -> Result<Option<RemoveOnDrop>, RuntimeError> {
        if !self.privilege.is_root {
            return Ok(None);
        }
        let dir = self.session_dir().join(format!("overlay-{}", unique()));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| RuntimeError::Io {
                operation: Operation::CreateContainer,
                object: dir.display().to_string(),
                source,
            })?;
        Ok(Some(RemoveOnDrop(Some(dir))))
    }

    /// Runs `argv` with `env` added, in its own process group, killing the
    /// group at `timeout` or when this future is dropped.
    async fn execute(
        &self,
        argv: &[String],
        env: &[(String, String)],
        timeout: Duration,
        operation: Operation,
    ) -> Result<Finished, RuntimeError> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| RuntimeError::InvalidSpec {
                reason: "the command line is empty".to_owned(),
            })?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if ENV_PREFIXES.iter().any(|p| name.starts_with(p))
                && !env.iter().any(|(k, _)| *k == name)
            {
                command.env_remove(name.as_ref());
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut child = command
            .spawn()
            .map_err(|source| RuntimeError::Unreachable {
                engine: RuntimeKind::Singularity,
                endpoint: self.command_text(),
                operation,
                source: Box::new(source),
            })?;
        let io_error = |source| RuntimeError::Io {
            operation,
            object: self.command_text(),
            source,
        };
        let mut group = GroupKiller(child.id());

        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let (status, timed_out) = {
            // Read both pipes while waiting, or a chatty process fills one
            // and blocks forever.
            let out_pipe = child.stdout.take();
            let err_pipe = child.stderr.take();
            let drain = async {
                tokio::join!(drain(out_pipe, &mut stdout), drain(err_pipe, &mut stderr));
            };
            tokio::pin!(drain);
            let mut drained = false;
            let exited = loop {
                tokio::select! {
                    () = &mut drain, if !drained => drained = true,
                    status = child.wait() => break Some(status),
                    () = tokio::time::sleep_until(deadline) => break None,
                }
            };
            let result = match exited {
                Some(status) => {
                    // Reaped: its pid may be reused, so never signal it again.
                    group.0 = None;
                    (status.map_err(io_error)?, false)
                }
                None => {
                    debug!(command = %self.command_text(), ?timeout, "killing a run past its timeout");
                    group.kill();
                    // Ignore a failed kill: the process may have exited just now.
                    let _ = child.start_kill();
                    let status = child.wait().await;
                    group.0 = None;
                    (status.map_err(io_error)?, true)
                }
            };
            if !drained {
                let _ = tokio::time::timeout(DRAIN_GRACE, &mut drain).await;
            }
            result
        };
        Ok(Finished {
            exit_code: exit_code(status),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            timed_out,
        })
    }

    async fn remove_export_containers(&self, filter: &str) -> Result<usize, RuntimeError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![filter.to_owned(), SANDBOX_LABEL.to_owned()],
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..ListContainersOptions::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.docker_error(Operation::ListContainers, filter, e))?;
        let mut removed = 0;
        for id in containers.into_iter().filter_map(|c| c.id) {
            remove_container(&self.docker, &id)
                .await
                .map_err(|e| self.docker_error(Operation::RemoveContainer, &id, e))?;
            removed += 1;
        }
        Ok(removed)
    }
}

impl Runtime for SingularityRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Singularity
    }

    /// Runs and bind mounts always; privileged runs as root; never builds,
    /// platform selection or a network (see
    /// [`supports_spec`](Runtime::supports_spec) for `network: host`).
    fn supports(&self, capability: StepCapability) -> Result<(), String> {
        self.supports_in(capability, None)
    }

    /// As [`supports`](Runtime::supports), but `network: host` is
    /// supported: it is what singularity does anyway.
    fn supports_spec(&self, spec: &RunSpec) -> Result<(), String> {
        spec.required_capabilities()
            .into_iter()
            .try_for_each(|capability| self.supports_in(capability, Some(spec)))
    }

    async fn probe(&self) -> Result<EngineInfo, RuntimeError> {
        let finished = self
            .execute(
                &self.command_line(["--version"]),
                &[],
                PROBE_TIMEOUT,
                Operation::Probe,
            )
            .await?;
        if finished.exit_code != 0 || finished.timed_out {
            let message = match finished.stderr.trim() {
                "" if finished.timed_out => format!("no answer within {PROBE_TIMEOUT:?}"),
                "" => format!("`--version` exited with status {}", finished.exit_code),
                stderr => stderr.to_owned(),
            };
            return Err(RuntimeError::OperationFailed {
                operation: Operation::Probe,
                object: self.command_text(),
                status: None,
                message,
            });
        }
        // The images come from Docker: it must answer too.
        self.docker
            .version()
            .await
            .map_err(|e| self.docker_error(Operation::Probe, &self.docker_endpoint, e))?;
        Ok(EngineInfo {
            kind: RuntimeKind::Singularity,
            version: parse_version(&finished.stdout),
            api_version: None,
            privilege: self.privilege.mode(),
            privilege_note: self.privilege.note(),
        })
    }

    async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, RuntimeError> {
        self.check(spec)?;
        let started = Instant::now();
        let facts = self.inspect(&spec.image).await?;
        let lease = self.sandbox(&spec.image, &facts, &spec.labels).await?;
        let user = self.user(spec, &facts, &lease.dir).await?;
        let overlay = self.overlay().await?;
        let invocation = self.invocation(
            spec,
            &facts,
            &lease.dir,
            overlay.as_ref().map(RemoveOnDrop::path),
            user,
        )?;
        debug!(argv = ?invocation.argv, "running");
        let finished = self
            .execute(
                &invocation.argv,
                &invocation.env,
                spec.timeout,
                Operation::StartContainer,
            )
            .await?;
        drop(overlay);
        drop(lease);
        let exit_code = if finished.timed_out {
            finished.exit_code
        } else {
            engine_exit(finished.exit_code, &finished.stderr).map_err(|message| {
                RuntimeError::OperationFailed {
                    operation: Operation::StartContainer,
                    object: spec.image.clone(),
                    status: None,
                    message,
                }
            })?
        };
        Ok(RunOutcome {
            exit_code,
            stdout: finished.stdout,
            stderr: finished.stderr,
            duration: started.elapsed(),
            timed_out: finished.timed_out,
        })
    }

    async fn build(&self, _spec: &BuildSpec) -> Result<BuildOutcome, RuntimeError> {
        Err(Self::unsupported(StepCapability::Build, NO_BUILD))
    }

    /// Asks Docker, where images come from.
    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(err) => Err(self.docker_error(Operation::InspectImage, image, err)),
        }
    }

    /// Removes the sandboxes created for runs labelled
    /// `label_key=label_value` that no run is using (none with
    /// [`with_keep`](SingularityRuntime::with_keep)), and any container left
    /// from unpacking them; returns how many were removed.
    async fn remove_labelled(
        &self,
        label_key: &str,
        label_value: &str,
    ) -> Result<usize, RuntimeError> {
        let filter = format!("{label_key}={label_value}");
        let mut removed = self.remove_export_containers(&filter).await?;
        let key = (label_key.to_owned(), label_value.to_owned());
        let _serial = self.state.sandboxes.lock().await;
        let dirs = self.book().created.remove(&key).unwrap_or_default();
        let mut first_error = None;
        for dir in dirs {
            if self.book().in_use.contains_key(&dir) {
                // Still running (a cancelled step's process being killed):
                // keep it on the books for a later call.
                self.book()
                    .created
                    .entry(key.clone())
                    .or_default()
                    .insert(dir);
                continue;
            }
            let path = dir.clone();
            let result = tokio::task::spawn_blocking(move || remove_dir(&path))
                .await
                .unwrap_or_else(|join| Err(io::Error::other(join)));
            match result {
                Ok(()) => removed += 1,
                Err(source) => {
                    first_error.get_or_insert(RuntimeError::Io {
                        operation: Operation::RemoveContainer,
                        object: dir.display().to_string(),
                        source,
                    });
                }
            }
        }
        // The session directory goes once empty (another clone may still
        // hold sandboxes for other labels).
        let _ = tokio::fs::remove_dir(self.session_dir()).await;
        match first_error {
            Some(err) => Err(err),
            None => Ok(removed),
        }
    }
}

impl Privilege {
    /// Reads this process's effective uid and capability bounding set.
    fn detect() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        Self::from_status(&status, last_cap)
    }

    /// Parses a `/proc/<pid>/status` text.
    fn from_status(status: &str, last_cap: usize) -> Self {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
        };
        // `Uid:` lists real, effective, saved and filesystem ids.
        let is_root = field("Uid:")
            .and_then(|ids| ids.split_whitespace().nth(1))
            .is_some_and(|euid| euid == "0");
        let bounding = field("CapBnd:").and_then(|mask| u64::from_str_radix(mask, 16).ok());
        let missing = match bounding {
            Some(bounding) => crate::capability::missing(bounding, u32::try_from(last_cap).ok())
                .into_iter()
                // Apptainer can only drop capabilities it knows by name.
                .filter(|name| name.starts_with("CAP_"))
                .collect(),
            None => Vec::new(),
        };
        Self { is_root, missing }
    }

    fn mode(&self) -> PrivilegeMode {
        match (self.is_root, self.missing.is_empty()) {
            (false, _) => PrivilegeMode::Unavailable,
            (true, true) => PrivilegeMode::Privileged,
            (true, false) => PrivilegeMode::CapabilityFallback,
        }
    }

    fn note(&self) -> Option<String> {
        match self.mode() {
            PrivilegeMode::Unavailable => Some(NEEDS_ROOT.to_owned()),
            PrivilegeMode::CapabilityFallback => Some(format!(
                "the host's capability bounding set lacks {0}; privileged runs use --drop-caps {0}",
                self.missing.join(",")
            )),
            PrivilegeMode::Privileged | PrivilegeMode::NotApplicable => None,
        }
    }
}

/// A sandbox in use by one run; dropping it releases the sandbox.
#[derive(Debug)]
struct Lease {
    state: Arc<State>,
    dir: PathBuf,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.state
            .book
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(&self.dir);
    }
}

/// A directory removed (with everything in it) when dropped, unless disarmed.
#[derive(Debug)]
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn path(&self) -> &Path {
        self.0
            .as_deref()
            .expect("the path is only taken by disarm, which consumes the guard")
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take()
            && let Err(err) = remove_dir(&dir)
        {
            warn!(dir = %dir.display(), error = %err, "failed to remove a temporary directory");
        }
    }
}

/// Kills a process group when dropped (a run whose future is dropped) or
/// when told to, unless emptied.
struct GroupKiller(Option<u32>);

impl GroupKiller {
    /// Sends `SIGKILL` to the group. `kill(1)` does it because the
    /// workspace forbids `unsafe`, which `killpg(2)` would need.
    fn kill(&self) {
        let Some(pgid) = self.0 else { return };
        let status = std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pgid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(err) = status {
            debug!(pgid, error = %err, "failed to run kill(1)");
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Removes an export container when dropped (the spawned removal of a
/// cancelled run), or now through [`ContainerGuard::remove`].
struct ContainerGuard {
    docker: Docker,
    id: Option<String>,
}

impl ContainerGuard {
    fn new(docker: Docker, id: String) -> Self {
        Self {
            docker,
            id: Some(id),
        }
    }

    async fn remove(mut self) -> Result<(), BollardError> {
        let Some(id) = self.id.clone() else {
            return Ok(());
        };
        // Stays armed during the request, so a drop mid-request still removes.
        let result = remove_container(&self.docker, &id).await;
        self.id = None;
        result
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let docker = self.docker.clone();
                handle.spawn(async move {
                    if let Err(err) = remove_container(&docker, &id).await {
                        warn!(container = %id, error = %err, "failed to remove an export container");
                    }
                });
            }
            Err(_) => warn!(
                container = %id,
                "left behind: no async runtime to remove it (remove it by its `{SANDBOX_LABEL}` label)"
            ),
        }
    }
}

/// Force-removes container `id`; one already gone counts as removed.
async fn remove_container(docker: &Docker, id: &str) -> Result<(), BollardError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..RemoveContainerOptions::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Err(BollardError::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Ok(()),
        other => other,
    }
}

/// Reads a stream of byte chunks sent over a channel, for the blocking
/// unpacker.
struct ChunkReader<T> {
    rx: tokio::sync::mpsc::Receiver<T>,
    chunk: Option<T>,
    pos: usize,
}

impl<T> ChunkReader<T> {
    fn new(rx: tokio::sync::mpsc::Receiver<T>) -> Self {
        Self {
            rx,
            chunk: None,
            pos: 0,
        }
    }
}

impl<T: AsRef<[u8]>> Read for ChunkReader<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(chunk) = &self.chunk {
                let rest = &chunk.as_ref()[self.pos..];
                if !rest.is_empty() {
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.chunk = Some(chunk);
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
    }
}

/// Unpacks a `docker export` stream into `dir` (created here). Ownership
/// and extended attributes are kept as root, who can set them.
fn unpack(reader: impl Read, dir: &Path, is_root: bool) -> io::Result<()> {
    std::fs::create_dir(dir)?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(is_root);
    archive.set_unpack_xattrs(is_root);
    archive.set_overwrite(true);
    archive.unpack(dir)
}

/// Removes `dir` and everything in it; a missing one counts as removed.
fn remove_dir(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes the sessions and partial unpacks under `root` whose process is
/// gone; returns what it removed.
fn sweep(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = owner_pid(&name.to_string_lossy()) else {
            continue;
        };
        // A reused pid keeps a dead session a while longer: harmless.
        if !Path::new("/proc").join(pid.to_string()).exists() && remove_dir(&entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// The pid in `session-<pid>-<n>` and `.tmp-<pid>-<n>` names.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix("session-")
        .or_else(|| name.strip_prefix(".tmp-"))?;
    rest.split('-').next()?.parse().ok()
}

/// Appends everything `pipe` yields to `buf`, stopping at the first error.
async fn drain(pipe: Option<impl AsyncRead + Unpin>, buf: &mut Vec<u8>) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = [0u8; 8192];
    // Chunk by chunk, so what arrived is kept if the drain is abandoned.
    while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The image's `KEY=value` entries overridden by the spec's, first
/// occurrence order kept.
fn merged_env(image: &[String], spec: &[(String, String)]) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = Vec::new();
    let from_image = image.iter().map(|entry| match entry.split_once('=') {
        Some((name, value)) => (name.to_owned(), value.to_owned()),
        None => (entry.clone(), String::new()),
    });
    for (name, value) in from_image.chain(spec.iter().cloned()) {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => merged.push((name, value)),
        }
    }
    merged
}

/// Resolves `user`, `uid`, `user:group` or `uid:gid` against passwd and
/// group texts. A user without a group gets its passwd group, or 0.
fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32), String> {
    let records = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|line| line.split(':').map(str::to_owned).collect::<Vec<_>>())
            .filter(|fields| fields.len() >= 3)
            .collect()
    };
    let passwd = records(passwd);
    let groups = records(group);
    let (user, group_name) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let entry = passwd
        .iter()
        .find(|fields| fields[0] == user || fields[2] == user);
    let uid = match (user.parse::<u32>(), entry) {
        (Ok(uid), _) => uid,
        (Err(_), Some(fields)) => fields[2].parse().map_err(|_| "bad /etc/passwd entry")?,
        (Err(_), None) => return Err("no such user in the image's /etc/passwd".to_owned()),
    };
    let gid = match group_name {
        Some(name) => match name.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|fields| fields[0] == name)
                .and_then(|fields| fields[2].parse().ok())
                .ok_or_else(|| format!("no group `{name}` in the image's /etc/group"))?,
        },
        None => entry
            .and_then(|fields| fields.get(3))
            .and_then(|gid| gid.parse().ok())
            .unwrap_or(0),
    };
    Ok((uid, gid))
}

/// The run's exit code, or the message of Apptainer failing to set the
/// container up (an engine failure, not an outcome).
///
/// Apptainer reports its own failures as `FATAL: …` with status 255; when
/// the container's command could not be started that becomes the docker
/// CLI's code: 127 (not found), 126 (not executable), 125 (anything else,
/// such as a foreign binary without binfmt_misc, which Apptainer retries
/// through `/bin/sh`).
fn engine_exit(code: i64, stderr: &str) -> Result<i64, String> {
    let lines = || stderr.lines().map(strip_colour).filter(|l| !l.is_empty());
    if code == 1 {
        // Option errors (`unknown flag`) and starter errors exit 1.
        if let Some(line) = lines().find(|l| {
            l.starts_with("Error for command") || (l.starts_with("ERROR") && is_engine_failure(l))
        }) {
            return Err(line.to_owned());
        }
        return Ok(code);
    }
    if code != ENGINE_FATAL {
        return Ok(code);
    }
    let Some(fatal) = lines().next_back().and_then(|l| l.strip_prefix("FATAL:")) else {
        return Ok(code);
    };
    let fatal = fatal.trim();
    let lower = fatal.to_lowercase();
    if is_engine_failure(fatal) {
        Err(fatal.to_owned())
    } else if lower.contains("for inspection") {
        Ok(125)
    } else if lower.contains("executable file not found") || lower.contains("no such file") {
        Ok(127)
    } else if lower.contains("permission denied") || lower.contains("is a directory") {
        Ok(126)
    } else {
        Ok(125)
    }
}

fn is_engine_failure(line: &str) -> bool {
    let lower = line.to_lowercase();
    ENGINE_FAILURE_MARKERS.iter().any(|m| lower.contains(m))
}

/// `line` without ANSI colour sequences and surrounding blanks.
fn strip_colour(line: &str) -> &str {
    let mut line = line.trim();
    while let Some(rest) = line.strip_prefix("\u{1b}[") {
        match rest.find('m') {
            Some(end) => line = &rest[end + 1..],
            None => break,
        }
    }
    line.trim_end_matches("\u{1b}[0m").trim()
}

/// `apptainer version 1.4.5` → `apptainer 1.4.5`; other text trimmed.
fn parse_version(stdout: &str) -> String {
    let line = stdout.lines().next().unwrap_or_default().trim();
    match line.split_once(" version ") {
        Some((flavour, version)) => format!("{flavour} {}", version.trim()),
        None => line.to_owned(),
    }
}

/// A number unique within this process (with the time, across restarts).
fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime that never talks to Docker (bollard connects lazily over
    /// TCP; nothing listens on the discard port).
    fn runtime(is_root: bool, missing: &[&str]) -> SingularityRuntime {
        let docker = Docker::connect_with_host("tcp://127.0.0.1:9")
            .expect("a tcp URL parses without connecting");
        SingularityRuntime {
            binary: "apptainer".into(),
            prefix: Vec::new(),
            docker,
            docker_endpoint: "tcp://127.0.0.1:9".into(),
            sandbox_root: PathBuf::from("/tmp/qus-sg-unit"),
            keep: false,
            privilege: Privilege {
                is_root,
                missing: missing.iter().map(|s| (*s).to_owned()).collect(),
            },
            state: Arc::new(State {
                session: "session-1-2".into(),
                sandboxes: tokio::sync::Mutex::new(()),
                book: Mutex::default(),
            }),
        }
    }

    fn facts() -> ImageFacts {
        ImageFacts {
            id: "sha256:abc".into(),
            entrypoint: vec!["/probe".into()],
            cmd: vec!["echo".into(), "default".into()],
            env: vec!["PATH=/bin".into(), "FOO=image".into()],
            working_dir: String::new(),
            user: String::new(),
        }
    }

    fn tail_after(argv: &[String], word: &str) -> Vec<String> {
        let at = argv.iter().position(|a| a == word).expect("word present");
        argv[at + 1..].to_vec()
    }

    #[test]
    fn invocation_runs_entrypoint_and_command_from_the_sandbox() {
        let rt = runtime(true, &[]).with_prefix(["sudo", "-n"]);
        let spec = RunSpec::new("img", Vec::<String>::new());
        let inv = rt
            .invocation(&spec, &facts(), Path::new("/tmp/sb"), None, None)
            .unwrap();
        assert_eq!(
            inv.argv[..8],
            [
                "sudo",
                "-n",
                "apptainer",
                "--silent",
                "exec",
                "--containall",
                "--cleanenv",
                "--no-init"
            ]
        );
        assert!(inv.argv.contains(&"--writable-tmpfs".to_owned()));
        assert!(inv.argv.contains(&"--no-privs".to_owned()));
        assert_eq!(tail_after(&inv.argv, "--pwd")[0], "/");
        assert_eq!(
            tail_after(&inv.argv, "/tmp/sb"),
            ["/probe", "echo", "default"]
        );
        assert!(inv.env.is_empty());
    }

    #[test]
    fn spec_entrypoint_drops_the_image_command_and_spec_command_replaces_it() {
        let rt = runtime(true, &[]);
        let sb = Path::new("/tmp/sb");
        let spec = RunSpec::new("img", Vec::<String>::new()).with_entrypoint(["/other"]);
        let inv = rt.invocation(&spec, &facts(), sb, None, None).unwrap();
        assert_eq!(tail_after(&inv.argv, "/tmp/sb"), ["/other"]);
        let spec = RunSpec::new("img", ["exit", "3"]);
        let inv = rt.invocation(&spec, &facts(), sb, None, None).unwrap();
        assert_eq!(tail_after(&inv.argv, "/tmp/sb"), ["/probe", "exit", "3"]);
        let empty = ImageFacts::default();
        let err = rt
            .invocation(
                &RunSpec::new("img", Vec::<String>::new()),
                &empty,
                sb,
                None,
                None,
            )
            .unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidSpec { .. }), "{err:?}");
    }

    #[test]
    fn env_merges_image_and_spec_and_routes_commas_through_the_environment() {
        let rt = runtime(true, &[]);
        let spec = RunSpec::new("img", ["x"])
            .with_env("FOO", "spec")
            .with_env("LIST", "a,B=b");
        let inv = rt
            .invocation(&spec, &facts(), Path::new("/tmp/sb"), None, None)
            .unwrap();
        let envs: Vec<_> = inv
            .argv
            .iter()
            .zip(&inv.argv[1..])
            .filter(|(flag, _)| *flag == "--env")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(envs, ["PATH=/bin", "FOO=spec"]);
        assert_eq!(
            inv.env,
            [
                ("APPTAINERENV_LIST".to_owned(), "a,B=b".to_owned()),
                ("SINGULARITYENV_LIST".to_owned(), "a,B=b".to_owned()),
            ]
        );
    }

    #[test]
    fn privileges_binds_overlay_user_and_workdir() {
        let rt = runtime(true, &["CAP_SYS_RESOURCE"]);
        let spec = RunSpec::new("img", ["x"])
            .with_privileged(true)
            .with_bind("/tmp/a:/a:ro");
        let facts = ImageFacts {
            working_dir: "/work".into(),
            ..facts()
        };
        let inv = rt
            .invocation(
                &spec,
                &facts,
                Path::new("/tmp/sb"),
                Some(Path::new("/tmp/ov")),
                Some((1000, 100)),
            )
            .unwrap();
        assert_eq!(tail_after(&inv.argv, "--drop-caps")[0], "CAP_SYS_RESOURCE");
        assert!(!inv.argv.contains(&"--no-privs".to_owned()));
        assert_eq!(tail_after(&inv.argv, "--bind")[0], "/tmp/a:/a:ro");
        assert_eq!(tail_after(&inv.argv, "--overlay")[0], "/tmp/ov");
        assert!(!inv.argv.contains(&"--writable-tmpfs".to_owned()));
        assert_eq!(tail_after(&inv.argv, "--security")[0], "uid:1000,gid:100");
        assert_eq!(tail_after(&inv.argv, "--pwd")[0], "/work");

        let volume = RunSpec::new("img", ["x"]).with_bind("data:/data");
        let err = rt
            .invocation(&volume, &facts, Path::new("/tmp/sb"), None, None)
            .unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidSpec { .. }), "{err:?}");
    }

    #[test]
    fn non_root_gets_no_privilege_options() {
        let rt = runtime(false, &[]);
        let inv = rt
            .invocation(
                &RunSpec::new("img", ["x"]),
                &facts(),
                Path::new("/tmp/sb"),
                None,
                None,
            )
            .unwrap();
        assert!(
            !inv.argv
                .iter()
                .any(|a| a == "--no-privs" || a == "--drop-caps")
        );
    }

    #[test]
    fn supports_runs_binds_and_host_network_only() {
        let root = runtime(true, &[]);
        assert_eq!(root.supports(StepCapability::Run), Ok(()));
        assert_eq!(root.supports(StepCapability::Bind), Ok(()));
        assert_eq!(root.supports(StepCapability::PrivilegedRun), Ok(()));
        assert_eq!(
            root.supports(StepCapability::Build),
            Err(NO_BUILD.to_owned())
        );
        assert_eq!(
            root.supports(StepCapability::Platform),
            Err(NO_PLATFORM.to_owned())
        );
        assert_eq!(
            root.supports(StepCapability::Network),
            Err(NO_NETWORK.to_owned())
        );
        let host = RunSpec::new("img", ["x"]).with_network("host");
        assert_eq!(root.supports_spec(&host), Ok(()));
        let none = RunSpec::new("img", ["x"]).with_network("none");
        assert_eq!(root.supports_spec(&none), Err(NO_NETWORK.to_owned()));
        let user = runtime(false, &[]);
        assert_eq!(
            user.supports(StepCapability::PrivilegedRun),
            Err(NEEDS_ROOT.to_owned())
        );
    }

    #[tokio::test]
    async fn unsupported_specs_fail_before_touching_docker() {
        let rt = runtime(false, &[]);
        let cases = [
            (
                RunSpec::new("img", ["x"]).with_platform("linux/arm64"),
                NO_PLATFORM,
            ),
            (RunSpec::new("img", ["x"]).with_network("none"), NO_NETWORK),
            (RunSpec::new("img", ["x"]).with_privileged(true), NEEDS_ROOT),
            (
                RunSpec::new("img", ["x"]).with_user("1000"),
                USER_NEEDS_ROOT,
            ),
        ];
        for (spec, reason) in cases {
            let err = rt.run(&spec).await.unwrap_err();
            assert_eq!(err.skip_reason(), Some(reason), "{spec:?}");
        }
        let err = rt.build(&BuildSpec::dir("/tmp", "t")).await.unwrap_err();
        assert_eq!(err.skip_reason(), Some(NO_BUILD));
    }

    #[test]
    fn privilege_follows_uid_and_bounding_set() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nCapBnd:\t000001fffeffffff\n";
        let privilege = Privilege::from_status(status, 40);
        assert!(privilege.is_root);
        assert_eq!(privilege.missing, ["CAP_SYS_RESOURCE"]);
        assert_eq!(privilege.mode(), PrivilegeMode::CapabilityFallback);
        assert!(
            privilege
                .note()
                .unwrap()
                .contains("--drop-caps CAP_SYS_RESOURCE")
        );

        let full = Privilege::from_status("Uid:\t0\t0\t0\t0\nCapBnd:\t000001ffffffffff\n", 40);
        assert_eq!(full.mode(), PrivilegeMode::Privileged);
        assert_eq!(full.note(), None);

        let user = Privilege::from_status("Uid:\t1000\t1000\t1000\t1000\nCapBnd:\t0\n", 1);
        assert!(!user.is_root);
        assert_eq!(user.mode(), PrivilegeMode::Unavailable);
        assert_eq!(crate::capability::CAPABILITY_NAMES[24], "CAP_SYS_RESOURCE");
    }

    #[test]
    fn engine_exit_maps_apptainer_failures() {
        assert_eq!(engine_exit(3, ""), Ok(3));
        assert_eq!(engine_exit(255, "program output\n"), Ok(255));
        assert_eq!(
            engine_exit(255, "FATAL:   stat /nope: no such file or directory\n"),
            Ok(127)
        );
        assert_eq!(
            engine_exit(
                255,
                "FATAL:   \"probe\": executable file not found in $PATH\n"
            ),
            Ok(127)
        );
        assert_eq!(engine_exit(255, "FATAL:   permission denied\n"), Ok(126));
        assert_eq!(engine_exit(255, "FATAL:   is a directory\n"), Ok(126));
        assert_eq!(
            engine_exit(
                255,
                "FATAL:   failed to open /bin/sh for inspection: failed to open elf binary \
                 /bin/sh: open /bin/sh: no such file or directory\n"
            ),
            Ok(125)
        );
        let bind = "FATAL:   container creation failed: mount hook function failure: mount \
                    /tmp/x->/x error: while mounting /tmp/x: mount source /tmp/x doesn't exist\n";
        assert!(
            engine_exit(255, bind)
                .unwrap_err()
                .starts_with("container creation failed")
        );
        let caps = "\u{1b}[91mERROR  : Requesting capability set 0x1ff while permitted \
                    capability set is 0x1fe\n\u{1b}[0m";
        assert!(
            engine_exit(1, caps)
                .unwrap_err()
                .contains("Requesting capability set")
        );
        let usage = "Error for command \"exec\": unknown flag: --bogus\n\nOptions...\n";
        assert!(engine_exit(1, usage).is_err());
        assert_eq!(engine_exit(1, "ERROR: my program failed\n"), Ok(1));
    }

    #[test]
    fn user_resolution() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nqus:x:1000:100::/home/qus:/bin/sh\n";
        let group = "root:x:0:\nusers:x:100:\nwheel:x:10:\n";
        assert_eq!(resolve_user("qus", passwd, group), Ok((1000, 100)));
        assert_eq!(resolve_user("1000", passwd, group), Ok((1000, 100)));
        assert_eq!(resolve_user("4242", passwd, group), Ok((4242, 0)));
        assert_eq!(resolve_user("qus:wheel", passwd, group), Ok((1000, 10)));
        assert_eq!(resolve_user("5:6", "", ""), Ok((5, 6)));
        assert!(resolve_user("nobody", passwd, group).is_err());
        assert!(resolve_user("qus:staff", passwd, group).is_err());
    }

    #[test]
    fn merged_env_overrides_in_place() {
        let merged = merged_env(
            &["A=1".into(), "B=2=3".into(), "C".into()],
            &[("A".into(), "x".into()), ("D".into(), "4".into())],
        );
        assert_eq!(
            merged,
            [
                ("A".into(), "x".into()),
                ("B".into(), "2=3".into()),
                ("C".into(), String::new()),
                ("D".into(), "4".into()),
            ]
        );
    }

    #[test]
    fn sandbox_paths_follow_the_policy() {
        let rt = runtime(true, &[]);
        assert_eq!(
            rt.sandbox_path("sha256:abc"),
            Path::new("/tmp/qus-sg-unit/session-1-2/abc")
        );
        let kept = rt.with_keep(true);
        assert_eq!(
            kept.sandbox_path("sha256:abc"),
            Path::new("/tmp/qus-sg-unit/abc")
        );
        assert_eq!(owner_pid("session-42-17-3"), Some(42));
        assert_eq!(owner_pid(".tmp-7-1"), Some(7));
        assert_eq!(owner_pid("abc"), None);
    }

    #[test]
    fn sweep_removes_only_dead_owners() {
        let root = tempfile::tempdir().unwrap();
        let dead = root.path().join(format!("session-{}-1", u32::MAX - 1));
        let alive = root
            .path()
            .join(format!("session-{}-1", std::process::id()));
        let cache = root.path().join("abc");
        for dir in [&dead, &alive, &cache] {
            std::fs::create_dir_all(dir.join("x")).unwrap();
        }
        assert_eq!(sweep(root.path()), std::slice::from_ref(&dead));
        assert!(!dead.exists() && alive.exists() && cache.exists());
    }

    #[test]
    fn chunk_reader_feeds_the_unpacker() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o755);
        builder
            .append_data(&mut header, "bin/probe", &b"hello"[..])
            .unwrap();
        let archive = builder.into_inner().unwrap();
        // Small chunks through a small channel: the reader crosses chunk
        // boundaries and waits for the sender.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let sender = std::thread::spawn(move || {
            // The unpacker stops reading at the end-of-archive marker and
            // drops the receiver, as in a real export: later sends fail.
            for chunk in archive.chunks(100) {
                if tx.blocking_send(chunk.to_vec()).is_err() {
                    break;
                }
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sb");
        unpack(ChunkReader::new(rx), &target, false).unwrap();
        sender.join().unwrap();
        assert_eq!(std::fs::read(target.join("bin/probe")).unwrap(), b"hello");
    }

    #[test]
    fn text_helpers() {
        assert_eq!(
            parse_version("apptainer version 1.4.5\n"),
            "apptainer 1.4.5"
        );
        assert_eq!(
            parse_version("singularity-ce version 3.11.4\n"),
            "singularity-ce 3.11.4"
        );
        assert_eq!(strip_colour("\u{1b}[91mERROR  : x\u{1b}[0m"), "ERROR  : x");
        assert_ne!(unique(), unique());
    }
}
