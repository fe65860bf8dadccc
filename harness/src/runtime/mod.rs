//! Container runtimes: one trait for what a scenario needs from an engine.
//!
//! The main item is the [`Runtime`] trait: probe the engine, run a
//! container ([`RunSpec`] → [`RunOutcome`]), build an image, check that an
//! image exists, and remove everything a run labelled. Implementations:
//! [`DockerRuntime`] and [`PodmanRuntime`] (one bollard core, per-engine
//! settings), [`SingularityRuntime`] (the Apptainer/Singularity CLI on
//! sandboxes unpacked from Docker images), [`HostRuntime`] (no engine),
//! [`UnavailableRuntime`] (an engine asked for that does not answer) and
//! [`FakeRuntime`] (scripted, for runner and reporter tests). [`exec`] runs
//! a host command for `exec` steps on every runtime. [`Endpoint`] says where
//! an engine speaking Docker's API listens, with TLS where the docker CLI's
//! variables ask for it.
//!
//! Engine quirks (privilege fallbacks, API version negotiation) stay inside
//! each implementation. This module does not schedule, assert or report.

mod context;
mod docker;
mod endpoint;
mod error;
mod exec;
mod fake;
mod host;
mod podman;
mod singularity;
mod spec;
mod unavailable;

use std::future::Future;

pub(crate) use context::containerfile_in;
pub use docker::DockerRuntime;
pub use endpoint::{
    DEFAULT_DOCKER_HOST, DOCKER_CERT_PATH, DOCKER_HOST, DOCKER_TLS_VERIFY, Endpoint,
    TlsConnectError, TlsFailure, TlsFiles,
};
pub use error::{BoxError, Operation, RuntimeError};
pub use exec::{exec, exec_with};
pub use fake::FakeRuntime;
pub use host::HostRuntime;
pub use podman::{PodmanRuntime, copy_image_from_docker};
pub use singularity::SingularityRuntime;
pub use spec::{
    BuildContext, BuildOutcome, BuildSpec, ContextFile, DEFAULT_BUILD_TIMEOUT, DEFAULT_RUN_TIMEOUT,
    EngineInfo, ParseRuntimeKindError, PrivilegeMode, RunOutcome, RunSpec, RuntimeKind,
    StepCapability,
};
pub use unavailable::UnavailableRuntime;

/// Label carrying the run id on every container and image a run creates.
pub const RUN_LABEL: &str = "io.qus.run";

/// Label carrying the scenario name on the containers it starts.
pub const SCENARIO_LABEL: &str = "io.qus.scenario";

/// What a scenario needs from a container engine.
///
/// The set of engines is closed, so runners are generic over `R: Runtime`
/// and the methods are native `async fn`s; the returned futures are `Send`
/// so a runner can spawn them on a multi-threaded runtime.
///
/// A failing container or build is an outcome; an `Err` means the engine
/// could not do what was asked (see [`RuntimeError`]).
pub trait Runtime: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> RuntimeKind;

    /// `Ok` when this runtime can do `capability`, else the reason to give
    /// when skipping the step.
    fn supports(&self, capability: StepCapability) -> Result<(), String>;

    /// Checks every capability `spec` needs; the first missing one's reason.
    fn supports_spec(&self, spec: &RunSpec) -> Result<(), String> {
        spec.required_capabilities()
            .into_iter()
            .try_for_each(|capability| self.supports(capability))
    }

    /// Checks that the engine answers; reports its version and how
    /// privileged steps will run. Privilege support is detected once and
    /// cached.
    fn probe(&self) -> impl Future<Output = Result<EngineInfo, RuntimeError>> + Send;

    /// Runs one container to completion (or its timeout) and removes it.
    fn run(&self, spec: &RunSpec) -> impl Future<Output = Result<RunOutcome, RuntimeError>> + Send;

    /// Builds and tags one image.
    fn build(
        &self,
        spec: &BuildSpec,
    ) -> impl Future<Output = Result<BuildOutcome, RuntimeError>> + Send;

    /// Whether `image` is present locally.
    fn image_exists(&self, image: &str) -> impl Future<Output = Result<bool, RuntimeError>> + Send;

    /// Force-removes every container and image labelled
    /// `label_key=label_value`; returns how many were removed.
    ///
    /// Runners call it at the end of a run with [`RUN_LABEL`], as the
    /// backstop for containers whose removal could not finish (a run
    /// cancelled while the container was being created).
    fn remove_labelled(
        &self,
        label_key: &str,
        label_value: &str,
    ) -> impl Future<Output = Result<usize, RuntimeError>> + Send;
}
