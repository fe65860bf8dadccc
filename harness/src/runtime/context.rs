//! Packing a [`BuildContext`] into the tar archive engines build from.
//!
//! Pure and synchronous; callers run it on a blocking thread. It does not
//! honour `.dockerignore`.

use std::path::Path;

use super::error::{Operation, RuntimeError};
use super::spec::{BuildContext, ContextFile};

/// The name the inline Containerfile gets inside the archive.
pub(crate) const INLINE_CONTAINERFILE: &str = "Dockerfile";

/// Names looked for, in order, at the top of a directory context.
const CONTAINERFILE_NAMES: [&str; 2] = ["Dockerfile", "Containerfile"];

/// A packed context: the archive and the Containerfile's name inside it.
#[derive(Debug)]
pub(crate) struct PackedContext {
    pub(crate) tar: Vec<u8>,
    pub(crate) containerfile: String,
}

/// Packs `context` into an uncompressed tar archive.
///
/// Inline files get mtime 0 and root ownership so that identical inputs
/// give identical archives, which keeps the engine's build cache useful.
pub(crate) fn pack(context: &BuildContext, tag: &str) -> Result<PackedContext, RuntimeError> {
    match context {
        BuildContext::Inline {
            containerfile,
            files,
        } => pack_inline(containerfile, files, tag),
        BuildContext::Dir(dir) => pack_dir(dir),
    }
}

fn pack_inline(
    containerfile: &str,
    files: &[ContextFile],
    tag: &str,
) -> Result<PackedContext, RuntimeError> {
    if files.iter().any(|f| f.path == INLINE_CONTAINERFILE) {
        return Err(RuntimeError::InvalidSpec {
            reason: format!(
                "the inline context of `{tag}` has a file named `{INLINE_CONTAINERFILE}`, \
                 which is reserved for the Containerfile"
            ),
        });
    }
    let io_error = |source| RuntimeError::Io {
        operation: Operation::PrepareContext,
        object: tag.to_owned(),
        source,
    };
    let mut archive = tar::Builder::new(Vec::new());
    let containerfile = ContextFile::new(INLINE_CONTAINERFILE, containerfile.as_bytes());
    for file in std::iter::once(&containerfile).chain(files) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(file.contents.len() as u64);
        header.set_mode(file.mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        archive
            .append_data(&mut header, &file.path, file.contents.as_slice())
            .map_err(io_error)?;
    }
    let tar = archive.into_inner().map_err(io_error)?;
    Ok(PackedContext {
        tar,
        containerfile: INLINE_CONTAINERFILE.to_owned(),
    })
}

/// The Containerfile a build of directory `dir` uses, if it has one.
pub(crate) fn containerfile_in(dir: &Path) -> Option<std::path::PathBuf> {
    CONTAINERFILE_NAMES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

fn pack_dir(dir: &Path) -> Result<PackedContext, RuntimeError> {
    let io_error = |source| RuntimeError::Io {
        operation: Operation::PrepareContext,
        object: dir.display().to_string(),
        source,
    };
    let containerfile = CONTAINERFILE_NAMES
        .iter()
        .find(|name| dir.join(name).is_file())
        .ok_or_else(|| RuntimeError::InvalidSpec {
            reason: format!(
                "the build context `{}` has neither a `Dockerfile` nor a `Containerfile`",
                dir.display()
            ),
        })?;
    let mut archive = tar::Builder::new(Vec::new());
    // Send symlinks as symlinks, as the docker CLI does.
    archive.follow_symlinks(false);
    archive.append_dir_all(".", dir).map_err(io_error)?;
    let tar = archive.into_inner().map_err(io_error)?;
    Ok(PackedContext {
        tar,
        containerfile: (*containerfile).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn entries(tar: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type().is_dir() {
                continue;
            }
            let path = entry.path().unwrap().display().to_string();
            let mode = entry.header().mode().unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push((path, mode, data));
        }
        out
    }

    #[test]
    fn inline_context_holds_containerfile_and_files_with_modes() {
        let context = BuildContext::Inline {
            containerfile: "FROM scratch\nCOPY probe /\n".into(),
            files: vec![
                ContextFile::executable("probe", b"\x7fELF".to_vec()),
                ContextFile::new("etc/conf", b"x=1".to_vec()),
            ],
        };
        let packed = pack(&context, "t").unwrap();
        assert_eq!(packed.containerfile, "Dockerfile");
        assert_eq!(
            entries(&packed.tar),
            [
                (
                    "Dockerfile".into(),
                    0o644,
                    b"FROM scratch\nCOPY probe /\n".to_vec()
                ),
                ("probe".into(), 0o755, b"\x7fELF".to_vec()),
                ("etc/conf".into(), 0o644, b"x=1".to_vec()),
            ]
        );
    }

    #[test]
    fn inline_context_is_deterministic() {
        let context = BuildContext::Inline {
            containerfile: "FROM scratch\n".into(),
            files: vec![ContextFile::new("a", b"1".to_vec())],
        };
        assert_eq!(
            pack(&context, "t").unwrap().tar,
            pack(&context, "t").unwrap().tar
        );
    }

    #[test]
    fn inline_context_rejects_a_second_containerfile() {
        let context = BuildContext::Inline {
            containerfile: "FROM scratch\n".into(),
            files: vec![ContextFile::new("Dockerfile", b"x".to_vec())],
        };
        assert!(matches!(
            pack(&context, "t"),
            Err(RuntimeError::InvalidSpec { .. })
        ));
    }

    #[test]
    fn dir_context_finds_a_containerfile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Containerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/file"), "data").unwrap();
        let packed = pack(&BuildContext::Dir(dir.path().into()), "t").unwrap();
        assert_eq!(packed.containerfile, "Containerfile");
        let mut names: Vec<_> = entries(&packed.tar).into_iter().map(|e| e.0).collect();
        names.sort();
        assert_eq!(names, ["Containerfile", "sub/file"]);
    }

    #[test]
    fn dir_context_without_containerfile_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            pack(&BuildContext::Dir(dir.path().into()), "t"),
            Err(RuntimeError::InvalidSpec { .. })
        ));
    }

    #[test]
    fn missing_dir_is_invalid() {
        let err = pack(&BuildContext::Dir("/nonexistent/qus-ctx".into()), "t").unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidSpec { .. }), "{err:?}");
    }
}
