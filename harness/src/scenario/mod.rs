//! Scenario files: the YAML model, loading with exact `file:line:col` errors, variables,
//! matrix expansion and validation (synchronous and pure: no containers, no environment).
//!
//! The pipeline is [`load_paths`] (or [`load_file`]/[`load_str`]) → [`Scenario`] →
//! [`expand`] with [`VarOverrides`] → [`Instance`]s whose [`Step`]s are fully resolved.
//! Everything that can be checked without running is checked at load time. [`json_schema`]
//! describes the file format for editors, and [`parse_tag_expr`] parses `--tags`.

mod error;
mod expand;
mod load;
mod model;
mod raw;
mod schema;
mod span;
mod step;
mod tags;
mod validate;
mod vars;
mod workload;

pub use error::{ExpandError, LoadError, LoadErrorKind, LoadErrors};
pub use expand::{Instance, expand};
pub(crate) use load::load_yaml;
pub use load::{MAX_FILE_SIZE, load_file, load_paths, load_str};
pub(crate) use model::parse_duration;
pub use model::{KernelVersion, MatrixAxis, MatrixValue, Requires, Scenario, VarDecl, Workload};
pub use raw::{BinfmtAccess, NetworkMode, RuntimeKind};
pub use schema::{SCHEMA_ID, json_schema};
pub use span::Position;
pub(crate) use span::{Mark, Sp};
pub use step::{
    Action, Bind, BinfmtCheck, Build, BuildExpect, BuildSource, Exec, ExitExpectation, Expect,
    Matcher, NOBODY, Probe, Register, Registrar, Reset, Run, Step, default_probe_image, probe_user,
};
pub use tags::{TagExpr, TagExprError, parse_tag_expr};
pub use validate::{API_VERSION, MAX_INSTANCES};
pub use vars::{
    BUILTIN_VARS, DEFAULT_QUS_VERSION, DEFAULT_REGISTRAR_BIN, DEFAULT_RUN_ID, VarAssignmentError,
    VarOverrides, parse_var_assignment,
};
