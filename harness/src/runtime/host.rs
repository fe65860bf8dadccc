//! [`HostRuntime`]: the runtime without an engine.
//!
//! Scenarios on the host run the registrar and probe binaries directly
//! through [`exec`](super::exec). This runtime starts no containers and
//! builds no images; it reports those steps as unsupported, with the reason,
//! so the runner skips them.

use super::Runtime;
use super::error::RuntimeError;
use super::spec::{
    BuildOutcome, BuildSpec, EngineInfo, PrivilegeMode, RunOutcome, RunSpec, RuntimeKind,
    StepCapability,
};

/// Why container steps are skipped on the host.
const NO_CONTAINERS: &str = "the host runtime runs no containers";

/// Why build steps are skipped on the host.
const NO_IMAGES: &str = "the host runtime builds no images";

/// Where the kernel reports its release.
const OSRELEASE: &str = "/proc/sys/kernel/osrelease";

/// The runtime without an engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostRuntime;

impl HostRuntime {
    /// The host runtime.
    pub fn new() -> Self {
        Self
    }

    fn unsupported(capability: StepCapability) -> RuntimeError {
        RuntimeError::Unsupported {
            runtime: RuntimeKind::Host,
            capability,
            reason: skip_reason(capability).to_owned(),
        }
    }
}

fn skip_reason(capability: StepCapability) -> &'static str {
    match capability {
        StepCapability::Build => NO_IMAGES,
        StepCapability::Run
        | StepCapability::PrivilegedRun
        | StepCapability::Bind
        | StepCapability::Network
        | StepCapability::Platform => NO_CONTAINERS,
    }
}

impl Runtime for HostRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Host
    }

    fn supports(&self, capability: StepCapability) -> Result<(), String> {
        Err(skip_reason(capability).to_owned())
    }

    async fn probe(&self) -> Result<EngineInfo, RuntimeError> {
        // The version of "the host" that matters to binfmt_misc is the kernel's.
        let version = tokio::fs::read_to_string(OSRELEASE)
            .await
            .map(|release| release.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Ok(EngineInfo {
            kind: RuntimeKind::Host,
            version,
            api_version: None,
            privilege: PrivilegeMode::NotApplicable,
            privilege_note: None,
        })
    }

    async fn run(&self, _spec: &RunSpec) -> Result<RunOutcome, RuntimeError> {
        Err(Self::unsupported(StepCapability::Run))
    }

    async fn build(&self, _spec: &BuildSpec) -> Result<BuildOutcome, RuntimeError> {
        Err(Self::unsupported(StepCapability::Build))
    }

    async fn image_exists(&self, _image: &str) -> Result<bool, RuntimeError> {
        Err(Self::unsupported(StepCapability::Run))
    }

    async fn remove_labelled(&self, _key: &str, _value: &str) -> Result<usize, RuntimeError> {
        // Nothing this runtime does leaves labelled objects behind.
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probe_reports_the_kernel_and_no_privilege_mode() {
        let info = HostRuntime::new().probe().await.unwrap();
        assert_eq!(info.kind, RuntimeKind::Host);
        assert!(!info.version.is_empty());
        assert_eq!(info.privilege, PrivilegeMode::NotApplicable);
    }

    #[tokio::test]
    async fn container_steps_are_unsupported_with_the_reason() {
        let host = HostRuntime::new();
        let err = host.run(&RunSpec::new("img", ["true"])).await.unwrap_err();
        assert_eq!(err.skip_reason(), Some(NO_CONTAINERS));
        let err = host.build(&BuildSpec::dir("/tmp", "t")).await.unwrap_err();
        assert_eq!(err.skip_reason(), Some(NO_IMAGES));
        assert!(
            host.image_exists("img")
                .await
                .unwrap_err()
                .skip_reason()
                .is_some()
        );
        assert_eq!(host.remove_labelled("k", "v").await.unwrap(), 0);
    }

    #[test]
    fn supports_nothing_container_related() {
        let host = HostRuntime::new();
        assert_eq!(
            host.supports(StepCapability::Run),
            Err(NO_CONTAINERS.to_owned())
        );
        assert_eq!(
            host.supports(StepCapability::Build),
            Err(NO_IMAGES.to_owned())
        );
        assert_eq!(
            host.supports_spec(&RunSpec::new("img", ["x"])),
            Err(NO_CONTAINERS.to_owned())
        );
    }
}
