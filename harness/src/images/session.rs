//! The blocking shell around the async builders: a tokio runtime, the
//! engine connection, Ctrl-C, and the cleanup that runs whatever happens.
//!
//! [`run`] is what [`build`](super::build) and [`fixtures`](super::fixtures)
//! call. When the work fails or is cancelled, its future is dropped first
//! (which kills the commands it runs, removes its temporary directories and
//! restores binfmt_misc through their guards), then scratch tags left in
//! the engine are removed.

use std::future::Future;
use std::sync::Arc;

use super::engine::{Engine, ImageEngine};
use super::error::ImageBuildError;

/// Runs `work` on a fresh multi-threaded runtime with a connected engine.
///
/// With `handle_ctrl_c`, Ctrl-C abandons the work and returns
/// [`ImageBuildError::Cancelled`] after cleaning up. (Tokio keeps its
/// SIGINT handler for the rest of the process, so only a CLI should ask
/// for this.)
///
/// # Panics
///
/// When called from inside an async runtime (tokio forbids nesting one).
pub(crate) fn run<T, F, Fut>(
    engine: &ImageEngine,
    handle_ctrl_c: bool,
    work: F,
) -> Result<T, ImageBuildError>
where
    F: FnOnce(Arc<Engine>) -> Fut,
    Fut: Future<Output = Result<T, ImageBuildError>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("qus-images")
        .build()
        .map_err(|source| ImageBuildError::Spawn {
            program: "the tokio runtime".to_owned(),
            source,
        })?;
    runtime.block_on(async {
        let engine = Arc::new(Engine::connect(engine).await?);
        let work = work(Arc::clone(&engine));
        let result = if handle_ctrl_c {
            tokio::select! {
                result = work => result,
                Ok(()) = tokio::signal::ctrl_c() => Err(ImageBuildError::Cancelled),
            }
        } else {
            work.await
        };
        engine.cleanup().await;
        result
    })
}
