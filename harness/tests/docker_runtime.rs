//! `DockerRuntime` against a real Docker Engine.
//!
//! Compiled only with `--features docker`; a libtest-mimic harness with one
//! trial per behaviour (the behaviours are shared with Podman, see
//! `common/engine.rs`). Without docker (or gcc) each trial is reported as
//! ignored with the reason; with `QUS_REQUIRE_ENGINES=1` it fails instead.
//! After the trials, anything this process left on the engine fails the run.
#![cfg(feature = "docker")]

use std::process::ExitCode;

use libtest_mimic::Arguments;
use qus_harness::runtime::DockerRuntime;

#[path = "common/engine.rs"]
mod engine;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let conclusion = libtest_mimic::run(&args, engine::shared_trials::<DockerRuntime>());
    let left = engine::leftovers::<DockerRuntime>();
    for item in &left {
        eprintln!("error: left behind: {item}");
    }
    if left.is_empty() {
        conclusion.exit_code()
    } else {
        ExitCode::FAILURE
    }
}
