//! [`Handlers`]: binfmt_misc handlers registered for the duration of a
//! foreign `debootstrap`, and put back as they were afterwards.
//!
//! `debootstrap --arch=arm64` runs the target's own binaries in its second
//! stage (`chroot DIR dpkg ...`). The chroot holds no emulator, so the
//! handler must carry the `F` flag: the kernel opens the host's
//! `/usr/bin/qemu-<cpu>-static` at registration time and uses that file
//! inside the chroot. The registry is snapshotted first and restored when
//! the guard is dropped, whatever happened in between. Everything goes
//! through `qus_registrar`; nothing here parses binfmt_misc itself.

use std::path::Path;

use qus_registrar::binfmt::{Binfmt, MountState, Snapshot};
use qus_registrar::elf;
use qus_registrar::entry::{self, Entry, Flags};
use qus_registrar::targets::Target;
use tracing::warn;

use super::error::ImageBuildError;

/// Where Debian's `qemu-user-static` installs the emulators.
const QEMU_DIR: &str = "/usr/bin";

/// Registered handlers; the registry is restored on drop.
#[derive(Debug)]
pub(crate) struct Handlers {
    binfmt: Binfmt,
    snapshot: Snapshot,
}

impl Handlers {
    /// Registers `targets` with `F` and the host's static emulators, after
    /// snapshotting the registry. An identical entry is left alone; a
    /// different one is replaced (and restored later).
    pub(crate) fn register(targets: &[&'static Target]) -> Result<Self, ImageBuildError> {
        if !rustix::process::geteuid().is_root() {
            return Err(ImageBuildError::NotRoot {
                operation: "registering binfmt_misc handlers for a foreign debootstrap",
            });
        }
        let binfmt_error =
            |operation: String| move |source| ImageBuildError::Binfmt { operation, source };
        let binfmt = Binfmt::default();
        if binfmt.state() == MountState::NotMounted {
            binfmt
                .mount()
                .map_err(binfmt_error("mount binfmt_misc".to_owned()))?;
        }
        let snapshot = binfmt
            .snapshot()
            .map_err(binfmt_error("snapshot the binfmt_misc entries".to_owned()))?;
        // From here on, the guard restores the snapshot if anything fails.
        let handlers = Self { binfmt, snapshot };
        let flags = Flags::requested(false, true, false);
        for target in targets {
            let interpreter = entry::interpreter_path(QEMU_DIR, target, "-static");
            check_interpreter(target, Path::new(&interpreter))?;
            let wanted = Entry::expected(target, &interpreter, flags);
            let name = target.entry_name();
            let current = handlers
                .binfmt
                .read(&name)
                .map_err(binfmt_error(format!("read the `{name}` entry")))?;
            if current.as_ref() == Some(&wanted) {
                continue;
            }
            if current.is_some() {
                handlers
                    .binfmt
                    .remove(&name)
                    .map_err(binfmt_error(format!("replace the `{name}` entry")))?;
            }
            handlers
                .binfmt
                .register(&name, &entry::register_line(target, &interpreter, flags))
                .map_err(binfmt_error(format!("register `{name}`")))?;
        }
        Ok(handlers)
    }
}

impl Drop for Handlers {
    fn drop(&mut self) {
        if let Err(err) = self.binfmt.restore(&self.snapshot) {
            warn!(error = %err, "failed to restore the binfmt_misc entries");
        }
    }
}

/// The interpreter must exist and be static: a dynamic one would look for
/// its loader inside the chroot.
fn check_interpreter(target: &Target, path: &Path) -> Result<(), ImageBuildError> {
    let problem = |reason: &str| ImageBuildError::Interpreter {
        target: target.name.to_owned(),
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !path.exists() {
        return Err(problem("is missing"));
    }
    match elf::read_file(path) {
        Ok(header) if header.is_static() => Ok(()),
        Ok(_) => Err(problem("is dynamically linked")),
        Err(source) => Err(ImageBuildError::Elf {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interpreter_names_the_package() {
        let target = qus_registrar::targets::find("aarch64").unwrap();
        let err =
            check_interpreter(target, Path::new("/nonexistent/qemu-aarch64-static")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the interpreter `/nonexistent/qemu-aarch64-static` for `aarch64` is missing: \
             install the Debian package `qemu-user-static`"
        );
        assert!(err.is_environment());
    }
}
