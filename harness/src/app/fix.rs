//! `doctor --fix` (and `--fix --dry-run`): plans the fixes from the
//! doctor's inputs, announces each on stderr, performs them (root, Debian
//! or Ubuntu), then lets the doctor read the host again.

use crate::cli::exit;
use crate::doctor::{self, Inputs};
use crate::runner::error_chain;
use crate::runtime::{DockerRuntime, PodmanRuntime, Runtime as _, RuntimeKind};

/// Performs (or with `dry_run` lists) the fixes `inputs` call for. `Ok`
/// with whether anything was performed; `Err` is the exit status.
pub(super) fn fix(
    tokio: &tokio::runtime::Runtime,
    inputs: &Inputs,
    dry_run: bool,
) -> Result<bool, u8> {
    let machine = qus_registrar::binfmt::HostFacts::read(None).machine;
    let host_qemu = !crate::sandbox::host_emulators(
        std::path::Path::new(crate::sandbox::HOST_QEMU_DIR),
        &machine,
    )
    .is_empty();
    let fixes = doctor::plan_fixes(inputs, host_qemu);
    if !dry_run && !fixes.is_empty() {
        let refusal = if !rustix::process::geteuid().is_root() {
            Some(doctor::FixError::NotRoot)
        } else {
            doctor::check_debian(&std::fs::read_to_string("/etc/os-release").unwrap_or_default())
                .err()
                .map(doctor::FixError::NotDebian)
        };
        if let Some(e) = refusal {
            eprintln!("error: {e}");
            return Err(exit::ENVIRONMENT);
        }
    }
    if fixes.is_empty() {
        eprintln!("fix: nothing to fix");
        return Ok(false);
    }
    let answers = |kind: RuntimeKind| -> Result<(), String> {
        tokio.block_on(async {
            match kind {
                RuntimeKind::Docker => {
                    let rt = DockerRuntime::connect()
                        .await
                        .map_err(|e| error_chain(&e))?;
                    rt.probe().await.map(|_| ()).map_err(|e| error_chain(&e))
                }
                _ => {
                    let rt = PodmanRuntime::connect()
                        .await
                        .map_err(|e| error_chain(&e))?;
                    rt.probe().await.map(|_| ()).map_err(|e| error_chain(&e))
                }
            }
        })
    };
    for fix in &fixes {
        eprintln!("fix: {}", fix.describe());
        for command in fix.commands() {
            let verb = if dry_run { "would run" } else { "run" };
            eprintln!("  {verb}: {}", command.join(" "));
        }
        if dry_run {
            continue;
        }
        if let Err(e) = doctor::apply_fix(fix, &answers) {
            eprintln!("error: {e}");
            return Err(exit::ENVIRONMENT);
        }
    }
    Ok(!dry_run)
}
