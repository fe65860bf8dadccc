//! Rendering checks: text for terminals, JSON for tools, and the exit code.

use std::io::{self, Write};

use serde_json::{Value, json};

use super::checks::{Check, Status};

/// Version of the JSON document's shape.
pub const SCHEMA_VERSION: u32 = 1;

/// Width of the status column (`warn` plus two spaces).
const STATUS_WIDTH: usize = 6;

/// Width of the id column (the longest id, `capabilities`, plus two spaces).
const ID_WIDTH: usize = 14;

/// One check per line (`ok    kernel        6.1.0-18-amd64: ...`), each
/// warning or failure followed by an indented `fix:` line when there is a
/// fix.
///
/// # Errors
///
/// When `w` fails.
pub fn render_text(checks: &[Check], w: &mut impl Write) -> io::Result<()> {
    for check in checks {
        writeln!(
            w,
            "{:<STATUS_WIDTH$}{:<ID_WIDTH$}{}",
            check.status.as_str(),
            check.id,
            check.summary
        )?;
        if let (Status::Warn | Status::Fail, Some(fix)) = (check.status, &check.fix) {
            writeln!(w, "{:STATUS_WIDTH$}fix: {fix}", "")?;
        }
    }
    let (ok, warn, fail) = counts(checks);
    writeln!(
        w,
        "{ok} ok, {}, {}",
        plural(warn, "warning"),
        plural(fail, "failure")
    )
}

/// `{"schema_version": 1, "checks": [...], "summary": {"ok", "warn", "fail"}}`.
pub fn render_json(checks: &[Check]) -> Value {
    let (ok, warn, fail) = counts(checks);
    json!({
        "schema_version": SCHEMA_VERSION,
        "checks": checks,
        "summary": { "ok": ok, "warn": warn, "fail": fail },
    })
}

/// 1 when a check fails, or with `strict` when one warns; 0 otherwise.
pub fn exit_code(checks: &[Check], strict: bool) -> u8 {
    let bad = |c: &&Check| c.status == Status::Fail || (strict && c.status == Status::Warn);
    u8::from(checks.iter().any(|c| bad(&c)))
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn counts(checks: &[Check]) -> (usize, usize, usize) {
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    (count(Status::Ok), count(Status::Warn), count(Status::Fail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks;
    use crate::doctor::inputs::fixture;

    fn text(case: &str) -> String {
        let mut out = Vec::new();
        render_text(&checks(&fixture(case)), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_of_a_ci_host() {
        insta::assert_snapshot!(text("ci-host"));
    }

    #[test]
    fn text_of_a_broken_host() {
        insta::assert_snapshot!(text("broken-host"));
    }

    #[test]
    fn ok_lines_have_no_fix_and_columns_line_up() {
        let out = text("systemd-host");
        let first = out.lines().next().unwrap();
        assert_eq!(
            first,
            "ok    kernel        6.8.0-45-generic: F supported (>= 4.8); binfmt_misc is namespaced per user namespace (>= 6.7)"
        );
        for line in out.lines().filter(|l| l.starts_with("      ")) {
            assert!(line.starts_with("      fix: "), "{line}");
        }
    }

    #[test]
    fn json_has_schema_checks_and_summary() {
        let all = checks(&fixture("broken-host"));
        let json = render_json(&all);
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["checks"].as_array().unwrap().len(), all.len());
        let kernel = &json["checks"][0];
        assert_eq!(kernel["id"], "kernel");
        assert_eq!(kernel["status"], "fail");
        assert!(kernel["fix"].is_string());
        assert!(json["checks"][1]["fix"].is_null());
        let summary = &json["summary"];
        let total: u64 = ["ok", "warn", "fail"]
            .iter()
            .map(|k| summary[k].as_u64().unwrap())
            .sum();
        assert_eq!(total, all.len() as u64);
        assert_eq!(summary["fail"], 1);
    }

    #[test]
    fn exit_code_is_one_on_failure_or_strict_warning() {
        // The CI host has a warning but no failure.
        let ci = checks(&fixture("ci-host"));
        assert!(ci.iter().any(|c| c.status == Status::Warn));
        assert_eq!(exit_code(&ci, false), 0);
        assert_eq!(exit_code(&ci, true), 1);
        let all_ok: Vec<Check> = ci.into_iter().filter(|c| c.status == Status::Ok).collect();
        assert_eq!(exit_code(&all_ok, true), 0);
        assert_eq!(exit_code(&checks(&fixture("broken-host")), false), 1);
        assert_eq!(exit_code(&[], true), 0);
    }
}
