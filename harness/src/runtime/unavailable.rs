//! A stand-in for an engine that was asked for but does not answer.
//!
//! The main type is [`UnavailableRuntime`]: it keeps the chosen engine's
//! kind, so the plan says "engine `docker` unavailable: …" for every
//! scenario that needs it (instead of quietly running on another engine),
//! and every operation fails with the reason. It starts nothing.

use super::{
    BuildOutcome, BuildSpec, EngineInfo, Operation, RunOutcome, RunSpec, Runtime, RuntimeError,
    RuntimeKind, StepCapability,
};

/// An engine of `kind` that could not be reached, and why.
#[derive(Debug, Clone)]
pub struct UnavailableRuntime {
    kind: RuntimeKind,
    reason: String,
}

impl UnavailableRuntime {
    /// A stand-in for `kind`, unusable because of `reason`.
    pub fn new(kind: RuntimeKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }

    fn error(&self, operation: Operation) -> RuntimeError {
        RuntimeError::OperationFailed {
            operation,
            object: self.kind.as_str().to_owned(),
            status: None,
            message: self.reason.clone(),
        }
    }
}

impl Runtime for UnavailableRuntime {
    fn kind(&self) -> RuntimeKind {
        self.kind
    }

    // Capabilities are the engine's to judge; the plan reports the engine
    // itself as unavailable.
    fn supports(&self, _capability: StepCapability) -> Result<(), String> {
        Ok(())
    }

    async fn probe(&self) -> Result<EngineInfo, RuntimeError> {
        Err(self.error(Operation::Probe))
    }

    async fn run(&self, _spec: &RunSpec) -> Result<RunOutcome, RuntimeError> {
        Err(self.error(Operation::CreateContainer))
    }

    async fn build(&self, _spec: &BuildSpec) -> Result<BuildOutcome, RuntimeError> {
        Err(self.error(Operation::BuildImage))
    }

    async fn image_exists(&self, _image: &str) -> Result<bool, RuntimeError> {
        Err(self.error(Operation::InspectImage))
    }

    async fn remove_labelled(&self, _key: &str, _value: &str) -> Result<usize, RuntimeError> {
        Ok(0)
    }
}
