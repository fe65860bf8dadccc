//! The comparison itself: two sides in, a [`Comparison`] out. Pure.
//!
//! Instances are matched by id. A *regression* passed in the base and
//! failed, errored or timed out in the candidate; a *fix* is the reverse;
//! other changes of outcome (to or from skipped) are listed apart. A
//! workload *slowdown* is compared where both sides have one; it is over the
//! threshold when the candidate's exceeds the base's by more than the
//! threshold's fraction of it *and* the workload's own time grew by more
//! than that fraction and by at least [`MIN_GROWTH_SECONDS`]. The second
//! condition keeps noise out of the verdict: a native run lasts a second or
//! two, so one slow native run on a busy host makes a slowdown "grow" while
//! the emulated run did not change, and a QEMU that really got slower
//! shows in its own time too (reports without times are judged on the
//! slowdown alone). Known differences turn regressions and
//! slowdowns over the threshold into known ones, which do not fail. Every
//! list is sorted by id.

use super::input::Side;
use super::known::Known;
use crate::report::Status;

/// How many seconds a workload's own time must grow, besides the
/// threshold's fraction, before its slowdown counts as grown.
pub const MIN_GROWTH_SECONDS: f64 = 1.0;

/// An instance whose outcome changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The instance id.
    pub id: String,
    /// Its outcome in the base.
    pub base: Status,
    /// Its outcome in the candidate.
    pub candidate: Status,
    /// The reason of the known difference that covers it, if one does.
    pub known: Option<String>,
}

/// An instance only one side has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The instance id.
    pub id: String,
    /// Its outcome on the side that has it.
    pub status: Status,
}

/// A workload both sides timed against their native run.
#[derive(Debug, Clone, PartialEq)]
pub struct Slowdown {
    /// The instance id.
    pub id: String,
    /// The base's slowdown.
    pub base: f64,
    /// The candidate's slowdown.
    pub candidate: f64,
    /// Whether it grew by more than the threshold.
    pub over: bool,
    /// The reason of the known difference that covers it, if one does.
    pub known: Option<String>,
}

impl Slowdown {
    /// How much the slowdown grew, as a fraction of the base's (`0.4` for
    /// 40 % slower); negative when it shrank.
    pub fn growth(&self) -> f64 {
        if self.base > 0.0 {
            self.candidate / self.base - 1.0
        } else {
            0.0
        }
    }
}

/// The verdict on two sides.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The reference.
    pub base: Side,
    /// The run under judgement.
    pub candidate: Side,
    /// The slowdown growth above which a workload regressed (`0.25`).
    pub threshold: f64,
    /// Passed in the base, failed, errored or timed out in the candidate.
    pub regressions: Vec<Change>,
    /// Failed, errored or timed out in the base, passed in the candidate.
    pub fixes: Vec<Change>,
    /// Other changes of outcome (to or from skipped, between failures).
    pub changed: Vec<Change>,
    /// Only in the candidate.
    pub new: Vec<Presence>,
    /// Only in the base.
    pub removed: Vec<Presence>,
    /// Every workload with a slowdown on both sides.
    pub slowdowns: Vec<Slowdown>,
    /// Where the known differences are: `file:line:col` and what they
    /// cover, for the entries that covered nothing.
    pub unused_known: Vec<String>,
}

impl Comparison {
    /// Regressions no known difference covers.
    pub fn unknown_regressions(&self) -> impl Iterator<Item = &Change> {
        self.regressions.iter().filter(|c| c.known.is_none())
    }

    /// Slowdowns over the threshold no known difference covers.
    pub fn unknown_slowdowns(&self) -> impl Iterator<Item = &Slowdown> {
        self.slowdowns
            .iter()
            .filter(|s| s.over && s.known.is_none())
    }

    /// Whether the candidate fails the gate: a regression or a slowdown
    /// over the threshold that no known difference covers.
    pub fn fails(&self) -> bool {
        self.unknown_regressions().next().is_some() || self.unknown_slowdowns().next().is_some()
    }
}

/// Compares `candidate` with `base`.
pub fn compare(base: Side, candidate: Side, threshold: f64, known: &Known) -> Comparison {
    let mut used = vec![false; known.entries.len()];
    let mut covering = |id: &str| {
        let index = known
            .entries
            .iter()
            .position(|e| e.covers(id, candidate.qemu.as_ref()))?;
        used[index] = true;
        Some(known.entries[index].reason.clone())
    };
    let (mut regressions, mut fixes, mut changed, mut new, mut removed, mut slowdowns) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (id, b) in &base.instances {
        let Some(c) = candidate.instances.get(id) else {
            removed.push(Presence {
                id: id.clone(),
                status: b.status,
            });
            continue;
        };
        let change = |known| Change {
            id: id.clone(),
            base: b.status,
            candidate: c.status,
            known,
        };
        match (b.status, c.status) {
            (x, y) if x == y => {}
            (Status::Passed, y) if y.is_failure() => regressions.push(change(covering(id))),
            (x, Status::Passed) if x.is_failure() => fixes.push(change(None)),
            _ => changed.push(change(None)),
        }
        if let (Some(bs), Some(cs)) = (b.slowdown, c.slowdown) {
            let over = cs > bs * (1.0 + threshold) && time_grew(b.seconds, c.seconds, threshold);
            slowdowns.push(Slowdown {
                id: id.clone(),
                base: bs,
                candidate: cs,
                over,
                known: if over { covering(id) } else { None },
            });
        }
    }
    for (id, c) in &candidate.instances {
        if !base.instances.contains_key(id) {
            new.push(Presence {
                id: id.clone(),
                status: c.status,
            });
        }
    }
    let unused_known = known
        .entries
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(e, _)| format!("{}: {}", e.location, e.describe()))
        .collect();
    Comparison {
        base,
        candidate,
        threshold,
        regressions,
        fixes,
        changed,
        new,
        removed,
        slowdowns,
        unused_known,
    }
}

/// Whether a workload's own time grew past the threshold and by at least
/// [`MIN_GROWTH_SECONDS`]; `true` when a side has no time to judge by.
fn time_grew(base: Option<f64>, candidate: Option<f64>, threshold: f64) -> bool {
    match (base, candidate) {
        (Some(b), Some(c)) => c > b * (1.0 + threshold) && c - b >= MIN_GROWTH_SECONDS,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::compare::input::{SideInstance, SideQemu};

    fn side(instances: &[(&str, Status, Option<f64>)]) -> Side {
        Side {
            path: "r.json".into(),
            run_id: "r".into(),
            runtime: "docker".into(),
            qemu: Some(SideQemu {
                name: "11.1".into(),
                version: "11.1.3-1".into(),
                debian_version: None,
            }),
            instances: instances
                .iter()
                .map(|(id, status, slowdown)| {
                    (
                        (*id).to_owned(),
                        SideInstance {
                            status: *status,
                            slowdown: *slowdown,
                            seconds: None,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    use Status::{Errored, Failed, Passed, Skipped, TimedOut};

    #[test]
    fn each_category_is_found() {
        let base = side(&[
            ("regressed", Passed, None),
            ("errored", Passed, None),
            ("timed-out", Passed, None),
            ("fixed", Failed, None),
            ("unskipped", Skipped, None),
            ("now-skipped", Passed, None),
            ("still-failing", Failed, None),
            ("removed", Passed, None),
            ("same", Passed, None),
        ]);
        let candidate = side(&[
            ("regressed", Failed, None),
            ("errored", Errored, None),
            ("timed-out", TimedOut, None),
            ("fixed", Passed, None),
            ("unskipped", Passed, None),
            ("now-skipped", Skipped, None),
            ("still-failing", Errored, None),
            ("new", Failed, None),
            ("same", Passed, None),
        ]);
        let c = compare(base, candidate, 0.25, &Known::default());
        fn ids(list: &[Change]) -> Vec<&str> {
            list.iter().map(|c| c.id.as_str()).collect()
        }
        assert_eq!(ids(&c.regressions), ["errored", "regressed", "timed-out"]);
        assert_eq!(ids(&c.fixes), ["fixed"]);
        // Skipped is neither a regression nor a fix.
        assert_eq!(
            ids(&c.changed),
            ["now-skipped", "still-failing", "unskipped"]
        );
        assert_eq!(
            c.new,
            [Presence {
                id: "new".into(),
                status: Failed
            }]
        );
        assert_eq!(
            c.removed,
            [Presence {
                id: "removed".into(),
                status: Passed
            }]
        );
        assert!(c.fails());
    }

    #[test]
    fn slowdowns_over_the_threshold_fail() {
        let base = side(&[
            ("w1", Passed, Some(4.0)),
            ("w2", Passed, Some(4.0)),
            ("w3", Passed, Some(2.0)),
        ]);
        let candidate = side(&[
            ("w1", Passed, Some(5.0)),
            ("w2", Passed, Some(5.2)),
            ("w3", Passed, None),
        ]);
        let c = compare(base, candidate, 0.25, &Known::default());
        assert_eq!(c.slowdowns.len(), 2, "w3 has no candidate slowdown");
        assert!(!c.slowdowns[0].over, "exactly 25% is not more than 25%");
        assert!(c.slowdowns[1].over);
        assert!((c.slowdowns[1].growth() - 0.3).abs() < 1e-9);
        assert!(c.fails());
        assert!(c.regressions.is_empty());
    }

    #[test]
    fn a_noisy_native_run_alone_is_no_slowdown() {
        let timed = |id: &str, slowdown: f64, seconds: f64| {
            (
                id.to_owned(),
                SideInstance {
                    status: Passed,
                    slowdown: Some(slowdown),
                    seconds: Some(seconds),
                },
            )
        };
        let mut base = side(&[]);
        base.instances = BTreeMap::from([
            timed("noisy-native", 3.0, 9.5),
            timed("slower", 4.0, 8.0),
            timed("tiny", 4.0, 2.0),
        ]);
        let mut candidate = side(&[]);
        candidate.instances = BTreeMap::from([
            // The slowdown grew 80 % because the native run was faster this
            // time; the emulated run itself got faster.
            timed("noisy-native", 5.4, 6.7),
            // Slower in both measures: over.
            timed("slower", 5.5, 11.0),
            // 40 % slower but only 0.8 s: noise at this size.
            timed("tiny", 5.6, 2.8),
        ]);
        let c = compare(base, candidate, 0.25, &Known::default());
        let over: Vec<&str> = c
            .slowdowns
            .iter()
            .filter(|s| s.over)
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(over, ["slower"]);
    }

    #[test]
    fn known_differences_excuse_what_they_cover_and_unused_ones_are_listed() {
        let known = Known::parse(
            Path::new("known.yaml"),
            "known:\n  - id: regressed\n    qemu: \"11.1\"\n    reason: accepted\n  \
             - pattern: 'w.*'\n    reason: slower TCG\n  - id: gone\n    reason: unused\n",
        )
        .unwrap();
        let base = side(&[("regressed", Passed, None), ("w", Passed, Some(2.0))]);
        let candidate = side(&[("regressed", Failed, None), ("w", Passed, Some(4.0))]);
        let c = compare(base, candidate, 0.25, &known);
        assert_eq!(c.regressions[0].known.as_deref(), Some("accepted"));
        assert_eq!(c.slowdowns[0].known.as_deref(), Some("slower TCG"));
        assert!(!c.fails());
        assert_eq!(c.unused_known, ["known.yaml:7:5: id `gone`"]);
    }
}
