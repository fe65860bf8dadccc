//! [`RuntimeError`]: why a runtime could not carry out an operation.
//!
//! A failing container or build is not an error (see
//! [`RunOutcome`](super::RunOutcome)); these errors mean the engine or the
//! host could not do what was asked, so a runner can tell "engine broken"
//! from "scenario failed".

use std::fmt;

use super::spec::{RuntimeKind, StepCapability};

/// A boxed error kept as the cause of an [`RuntimeError::Unreachable`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The runtime operation an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Connect to the engine and negotiate its API version.
    Connect,
    /// Ask the engine for its version and privilege support.
    Probe,
    /// Create a container.
    CreateContainer,
    /// Start a created container.
    StartContainer,
    /// Wait for a container to exit.
    WaitContainer,
    /// Read a container's output.
    ReadLogs,
    /// Kill a container that ran past its timeout.
    KillContainer,
    /// Remove a container.
    RemoveContainer,
    /// List containers.
    ListContainers,
    /// Pack a build context.
    PrepareContext,
    /// Build an image.
    BuildImage,
    /// Look up an image.
    InspectImage,
    /// List images.
    ListImages,
    /// Remove an image.
    RemoveImage,
    /// Run a command on the host.
    Exec,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Connect => "connect to the engine",
            Operation::Probe => "probe the engine",
            Operation::CreateContainer => "create a container from",
            Operation::StartContainer => "start container",
            Operation::WaitContainer => "wait for container",
            Operation::ReadLogs => "read the output of container",
            Operation::KillContainer => "kill container",
            Operation::RemoveContainer => "remove container",
            Operation::ListContainers => "list containers labelled",
            Operation::PrepareContext => "pack the build context of",
            Operation::BuildImage => "build image",
            Operation::InspectImage => "inspect image",
            Operation::ListImages => "list images labelled",
            Operation::RemoveImage => "remove image",
            Operation::Exec => "execute",
        })
    }
}

/// Why a runtime operation could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine did not answer: not running, wrong socket, connection lost.
    #[error("failed to {operation}: the {engine} engine at `{endpoint}` is unreachable")]
    Unreachable {
        /// Which engine.
        engine: RuntimeKind,
        /// Where it was expected (`unix:///var/run/docker.sock`).
        endpoint: String,
        /// What was being done.
        operation: Operation,
        /// The transport error.
        #[source]
        source: BoxError,
    },

    /// The image is not present locally (nothing is ever pulled), or not
    /// for the requested platform.
    #[error("failed to {operation} `{image}`: the image is not present locally ({message})")]
    ImageNotFound {
        /// What was being done.
        operation: Operation,
        /// The image reference.
        image: String,
        /// The engine's message.
        message: String,
    },

    /// The engine answered with an error.
    #[error(
        "failed to {operation} `{object}`{}: {message}",
        .status.map(|code| format!(" (status {code})")).unwrap_or_default()
    )]
    OperationFailed {
        /// What was being done.
        operation: Operation,
        /// The container, image or label concerned.
        object: String,
        /// The engine's HTTP status, when it sent one.
        status: Option<u16>,
        /// The engine's message.
        message: String,
    },

    /// A local I/O step failed: spawning a host command, reading a build
    /// context directory.
    #[error("failed to {operation} `{object}`")]
    Io {
        /// What was being done.
        operation: Operation,
        /// The program or path concerned.
        object: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The operation was abandoned before it finished. Runtimes do not
    /// return it themselves (dropping their future is how they are
    /// cancelled); runners report steps they abandoned (Ctrl-C) with it.
    #[error("{operation} was cancelled")]
    Cancelled {
        /// What was being done.
        operation: Operation,
    },

    /// The runtime cannot do what the step needs; the step is skipped with
    /// `reason`, not failed.
    #[error("the {runtime} runtime does not support {capability}: {reason}")]
    Unsupported {
        /// Which runtime.
        runtime: RuntimeKind,
        /// What the step needs.
        capability: StepCapability,
        /// Why it cannot, for the skip message.
        reason: String,
    },

    /// The spec itself cannot be carried out (an empty command line).
    #[error("invalid spec: {reason}")]
    InvalidSpec {
        /// What is wrong with it.
        reason: String,
    },
}

impl RuntimeError {
    /// The engine's HTTP status code, when the engine sent one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            RuntimeError::OperationFailed { status, .. } => *status,
            _ => None,
        }
    }

    /// The skip reason when the runtime does not support the step.
    pub fn skip_reason(&self) -> Option<&str> {
        match self {
            RuntimeError::Unsupported { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// Whether the engine itself is at fault (unreachable or failing), as
    /// opposed to the scenario asking for something absent or unsupported.
    pub fn is_engine_failure(&self) -> bool {
        matches!(
            self,
            RuntimeError::Unreachable { .. } | RuntimeError::OperationFailed { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn operation_failed_message_names_operation_object_and_status() {
        let err = RuntimeError::OperationFailed {
            operation: Operation::StartContainer,
            object: "abc".into(),
            status: Some(500),
            message: "boom".into(),
        };
        assert_eq!(
            err.to_string(),
            "failed to start container `abc` (status 500): boom"
        );
        assert_eq!(err.status_code(), Some(500));
        assert!(err.is_engine_failure());
        let no_status = RuntimeError::OperationFailed {
            operation: Operation::ListImages,
            object: "io.qus.run=1".into(),
            status: None,
            message: "bad".into(),
        };
        assert_eq!(
            no_status.to_string(),
            "failed to list images labelled `io.qus.run=1`: bad"
        );
    }

    #[test]
    fn unreachable_keeps_the_cause_out_of_the_message() {
        let err = RuntimeError::Unreachable {
            engine: RuntimeKind::Docker,
            endpoint: "unix:///x.sock".into(),
            operation: Operation::Connect,
            source: Box::new(std::io::Error::other("refused")),
        };
        assert_eq!(
            err.to_string(),
            "failed to connect to the engine: the docker engine at `unix:///x.sock` is unreachable"
        );
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("refused")
        );
        assert!(err.is_engine_failure());
    }

    #[test]
    fn unsupported_carries_the_skip_reason() {
        let err = RuntimeError::Unsupported {
            runtime: RuntimeKind::Host,
            capability: StepCapability::Run,
            reason: "the host runtime runs no containers".into(),
        };
        assert_eq!(
            err.skip_reason(),
            Some("the host runtime runs no containers")
        );
        assert!(!err.is_engine_failure());
        assert_eq!(
            err.to_string(),
            "the host runtime does not support running containers: the host runtime runs no containers"
        );
    }

    #[test]
    fn image_not_found_is_not_an_engine_failure() {
        let err = RuntimeError::ImageNotFound {
            operation: Operation::CreateContainer,
            image: "a/b:c".into(),
            message: "No such image: a/b:c".into(),
        };
        assert!(!err.is_engine_failure());
        assert!(
            err.to_string()
                .starts_with("failed to create a container from `a/b:c`")
        );
    }
}
