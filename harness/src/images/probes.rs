//! The probe table `fixtures/probes/probes.tsv`, read for the probe images.
//!
//! The main items are [`ProbeRow`] and [`read_probe_table`]. The table is
//! validated as a whole before any image is built: a malformed row fails
//! with its line number.

use std::path::{Path, PathBuf};

use super::error::ImageBuildError;

/// The header the table must start with.
const HEADER: [&str; 4] = ["target", "binary", "uname", "package"];

/// One probe program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRow {
    /// The QEMU target (`aarch64`).
    pub target: String,
    /// The binary, resolved against the table's directory.
    pub binary: PathBuf,
    /// What it prints under QEMU (`aarch64`, `armv7l`).
    pub uname: String,
}

/// Reads `<dir>/probes.tsv`; rows keep the table's order.
///
/// # Errors
///
/// An unreadable file, a wrong header, a row without four fields, an empty
/// or duplicate target, or a binary path leaving `dir`.
pub fn read_probe_table(dir: &Path) -> Result<Vec<ProbeRow>, ImageBuildError> {
    let path = dir.join("probes.tsv");
    let text = std::fs::read_to_string(&path).map_err(ImageBuildError::io("read", &path))?;
    parse(&text, dir).map_err(|(line, reason)| ImageBuildError::ProbeTable {
        path: path.clone(),
        line,
        reason,
    })
}

fn parse(text: &str, dir: &Path) -> Result<Vec<ProbeRow>, (usize, String)> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let header: Vec<&str> = lines
        .next()
        .map(|(_, l)| l.split('\t').collect())
        .unwrap_or_default();
    if header != HEADER {
        return Err((1, format!("expected the header `{}`", HEADER.join("\\t"))));
    }
    let mut rows: Vec<ProbeRow> = Vec::new();
    for (number, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [target, binary, uname, _package] = fields[..] else {
            return Err((
                number,
                format!("expected 4 tab-separated fields, found {}", fields.len()),
            ));
        };
        let valid_name =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name(target) || !valid_name(uname) {
            return Err((
                number,
                "target and uname are letters, digits and `_`".to_owned(),
            ));
        }
        if binary.starts_with('/') || binary.split('/').any(|part| part == "..") {
            return Err((
                number,
                format!("the binary `{binary}` must stay inside the table's directory"),
            ));
        }
        if rows.iter().any(|r| r.target == target) {
            return Err((number, format!("the target `{target}` is listed twice")));
        }
        rows.push(ProbeRow {
            target: target.to_owned(),
            binary: dir.join(binary),
            uname: uname.to_owned(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::paths::workspace_root;

    #[test]
    fn the_committed_table_parses() {
        let dir = workspace_root().join("fixtures/probes");
        let rows = read_probe_table(&dir).unwrap();
        assert_eq!(rows.len(), 31);
        let arm = rows.iter().find(|r| r.target == "arm").unwrap();
        assert_eq!(arm.uname, "armv7l");
        assert!(rows.iter().all(|r| r.binary.is_file()));
    }

    #[test]
    fn malformed_rows_are_located() {
        let head = "target\tbinary\tuname\tpackage\n";
        let dir = Path::new("/p");
        assert_eq!(parse("t\tb\n", dir).unwrap_err().0, 1);
        let short = format!("{head}aarch64\tbin/aarch64\taarch64\n");
        assert_eq!(parse(&short, dir).unwrap_err().0, 2);
        let twice = format!("{head}a\tbin/a\ta\tp\n\na\tbin/a\ta\tp\n");
        assert_eq!(parse(&twice, dir).unwrap_err().0, 4);
        let escape = format!("{head}a\t../../etc/passwd\ta\tp\n");
        assert!(parse(&escape, dir).unwrap_err().1.contains("inside"));
        let ok = format!("{head}a\tbin/a\tx_1\tp\n");
        assert_eq!(
            parse(&ok, dir).unwrap(),
            [ProbeRow {
                target: "a".into(),
                binary: "/p/bin/a".into(),
                uname: "x_1".into()
            }]
        );
    }
}
