//! `qus-harness compare` as a user runs it, on the reports in
//! `tests/fixtures/compare/`: `base.json` (QEMU 10.0) and `candidate.json`
//! (QEMU 11.1) differ by one instance, `probe-matrix[arch=hppa]`, which
//! passed and then failed, and by a workload 20 % slower (its own time 1.6 s longer); `two-qemus.json`
//! holds both runs as one report; `known.yaml` lists the hppa difference.
//! Each test checks the exit status and what is printed.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/compare")
        .join(name)
}

/// `qus-harness compare` run from the fixture directory, so the listing
/// shows the short file names.
fn compare(args: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("qus-harness")
        .unwrap()
        .current_dir(fixture(""))
        .arg("compare")
        .args(args)
        .assert()
}

fn stdout(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

fn stderr(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stderr.clone()).unwrap()
}

const LISTING: &str = "\
base       QEMU 10.0.2-1 (10.0, Debian 1:10.0.2+ds-1~bpo12+1): 4 passed, 0 failed, 1 skipped (base.json, run run-base on docker)
candidate  QEMU 11.1.3-1 (11.1, Debian 1:11.1.3+ds-1): 3 passed, 1 failed, 1 skipped (candidate.json, run run-candidate on docker)
REGRESSION probe-matrix[arch=hppa]: passed -> failed
FAIL: 1 regression, 0 slowdowns over 25%, 0 known, 0 fixes, 0 new, 0 removed
";

#[test]
fn two_reports_that_differ_by_one_instance_exit_1_and_list_it() {
    let assert = compare(&["base.json", "candidate.json"]).code(1);
    assert_eq!(stdout(&assert), LISTING);
    assert_eq!(stderr(&assert), "");
}

#[test]
fn a_report_compared_with_itself_passes() {
    let assert = compare(&["base.json", "base.json"]).code(0);
    assert!(
        stdout(&assert).ends_with(
            "PASS: 0 regressions, 0 slowdowns over 25%, 0 known, 0 fixes, 0 new, 0 removed\n"
        ),
        "{}",
        stdout(&assert)
    );
}

#[test]
fn a_listed_known_difference_does_not_fail() {
    let assert = compare(&["base.json", "candidate.json", "--known", "known.yaml"]).code(0);
    let out = stdout(&assert);
    assert!(
        out.contains(
            "KNOWN      probe-matrix[arch=hppa]: passed -> failed (known: hppa probes fault \
             under QEMU 11.1 (fixture only))\n"
        ),
        "{out}"
    );
    assert!(
        out.ends_with(
            "PASS: 0 regressions, 0 slowdowns over 25%, 1 known, 0 fixes, 0 new, 0 removed\n"
        ),
        "{out}"
    );
    // Reversed, the difference is a fix, and the entry covers nothing.
    let assert = compare(&["candidate.json", "base.json", "--known", "known.yaml"]).code(0);
    let out = stdout(&assert);
    assert!(
        out.contains("FIXED      probe-matrix[arch=hppa]: failed -> passed\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "UNUSED     known.yaml:4:5: id `probe-matrix[arch=hppa]` covers no difference\n"
        ),
        "{out}"
    );
}

#[test]
fn two_qemus_of_one_report_compare_as_two_reports() {
    let assert = compare(&[
        "two-qemus.json",
        "two-qemus.json",
        "--base-qemu",
        "10.0",
        "--candidate-qemu",
        "11.1.3-1",
    ])
    .code(1);
    let expected = LISTING
        .replace("base.json, run run-base", "two-qemus.json, run run-both")
        .replace(
            "candidate.json, run run-candidate",
            "two-qemus.json, run run-both",
        );
    assert_eq!(stdout(&assert), expected);
}

#[test]
fn a_workload_slower_than_the_threshold_fails() {
    // 4.00x then 4.80x, 8.0 s then 9.6 s: 20 % slower, under the default
    // 25 %, over 1 %.
    let assert = compare(&[
        "base.json",
        "candidate.json",
        "--known",
        "known.yaml",
        "--slowdown",
        "1%",
    ])
    .code(1);
    let out = stdout(&assert);
    assert!(
        out.contains(
            "SLOWER     gcc-build[arch=aarch64]: slowdown 4.00x -> 4.80x (+20%, over 1%)\n"
        ),
        "{out}"
    );
    assert!(
        out.ends_with(
            "FAIL: 0 regressions, 1 slowdown over 1%, 1 known, 0 fixes, 0 new, 0 removed\n"
        ),
        "{out}"
    );
}

#[test]
fn markdown_goes_to_a_file_or_replaces_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compare.md");
    let assert = compare(&[
        "base.json",
        "candidate.json",
        "--markdown",
        file.to_str().unwrap(),
    ])
    .code(1);
    assert_eq!(stdout(&assert), LISTING);
    let markdown = std::fs::read_to_string(&file).unwrap();
    assert!(
        markdown.starts_with(
            "### QEMU 11.1.3-1 (11.1, Debian 1:11.1.3+ds-1) compared with QEMU 10.0.2-1 (10.0, \
             Debian 1:10.0.2+ds-1~bpo12+1)\n"
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains("| `probe-matrix[arch=hppa]` | passed | failed |  |\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| `gcc-build[arch=aarch64]` | 4.00x | 4.80x | +20% |  |\n"),
        "{markdown}"
    );
    let printed = compare(&["base.json", "candidate.json", "--markdown", "-"]).code(1);
    assert_eq!(stdout(&printed), markdown);
}

#[test]
fn usage_errors_exit_2_naming_what_is_wrong() {
    for (args, message) in [
        (
            &["missing.json", "candidate.json"][..],
            "error: failed to read the report `missing.json`\n  caused by: No such file or directory",
        ),
        (
            &["schema-v1.json", "candidate.json"][..],
            "error: `schema-v1.json` is a report of schema version 1; `compare` reads version 2",
        ),
        (
            &["two-qemus.json", "candidate.json"][..],
            "error: `two-qemus.json` holds several QEMUs (`10.0.2-1` (10.0), `11.1.3-1` (11.1)); \
             pick one with `--base-qemu`",
        ),
        (
            &["base.json", "candidate.json", "--candidate-qemu", "9.2"][..],
            "error: `candidate.json` holds no QEMU `9.2` (`--candidate-qemu`); it holds `11.1.3-1` (11.1)",
        ),
        (
            &["base.json", "candidate.json", "--known", "nowhere.yaml"][..],
            "error: failed to read the known differences `nowhere.yaml`",
        ),
        (
            &["base.json", "known.yaml"][..],
            "error: `known.yaml` is not a qus JSON report",
        ),
    ] {
        let assert = compare(args).code(2);
        let err = stderr(&assert);
        assert!(err.starts_with(message), "{args:?}: {err}");
        assert_eq!(stdout(&assert), "", "{args:?}");
    }
}

#[test]
fn a_known_differences_file_that_does_not_load_shows_every_mistake() {
    let assert = compare(&["base.json", "candidate.json", "--known", "known-bad.yaml"]).code(2);
    let err = stderr(&assert);
    assert!(
        err.starts_with("error: 2 error(s) in the known differences `known-bad.yaml`\n"),
        "{err}"
    );
    assert!(
        err.contains("known-bad.yaml:2:14: invalid pattern `probe-matrix[arch=`"),
        "{err}"
    );
    assert!(
        err.contains("known-bad.yaml:4:5: missing required key `reason` in this known difference"),
        "{err}"
    );
    // With the excerpt and caret of the scenario loader.
    assert!(
        err.contains("2 |   - pattern: \"probe-matrix[arch=\"\n"),
        "{err}"
    );
}
