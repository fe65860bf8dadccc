//! Loud fallbacks: what `--runtime auto` tried before it settled on an
//! engine (or on the host), said at the start of the run, and the rule
//! that a CI run which executed nothing fails.
//!
//! `--runtime auto` asks Docker, then Podman, then Apptainer/Singularity,
//! and falls back to the host runtime. Each engine that did not answer is
//! recorded as a [`Tried`]; [`notice`] names them, with the reason and
//! the command that gets that engine answering (the doctor's hint,
//! [`crate::doctor::engine_hint`]).

use crate::runtime::RuntimeKind;

/// The environment variable CI services set (`CI=true`).
pub const CI_VAR: &str = "CI";

/// An engine that `--runtime auto` asked and that did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// The engine.
    pub kind: RuntimeKind,
    /// Why it did not answer (its connection or probe error).
    pub reason: String,
    /// Whether its program is installed (the fix is then to start it,
    /// else to install it).
    pub installed: bool,
}

impl Tried {
    /// `kind` did not answer, for `reason`; whether its program is on
    /// `PATH` is looked up here.
    pub fn new(kind: RuntimeKind, reason: String) -> Self {
        let programs: &[&str] = match kind {
            RuntimeKind::Docker => &["dockerd", "docker"],
            RuntimeKind::Podman => &["podman"],
            RuntimeKind::Singularity => &["apptainer", "singularity"],
            RuntimeKind::Host => &[],
        };
        let installed = programs.iter().any(|p| which::which(p).is_ok());
        Self {
            kind,
            reason,
            installed,
        }
    }

    fn display_name(&self) -> &'static str {
        match self.kind {
            RuntimeKind::Docker => "Docker",
            RuntimeKind::Podman => "Podman",
            RuntimeKind::Singularity => "Apptainer/Singularity",
            RuntimeKind::Host => "host",
        }
    }
}

/// The lines that open a run whose `--runtime auto` skipped engines
/// (`chosen` is the runtime it settled on); empty when nothing was
/// skipped.
pub fn notice(tried: &[Tried], chosen: RuntimeKind) -> Vec<String> {
    if tried.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![match chosen {
        RuntimeKind::Host => "note: no container engine answered; running on the `host` runtime \
                              (scenarios that need an engine are skipped)"
            .to_owned(),
        other => format!(
            "note: running on `{}`; engines tried before it did not answer",
            other.as_str()
        ),
    }];
    for t in tried {
        lines.push(format!(
            "  {} (`{}`): {}",
            t.display_name(),
            t.kind.as_str(),
            t.reason
        ));
        let mut fix = crate::doctor::engine_hint(t.kind, t.installed);
        if t.kind == RuntimeKind::Singularity {
            // The Apptainer runtime builds its images with Docker.
            fix.push_str(" (it takes its images from Docker, which must answer too)");
        }
        lines.push(format!("    fix: {fix}"));
    }
    lines.push(
        "  (`qus-harness doctor` checks every engine; `--runtime NAME` picks one)".to_owned(),
    );
    lines
}

/// Whether `CI` says this is a CI run (`true` or `1`, any case).
pub fn is_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tried(kind: RuntimeKind, installed: bool) -> Tried {
        Tried {
            kind,
            reason: format!("{} is down", kind.as_str()),
            installed,
        }
    }

    #[test]
    fn nothing_tried_says_nothing() {
        assert!(notice(&[], RuntimeKind::Docker).is_empty());
    }

    #[test]
    fn host_fallback_names_each_engine_its_reason_and_fix() {
        let lines = notice(
            &[
                tried(RuntimeKind::Docker, true),
                tried(RuntimeKind::Podman, false),
                tried(RuntimeKind::Singularity, false),
            ],
            RuntimeKind::Host,
        );
        assert!(
            lines[0].contains("no container engine answered"),
            "{lines:?}"
        );
        assert_eq!(lines[1], "  Docker (`docker`): docker is down");
        assert!(lines[2].contains("systemctl start docker"), "{lines:?}");
        assert_eq!(lines[3], "  Podman (`podman`): podman is down");
        assert!(lines[4].contains("apt-get install podman"), "{lines:?}");
        assert!(lines[6].contains("install Apptainer"), "{lines:?}");
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn a_later_engine_is_named_as_chosen() {
        let lines = notice(&[tried(RuntimeKind::Docker, false)], RuntimeKind::Podman);
        assert!(lines[0].contains("running on `podman`"), "{lines:?}");
        assert!(lines[2].contains("apt-get install docker.io"), "{lines:?}");
    }

    #[test]
    fn ci_values() {
        assert!(is_ci(Some("true")));
        assert!(is_ci(Some("TRUE")));
        assert!(is_ci(Some("1")));
        assert!(!is_ci(Some("false")));
        assert!(!is_ci(Some("")));
        assert!(!is_ci(None));
    }
}
