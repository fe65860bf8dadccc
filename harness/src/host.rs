//! The host around a run: what it offers, and its binfmt_misc state.
//!
//! The main type is [`HostGuard`]: a snapshot of every binfmt_misc entry,
//! taken before the first scenario runs and put back after the last one,
//! on success, failure, timeout or Ctrl-C (the runner calls
//! [`HostGuard::restore`]; `Drop` restores as a last resort). A run whose
//! instances write only private registries (the host runtime's hermetic
//! instances) takes a watching guard instead ([`HostGuard::watch`]): it
//! compares the host's entries after the run with the snapshot
//! ([`HostGuard::check`]) and restores only when they differ, which is
//! then an error. [`HostInfo`]
//! holds the facts the planner needs for skip reasons (root, kernel,
//! binfmt_misc). All reading and writing of binfmt_misc goes through
//! `qus_registrar::binfmt`; nothing here parses the mount itself.

use qus_registrar::binfmt::{Binfmt, BinfmtError, HostFacts, MountState, RestoreReport, Snapshot};

use crate::scenario::KernelVersion;

/// What the host offers to scenarios.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// Whether this process runs as uid 0.
    pub is_root: bool,
    /// The running kernel's version, when it parses.
    pub kernel: Option<KernelVersion>,
    /// The binfmt_misc mount's state.
    pub binfmt: MountState,
    /// `uname -m`.
    pub machine: String,
}

impl HostInfo {
    /// Reads the facts of this host.
    pub fn read() -> Self {
        let facts = HostFacts::read(None);
        Self {
            is_root: rustix::process::geteuid().is_root(),
            kernel: KernelVersion::from_release(&facts.kernel_release),
            binfmt: Binfmt::default().state(),
            machine: facts.machine,
        }
    }
}

/// The host's binfmt_misc entries as they were before a run.
#[derive(Debug)]
pub struct HostGuard {
    binfmt: Binfmt,
    snapshot: Snapshot,
    restored: bool,
    /// Only compare at the end: nothing of the run should write the host's
    /// registry.
    watching: bool,
}

impl HostGuard {
    /// Mounts binfmt_misc if needed (scenarios that write it mount it anyway,
    /// and the snapshot must see what they change) and records every entry.
    pub fn take(binfmt: Binfmt) -> Result<Self, BinfmtError> {
        if binfmt.state() == MountState::NotMounted {
            binfmt.mount()?;
        }
        let snapshot = binfmt.snapshot()?;
        Ok(Self {
            binfmt,
            snapshot,
            restored: false,
            watching: false,
        })
    }

    /// Records every entry of a run that should not write the host's
    /// registry at all; mounts nothing.
    pub fn watch(binfmt: Binfmt) -> Result<Self, BinfmtError> {
        let snapshot = binfmt.snapshot()?;
        Ok(Self {
            binfmt,
            snapshot,
            restored: false,
            watching: true,
        })
    }

    /// Whether this guard only watches (see [`HostGuard::watch`]).
    pub fn is_watching(&self) -> bool {
        self.watching
    }

    /// Compares the registry with the snapshot; returns the names of the
    /// entries that differ (new, gone or changed), sorted. When some do
    /// and this process may write the registry, puts the snapshot back.
    pub fn check(&mut self) -> Result<Vec<String>, BinfmtError> {
        let now = self.binfmt.snapshot()?;
        let mut changed: Vec<String> = now
            .entries
            .iter()
            .filter(|e| !self.snapshot.entries.contains(e))
            .chain(
                self.snapshot
                    .entries
                    .iter()
                    .filter(|e| !now.entries.contains(e)),
            )
            .map(|e| e.name.clone())
            .collect();
        changed.sort();
        changed.dedup();
        if !changed.is_empty() && rustix::process::geteuid().is_root() {
            self.restore()?;
        }
        self.restored = true;
        Ok(changed)
    }

    /// How many entries the snapshot holds.
    pub fn entries(&self) -> usize {
        self.snapshot.entries.len()
    }

    /// Puts every entry back as it was and checks the result: after the
    /// restore, a fresh listing must equal the snapshot.
    pub fn restore(&mut self) -> Result<RestoreReport, BinfmtError> {
        let report = self.binfmt.restore(&self.snapshot)?;
        self.restored = true;
        let now = self.binfmt.snapshot()?;
        if now.entries != self.snapshot.entries {
            return Err(BinfmtError {
                operation: "verify the restored entries of".into(),
                path: self.binfmt.root().to_owned(),
                kind: qus_registrar::binfmt::BinfmtErrorKind::Other,
                source: None,
            });
        }
        Ok(report)
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        // The runner restores explicitly and reports it; this is for a panic
        // between snapshot and restore.
        if !self.restored
            && !self.watching
            && let Err(e) = self.binfmt.restore(&self.snapshot)
        {
            tracing::error!("failed to restore the host's binfmt_misc entries: {e}");
        }
    }
}
