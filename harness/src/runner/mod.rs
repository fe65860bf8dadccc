//! Running scenarios: scheduling, step execution and assertions.
//!
//! The main function is [`run`]: a plan in, events out (through a callback),
//! host state restored at the end; [`run_matrix`] does the same for a
//! [`QemuMatrix`], one QEMU after another. The runner never prints;
//! reporters do.

mod execute;
mod expect;
mod qemu;
mod step;

pub use execute::{
    RunEnd, RunOptions, TEARDOWN_GRACE, instance_id, instance_id_on, run, run_matrix,
};
pub use qemu::{BASELINE_ARGS, QemuGroup, QemuMatrix, QemuProbe, preferred_targets};
pub(crate) use step::error_chain;
pub use step::{probe_spec, run_spec};
