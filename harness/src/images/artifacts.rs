//! The release artifacts: what the original project attached to its GitHub
//! releases, plus a checksum file.
//!
//! For every emulator `<to>` of the images of host `<from>`:
//! `<from>_qemu-<to>-static.tar.gz`, and on an x86_64 host also the
//! original's unprefixed names `qemu-<to>-static` and the identical
//! `qemu-<to>-static.tar.gz` (its `run.sh` wrote all three; an unprefixed
//! name can only mean one host, and the original's users have it meaning
//! x86_64). One `SHA256SUMS` in `sha256sum` format covers every artifact in
//! the directory, of every host written there, so `sha256sum -c SHA256SUMS`
//! verifies the directory and the builds of several hosts share one. Tarballs
//! are deterministic (fixed owner, the emulator's own mtime, no gzip
//! timestamp), so the same package always gives the same checksums.
//!
//! Writing is idempotent: a `.qus-recipe-<from>` stamp records one host's
//! inputs, and a host whose stamp matches and whose files verify is left
//! alone. A build touches only its own host's files (and the shared
//! `SHA256SUMS`). Files are written under a temporary name and renamed, so an
//! interrupted run never leaves a truncated artifact under its final name.
//! Builds of two hosts must not write one directory at the same time.
//! Blocking code: callers run it on a blocking thread.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};

use super::error::ImageBuildError;
use super::recipe::sha256_file;

/// The checksum file.
pub(crate) const SUMS_FILE: &str = "SHA256SUMS";

/// The stamp holding the recipe of one host's artifacts:
/// `.qus-recipe-<from>`.
const STAMP_PREFIX: &str = ".qus-recipe-";

/// The stamp earlier versions wrote for the whole directory.
const LEGACY_STAMP: &str = ".qus-recipe";

/// The host whose artifacts keep the original's unprefixed names.
const UNPREFIXED_HOST: &str = "x86_64";

/// Suffix of files being written.
const PARTIAL_SUFFIX: &str = ".qus-partial";

/// One emulator to publish.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactInput {
    /// `aarch64`.
    pub(crate) name: String,
    /// The unpacked binary.
    pub(crate) path: PathBuf,
}

/// What [`write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    /// Every artifact, `SHA256SUMS` last.
    pub(crate) files: Vec<PathBuf>,
    /// `false` when the directory already held them.
    pub(crate) changed: bool,
}

/// The artifact file names of emulator `name` on host `from`: the binary,
/// then its tarballs (the unprefixed ones on an x86_64 host only).
fn names(from: &str, name: &str) -> Vec<String> {
    let prefixed = format!("{from}_qemu-{name}-static.tar.gz");
    if from == UNPREFIXED_HOST {
        vec![
            format!("qemu-{name}-static"),
            format!("qemu-{name}-static.tar.gz"),
            prefixed,
        ]
    } else {
        vec![prefixed]
    }
}

fn stamp(from: &str) -> String {
    format!("{STAMP_PREFIX}{from}")
}

/// Writes the artifacts of `inputs` into `dir` (created if needed) using
/// up to `jobs` threads, unless a previous run with the same `recipe` left
/// them intact.
pub(crate) fn write(
    dir: &Path,
    from: &str,
    inputs: &[ArtifactInput],
    recipe: &str,
    jobs: usize,
) -> Result<Written, ImageBuildError> {
    std::fs::create_dir_all(dir).map_err(ImageBuildError::io("create directory", dir))?;
    let mut names_sorted: Vec<String> = inputs
        .iter()
        .flat_map(|input| names(from, &input.name))
        .collect();
    names_sorted.sort();
    let mut files: Vec<PathBuf> = names_sorted.iter().map(|n| dir.join(n)).collect();
    files.push(dir.join(SUMS_FILE));

    if is_current(dir, from, recipe, &names_sorted) {
        return Ok(Written {
            files,
            changed: false,
        });
    }
    // The stamp goes first: a run interrupted from here on is not current.
    remove_if_present(&dir.join(stamp(from)))?;
    remove_if_present(&dir.join(LEGACY_STAMP))?;
    remove_stale(dir, from, &names_sorted)?;

    let chunk = inputs.len().div_ceil(jobs.max(1)).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .try_for_each(|input| write_one(dir, from, input))
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("artifact writers do not panic"))
    })?;

    // Every host's artifacts in the directory, this one's just written.
    let mut sums = String::new();
    for name in artifacts_in(dir)? {
        let path = dir.join(&name);
        let sha = sha256_file(&path).map_err(ImageBuildError::io("hash", &path))?;
        sums.push_str(&format!("{sha}  {name}\n"));
    }
    write_atomically(&dir.join(SUMS_FILE), sums.as_bytes(), 0o644)?;
    write_atomically(
        &dir.join(stamp(from)),
        format!("{recipe}\n").as_bytes(),
        0o644,
    )?;
    Ok(Written {
        files,
        changed: true,
    })
}

/// Writes the artifacts of one emulator: the binary on an x86_64 host,
/// and its tarballs (one archive under every tarball name).
fn write_one(dir: &Path, from: &str, input: &ArtifactInput) -> Result<(), ImageBuildError> {
    let binary = format!("qemu-{}-static", input.name);
    let data = std::fs::read(&input.path).map_err(ImageBuildError::io("read", &input.path))?;
    let mtime = std::fs::metadata(&input.path)
        .map_err(ImageBuildError::io("read metadata of", &input.path))?
        .mtime();
    let gz = tar_gz(&binary, &data, u64::try_from(mtime).unwrap_or(0))
        .map_err(ImageBuildError::io("compress", dir.join(&binary)))?;
    for name in names(from, &input.name) {
        if name == binary {
            write_atomically(&dir.join(&name), &data, 0o755)?;
        } else {
            write_atomically(&dir.join(&name), &gz, 0o644)?;
        }
    }
    Ok(())
}

/// A gzipped tar archive holding one executable file `name`.
fn tar_gz(name: &str, data: &[u8], mtime: u64) -> std::io::Result<Vec<u8>> {
    let gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    let mut archive = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_username("root")?;
    header.set_groupname("root")?;
    archive.append_data(&mut header, name, data)?;
    archive.into_inner()?.finish()
}

/// Whether `dir` holds what `recipe` describes for host `from`, intact,
/// with a `SHA256SUMS` that lists exactly the artifacts present.
fn is_current(dir: &Path, from: &str, recipe: &str, names: &[String]) -> bool {
    let stamp = std::fs::read_to_string(dir.join(stamp(from))).unwrap_or_default();
    if stamp.trim() != recipe {
        return false;
    }
    let Ok(sums) = std::fs::read_to_string(dir.join(SUMS_FILE)) else {
        return false;
    };
    let listed: Vec<(&str, &str)> = sums
        .lines()
        .filter_map(|line| line.split_once("  "))
        .collect();
    let listed_names: Vec<&str> = listed.iter().map(|(_, name)| *name).collect();
    let Ok(present) = artifacts_in(dir) else {
        return false;
    };
    if listed_names != present || names.iter().any(|n| !present.contains(n)) {
        return false;
    }
    listed
        .iter()
        .filter(|(_, name)| names.iter().any(|n| n == name))
        .all(|(sha, name)| sha256_file(&dir.join(name)).is_ok_and(|actual| actual == *sha))
}

/// Removes host `from`'s artifacts of emulators no longer published, and
/// partial files of an interrupted run. Only file names this module writes
/// for that host are touched: other hosts' artifacts stay.
fn remove_stale(dir: &Path, from: &str, keep: &[String]) -> Result<(), ImageBuildError> {
    let keep: BTreeSet<&str> = keep.iter().map(String::as_str).collect();
    let entries = std::fs::read_dir(dir).map_err(ImageBuildError::io("read directory", dir))?;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = name.ends_with(PARTIAL_SUFFIX)
            || (artifact_host(name).is_some_and(|host| host == from) && !keep.contains(name));
        if stale {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

/// Every finished artifact in `dir`, of any host, sorted by name.
fn artifacts_in(dir: &Path) -> Result<Vec<String>, ImageBuildError> {
    let entries = std::fs::read_dir(dir).map_err(ImageBuildError::io("read directory", dir))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| artifact_host(name).is_some())
        .collect();
    names.sort();
    Ok(names)
}

/// The host an artifact name belongs to: `<from>` of
/// `<from>_qemu-<to>-static.tar.gz`, x86_64 for the unprefixed names;
/// `None` for any other file.
fn artifact_host(name: &str) -> Option<&str> {
    if name.ends_with(PARTIAL_SUFFIX) || !is_artifact_name(name) {
        return None;
    }
    match name.find("_qemu-") {
        Some(at) if at > 0 && name.ends_with(".tar.gz") => Some(&name[..at]),
        _ => Some(UNPREFIXED_HOST),
    }
}

/// `qemu-*-static`, `[<from>_]qemu-*-static.tar.gz`, or a partial file.
fn is_artifact_name(name: &str) -> bool {
    if name.ends_with(PARTIAL_SUFFIX) {
        return true;
    }
    let base = name.strip_suffix(".tar.gz").unwrap_or(name);
    // `<from>_qemu-…`: the host prefix (`x86_64`) may itself hold `_`.
    let base = match base.find("_qemu-") {
        Some(at) if at > 0 && name.ends_with(".tar.gz") => &base[at + 1..],
        _ => base,
    };
    base.starts_with("qemu-") && base.ends_with("-static") && !base.contains('/')
}

/// Writes `data` with permissions `mode` under a partial name, then
/// renames it to `path`.
fn write_atomically(path: &Path, data: &[u8], mode: u32) -> Result<(), ImageBuildError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut partial = path.as_os_str().to_owned();
    partial.push(PARTIAL_SUFFIX);
    let partial = PathBuf::from(partial);
    let result = (|| {
        let mut file = BufWriter::new(File::create(&partial)?);
        file.write_all(data)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&partial, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map_err(ImageBuildError::io("write", path))
}

fn remove_if_present(path: &Path) -> Result<(), ImageBuildError> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(ImageBuildError::io("remove", path)(err))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn inputs(dir: &Path) -> Vec<ArtifactInput> {
        ["aarch64", "s390x"]
            .iter()
            .map(|name| {
                let path = dir.join(format!("qemu-{name}-static"));
                std::fs::write(&path, format!("binary of {name}")).unwrap();
                ArtifactInput {
                    name: (*name).to_owned(),
                    path,
                }
            })
            .collect()
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn artifacts_are_written_once_and_verify() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let inputs = inputs(src.path());
        let first = write(out.path(), "x86_64", &inputs, "r1", 2).unwrap();
        assert!(first.changed);
        assert_eq!(
            listing(out.path()),
            [
                ".qus-recipe-x86_64",
                "SHA256SUMS",
                "qemu-aarch64-static",
                "qemu-aarch64-static.tar.gz",
                "qemu-s390x-static",
                "qemu-s390x-static.tar.gz",
                "x86_64_qemu-aarch64-static.tar.gz",
                "x86_64_qemu-s390x-static.tar.gz",
            ]
        );
        let sums = std::fs::read_to_string(out.path().join(SUMS_FILE)).unwrap();
        assert_eq!(sums.lines().count(), 6);
        assert!(sums.lines().all(|l| l.len() > 66 && &l[64..66] == "  "));

        // The tarball holds the binary, executable, owned by root.
        let gz = std::fs::read(out.path().join("qemu-s390x-static.tar.gz")).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("qemu-s390x-static"));
        assert_eq!(entry.header().mode().unwrap(), 0o755);
        assert_eq!(entry.header().uid().unwrap(), 0);
        let mut content = String::new();
        entry.read_to_string(&mut content).unwrap();
        assert_eq!(content, "binary of s390x");
        assert!(entries.next().is_none());

        // Same recipe: nothing rewritten.
        let second = write(out.path(), "x86_64", &inputs, "r1", 2).unwrap();
        assert!(!second.changed);
        assert_eq!(second.files, first.files);
        // A damaged file is noticed and rewritten, byte for byte the same.
        std::fs::write(out.path().join("qemu-aarch64-static"), b"damaged").unwrap();
        assert!(
            write(out.path(), "x86_64", &inputs, "r1", 1)
                .unwrap()
                .changed
        );
        assert_eq!(
            std::fs::read_to_string(out.path().join(SUMS_FILE)).unwrap(),
            sums
        );
    }

    #[test]
    fn stale_artifacts_go_and_foreign_files_stay() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        for stale in [
            "qemu-cris-static",
            "qemu-cris-static.tar.gz",
            "x86_64_qemu-cris-static.tar.gz",
            "qemu-aarch64-static.qus-partial",
        ] {
            std::fs::write(out.path().join(stale), b"old").unwrap();
        }
        std::fs::write(out.path().join("NOTES.md"), b"mine").unwrap();
        write(out.path(), "x86_64", &inputs(src.path())[..1], "r", 1).unwrap();
        assert_eq!(
            listing(out.path()),
            [
                ".qus-recipe-x86_64",
                "NOTES.md",
                "SHA256SUMS",
                "qemu-aarch64-static",
                "qemu-aarch64-static.tar.gz",
                "x86_64_qemu-aarch64-static.tar.gz",
            ]
        );
    }

    #[test]
    fn hosts_share_the_directory_and_its_sums() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let inputs = inputs(src.path());
        write(out.path(), "x86_64", &inputs, "amd", 1).unwrap();
        // Another host: only its prefixed tarballs, its own stamp.
        let arm = write(out.path(), "aarch64", &inputs, "arm", 1).unwrap();
        assert!(arm.changed);
        assert_eq!(
            arm.files
                .iter()
                .map(|f| f.file_name().unwrap().to_str().unwrap())
                .collect::<Vec<_>>(),
            [
                "aarch64_qemu-aarch64-static.tar.gz",
                "aarch64_qemu-s390x-static.tar.gz",
                "SHA256SUMS"
            ]
        );
        assert_eq!(
            listing(out.path()),
            [
                ".qus-recipe-aarch64",
                ".qus-recipe-x86_64",
                "SHA256SUMS",
                "aarch64_qemu-aarch64-static.tar.gz",
                "aarch64_qemu-s390x-static.tar.gz",
                "qemu-aarch64-static",
                "qemu-aarch64-static.tar.gz",
                "qemu-s390x-static",
                "qemu-s390x-static.tar.gz",
                "x86_64_qemu-aarch64-static.tar.gz",
                "x86_64_qemu-s390x-static.tar.gz",
            ]
        );
        // One SHA256SUMS over both hosts' files.
        let sums = std::fs::read_to_string(out.path().join(SUMS_FILE)).unwrap();
        assert_eq!(sums.lines().count(), 8);
        // Each host is still current, and rewriting one keeps the other's.
        assert!(
            !write(out.path(), "x86_64", &inputs, "amd", 1)
                .unwrap()
                .changed
        );
        assert!(
            !write(out.path(), "aarch64", &inputs, "arm", 1)
                .unwrap()
                .changed
        );
        write(out.path(), "aarch64", &inputs[..1], "arm2", 1).unwrap();
        let after = listing(out.path());
        assert!(!after.contains(&"aarch64_qemu-s390x-static.tar.gz".to_owned()));
        assert!(after.contains(&"x86_64_qemu-s390x-static.tar.gz".to_owned()));
        assert!(after.contains(&"qemu-s390x-static".to_owned()));
        let sums = std::fs::read_to_string(out.path().join(SUMS_FILE)).unwrap();
        assert_eq!(sums.lines().count(), 7);
        // The x86_64 host is still current after the other host's rewrite.
        assert!(
            !write(out.path(), "x86_64", &inputs, "amd", 1)
                .unwrap()
                .changed
        );
    }

    #[test]
    fn artifact_hosts_are_read_from_names() {
        assert_eq!(artifact_host("qemu-aarch64-static"), Some("x86_64"));
        assert_eq!(artifact_host("qemu-aarch64-static.tar.gz"), Some("x86_64"));
        assert_eq!(
            artifact_host("aarch64_qemu-x86_64-static.tar.gz"),
            Some("aarch64")
        );
        assert_eq!(
            artifact_host("x86_64_qemu-aarch64-static.tar.gz"),
            Some("x86_64")
        );
        assert_eq!(artifact_host("SHA256SUMS"), None);
        assert_eq!(artifact_host("qemu-aarch64-static.qus-partial"), None);
    }

    #[test]
    fn artifact_names_are_recognised() {
        for yes in [
            "qemu-aarch64-static",
            "qemu-aarch64-static.tar.gz",
            "x86_64_qemu-aarch64-static.tar.gz",
            "SHA256SUMS.qus-partial",
        ] {
            assert!(is_artifact_name(yes), "{yes}");
        }
        for no in ["SHA256SUMS", "README", "qemu-img", "x86_64_notes.tar.gz"] {
            assert!(!is_artifact_name(no), "{no}");
        }
    }
}
