//! TODO: plan.
