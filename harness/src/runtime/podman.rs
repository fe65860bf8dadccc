//! [`PodmanRuntime`]: the [`Runtime`] on Podman's Docker-compatible API,
//! through bollard, and [`copy_image_from_docker`].
//!
//! It is the Docker runtime's core ([`ApiEngine`]) with Podman's
//! [`EngineProfile`], which differs in four ways:
//!
//! - every container gets the `nofile` and `nproc` ulimits that Podman 4.3
//!   needs on hosts whose hard limits are below its defaults (without them
//!   runc cannot apply the rlimits and the container does not start);
//! - a requested platform is checked against the image's metadata, because
//!   the compat API ignores it;
//! - images are removed unforced, because Podman's forced removal also
//!   removes every container using a parent layer, other builds' working
//!   containers included;
//! - a build that fails because an image was removed while buildah looked
//!   for cached layers ("layer not known") is run again.
//!
//! Runs, privilege detection, builds (the compat `/build` endpoint, with
//! buildah behind it, works on 4.3), cleanup guards and outcome mapping are
//! the Docker runtime's. The service must run with `--runtime runc` (crun
//! fails on the CI hosts); `.ci/lib/podman.sh` starts it, this module does
//! not.

use bollard::models::{HostConfig, ResourcesUlimits};
use bollard::query_parameters::ImportImageOptions;
use futures_util::StreamExt;
use tracing::debug;

use super::Runtime;
use super::docker::{ApiEngine, DockerRuntime, EngineProfile};
use super::endpoint::Endpoint;
use super::error::{Operation, RuntimeError};
use super::spec::{
    BuildOutcome, BuildSpec, EngineInfo, PrivilegeMode, RunOutcome, RunSpec, RuntimeKind,
    StepCapability,
};

/// Where the service listens when neither variable says otherwise: the
/// rootful socket `podman system service` uses by default.
const DEFAULT_ENDPOINT: &str = "unix:///run/podman/podman.sock";

/// The harness's own override of the socket; wins over [`CONTAINER_HOST`].
const SOCKET_VAR: &str = "QUS_PODMAN_SOCKET";

/// The variable podman-remote reads.
const CONTAINER_HOST: &str = "CONTAINER_HOST";

/// Limits every container gets. Podman asks for its own defaults (over a
/// million open files), which runc cannot set on hosts with lower hard
/// limits; these fit every host seen and every scenario's needs.
const ULIMITS: [(&str, i64); 2] = [("nofile", 4096), ("nproc", 4096)];

/// The [`Runtime`] on Podman, through its Docker-compatible API.
///
/// Cloning is cheap and clones share the connection and the privilege
/// detection.
#[derive(Debug, Clone)]
pub struct PodmanRuntime {
    engine: ApiEngine,
}

impl PodmanRuntime {
    /// Connects where `QUS_PODMAN_SOCKET`, else `CONTAINER_HOST`, says (the
    /// rootful socket `unix:///run/podman/podman.sock` when both are unset)
    /// and negotiates the API version. A bare path is taken as a unix socket.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Unreachable`] when the service does not answer.
    pub async fn connect() -> Result<Self, RuntimeError> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let endpoint = var(SOCKET_VAR).or_else(|| var(CONTAINER_HOST));
        Self::connect_with_host(&endpoint_from(endpoint.as_deref())).await
    }

    /// Connects to `host` (`unix://`, `tcp://`, `http://`) and negotiates
    /// the API version.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Unreachable`] when the service does not answer.
    pub async fn connect_with_host(host: &str) -> Result<Self, RuntimeError> {
        let engine = ApiEngine::connect(profile(), &Endpoint::new(host)).await?;
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
}

impl Runtime for PodmanRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Podman
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

/// Copies `image` from Docker's image store into Podman's, as
/// `docker save IMAGE | podman load` does, so that scenarios can run images
/// built with Docker on Podman.
///
/// The archive streams from one engine to the other without touching the
/// disk. Nothing is copied when Podman already has `image` with the same
/// image ID (the digest of its configuration, which both engines share).
/// Labels travel with the image, so [`Runtime::remove_labelled`] on Podman
/// also removes the copy. Returns whether it copied (`false`: Podman had
/// Docker's image already).
///
/// # Errors
///
/// [`RuntimeError::ImageNotFound`] when Docker does not have `image`;
/// [`RuntimeError::OperationFailed`] or [`RuntimeError::Unreachable`] when
/// an engine fails, or when Podman does not have the image afterwards.
pub async fn copy_image_from_docker(
    docker: &DockerRuntime,
    podman: &PodmanRuntime,
    image: &str,
) -> Result<bool, RuntimeError> {
    let (source, target) = (docker.engine(), &podman.engine);
    let id = source
        .image_id(image)
        .await?
        .ok_or_else(|| RuntimeError::ImageNotFound {
            operation: Operation::InspectImage,
            image: image.to_owned(),
            message: format!("docker at `{}` has no such image", source.endpoint()),
        })?;
    if target.image_id(image).await?.as_deref() == Some(id.as_str()) {
        debug!(image, id, "podman already has the image");
        return Ok(false);
    }
    // Until `Operation` has image export and load steps, the load is
    // reported as making (building) the image in Podman.
    let export = source.docker.export_image(image);
    let options = ImportImageOptions {
        quiet: true,
        ..ImportImageOptions::default()
    };
    let mut load = target.docker.import_image_stream(options, export, None);
    while let Some(item) = load.next().await {
        item.map_err(|e| target.classify(Operation::BuildImage, image, e))?;
    }
    match target.image_id(image).await? {
        Some(loaded) if loaded == id => {
            debug!(image, id, "copied the image from docker to podman");
            Ok(true)
        }
        loaded => Err(RuntimeError::OperationFailed {
            operation: Operation::BuildImage,
            object: image.to_owned(),
            status: None,
            message: format!(
                "after loading docker's `{id}` podman has {}",
                loaded.map_or_else(|| "no such image".to_owned(), |l| format!("`{l}`"))
            ),
        }),
    }
}

/// Podman's profile: the ulimits on every container.
fn profile() -> EngineProfile {
    let ulimits = ULIMITS
        .iter()
        .map(|&(name, limit)| ResourcesUlimits {
            name: Some(name.to_owned()),
            soft: Some(limit),
            hard: Some(limit),
        })
        .collect();
    EngineProfile {
        kind: RuntimeKind::Podman,
        host_config: HostConfig {
            ulimits: Some(ulimits),
            ..HostConfig::default()
        },
        // Podman 4.3's compat create ignores `platform` and would run an
        // image of another architecture.
        enforces_platform: false,
        // Podman's forced image removal also removes the containers using
        // the image's parent layers, other builds' included.
        force_image_removal: false,
        // Buildah's cache lookup walks every image's layers; one removed
        // meanwhile (another run's cleanup) fails the lookup, and with it
        // the build, although the Containerfile is fine.
        transient_build_errors: &["layer not known"],
    }
}

/// The endpoint for a configured value: as given when it has a scheme,
/// `unix://` prepended to a bare path, the default when unset.
fn endpoint_from(configured: Option<&str>) -> String {
    match configured {
        None => DEFAULT_ENDPOINT.to_owned(),
        Some(value) if value.contains("://") => value.to_owned(),
        Some(path) => format!("unix://{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_defaults_to_the_rootful_socket() {
        assert_eq!(endpoint_from(None), "unix:///run/podman/podman.sock");
        assert_eq!(
            endpoint_from(Some("unix:///tmp/p.sock")),
            "unix:///tmp/p.sock"
        );
        assert_eq!(endpoint_from(Some("/tmp/p.sock")), "unix:///tmp/p.sock");
        assert_eq!(
            endpoint_from(Some("tcp://127.0.0.1:8080")),
            "tcp://127.0.0.1:8080"
        );
    }

    #[test]
    fn every_container_gets_the_ulimits() {
        let profile = profile();
        assert_eq!(profile.kind, RuntimeKind::Podman);
        assert!(!profile.enforces_platform);
        assert!(!profile.force_image_removal);
        let ulimits = profile.host_config.ulimits.unwrap();
        let names: Vec<_> = ulimits.iter().filter_map(|u| u.name.as_deref()).collect();
        assert_eq!(names, ["nofile", "nproc"]);
        assert!(
            ulimits
                .iter()
                .all(|u| u.soft == Some(4096) && u.hard == Some(4096))
        );
    }

    #[tokio::test]
    async fn connecting_to_a_missing_socket_is_unreachable() {
        let err = PodmanRuntime::connect_with_host("unix:///nonexistent/qus-podman.sock")
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                RuntimeError::Unreachable {
                    engine: RuntimeKind::Podman,
                    operation: Operation::Connect,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
