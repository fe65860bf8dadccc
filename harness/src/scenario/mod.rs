//! TODO: scenario.
