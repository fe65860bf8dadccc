//! Which QEMU the host's registered handlers run: [`HostQemuProbe`].
//!
//! QEMU's user-mode emulators print their version and exit, instead of
//! running the guest, when the environment holds `QEMU_VERSION` (QEMU's
//! `linux-user/main.c` reads it as the `-version` option). So executing a
//! static foreign probe program (the registrar library's embedded copy of
//! `fixtures/probes/bin/<target>`) on the host with `QEMU_VERSION=1` makes
//! the kernel start the registered interpreter, which prints `qemu-aarch64
//! version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)`: the QEMU that
//! actually runs that target's binaries now, not the one a scenario asked
//! for.
//!
//! Only persistent handlers (flag `F`) are asked: the kernel opened their
//! interpreter when they were registered, from the registrar's image, so
//! the host runs exactly what containers run. A handler without `F` opens
//! its interpreter path where a binary runs: the host's copy (Debian's
//! `/usr/bin/qemu-aarch64-static`, say) tells nothing about a container's,
//! and the probe says so instead of answering. Which targets are probed is
//! decided by [`choose_targets`] (pure); running one probe is
//! [`version_line`], over `qus_registrar::verify::qemu_version`. Binfmt
//! entries are read through `qus_registrar::binfmt`; nothing here writes
//! them.

use std::collections::BTreeSet;

use futures_util::future::BoxFuture;
use qus_registrar::binfmt::Binfmt;
use qus_registrar::verify;

use crate::runner::{QemuProbe, error_chain};

/// How many targets are probed for one instance at most.
const MAX_TARGETS: usize = 4;

/// The fallback target when the instance names none that is registered.
const DEFAULT_TARGET: &str = "aarch64";

/// The targets to probe: those of `preferred` that are `registered` (with
/// an enabled handler) and have a probe in `available`; when none is,
/// `aarch64` if it qualifies, else the first registered target that has a
/// probe. At most [`MAX_TARGETS`].
pub fn choose_targets(
    preferred: &[String],
    registered: &[String],
    available: &BTreeSet<String>,
) -> Vec<String> {
    let usable = |t: &str| registered.iter().any(|r| r == t) && available.contains(t);
    let mut chosen: Vec<String> = Vec::new();
    for target in preferred {
        if usable(target) && !chosen.contains(target) {
            chosen.push(target.clone());
        }
    }
    if chosen.is_empty() {
        if usable(DEFAULT_TARGET) {
            chosen.push(DEFAULT_TARGET.to_owned());
        } else if let Some(first) = registered.iter().find(|t| available.contains(t.as_str())) {
            chosen.push(first.clone());
        }
    }
    chosen.truncate(MAX_TARGETS);
    chosen
}

/// The version line the interpreter registered for `target` prints when
/// its probe runs with `QEMU_VERSION=1` (the registrar library runs it, with
/// a timeout, on a blocking thread).
///
/// # Errors
///
/// The probe cannot be run (no handler registered: `exec format error`),
/// times out, or prints no `qemu-... version` line.
pub async fn version_line(target: &str) -> Result<String, String> {
    let owned = target.to_owned();
    tokio::task::spawn_blocking(move || verify::qemu_version(&owned))
        .await
        .map_err(|e| format!("the `{target}` probe did not finish: {e}"))?
        .map(|line| line.trim().to_owned())
        .map_err(|e| error_chain(&e))
}

/// Enabled `qemu-*` targets: persistent ones, and the others with their
/// interpreter.
type Registered = (Vec<String>, Vec<(String, String)>);

/// Probes the host's registered handlers (see the module documentation).
#[derive(Debug, Default)]
pub struct HostQemuProbe {
    binfmt: Binfmt,
}

impl HostQemuProbe {
    /// A probe of the handlers in `binfmt`.
    pub fn new(binfmt: Binfmt) -> Self {
        Self { binfmt }
    }

    /// The targets with an enabled `qemu-*` entry, in the mount's order:
    /// those registered with `F`, and the others with their interpreter.
    fn registered(&self) -> Result<Registered, String> {
        let entries = self
            .binfmt
            .list()
            .map_err(|e| format!("failed to list the binfmt_misc entries: {e}"))?;
        let (mut persistent, mut other) = (Vec::new(), Vec::new());
        for entry in entries.iter().filter(|e| e.enabled && e.is_owned()) {
            let Some(target) = entry.name.strip_prefix("qemu-") else {
                continue;
            };
            if entry.flags.fix_binary {
                persistent.push(target.to_owned());
            } else {
                other.push((target.to_owned(), entry.interpreter.clone()));
            }
        }
        Ok((persistent, other))
    }

    /// The targets with a probe program.
    fn available() -> BTreeSet<String> {
        verify::probed_targets().map(str::to_owned).collect()
    }

    async fn lines(&self, preferred: &[String]) -> Result<Vec<String>, String> {
        let (persistent, other) = self.registered()?;
        let targets = choose_targets(preferred, &persistent, &Self::available());
        if targets.is_empty() {
            return Err(match other.first() {
                Some((target, interpreter)) => format!(
                    "no persistent (`F`) `qemu-*` handler with a probe is registered; \
                     `qemu-{target}` opens `{interpreter}` where a binary runs, so the \
                     host's copy tells nothing about a container's"
                ),
                None => "no enabled `qemu-*` handler with a probe is registered".to_owned(),
            });
        }
        let mut lines: Vec<String> = Vec::new();
        for target in &targets {
            let line = version_line(target).await?;
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        Ok(lines)
    }
}

impl QemuProbe for HostQemuProbe {
    fn ran<'a>(&'a self, targets: &'a [String]) -> BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(self.lines(targets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn preferred_registered_targets_first_then_aarch64_then_the_first() {
        let available: BTreeSet<String> = strings(&["aarch64", "arm", "s390x", "riscv64"])
            .into_iter()
            .collect();
        let registered = strings(&["s390x", "arm", "aarch64", "hexagon"]);
        assert_eq!(
            choose_targets(
                &strings(&["arm", "armv7l", "s390x"]),
                &registered,
                &available
            ),
            ["arm", "s390x"]
        );
        assert_eq!(
            choose_targets(&strings(&["riscv64"]), &registered, &available),
            ["aarch64"]
        );
        let no_aarch64 = strings(&["hexagon", "s390x", "arm"]);
        assert_eq!(choose_targets(&[], &no_aarch64, &available), ["s390x"]);
        assert!(choose_targets(&[], &strings(&["hexagon"]), &available).is_empty());
        let many = strings(&["aarch64", "arm", "s390x", "riscv64", "aarch64"]);
        assert_eq!(choose_targets(&many, &many, &available).len(), 4);
    }

    #[test]
    fn every_committed_probe_is_found() {
        let available = HostQemuProbe::available();
        for target in ["aarch64", "s390x", "riscv64", "ppc64le"] {
            assert!(available.contains(target), "{target}: {available:?}");
        }
    }

    #[tokio::test]
    async fn a_handler_without_f_is_not_asked() {
        // A directory that mimics binfmt_misc with one entry, without `F`.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        std::fs::write(dir.path().join("register"), "").unwrap();
        std::fs::write(
            dir.path().join("qemu-aarch64"),
            "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: \noffset 0\n\
             magic 7f454c460201010000000000000000000200b700\n\
             mask ffffffffffffff00fffffffffffffffffeffffff\n",
        )
        .unwrap();
        let probe = HostQemuProbe::new(Binfmt::new(dir.path()));
        let err = probe.ran(&strings(&["aarch64"])).await.unwrap_err();
        assert!(err.contains("no persistent (`F`)"), "{err}");
        assert!(
            err.contains("`qemu-aarch64` opens `/usr/bin/qemu-aarch64-static`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unregistered_target_gives_an_error_not_a_line() {
        // A directory that mimics binfmt_misc with no entry: nothing to probe.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        std::fs::write(dir.path().join("register"), "").unwrap();
        let probe = HostQemuProbe::new(Binfmt::new(dir.path()));
        let err = probe.ran(&strings(&["aarch64"])).await.unwrap_err();
        assert!(err.contains("no enabled `qemu-*` handler"), "{err}");
    }
}
