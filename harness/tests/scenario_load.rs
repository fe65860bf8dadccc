//! The scenario fixture corpus, loaded data-driven: every file under
//! `tests/fixtures/scenarios/{passing,failing,malformed}` has a row in [`EXPECTED`] with its
//! load outcome, and every malformed file's message is an insta snapshot. Also: expansion
//! plans, the JSON schema against the fixtures, and "loading never panics".

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use qus_harness::scenario::{
    self, LoadError, RuntimeKind, VarOverrides, expand, json_schema, load_file, load_paths,
    load_str,
};

const FIXTURES: &str = "tests/fixtures/scenarios";

/// What loading a fixture must give.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Loads; the number of instances its matrix expands to.
    Ok(usize),
    /// Fails with this error class at this line and column.
    Err(&'static str, usize, usize),
}

use Outcome::{Err as E, Ok as O};

/// Every fixture file and its outcome. `malformed/duplicate-name/` is a directory case,
/// checked in [`duplicate_names_across_files_are_an_error`].
const EXPECTED: &[(&str, Outcome)] = &[
    ("passing/build-images.yaml", O(1)),
    ("passing/exec-echo.yaml", O(1)),
    ("passing/exec-exit-codes.yaml", O(1)),
    ("passing/exec-matrix.yaml", O(4)),
    ("passing/exec-true.yaml", O(1)),
    ("passing/host-registrar.yaml", O(1)),
    ("passing/persistent-registration.yaml", O(3)),
    ("passing/probes.yaml", O(2)),
    ("failing/exec-regex-mismatch.yaml", O(1)),
    ("failing/exec-wrong-exit.yaml", O(1)),
    ("failing/exec-wrong-stdout.yaml", O(1)),
    ("malformed/bad-duration.yaml", E("bad-duration", 6, 16)),
    ("malformed/bad-name.yaml", E("bad-name", 2, 7)),
    ("malformed/bad-regex.yaml", E("bad-regex", 9, 18)),
    ("malformed/bad-variable.yaml", E("bad-variable", 7, 29)),
    ("malformed/build-both.yaml", E("build-source", 4, 5)),
    ("malformed/build-neither.yaml", E("build-source", 4, 5)),
    ("malformed/duplicate-key.yaml", E("duplicate-key", 7, 7)),
    ("malformed/empty-steps.yaml", E("empty-steps", 3, 8)),
    ("malformed/invalid-enum.yaml", E("invalid-value", 3, 21)),
    ("malformed/invalid-matrix.yaml", E("invalid-matrix", 4, 9)),
    ("malformed/invalid-value.yaml", E("invalid-value", 6, 23)),
    ("malformed/missing-field.yaml", E("missing-field", 1, 1)),
    (
        "malformed/missing-step-field.yaml",
        E("missing-field", 5, 5),
    ),
    ("malformed/no-document.yaml", E("syntax", 1, 1)),
    ("malformed/probe-target.yaml", E("invalid-value", 4, 22)),
    (
        "malformed/step-common-key-outside.yaml",
        E("unknown-step-kind", 4, 5),
    ),
    ("malformed/step-shape.yaml", E("step-shape", 5, 5)),
    ("malformed/syntax-error.yaml", E("syntax", 4, 11)),
    (
        "malformed/unknown-api-version.yaml",
        E("unknown-api-version", 1, 13),
    ),
    ("malformed/unknown-key.yaml", E("unknown-key", 5, 7)),
    (
        "malformed/unknown-step-kind.yaml",
        E("unknown-step-kind", 4, 5),
    ),
    (
        "malformed/unknown-top-level-key.yaml",
        E("unknown-key", 3, 1),
    ),
    (
        "malformed/unknown-variable.yaml",
        E("unknown-variable", 7, 19),
    ),
    (
        "malformed/unterminated-variable.yaml",
        E("bad-variable", 4, 29),
    ),
    ("malformed/wrong-type-bool.yaml", E("wrong-type", 4, 9)),
    ("malformed/wrong-type.yaml", E("wrong-type", 3, 7)),
];

fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURES).join(rel)
}

/// Every `*.yaml` under the fixture tree, relative to it, sorted.
fn all_fixture_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(FIXTURES), &mut files);
    let mut rel: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(FIXTURES)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    rel.sort();
    rel
}

/// The error as `main` prints it: the message, then each cause.
fn render(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(&format!("\ncaused by: {cause}"));
        source = cause.source();
    }
    out
}

#[test]
fn every_fixture_has_an_expected_outcome() {
    let listed: Vec<&str> = EXPECTED.iter().map(|(p, _)| *p).collect();
    for file in all_fixture_files() {
        if file.starts_with("malformed/duplicate-name/") {
            continue;
        }
        assert!(
            listed.contains(&file.as_str()),
            "no row in EXPECTED for {file}"
        );
    }
}

#[test]
fn fixtures_load_as_expected() {
    let mut failures = Vec::new();
    for (rel, expected) in EXPECTED {
        let result = load_file(&fixture(rel));
        let ok = match (expected, &result) {
            (O(count), Ok(s)) => s.instance_count() == *count,
            (E(code, line, column), Err(e)) => {
                e.kind().code() == *code
                    && e.line() == Some(*line)
                    && e.column() == Some(*column)
                    && e.path() == fixture(rel)
            }
            _ => false,
        };
        if !ok {
            let got = match &result {
                Ok(s) => format!("ok with {} instances", s.instance_count()),
                Err(e) => format!(
                    "{} at {:?}:{:?}: {e}",
                    e.kind().code(),
                    e.line(),
                    e.column()
                ),
            };
            failures.push(format!("{rel}: expected {expected:?}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn malformed_messages() {
    for (rel, expected) in EXPECTED {
        let E(..) = expected else { continue };
        let err = load_file(&fixture(rel)).unwrap_err();
        let name = rel
            .trim_start_matches("malformed/")
            .trim_end_matches(".yaml");
        insta::assert_snapshot!(format!("malformed__{name}"), render(&err));
    }
}

#[test]
fn error_messages_start_with_file_line_col() {
    for (rel, expected) in EXPECTED {
        let E(_, line, column) = expected else {
            continue;
        };
        let err = load_file(&fixture(rel)).unwrap_err();
        let prefix = format!("{}:{line}:{column}: ", fixture(rel).display());
        assert!(err.to_string().starts_with(&prefix), "{err}");
        // Lowercase, no trailing period (STYLE.md A6).
        let message = err.summary()[prefix.len()..].to_owned();
        assert!(!message.ends_with('.'), "{message}");
        assert!(
            !message.starts_with(|c: char| c.is_uppercase()),
            "{message}"
        );
    }
}

#[test]
fn passing_and_failing_load_together_with_unique_names() {
    let scenarios = load_paths(&[fixture("passing"), fixture("failing")]).unwrap();
    let names: Vec<&str> = scenarios.iter().map(|s| s.name()).collect();
    assert_eq!(names.len(), 11);
    // Files come in path order: `failing/` before `passing/`.
    assert_eq!(names[0], "exec-regex-mismatch");
    assert_eq!(names[3], "build-images");
    assert_eq!(names[names.len() - 1], "probes");
    for s in &scenarios {
        // Every fixture is named after its file.
        assert_eq!(s.path().file_stem().unwrap().to_str().unwrap(), s.name());
        assert!(expand(s, &VarOverrides::new()).is_ok(), "{}", s.name());
    }
}

#[test]
fn duplicate_names_across_files_are_an_error() {
    let errors = load_paths(&[fixture("malformed/duplicate-name")]).unwrap_err();
    assert_eq!(errors.len(), 1);
    let err = &errors.errors()[0];
    assert_eq!(err.kind().code(), "duplicate-name");
    assert_eq!(err.path(), fixture("malformed/duplicate-name/b.yaml"));
    assert_eq!((err.line(), err.column()), (Some(3), Some(7)));
    insta::assert_snapshot!("malformed__duplicate-name", render(err));
}

#[test]
fn load_paths_collects_every_error() {
    let errors = load_paths(&[fixture("malformed"), fixture("passing")]).unwrap_err();
    let malformed_rows = EXPECTED
        .iter()
        .filter(|(p, _)| p.starts_with("malformed/"))
        .count();
    // One error per malformed file plus the duplicate name.
    assert_eq!(errors.len(), malformed_rows + 1, "{errors}");
    let paths: Vec<&Path> = errors.errors().iter().map(LoadError::path).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "errors are sorted by file");
    assert!(
        errors
            .to_string()
            .ends_with(&format!("{} errors in scenario files", errors.len()))
    );
}

#[test]
fn missing_paths_are_read_errors() {
    let errors = load_paths(&[fixture("does-not-exist.yaml")]).unwrap_err();
    assert_eq!(errors.errors()[0].kind().code(), "read");
    assert_eq!(errors.errors()[0].line(), None);
}

/// The instances of a fixture as YAML, with fixed built-ins and the checkout's directory
/// redacted.
fn plan(rel: &str) -> String {
    let scenario = load_file(&fixture(rel)).unwrap();
    let vars = VarOverrides::new()
        .with_run_id("run-1")
        .with_host_arch("x86_64")
        .with_registrar_bin("/usr/local/bin/qus-register");
    let instances = expand(&scenario, &vars).unwrap();
    serde_saphyr::to_string(&instances)
        .unwrap()
        .replace(&scenario.dir().display().to_string(), "[SCENARIO_DIR]")
}

#[test]
fn expanded_plans() {
    insta::assert_snapshot!("plan__exec-matrix", plan("passing/exec-matrix.yaml"));
    insta::assert_snapshot!(
        "plan__persistent-registration",
        plan("passing/persistent-registration.yaml")
    );
    insta::assert_snapshot!("plan__build-images", plan("passing/build-images.yaml"));
    insta::assert_snapshot!("plan__host-registrar", plan("passing/host-registrar.yaml"));
}

#[test]
fn matrix_order_is_first_key_slowest() {
    let scenario = load_file(&fixture("passing/exec-matrix.yaml")).unwrap();
    let ids: Vec<String> = expand(&scenario, &VarOverrides::new())
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(
        ids,
        [
            "exec-matrix[arch=aarch64,bits=32]",
            "exec-matrix[arch=aarch64,bits=64]",
            "exec-matrix[arch=arm,bits=32]",
            "exec-matrix[arch=arm,bits=64]",
        ]
    );
}

#[test]
fn runtimes_default_to_all() {
    let s = load_str(
        "x.yaml",
        "apiVersion: qus/v1\nname: x\nsteps:\n  - exec: { command: [\"true\"] }\n",
    )
    .unwrap();
    assert_eq!(s.runtimes(), RuntimeKind::ALL);
    let s = load_file(&fixture("passing/persistent-registration.yaml")).unwrap();
    assert!(s.applies_to(RuntimeKind::Docker));
    assert!(!s.applies_to(RuntimeKind::Host));
    assert!(s.requires().is_disruptive());
}

/// A small structural check of a YAML document against the generated schema: top-level
/// keys, step kinds and step keys must all be declared. (No JSON-schema validator is a
/// dependency; this catches the loader and the schema drifting apart.)
fn check_against_schema(schema: &serde_json::Value, doc: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let defs = &schema["$defs"];
    let props = schema["properties"].as_object().unwrap();
    let doc = doc.as_object().unwrap();
    for key in doc.keys() {
        if !props.contains_key(key) {
            problems.push(format!("top-level key `{key}` not in schema"));
        }
    }
    for required in schema["required"].as_array().unwrap() {
        if !doc.contains_key(required.as_str().unwrap()) {
            problems.push(format!("required key {required} missing"));
        }
    }
    let step_variants = defs["Step"]["oneOf"].as_array().unwrap();
    for list in ["setup", "steps", "teardown"] {
        let Some(steps) = doc.get(list).and_then(|v| v.as_array()) else {
            continue;
        };
        for step in steps {
            let step = step.as_object().unwrap();
            assert_eq!(step.len(), 1);
            let (kind, body) = step.iter().next().unwrap();
            let Some(variant) = step_variants
                .iter()
                .find(|v| v["properties"].get(kind).is_some())
            else {
                problems.push(format!("step kind `{kind}` not in schema"));
                continue;
            };
            let reference = variant["properties"][kind]["$ref"].as_str().unwrap();
            let def = &defs[reference.trim_start_matches("#/$defs/")];
            assert_eq!(def["additionalProperties"], false);
            for key in body.as_object().unwrap().keys() {
                if def["properties"].get(key).is_none() {
                    problems.push(format!("`{kind}` key `{key}` not in schema"));
                }
            }
        }
    }
    problems
}

#[test]
fn schema_accepts_the_loadable_fixtures_and_rejects_unknown_keys() {
    let schema = json_schema();
    for (rel, expected) in EXPECTED {
        let O(_) = expected else { continue };
        let text = std::fs::read_to_string(fixture(rel)).unwrap();
        if rel.starts_with("passing/") {
            assert!(
                text.starts_with("# yaml-language-server: $schema="),
                "{rel} should point editors at the schema"
            );
        }
        let doc: serde_json::Value = serde_saphyr_from_str(&text);
        let problems = check_against_schema(&schema, &doc);
        assert!(problems.is_empty(), "{rel}: {problems:?}");
    }
    let text = std::fs::read_to_string(fixture("malformed/unknown-key.yaml")).unwrap();
    let problems = check_against_schema(&schema, &serde_saphyr_from_str(&text));
    assert_eq!(problems, ["`exec` key `comand` not in schema"]);
}

fn serde_saphyr_from_str(text: &str) -> serde_json::Value {
    // The test reads YAML as untyped JSON values the same way the schema sees them.
    serde_saphyr::from_str(text).unwrap()
}

#[test]
fn schema_defines_the_step_kinds() {
    let schema = json_schema();
    let kinds: Vec<String> = schema["$defs"]["Step"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| v["required"].as_array().unwrap().clone())
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "register", "reset", "binfmt", "run", "build", "exec", "probe"
        ]
    );
    assert_eq!(schema["$id"], scenario::SCHEMA_ID);
}

/// Every fixture, truncated at every character and with characters swapped for YAML
/// punctuation, must load or fail with an error: never panic.
#[test]
fn truncated_and_mutated_fixtures_never_panic() {
    const SWAPS: &[&str] = &[
        ":", "-", "{", "}", "[", "]", "\"", "'", " ", "\n", "\t", "$", "${", "&a", "*a", "!", "#",
        "|", ">", "~", "\u{0}", "é",
    ];
    for rel in all_fixture_files() {
        let text = std::fs::read_to_string(fixture(&rel)).unwrap();
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for &i in &boundaries {
            let _ = load_str(&rel, &text[..i]);
        }
        for (n, &i) in boundaries.iter().enumerate() {
            let swap = SWAPS[n % SWAPS.len()];
            let end = text[i..].chars().next().map_or(i, |c| i + c.len_utf8());
            let mutated = format!("{}{}{}", &text[..i], swap, &text[end..]);
            if let Ok(s) = load_str(&rel, &mutated) {
                let _ = expand(&s, &VarOverrides::new());
            }
        }
    }
}

#[test]
fn hostile_documents_are_errors() {
    let deep = format!(
        "apiVersion: qus/v1\nname: x\nsteps: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    assert!(load_str("deep.yaml", &deep).is_err());
    let mut bomb =
        String::from("apiVersion: qus/v1\nname: x\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    bomb.push_str("steps: [*a11]\n");
    assert!(load_str("bomb.yaml", &bomb).is_err());
    let big = format!(
        "apiVersion: qus/v1\nname: x\ndescription: {}\n",
        "x".repeat(2 << 20)
    );
    assert_eq!(
        load_str("big.yaml", &big).unwrap_err().kind().code(),
        "syntax"
    );
    let crlf = "apiVersion: qus/v1\r\nname: Bad\r\nsteps:\r\n  - exec: { command: [\"true\"] }\r\n";
    let err = load_str("crlf.yaml", crlf).unwrap_err();
    assert_eq!(
        err.to_string(),
        "crlf.yaml:2:7: invalid scenario name `Bad`: `B` is not allowed; use lowercase letters, digits and `-`\n  |\n2 | name: Bad\n  |       ^^^"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = load_str("fuzz.yaml", &text);
    }

    #[test]
    fn yaml_like_text_never_panics(
        text in "(apiVersion: qus/v1\n|name: [a-z-]{1,8}\n|steps:\n|  - [a-z]{2,7}: \\{ [a-z]{1,8}: [\\[\\]a-z${}\\\\\"' ,]{0,20} \\}\n|matrix:\n|  [a-z]{1,4}: \\[[a-z0-9, {}:]{0,12}\\]\n|vars: \\{[A-Z_]{1,4}: [a-z~]{0,4}\\}\n|[ \t#:&*!|>-]{1,3}\n){0,12}"
    ) {
        if let Ok(s) = load_str("fuzz.yaml", &text) {
            let _ = expand(&s, &VarOverrides::new().with_var("A", "("));
        }
    }
}
