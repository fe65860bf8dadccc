//! Choosing and connecting the engine: `--runtime`, and for `auto` the
//! engines tried before the one chosen (the run names them:
//! [`crate::fallback::notice`]).

use super::Engine;
use crate::cli::{RuntimeChoice, SelectArgs};
use crate::fallback::Tried;
use crate::runner::error_chain;
use crate::runtime::{
    DockerRuntime, HostRuntime, PodmanRuntime, Runtime, RuntimeKind, SingularityRuntime,
    UnavailableRuntime,
};

/// The Apptainer/Singularity command: the flag or `QUS_SINGULARITY_BIN`,
/// else `apptainer`, else `singularity`, whichever is on `PATH`.
pub(super) fn singularity_bin(select: &SelectArgs) -> String {
    select.singularity_bin.clone().unwrap_or_else(|| {
        ["apptainer", "singularity"]
            .into_iter()
            .find(|b| which::which(b).is_ok())
            .unwrap_or("apptainer")
            .to_owned()
    })
}

pub(super) async fn connect_singularity(select: &SelectArgs) -> Result<SingularityRuntime, String> {
    let rt = SingularityRuntime::connect(singularity_bin(select))
        .await
        .map_err(|e| error_chain(&e))?;
    Ok(match &select.singularity_prefix {
        Some(prefix) => rt.with_prefix(prefix.split_whitespace().map(str::to_owned)),
        None => rt,
    })
}

/// Connects the chosen engine and probes it. For `auto`, the first that
/// answers of Docker, Podman, Apptainer/Singularity, else the host; for an
/// explicit choice, that engine or the reason it is unusable.
pub(super) async fn connect(select: &SelectArgs) -> (Engine, Result<(), String>) {
    let (engine, probe, _) = connect_tried(select).await;
    (engine, probe)
}

/// [`connect`], with the engines `--runtime auto` tried before the one it
/// returns (the run names them: [`crate::fallback::notice`]).
pub(super) async fn connect_tried(select: &SelectArgs) -> (Engine, Result<(), String>, Vec<Tried>) {
    async fn probed<R: Runtime>(rt: R) -> Result<R, String> {
        rt.probe().await.map(|_| rt).map_err(|e| error_chain(&e))
    }
    let docker = || async {
        probed(
            DockerRuntime::connect()
                .await
                .map_err(|e| error_chain(&e))?,
        )
        .await
    };
    let podman = || async {
        probed(
            PodmanRuntime::connect()
                .await
                .map_err(|e| error_chain(&e))?,
        )
        .await
    };
    let singularity = || async { probed(connect_singularity(select).await?).await };
    let host = || Engine::Host(HostRuntime::new());
    // An engine asked for by name stays that engine when it does not
    // answer: its scenarios are skipped with the reason, not run elsewhere.
    let unavailable = |kind, e: String| {
        (
            Engine::Unavailable(UnavailableRuntime::new(kind, e.clone())),
            Err(e),
        )
    };
    let (engine, probe) = match select.runtime {
        RuntimeChoice::Docker => match docker().await {
            Ok(d) => (Engine::Docker(d), Ok(())),
            Err(e) => unavailable(RuntimeKind::Docker, e),
        },
        RuntimeChoice::Podman => match podman().await {
            Ok(p) => (Engine::Podman(p), Ok(())),
            Err(e) => unavailable(RuntimeKind::Podman, e),
        },
        RuntimeChoice::Singularity => match singularity().await {
            Ok(s) => (Engine::Singularity(s), Ok(())),
            Err(e) => unavailable(RuntimeKind::Singularity, e),
        },
        RuntimeChoice::Host => (host(), Ok(())),
        RuntimeChoice::Auto => {
            let mut tried = Vec::new();
            match docker().await {
                Ok(d) => return (Engine::Docker(d), Ok(()), tried),
                Err(e) => tried.push(Tried::new(RuntimeKind::Docker, e)),
            }
            match podman().await {
                Ok(p) => return (Engine::Podman(p), Ok(()), tried),
                Err(e) => tried.push(Tried::new(RuntimeKind::Podman, e)),
            }
            match singularity().await {
                Ok(s) => return (Engine::Singularity(s), Ok(()), tried),
                Err(e) => tried.push(Tried::new(RuntimeKind::Singularity, e)),
            }
            return (host(), Ok(()), tried);
        }
    };
    (engine, probe, Vec::new())
}

/// The runtime an engine is.
pub(super) fn engine_kind(engine: &Engine) -> RuntimeKind {
    match engine {
        Engine::Docker(_) => RuntimeKind::Docker,
        Engine::Podman(_) => RuntimeKind::Podman,
        Engine::Singularity(_) => RuntimeKind::Singularity,
        Engine::Host(_) => RuntimeKind::Host,
        Engine::Unavailable(u) => u.kind(),
    }
}
