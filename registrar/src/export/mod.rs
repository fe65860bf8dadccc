//! Exporters: the files QEMU's `scripts/qemu-binfmt-conf.sh` writes with
//! `--systemd` and `--debian`, instead of registering with the kernel.
//!
//! Each format is one module with a pure `render` function that writes one
//! target's file to any [`Write`] and a `file_name` function:
//!
//! - [`systemd`]: a binfmt.d(5) file `qemu-<cpu>.conf` holding the register
//!   line (`qemu_generate_systemd`);
//! - [`debian`]: an update-binfmts(8) template `qemu-<cpu>`
//!   (`qemu_generate_debian`).
//!
//! [`write_files`] puts one file per target in a directory, each written
//! atomically. Nothing here reads or touches binfmt_misc: exporting is for a
//! boot-time service (systemd-binfmt, binfmt-support) to register later.

pub mod debian;
pub mod systemd;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::entry::{self, Flags};
use crate::targets::Target;

/// The script options that shape an exported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// Directory of the interpreters (`--qemu-path`, `/usr/bin`).
    pub qemu_path: String,
    /// Suffix of the interpreter file names (`--qemu-suffix`, `-static`).
    pub suffix: String,
    /// `--credential yes`: flags `OC`, Debian `credentials yes`.
    pub credential: bool,
    /// `--persistent yes`: flag `F`, Debian `fix_binary yes`.
    pub persistent: bool,
    /// `--preserve-argv0 yes`: flag `P`, Debian `preserve yes`.
    pub preserve_argv0: bool,
}

impl ExportOptions {
    /// The interpreter path the script writes for `target`
    /// (`/usr/bin/qemu-aarch64-static`).
    pub fn interpreter(&self, target: &Target) -> String {
        entry::interpreter_path(&self.qemu_path, target, &self.suffix)
    }

    /// The binfmt_misc flags these options ask for.
    pub fn flags(&self) -> Flags {
        Flags::requested(self.credential, self.persistent, self.preserve_argv0)
    }
}

/// Which file format [`write_files`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// binfmt.d(5) files for systemd-binfmt ([`systemd`]).
    Systemd,
    /// update-binfmts(8) templates for Debian's binfmt-support ([`debian`]).
    Debian,
}

impl Format {
    /// The name of `target`'s file in this format.
    pub fn file_name(self, target: &Target) -> String {
        match self {
            Self::Systemd => systemd::file_name(target),
            Self::Debian => debian::file_name(target),
        }
    }

    /// Writes `target`'s file in this format to `w`.
    pub fn render(
        self,
        w: &mut impl Write,
        target: &Target,
        opts: &ExportOptions,
    ) -> io::Result<()> {
        match self {
            Self::Systemd => systemd::render(w, target, opts),
            Self::Debian => debian::render(w, target, opts),
        }
    }
}

/// Failure to export files; each variant names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The output directory could not be created.
    #[error("failed to create directory `{}`", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file could not be written; it was left as it was before.
    #[error("failed to write `{}`", path.display())]
    Write {
        /// The file that was to be written (not the temporary file).
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Writes one file per target into `dir` (created with its parents when
/// absent) and returns the paths written, in the order of `targets`.
///
/// Every file is written to a temporary file in `dir` and then renamed over
/// its final name, so a failure leaves either the old file or the new one,
/// never a truncated one. The first failure stops the export; files written
/// before it stay.
pub fn write_files(
    dir: &Path,
    targets: &[&Target],
    opts: &ExportOptions,
    format: Format,
) -> Result<Vec<PathBuf>, ExportError> {
    fs::create_dir_all(dir).map_err(|source| ExportError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::with_capacity(targets.len());
    for target in targets {
        let path = dir.join(format.file_name(target));
        let mut contents = Vec::new();
        format
            .render(&mut contents, target, opts)
            .expect("writing to a Vec cannot fail");
        write_atomically(dir, &path, &contents).map_err(|source| ExportError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `contents` to `path` through a temporary file in `dir`.
fn write_atomically(dir: &Path, path: &Path, contents: &[u8]) -> io::Result<()> {
    let (mut file, guard) = TempFile::create(dir, path)?;
    file.write_all(contents)?;
    // Flush the data before the rename makes it visible, so a crash cannot
    // leave an empty file under the final name.
    file.sync_all()?;
    drop(file);
    fs::rename(&guard.path, path)?;
    guard.disarm();
    Ok(())
}

/// A temporary file that is removed on drop unless [`TempFile::disarm`]ed,
/// so that no error path leaves it behind.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// Creates a new, exclusive temporary file in `dir` for `target`.
    fn create(dir: &Path, target: &Path) -> io::Result<(File, Self)> {
        // The process id and a counter keep concurrent exports (threads or
        // processes) from sharing a temporary file; `create_new` makes a
        // collision with a stale one an error instead of an overwrite.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((file, Self { path, armed: true }))
    }

    /// Keeps the file (it has been renamed away).
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the error being reported matters more.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets;
    use std::error::Error as _;

    fn opts() -> ExportOptions {
        ExportOptions {
            qemu_path: "/usr/bin".into(),
            suffix: "-static".into(),
            credential: false,
            persistent: true,
            preserve_argv0: false,
        }
    }

    fn target(name: &str) -> &'static Target {
        targets::find(name).expect("target in the table")
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn options_map_to_interpreter_and_flags() {
        let o = ExportOptions {
            qemu_path: "/opt/qemu/".into(),
            suffix: String::new(),
            credential: true,
            persistent: false,
            preserve_argv0: true,
        };
        assert_eq!(o.interpreter(target("i486")), "/opt/qemu/qemu-i386");
        assert_eq!(o.flags().register_letters(), "OCP");
    }

    #[test]
    fn creates_the_directory_and_writes_one_file_per_target() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let ts = [target("arm"), target("s390x")];
        let paths = write_files(&dir, &ts, &opts(), Format::Systemd).unwrap();
        assert_eq!(
            paths,
            [dir.join("qemu-arm.conf"), dir.join("qemu-s390x.conf")]
        );
        assert_eq!(entries(&dir), ["qemu-arm.conf", "qemu-s390x.conf"]);
        assert_eq!(
            fs::read_to_string(&paths[1]).unwrap(),
            ":qemu-s390x:M::\\x7fELF\\x02\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x16:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff:/usr/bin/qemu-s390x-static:F\n"
        );
    }

    #[test]
    fn debian_files_have_no_extension() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = write_files(tmp.path(), &[target("arm")], &opts(), Format::Debian).unwrap();
        assert_eq!(paths, [tmp.path().join("qemu-arm")]);
        let text = fs::read_to_string(&paths[0]).unwrap();
        assert!(text.starts_with("package qemu-arm\n"), "{text}");
    }

    #[test]
    fn replaces_an_existing_file_and_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("qemu-arm.conf");
        fs::write(
            &path,
            "old contents that are longer than the new line\n".repeat(20),
        )
        .unwrap();
        write_files(tmp.path(), &[target("arm")], &opts(), Format::Systemd).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(":qemu-arm:M::"), "{text}");
        assert_eq!(text.lines().count(), 1);
        assert_eq!(entries(tmp.path()), ["qemu-arm.conf"]);
    }

    #[test]
    fn a_failed_write_names_the_file_and_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        // A non-empty directory where the file should go: the rename fails
        // after the temporary file was fully written.
        let blocker = tmp.path().join("qemu-s390x.conf");
        fs::create_dir(&blocker).unwrap();
        fs::write(blocker.join("keep"), "x").unwrap();
        let ts = [target("arm"), target("s390x"), target("sparc")];
        let err = write_files(tmp.path(), &ts, &opts(), Format::Systemd).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("failed to write `{}`", blocker.display())
        );
        assert!(matches!(&err, ExportError::Write { path, .. } if *path == blocker));
        assert!(err.source().is_some());
        // The target before the failure was written, the one after was not,
        // and no temporary file is left.
        assert_eq!(entries(tmp.path()), ["qemu-arm.conf", "qemu-s390x.conf"]);
        assert!(blocker.join("keep").exists());
    }

    #[test]
    fn a_directory_that_cannot_be_created_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        fs::write(&file, "").unwrap();
        let dir = file.join("sub");
        let err = write_files(&dir, &[target("arm")], &opts(), Format::Debian).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("failed to create directory `{}`", dir.display())
        );
        assert!(matches!(&err, ExportError::CreateDir { path, .. } if *path == dir));
        assert!(err.source().is_some());
    }

    #[test]
    fn no_targets_writes_nothing_but_creates_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("empty");
        assert!(
            write_files(&dir, &[], &opts(), Format::Systemd)
                .unwrap()
                .is_empty()
        );
        assert!(dir.is_dir());
        assert!(entries(&dir).is_empty());
    }
}
