//! Skips counted by cause, for the console's closing summary: a run on the
//! host runtime of a fresh machine skips most of the suite, and the
//! summary says why in a few lines instead of leaving it to the `SKIP`
//! lines scattered above.
//!
//! A cause is a skip reason without its per-instance details ([`cause`]):
//! the runtime an instance applies to, the step that cannot run, the
//! engine's error.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The cause of a skip `reason` as the planner or the runner words it:
///
/// - `applies to runtimes docker, podman, not `host`` → ``needs another runtime than `host` ``;
/// - `step `main[2]` cannot run on `host`: ...` → ``a step cannot run on `host`: ...``;
/// - `engine `docker` unavailable: <error>` → ``engine `docker` unavailable``;
/// - anything else: the reason itself.
pub fn cause(reason: &str) -> String {
    if let Some(rest) = reason.strip_prefix("applies to runtimes ")
        && let Some((_, runtime)) = rest.rsplit_once(", not ")
    {
        return format!("needs another runtime than {runtime}");
    }
    if let Some(rest) = reason.strip_prefix("step `")
        && let Some((_, on)) = rest.split_once("` cannot run on ")
    {
        return format!("a step cannot run on {on}");
    }
    if reason.starts_with("engine `")
        && let Some((engine, _)) = reason.split_once(": ")
    {
        return engine.to_owned();
    }
    reason.to_owned()
}

/// Counts of skips by cause.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SkipCauses(BTreeMap<String, usize>);

impl SkipCauses {
    /// Counts one skip, for `reason`.
    pub fn add(&mut self, reason: &str) {
        *self.0.entry(cause(reason)).or_default() += 1;
    }

    /// `skipped by cause:` and one line per cause, the most frequent first
    /// (ties by name); empty without skips.
    pub fn lines(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let mut causes: Vec<(&String, &usize)> = self.0.iter().collect();
        causes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut text = String::from("skipped by cause:\n");
        for (cause, n) in causes {
            let _ = writeln!(text, "  {n:>4}  {cause}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_drop_per_instance_details() {
        assert_eq!(
            cause("applies to runtimes docker, podman, singularity, not `host`"),
            "needs another runtime than `host`"
        );
        assert_eq!(
            cause("applies to runtimes docker, not `host`"),
            "needs another runtime than `host`"
        );
        assert_eq!(
            cause("step `main[2]` cannot run on `host`: image builds need an engine"),
            "a step cannot run on `host`: image builds need an engine"
        );
        assert_eq!(
            cause("engine `docker` unavailable: the docker engine at `unix:///x` is unreachable"),
            "engine `docker` unavailable"
        );
        assert_eq!(cause("requires root"), "requires root");
    }

    #[test]
    fn lines_put_the_most_frequent_cause_first() {
        let mut causes = SkipCauses::default();
        assert_eq!(causes.lines(), "");
        causes.add("requires root");
        causes.add("applies to runtimes docker, not `host`");
        causes.add("applies to runtimes docker, podman, not `host`");
        causes.add("engine `docker` unavailable: down");
        assert_eq!(
            causes.lines(),
            "skipped by cause:\n     2  needs another runtime than `host`\n     \
             1  engine `docker` unavailable\n     1  requires root\n"
        );
    }
}
