//! Running scenarios: scheduling, step execution and assertions.
//!
//! The main function is [`run`]: a plan in, events out (through a callback),
//! host state restored at the end. The runner never prints; reporters do.

mod execute;
mod expect;
mod step;

pub use execute::{RunEnd, RunOptions, TEARDOWN_GRACE, instance_id, run};
pub(crate) use step::error_chain;
pub use step::run_spec;
