//! One-shot containers: start, wait for the exit, collect the exit code and
//! output, remove. [`run_once`] does that for any image; privileged runs
//! get `--privileged`, or the capability fallback on hosts that refuse it.
//!
//! Engine quirks live here, not in callers: a host whose capability
//! bounding set lacks a capability (some VMs lack `CAP_SYS_RESOURCE`) makes
//! Docker refuse `--privileged` with "unable to apply caps" before the
//! container starts. Such runs are retried with every capability the host
//! has, AppArmor and seccomp unconfined, and the choice is kept for the
//! process. testcontainers leaves a container whose start failed; every
//! container started here carries a label unique to the call, by which such
//! a leftover is removed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use testcontainers::bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use testcontainers::core::WaitFor;
use testcontainers::core::client::docker_client_instance;
use testcontainers::core::wait::ExitWaitStrategy;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerRequest, Image, ImageExt, TestcontainersError};
use tokio::sync::OnceCell;

use crate::error::{BoxError, ContainerError};

/// The label on every container started here; its value is unique to one
/// call.
const CALL_LABEL: &str = "io.qus.testcontainers";

/// Docker's words for `--privileged` refused by the host.
const CAPS_REFUSED: &str = "unable to apply caps";

/// Capabilities by number (`include/uapi/linux/capability.h`), as
/// `--cap-drop` names them.
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Dropped when the bounding set cannot be read (a remote engine): the
/// capability seen missing on CI VMs.
const DEFAULT_DROP: &str = "SYS_RESOURCE";

/// How privileged containers run on this engine, decided by the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Privilege {
    /// `--privileged`.
    Privileged,
    /// Every capability the host has, AppArmor and seccomp unconfined.
    Fallback,
}

/// Known once a privileged container has started.
static PRIVILEGE: OnceCell<Privilege> = OnceCell::const_new();

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finished {
    /// The exit code.
    pub(crate) exit_code: i64,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

/// Runs the request `make` builds to its exit and removes the container.
/// `privileged` grants it the host's privileges; `timeout` bounds start and
/// run. `make` may be called twice: requests cannot be cloned, and a start
/// refused `--privileged` is made again with the fallback.
pub(crate) async fn run_once<I: Image>(
    make: impl Fn() -> ContainerRequest<I>,
    privileged: bool,
    timeout: Duration,
) -> Result<Finished, ContainerError> {
    let request = || {
        make()
            .with_ready_conditions(vec![WaitFor::exit(ExitWaitStrategy::new())])
            .with_startup_timeout(timeout)
    };
    if !privileged {
        return start(request()).await;
    }
    if let Some(&mode) = PRIVILEGE.get() {
        return start(grant(request(), mode)).await;
    }
    match start(grant(request(), Privilege::Privileged)).await {
        Err(err) if mentions(&err.source, CAPS_REFUSED) => {
            let _ = PRIVILEGE.set(Privilege::Fallback);
            start(grant(request(), Privilege::Fallback)).await
        }
        result => {
            if result.is_ok() {
                let _ = PRIVILEGE.set(Privilege::Privileged);
            }
            result
        }
    }
}

/// `request` with the privileges of `mode`.
fn grant<I: Image>(request: ContainerRequest<I>, mode: Privilege) -> ContainerRequest<I> {
    match mode {
        Privilege::Privileged => request.with_privileged(true),
        Privilege::Fallback => {
            let mut request = request.with_cap_add("ALL");
            for cap in missing_capabilities() {
                request = request.with_cap_drop(cap);
            }
            request
                .with_security_opt("apparmor=unconfined")
                .with_security_opt("seccomp=unconfined")
        }
    }
}

/// The capabilities missing from this process's bounding set, when the
/// engine is local (its containers get the same set); [`DEFAULT_DROP`]
/// otherwise or when none is missing.
fn missing_capabilities() -> Vec<&'static str> {
    let local =
        std::env::var("DOCKER_HOST").map_or(true, |h| h.is_empty() || h.starts_with("unix://"));
    let read = || {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let last: usize = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let mask = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
        let bounding = u64::from_str_radix(mask.trim(), 16).ok()?;
        Some(
            (0..=last.min(CAPABILITIES.len() - 1))
                .filter(|bit| bounding >> bit & 1 == 0)
                .map(|bit| CAPABILITIES[bit])
                .collect::<Vec<_>>(),
        )
    };
    match local.then(read).flatten() {
        Some(missing) if !missing.is_empty() => missing,
        _ => vec![DEFAULT_DROP],
    }
}

/// Starts `request` (labelled for this call), waits for its exit, collects
/// the outcome and removes the container, also when the start failed.
async fn start<I: Image>(request: ContainerRequest<I>) -> Result<Finished, ContainerError> {
    let image = request.descriptor();
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = format!(
        "{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    );
    let failed = |operation, source: TestcontainersError| ContainerError {
        operation,
        image: image.clone(),
        source: Box::new(source),
    };
    let container = match request.with_label(CALL_LABEL, &call).start().await {
        Ok(container) => container,
        Err(err) => {
            remove_labelled(&call).await;
            return Err(failed("start a container from", err));
        }
    };
    let outcome = async {
        let exit_code = container
            .exit_code()
            .await
            .map_err(|e| failed("read the exit code of a container from", e))?
            .unwrap_or(-1);
        let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
        let stdout = container
            .stdout_to_vec()
            .await
            .map_err(|e| failed("read the output of a container from", e))?;
        let stderr = container
            .stderr_to_vec()
            .await
            .map_err(|e| failed("read the output of a container from", e))?;
        Ok(Finished {
            exit_code,
            stdout: text(stdout),
            stderr: text(stderr),
        })
    }
    .await;
    let removed = container
        .rm()
        .await
        .map_err(|e| failed("remove a container from", e));
    let finished = outcome?;
    removed?;
    Ok(finished)
}

/// Force-removes the containers labelled with `call` (a start that failed
/// leaves its container created).
async fn remove_labelled(call: &str) {
    let Ok(docker) = docker_client_instance().await else {
        return;
    };
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("{CALL_LABEL}={call}")],
        )])),
        ..ListContainersOptions::default()
    };
    for container in docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
    {
        if let Some(id) = container.id {
            let force = RemoveContainerOptions {
                force: true,
                ..RemoveContainerOptions::default()
            };
            let _ = docker.remove_container(&id, Some(force)).await;
        }
    }
}

/// Whether `text` appears in `err` or one of its causes.
fn mentions(err: &BoxError, text: &str) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
    while let Some(current) = next {
        if current.to_string().contains(text) {
            return true;
        }
        next = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capability_table_is_the_kernels() {
        assert_eq!(CAPABILITIES[21], "SYS_ADMIN");
        assert_eq!(CAPABILITIES[24], "SYS_RESOURCE");
        assert_eq!(CAPABILITIES[40], "CHECKPOINT_RESTORE");
    }

    #[test]
    fn something_is_always_dropped_in_the_fallback() {
        assert!(!missing_capabilities().is_empty());
    }
}
