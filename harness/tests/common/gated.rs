//! Trials that run only where their prerequisites hold (root, Docker, the
//! images they need): otherwise *ignored* with the reason, or a failure
//! under `QUS_REQUIRE_ENGINES=1`, as the CI gate sets it.

use libtest_mimic::{Completion, Failed, Trial};

/// Whether a missing prerequisite fails instead of ignoring the trial.
pub fn require_engines() -> bool {
    std::env::var_os("QUS_REQUIRE_ENGINES").is_some_and(|v| v == "1")
}

/// The trial `name`: `body` with what `prerequisites` gives when it is
/// `Ok`, else ignored with its reason (a failure under
/// `QUS_REQUIRE_ENGINES=1`).
pub fn trial<P: 'static>(
    name: &str,
    prerequisites: fn() -> Result<P, String>,
    body: impl FnOnce(P) -> Result<(), Failed> + Send + 'static,
) -> Trial {
    Trial::ignorable_test(name, move || match prerequisites() {
        Ok(given) => body(given).map(|()| Completion::Completed),
        Err(reason) if require_engines() => {
            Err(format!("QUS_REQUIRE_ENGINES=1 but {reason}").into())
        }
        Err(reason) => Ok(Completion::ignored_with(reason)),
    })
}
