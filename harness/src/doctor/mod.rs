//! `qus-harness doctor`: is this host ready to run foreign-architecture
//! containers, and if not, what to run to fix it.
//!
//! The pipeline: [`Inputs::gather`] reads the host once (kernel, `/proc`,
//! the binfmt_misc mount and its entries, systemd's binfmt.d files, the
//! container engines), or [`Inputs::from_fixture_dir`] reads a recorded
//! one; [`checks`] turns the inputs into one [`Check`] per line item, with
//! no I/O; [`render_text`] and [`render_json`] print them and [`exit_code`]
//! says whether anything failed (or, with `--strict`, warned).

mod checks;
mod fix;
mod inputs;
mod render;

pub use checks::{Check, Status, checks, engine_hint};
pub use fix::{Fix, FixError, apply as apply_fix, check_debian, plan as plan_fixes};
pub use inputs::{
    BINFMT_D_DIRS, BinfmtDFile, EngineInput, Inputs, Interpreter, LoadFixtureError, SystemdInputs,
};
pub use render::{SCHEMA_VERSION, exit_code, render_json, render_text};
