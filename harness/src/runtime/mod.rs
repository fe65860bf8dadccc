//! TODO: runtime.
