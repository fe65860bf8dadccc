//! [`WorkDir`]: a temporary directory that is removed when dropped, even
//! when a killed `debootstrap` left file systems mounted inside it.
//!
//! Removing a directory tree with `/proc` or `/dev` still mounted below it
//! would descend into the host's own files, so the guard first detaches
//! every mount under it (`umount --lazy`, deepest first, read from
//! `/proc/self/mountinfo`) and refuses to delete anything if a mount
//! remains.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::warn;

use super::error::ImageBuildError;
use super::tool::UMOUNT;

/// A directory this process created and owns.
#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Creates `<parent>/<prefix>-<pid>-<time>-<n>` (and `parent`).
    pub(crate) fn create(parent: &Path, prefix: &str) -> Result<Self, ImageBuildError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(parent).map_err(ImageBuildError::io("create directory", parent))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!(
            "{prefix}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).map_err(ImageBuildError::io("create directory", &path))?;
        Ok(Self { path })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        remove_tree(&self.path);
    }
}

/// Unmounts everything below `dir`, then removes it. Logs what it could
/// not do; never panics.
pub(crate) fn remove_tree(dir: &Path) {
    let mut mounts = mounts_below(dir);
    if !mounts.is_empty() {
        // Deepest first, so that `dev/pts` goes before `dev`.
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for mount in &mounts {
            let status = std::process::Command::new(UMOUNT.program)
                .arg("--lazy")
                .arg(mount)
                .status();
            if !status.is_ok_and(|s| s.success()) {
                warn!(mount = %mount.display(), "failed to unmount");
            }
        }
        if !mounts_below(dir).is_empty() {
            warn!(
                dir = %dir.display(),
                "left in place: file systems are still mounted below it"
            );
            return;
        }
    }
    // A process killed a moment ago may still be writing: retry briefly.
    for attempt in 0..5 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
            Err(err) if attempt == 4 => {
                warn!(dir = %dir.display(), error = %err, "failed to remove a work directory");
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Mount points at or below `dir`, from `/proc/self/mountinfo`.
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    parse_mount_points(&info)
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// The mount point (fifth field, octal-escaped) of each mountinfo line.
fn parse_mount_points(info: &str) -> Vec<PathBuf> {
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

/// Undoes the kernel's `\040`-style escaping of spaces, tabs, newlines and
/// backslashes in mountinfo paths.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_and_unescaped() {
        let info = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    90 30 0:5 / /tmp/a\\040b/root/dev rw - devtmpfs udev rw\n";
        assert_eq!(
            parse_mount_points(info),
            [PathBuf::from("/proc"), PathBuf::from("/tmp/a b/root/dev")]
        );
        assert_eq!(unescape_octal(r"a\134b\011c"), "a\\b\tc");
        assert_eq!(unescape_octal(r"trailing\04"), r"trailing\04");
    }

    #[test]
    fn a_work_dir_is_removed_with_its_content() {
        let parent = tempfile::tempdir().unwrap();
        let path = {
            let work = WorkDir::create(parent.path(), "t").unwrap();
            std::fs::create_dir_all(work.path().join("a/b")).unwrap();
            std::fs::write(work.path().join("a/b/c"), b"x").unwrap();
            work.path().to_owned()
        };
        assert!(!path.exists());
        assert!(parent.path().exists());
    }
}
