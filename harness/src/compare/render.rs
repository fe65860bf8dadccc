//! A [`Comparison`] as text: the listing for a terminal or a CI log
//! ([`listing`]), and Markdown tables for a release note or the README
//! ([`markdown`]). Both are functions of the comparison only, so equal
//! inputs give byte-equal output.

use std::fmt::Write as _;

use super::diff::{Change, Comparison, Presence, Slowdown};
use super::input::Side;
use crate::report::Status;

/// `25%` for `0.25`.
fn percent(fraction: f64) -> String {
    format!("{}%", (fraction * 100.0).round())
}

/// `+40%` or `-12%`.
fn signed_percent(fraction: f64) -> String {
    let rounded = (fraction * 100.0).round();
    if rounded >= 0.0 {
        format!("+{rounded}%")
    } else {
        format!("{rounded}%")
    }
}

/// The QEMU of a side, for people: `11.1.3-1 (11.1, Debian 1:11.1.3+ds-1)`.
fn qemu_label(side: &Side) -> String {
    match &side.qemu {
        Some(q) => {
            let debian = q
                .debian_version
                .as_deref()
                .map(|d| format!(", Debian {d}"))
                .unwrap_or_default();
            format!("QEMU {} ({}{debian})", q.version, q.name)
        }
        None => "no QEMU matrix".to_owned(),
    }
}

/// `48 passed, 1 failed, 1 skipped` (errored and timed out when any).
fn counts(side: &Side) -> String {
    let mut text = format!(
        "{} passed, {} failed",
        side.count(Status::Passed),
        side.count(Status::Failed)
    );
    for (status, word) in [
        (Status::Errored, "errored"),
        (Status::TimedOut, "timed out"),
    ] {
        let n = side.count(status);
        if n > 0 {
            let _ = write!(text, ", {n} {word}");
        }
    }
    let _ = write!(text, ", {} skipped", side.count(Status::Skipped));
    text
}

fn known_suffix(known: Option<&str>) -> String {
    known.map(|r| format!(" (known: {r})")).unwrap_or_default()
}

/// The verdict line's words.
fn verdict(c: &Comparison) -> String {
    let regressions = c.unknown_regressions().count();
    let slow = c.unknown_slowdowns().count();
    let known =
        c.regressions.len() - regressions + c.slowdowns.iter().filter(|s| s.over).count() - slow;
    let mut parts = vec![
        format!(
            "{regressions} {}",
            plural(regressions, "regression", "regressions")
        ),
        format!(
            "{slow} {} over {}",
            plural(slow, "slowdown", "slowdowns"),
            percent(c.threshold)
        ),
        format!("{known} known"),
        format!(
            "{} {}",
            c.fixes.len(),
            plural(c.fixes.len(), "fix", "fixes")
        ),
        format!("{} new", c.new.len()),
        format!("{} removed", c.removed.len()),
    ];
    if !c.changed.is_empty() {
        parts.push(format!("{} otherwise changed", c.changed.len()));
    }
    let word = if c.fails() { "FAIL" } else { "PASS" };
    format!("{word}: {}", parts.join(", "))
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// The listing: both sides, one line per difference, the verdict last.
pub fn listing(c: &Comparison) -> String {
    let mut text = String::new();
    for (word, side) in [("base", &c.base), ("candidate", &c.candidate)] {
        let _ = writeln!(
            text,
            "{word:<10} {}: {} ({}, run {} on {})",
            qemu_label(side),
            counts(side),
            side.path.display(),
            side.run_id,
            side.runtime
        );
    }
    for change in &c.regressions {
        let word = if change.known.is_some() {
            "KNOWN"
        } else {
            "REGRESSION"
        };
        let _ = writeln!(
            text,
            "{word:<10} {}: {} -> {}{}",
            change.id,
            change.base.as_str(),
            change.candidate.as_str(),
            known_suffix(change.known.as_deref())
        );
    }
    for (word, list) in [("FIXED", &c.fixes), ("CHANGED", &c.changed)] {
        for change in list {
            let _ = writeln!(
                text,
                "{word:<10} {}: {} -> {}",
                change.id,
                change.base.as_str(),
                change.candidate.as_str()
            );
        }
    }
    for (word, list) in [("NEW", &c.new), ("REMOVED", &c.removed)] {
        for p in list {
            let _ = writeln!(text, "{word:<10} {}: {}", p.id, p.status.as_str());
        }
    }
    for s in c.slowdowns.iter().filter(|s| s.over) {
        let word = if s.known.is_some() { "KNOWN" } else { "SLOWER" };
        let _ = writeln!(
            text,
            "{word:<10} {}: slowdown {:.2}x -> {:.2}x ({}, over {}){}",
            s.id,
            s.base,
            s.candidate,
            signed_percent(s.growth()),
            percent(c.threshold),
            known_suffix(s.known.as_deref())
        );
    }
    for entry in &c.unused_known {
        let _ = writeln!(text, "{:<10} {entry} covers no difference", "UNUSED");
    }
    let _ = writeln!(text, "{}", verdict(c));
    text
}

/// Escapes text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// An instance id as a Markdown code span.
fn code(id: &str) -> String {
    format!("`{}`", cell(id))
}

fn change_rows(text: &mut String, title: &str, list: &[Change], with_known: bool) {
    let _ = writeln!(text, "\n#### {title} ({})\n", list.len());
    if list.is_empty() {
        text.push_str("None.\n");
        return;
    }
    if with_known {
        text.push_str("| instance | base | candidate | known difference |\n|---|---|---|---|\n");
    } else {
        text.push_str("| instance | base | candidate |\n|---|---|---|\n");
    }
    for c in list {
        let _ = write!(
            text,
            "| {} | {} | {} |",
            code(&c.id),
            c.base.as_str(),
            c.candidate.as_str()
        );
        if with_known {
            let _ = write!(text, " {} |", cell(c.known.as_deref().unwrap_or("")));
        }
        text.push('\n');
    }
}

fn presence_rows(text: &mut String, new: &[Presence], removed: &[Presence]) {
    let _ = writeln!(
        text,
        "\n#### New and removed instances ({})\n",
        new.len() + removed.len()
    );
    if new.is_empty() && removed.is_empty() {
        text.push_str("None.\n");
        return;
    }
    text.push_str("| instance | | outcome |\n|---|---|---|\n");
    for (word, list) in [("new", new), ("removed", removed)] {
        for p in list {
            let _ = writeln!(text, "| {} | {word} | {} |", code(&p.id), p.status.as_str());
        }
    }
}

fn slowdown_rows(text: &mut String, list: &[Slowdown], threshold: f64) {
    let _ = writeln!(
        text,
        "\n#### Workload slowdowns ({}; emulated time over native time)\n",
        list.len()
    );
    if list.is_empty() {
        text.push_str("None.\n");
        return;
    }
    text.push_str("| workload | base | candidate | change | |\n|---|---|---|---|---|\n");
    for s in list {
        let flag = match (&s.known, s.over) {
            (Some(reason), true) => format!("over {}, known: {}", percent(threshold), cell(reason)),
            (None, true) => format!("**over {}**", percent(threshold)),
            (_, false) => String::new(),
        };
        let _ = writeln!(
            text,
            "| {} | {:.2}x | {:.2}x | {} | {flag} |",
            code(&s.id),
            s.base,
            s.candidate,
            signed_percent(s.growth())
        );
    }
}

/// The comparison as Markdown: a table of both sides (QEMU, counts), the
/// verdict, then one table per category.
pub fn markdown(c: &Comparison) -> String {
    let mut text = format!(
        "### {} compared with {}\n\n",
        qemu_label(&c.candidate),
        qemu_label(&c.base)
    );
    text.push_str("| | base | candidate |\n|---|---|---|\n");
    let side_rows = |s: &Side| {
        [
            qemu_label(s),
            format!("`{}`", s.path.display()),
            s.runtime.clone(),
            s.count(Status::Passed).to_string(),
            s.count(Status::Failed).to_string(),
            s.count(Status::Errored).to_string(),
            s.count(Status::TimedOut).to_string(),
            s.count(Status::Skipped).to_string(),
        ]
    };
    let names = [
        "QEMU",
        "report",
        "runtime",
        "passed",
        "failed",
        "errored",
        "timed out",
        "skipped",
    ];
    for ((name, base), candidate) in names
        .iter()
        .zip(side_rows(&c.base))
        .zip(side_rows(&c.candidate))
    {
        let _ = writeln!(text, "| {name} | {} | {} |", cell(&base), cell(&candidate));
    }
    let _ = writeln!(text, "\n**{}**", verdict(c));
    change_rows(&mut text, "Regressions", &c.regressions, true);
    change_rows(&mut text, "Fixes", &c.fixes, false);
    if !c.changed.is_empty() {
        change_rows(&mut text, "Other changes", &c.changed, false);
    }
    presence_rows(&mut text, &c.new, &c.removed);
    slowdown_rows(&mut text, &c.slowdowns, c.threshold);
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::compare::diff::compare;
    use crate::compare::input::{SideInstance, SideQemu};
    use crate::compare::known::Known;

    fn side(path: &str, version: &str, instances: &[(&str, Status, Option<f64>)]) -> Side {
        Side {
            path: path.into(),
            run_id: "run-1".into(),
            runtime: "docker".into(),
            qemu: Some(SideQemu {
                name: version.split('.').take(2).collect::<Vec<_>>().join("."),
                version: version.into(),
                debian_version: Some(format!("1:{version}+ds")),
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

    fn comparison() -> Comparison {
        let base = side(
            "base.json",
            "10.0.2-1",
            &[
                ("probe[arch=hppa]", Status::Passed, None),
                ("probe[arch=s390x]", Status::Failed, None),
                ("gcc[arch=aarch64]", Status::Passed, Some(4.0)),
                ("old", Status::Passed, None),
            ],
        );
        let candidate = side(
            "candidate.json",
            "11.1.3-1",
            &[
                ("probe[arch=hppa]", Status::Failed, None),
                ("probe[arch=s390x]", Status::Passed, None),
                ("gcc[arch=aarch64]", Status::Passed, Some(5.6)),
                ("fresh", Status::Passed, None),
            ],
        );
        compare(base, candidate, 0.25, &Known::default())
    }

    #[test]
    fn listing() {
        insta::assert_snapshot!(super::listing(&comparison()));
    }

    #[test]
    fn markdown() {
        insta::assert_snapshot!(super::markdown(&comparison()));
    }

    #[test]
    fn cells_cannot_break_a_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
