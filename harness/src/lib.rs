//! qus-harness: runs qus conformance scenarios.
#![warn(missing_docs)]
