//! Reading scenario files: one string, one file, or whole directory trees.
//!
//! The entry points are [`load_str`], [`load_file`] and [`load_paths`]. Parsing uses
//! serde-saphyr with duplicate keys rejected and YAML 1.2 booleans only (`yes` is a string,
//! not `true`), then `validate.rs` checks the values. [`load_paths`] loads every file,
//! collects every error, and adds the cross-file check that names are unique. Loading never
//! panics, whatever the input, and never starts a container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{LoadError, LoadErrorKind, LoadErrors, from_yaml};
use super::model::Scenario;
use super::raw::RawScenario;
use super::span::{Mark, Position, Sp};
use super::validate::validate;

/// Largest scenario file accepted, in bytes.
pub const MAX_FILE_SIZE: usize = 1 << 20;

/// Loads a scenario from text; `source_name` is the path used in messages and to resolve
/// relative paths (its directory becomes `SCENARIO_DIR`).
///
/// Returns the first error by position; [`load_paths`] reports all of them.
pub fn load_str(source_name: &str, text: &str) -> Result<Scenario, LoadError> {
    load_source(Path::new(source_name), text).map_err(|errors| first(errors, source_name))
}

/// Loads one scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, LoadError> {
    let text = read(path).map_err(|e| *e)?;
    load_source(path, &text).map_err(|errors| first(errors, &path.display().to_string()))
}

/// Loads files and directories; directories are walked recursively for `*.yaml` and
/// `*.yml`, in sorted order. Every file is loaded and every error collected, then scenario
/// names are checked to be unique across all files.
///
/// The scenarios come back in path order.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Scenario>, LoadErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            if let Err(e) = walk(path, &mut files) {
                errors.push(LoadError::file(path, LoadErrorKind::Read(e)));
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();

    let mut scenarios = Vec::new();
    for file in &files {
        let text = match read(file) {
            Ok(text) => text,
            Err(e) => {
                errors.push(*e);
                continue;
            }
        };
        match load_source(file, &text) {
            Ok(scenario) => scenarios.push(scenario),
            Err(errs) => errors.extend(errs),
        }
    }

    let mut first_by_name: BTreeMap<&str, &Scenario> = BTreeMap::new();
    for scenario in &scenarios {
        match first_by_name.get(scenario.name()) {
            Some(first) => {
                let mark = Mark {
                    position: scenario.name_position(),
                    byte_offset: None,
                    byte_len: 0,
                };
                let first_at = match first.name_position() {
                    Some(p) => format!("{}:{}:{}", first.path().display(), p.line, p.column),
                    None => first.path().display().to_string(),
                };
                errors.push(LoadError::at(
                    scenario.path(),
                    &scenario.source,
                    &mark,
                    LoadErrorKind::DuplicateName {
                        name: scenario.name().to_owned(),
                        first: first_at,
                    },
                ));
            }
            None => {
                first_by_name.insert(scenario.name(), scenario);
            }
        }
    }

    if errors.is_empty() {
        Ok(scenarios)
    } else {
        errors.sort_by_key(LoadError::sort_key);
        Err(LoadErrors(errors))
    }
}

/// Collects `*.yaml` and `*.yml` files under `dir`; symbolic links to directories are not
/// followed, so a link cycle cannot loop.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::path);
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
            && path.is_file()
        {
            out.push(path);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, Box<LoadError>> {
    let bytes =
        std::fs::read(path).map_err(|e| Box::new(LoadError::file(path, LoadErrorKind::Read(e))))?;
    if bytes.len() > MAX_FILE_SIZE {
        return Err(Box::new(LoadError::file(
            path,
            LoadErrorKind::Syntax {
                message: format!("the file is larger than {MAX_FILE_SIZE} bytes"),
            },
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        Box::new(LoadError::file(
            path,
            LoadErrorKind::Syntax {
                message: format!(
                    "the file is not valid utf-8 (byte {})",
                    e.utf8_error().valid_up_to()
                ),
            },
        ))
    })
}

fn first(mut errors: Vec<LoadError>, source_name: &str) -> LoadError {
    if errors.is_empty() {
        // Not reached: callers pass at least one error.
        return LoadError::file(
            Path::new(source_name),
            LoadErrorKind::Syntax {
                message: "unknown error".to_owned(),
            },
        );
    }
    errors.swap_remove(0)
}

/// Parses and validates one file's text; every error of the file, sorted by position.
fn load_source(path: &Path, text: &str) -> Result<Scenario, Vec<LoadError>> {
    if text.len() > MAX_FILE_SIZE {
        return Err(vec![LoadError::file(
            path,
            LoadErrorKind::Syntax {
                message: format!("the file is larger than {MAX_FILE_SIZE} bytes"),
            },
        )]);
    }
    // An empty stream would read as an empty mapping and be reported as a missing
    // `apiVersion`; say what is really wrong.
    let is_blank = |line: &str| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    };
    if text.lines().all(is_blank) {
        let start = Mark {
            position: Some(Position { line: 1, column: 1 }),
            byte_offset: Some(0),
            byte_len: 0,
        };
        return Err(vec![LoadError::at(
            path,
            text,
            &start,
            LoadErrorKind::Syntax {
                message:
                    "the file holds no yaml document; a scenario starts with `apiVersion: qus/v1`"
                        .to_owned(),
            },
        )]);
    }
    let options = serde_saphyr::options! {
        strict_booleans: true,
        // Errors are rendered by `error.rs`, with the scenario's own excerpt.
        with_snippet: false,
        // Keep alias expansion small: scenarios have no use for large anchor graphs.
        budget: serde_saphyr::budget! {
            max_nodes: 200_000,
            max_depth: 64,
        },
    };
    let raw: Sp<RawScenario> = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| vec![from_yaml(path, text, &e)])?;
    let dir = scenario_dir(path);
    let source: Arc<str> = Arc::from(text);
    validate(path, &dir, &source, raw.value, &raw.mark)
}

/// Parses another qus YAML file (`compare --known`) with the scenario loader's options
/// and its errors: `file:line:col`, the source line and a caret.
pub(crate) fn load_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<Sp<T>, LoadError> {
    if text.len() > MAX_FILE_SIZE {
        return Err(LoadError::file(
            path,
            LoadErrorKind::Syntax {
                message: format!("the file is larger than {MAX_FILE_SIZE} bytes"),
            },
        ));
    }
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
        budget: serde_saphyr::budget! {
            max_nodes: 200_000,
            max_depth: 64,
        },
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| from_yaml(path, text, &e))
}

/// The absolute directory of a scenario path (the current directory for a bare name).
fn scenario_dir(path: &Path) -> PathBuf {
    let parent = path.parent().unwrap_or(Path::new(""));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_owned())
}

/// All errors of one in-memory file named `/s/t.yaml` with the usual header, for tests.
#[cfg(test)]
pub(crate) fn load_source_for_tests(body: &str) -> Vec<LoadError> {
    let text = format!("apiVersion: qus/v1\nname: t\n{body}");
    load_source(Path::new("/s/t.yaml"), &text)
        .err()
        .unwrap_or_default()
}
