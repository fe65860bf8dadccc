//! qus-harness: runs qus conformance scenarios.
#![warn(missing_docs)]

pub mod report;
pub mod runtime;
pub mod scenario;
