//! `run --qemu`: the QEMUs of the run resolved to image versions of the
//! registrar repository, and one group of planned instances per QEMU.
//!
//! [`groups`] is what `run` calls; resolving is `crate::qemu::resolve`,
//! running the groups `runner::run_matrix`. Errors are printed here and
//! returned as exit statuses, as in the rest of `app`.

use super::{Engine, exit, expand_all, images_progress, writes_host};
use crate::cli::RunArgs;
use crate::host::HostInfo;
use crate::plan;
use crate::prepare;
use crate::qemu::ResolveOptions;
use crate::report::QemuInfo;
use crate::runner::{QemuGroup, error_chain};
use crate::scenario::{Scenario, VarOverrides};

/// One group per QEMU of `--qemu`, oldest first: the scenarios expanded
/// with that QEMU's version, planned, with the QEMU's registrar image as
/// the baseline where the run may write binfmt_misc. `Err` is the exit
/// status after printing.
pub(super) fn groups(
    tokio: &tokio::runtime::Runtime,
    engine: &Engine,
    probe: &Result<(), String>,
    args: &RunArgs,
    vars: &VarOverrides,
    scenarios: &[Scenario],
    host: &HostInfo,
) -> Result<Vec<QemuGroup>, u8> {
    let qemus = resolve_qemus(tokio, engine, probe, args, vars)?;
    let baseline = writes_host(host);
    if !baseline {
        eprintln!(
            "warning: binfmt_misc cannot be written here (root and binfmt_misc are needed): \
             each QEMU's handlers are not registered before its instances, which run on the \
             handlers the host has"
        );
    }
    let repo = qemu_repo(vars);
    let mut groups = Vec::new();
    for qemu in qemus {
        let vars = vars.clone().with_qemu_version(&qemu.version);
        let instances = expand_all(scenarios, &vars, &args.select)?;
        let planned = with_engine!(engine, rt => plan::plan(instances, rt, probe.clone(), host));
        groups.push(QemuGroup {
            baseline: baseline.then(|| format!("{repo}:{}", qemu.version)),
            qemu,
            planned,
        });
    }
    Ok(groups)
}

/// The registrar repository of a `--qemu` run: `--var QUS_REPO=...`, else
/// the environment's `QUS_REPO`, else `qus/qemu-user-static`.
pub(super) fn qemu_repo(vars: &VarOverrides) -> String {
    vars.cli(prepare::REPO_VARIABLE)
        .or_else(|| vars.env(prepare::REPO_VARIABLE))
        .unwrap_or(crate::images::DEFAULT_REPO)
        .to_owned()
}

/// Resolves `--qemu` to image versions in the engine's image store,
/// building the versions no image holds (unless `--no-prepare`). `Err` is
/// the exit status after printing.
fn resolve_qemus(
    tokio: &tokio::runtime::Runtime,
    engine: &Engine,
    probe: &Result<(), String>,
    args: &RunArgs,
    vars: &VarOverrides,
) -> Result<Vec<QemuInfo>, u8> {
    use crate::images::ImageEngine;
    let docker = || ImageEngine::Docker(None);
    let (stores, builder) = match engine {
        Engine::Docker(d) => {
            let here = ImageEngine::Docker(Some(d.endpoint().to_owned()));
            (vec![here.clone()], here)
        }
        Engine::Podman(p) => {
            let here = ImageEngine::Podman(Some(p.endpoint().to_owned()));
            // Docker builds when it answers (Podman then copies), as
            // `prepare` does; else Podman builds for itself.
            let builder = match tokio.block_on(crate::runtime::DockerRuntime::connect()) {
                Ok(_) => docker(),
                Err(_) => here.clone(),
            };
            (vec![here, docker()], builder)
        }
        Engine::Singularity(_) => (vec![docker()], docker()),
        Engine::Host(_) | Engine::Unavailable(_) => {
            let why = match probe {
                Err(e) => format!("the engine is unusable: {e}"),
                Ok(()) => "the host runtime runs no images".to_owned(),
            };
            eprintln!(
                "error: `--qemu` runs each QEMU from its registrar images, which needs a \
                 container engine; {why}"
            );
            eprintln!("  hint: pick one with `--runtime docker|podman|singularity`");
            return Err(exit::USAGE);
        }
    };
    let options = ResolveOptions {
        repo: qemu_repo(vars),
        stores,
        builder: (!args.no_prepare).then_some(builder),
    };
    let mut announce = |name: &crate::qemu::QemuSelector, builder: &ImageEngine| {
        progress!(
            "prepare        building QEMU {name} with {} into {}",
            builder.name(),
            options.repo
        );
    };
    crate::qemu::resolve(tokio, &args.qemu, &options, &mut announce, &images_progress).map_err(
        |e| {
            eprintln!("error: {}", error_chain(&e));
            if e.is_usage() {
                exit::USAGE
            } else {
                exit::ENVIRONMENT
            }
        },
    )
}
