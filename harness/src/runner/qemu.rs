//! The QEMU dimension of a run: groups of instances per QEMU, the baseline
//! registration before each group, and the check of which QEMU ran.
//!
//! A run with `--qemu` is a [`QemuMatrix`]: one [`QemuGroup`] per QEMU, run
//! one after another. Before a group's first instance, [`register_baseline`]
//! registers that QEMU's handlers from its registrar image
//! (`<repo>:<version> --reset -p yes`, as a `register` step would), so
//! instances that only read binfmt_misc run on that QEMU too. After an
//! instance's `steps` phase, [`check_ran`] asks a [`QemuProbe`] which QEMU
//! the registered handlers run now and records it with any mismatch. The
//! probe itself (a host process) is the caller's; this module only decides
//! what to ask it and what the answer means.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::step::{StepContext, run_step};
use crate::plan::Planned;
use crate::qemu::ran_mismatch;
use crate::report::{QemuInfo, QemuRan, StepResult};
use crate::runtime::Runtime;
use crate::scenario::{Action, Expect, Instance, Register, Registrar, Step};

/// The registrar's arguments for a baseline: every handler, persistent.
pub const BASELINE_ARGS: [&str; 3] = ["--reset", "-p", "yes"];

/// How many of an instance's targets are probed at most.
const MAX_PROBED_TARGETS: usize = 4;

/// The instances of one QEMU.
#[derive(Debug, Clone)]
pub struct QemuGroup {
    /// The QEMU.
    pub qemu: QemuInfo,
    /// The registrar image whose handlers are registered before the
    /// group's first instance (`<repo>:<version>`); `None` registers
    /// nothing (a host where binfmt_misc cannot be written).
    pub baseline: Option<String>,
    /// The group's planned instances, sorted by id.
    pub planned: Vec<Planned>,
}

/// A run over several QEMUs.
pub struct QemuMatrix {
    /// The groups, in the order they run.
    pub groups: Vec<QemuGroup>,
    /// Tells which QEMU ran each instance; `None` records nothing.
    pub probe: Option<Arc<dyn QemuProbe>>,
}

/// Tells which QEMU the host's registered handlers run now.
pub trait QemuProbe: Send + Sync {
    /// The distinct version lines of the interpreters registered for
    /// `targets` (QEMU target names the instance used, best first), or of
    /// another registered target when none of those is; `Err` says why no
    /// line could be read.
    fn ran<'a>(&'a self, targets: &'a [String]) -> BoxFuture<'a, Result<Vec<String>, String>>;
}

/// Registers `image`'s handlers (`--reset -p yes`) through the runtime, as
/// a `register` step would, and returns the step's result.
pub(crate) async fn register_baseline<R: Runtime>(
    ctx: &StepContext<'_, R>,
    image: &str,
) -> StepResult {
    let step = Step {
        name: Some(format!("register the handlers of {image}")),
        timeout: None,
        retries: 0,
        position: None,
        action: Action::Register(Register {
            registrar: Registrar::Image(image.to_owned()),
            args: BASELINE_ARGS.iter().map(|a| (*a).to_owned()).collect(),
            expect: Expect::default(),
        }),
    };
    run_step(ctx, &step).await
}

/// The QEMU target names an instance may have used, in matrix order: the
/// label of each matrix value (`aarch64` of `arch=aarch64`, or of `{
/// target: aarch64, uname: aarch64 }`), without a `qemu-` prefix or
/// repeats. Other fields are left out (`uname: mips` is no target the
/// instance ran). The probe keeps those that are registered.
pub fn preferred_targets(instance: &Instance) -> Vec<String> {
    let mut targets: Vec<String> = Vec::new();
    for (_, value) in &instance.matrix {
        let label = value.label();
        let word = label.strip_prefix("qemu-").unwrap_or(label);
        let plausible = !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if plausible && !targets.iter().any(|t| t == word) {
            targets.push(word.to_owned());
        }
    }
    targets.truncate(MAX_PROBED_TARGETS);
    targets
}

/// Asks `probe` which QEMU ran `instance` and compares it with `qemu`,
/// within `limit`.
pub(crate) async fn check_ran(
    probe: &dyn QemuProbe,
    qemu: &QemuInfo,
    instance: &Instance,
    limit: Duration,
) -> QemuRan {
    let targets = preferred_targets(instance);
    let answer = tokio::time::timeout(limit, probe.ran(&targets))
        .await
        .unwrap_or_else(|_| Err(format!("the probe gave no answer within {limit:?}")));
    match answer {
        Ok(lines) if lines.is_empty() => QemuRan {
            error: Some("the probe printed no version".to_owned()),
            ..QemuRan::default()
        },
        Ok(lines) => {
            let mismatch = lines
                .iter()
                .find_map(|line| ran_mismatch(&qemu.version, qemu.debian_version.as_deref(), line));
            QemuRan {
                lines,
                mismatch,
                error: None,
            }
        }
        Err(error) => QemuRan {
            error: Some(error),
            ..QemuRan::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{VarOverrides, expand, load_str};

    fn instance(matrix: &str) -> Instance {
        let yaml = format!(
            "apiVersion: qus/v1\nname: t\nmatrix:\n{matrix}\nsteps:\n  - exec: {{ command: [\"true\"] }}\n"
        );
        let scenario = load_str("t.yaml", &yaml).unwrap();
        expand(&scenario, &VarOverrides::new()).unwrap().remove(0)
    }

    #[test]
    fn targets_are_the_matrix_labels() {
        assert_eq!(
            preferred_targets(&instance("  arch: [{ target: mipsel, uname: mips }]")),
            ["mipsel"]
        );
        assert_eq!(
            preferred_targets(&instance(
                "  entry: [qemu-s390x]\n  n: [\"1\"]\n  m: [s390x]"
            )),
            ["s390x", "1"]
        );
        // Words no target can be are left out.
        assert!(preferred_targets(&instance("  a: [\"linux/arm64\"]")).is_empty());
    }

    struct Answer(Result<Vec<String>, String>);

    impl QemuProbe for Answer {
        fn ran<'a>(&'a self, _: &'a [String]) -> BoxFuture<'a, Result<Vec<String>, String>> {
            Box::pin(async move { self.0.clone() })
        }
    }

    #[tokio::test]
    async fn the_answer_is_checked_against_the_qemu_asked_for() {
        let qemu = QemuInfo {
            name: "7.2".into(),
            version: "7.2.0-1".into(),
            debian_version: Some("1:7.2+dfsg-7".into()),
        };
        let i = instance("  arch: [aarch64]");
        let good = "qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7)".to_owned();
        let bad = "qemu-aarch64 version 10.0.2 (Debian 1:10.0.2+ds-1)".to_owned();
        let limit = Duration::from_secs(5);
        let ran = check_ran(&Answer(Ok(vec![good.clone()])), &qemu, &i, limit).await;
        assert_eq!(
            (ran.lines, ran.mismatch, ran.error),
            (vec![good.clone()], None, None)
        );
        let ran = check_ran(&Answer(Ok(vec![good, bad])), &qemu, &i, limit).await;
        assert!(ran.mismatch.unwrap().contains("10.0.2"));
        let ran = check_ran(&Answer(Err("nothing registered".into())), &qemu, &i, limit).await;
        assert_eq!(ran.error.as_deref(), Some("nothing registered"));
        let ran = check_ran(&Answer(Ok(vec![])), &qemu, &i, limit).await;
        assert!(ran.error.is_some());
    }
}
