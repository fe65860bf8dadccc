//! The image operations the builders need from Docker Engine or Podman, and
//! the idempotent "make sure this image holds these tags" flow.
//!
//! The main type is [`Engine`]: the engine's runtime for builds (its
//! in-memory contexts and build log handling) plus a bollard client on the
//! same socket for what the [`Runtime`] trait does not offer (labels,
//! tags); Podman answers both through its Docker-compatible API. Its
//! [`Engine::ensure`] skips an image whose tags already name an image with
//! the same recipe label, and otherwise builds it under a
//! scratch tag, moves every final tag onto it, then drops the scratch tag
//! and any image the move left untagged. Scratch tags still present when
//! the work stops (a failure, Ctrl-C) are removed by [`Engine::cleanup`],
//! so a half-built image never survives under a name.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{RemoveImageOptions, TagImageOptions};
use tracing::{debug, warn};

use super::error::ImageBuildError;
use super::labels::{LABEL_RECIPE, LABEL_VERSION};
use super::progress::{ImageStatus, Progress, Step, StepOutcome, StepTimer};
use crate::runtime::{
    BuildOutcome, BuildSpec, DockerRuntime, PodmanRuntime, RunOutcome, RunSpec, Runtime as _,
    RuntimeError,
};

/// Which engine builds images, and where it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageEngine {
    /// Docker Engine at this endpoint, or where `DOCKER_HOST` says (the
    /// local socket when unset).
    Docker(Option<String>),
    /// Podman at this endpoint, or where `QUS_PODMAN_SOCKET` or
    /// `CONTAINER_HOST` says (the rootful socket when unset).
    Podman(Option<String>),
}

impl Default for ImageEngine {
    fn default() -> Self {
        Self::Docker(None)
    }
}

impl ImageEngine {
    /// `docker` or `podman`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Docker(_) => "docker",
            Self::Podman(_) => "podman",
        }
    }
}

/// The runtime that builds.
#[derive(Debug)]
enum Builder {
    Docker(DockerRuntime),
    Podman(PodmanRuntime),
}

impl Builder {
    async fn build(&self, spec: &BuildSpec) -> Result<BuildOutcome, RuntimeError> {
        match self {
            Self::Docker(docker) => docker.build(spec).await,
            Self::Podman(podman) => podman.build(spec).await,
        }
    }

    async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, RuntimeError> {
        match self {
            Self::Docker(docker) => docker.run(spec).await,
            Self::Podman(podman) => podman.run(spec).await,
        }
    }

    fn client(&self) -> &Docker {
        match self {
            Self::Docker(docker) => docker.client(),
            Self::Podman(podman) => podman.client(),
        }
    }
}

/// One image of a report: its tags, id, recipe, and what was done for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// Every tag, primary first.
    pub tags: Vec<String>,
    /// The engine's image id.
    pub id: String,
    /// Its recipe label.
    pub recipe: String,
    /// Whether it was built, retagged or left alone.
    pub status: ImageStatus,
}

/// An image as far as idempotence cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageInfo {
    pub(crate) id: String,
    pub(crate) recipe: Option<String>,
    /// Its `org.opencontainers.image.version` label.
    pub(crate) version: Option<String>,
    pub(crate) repo_tags: Vec<String>,
    /// The platform its config records: `linux/arm64`, `linux/arm/v7`.
    pub(crate) platform: String,
}

/// Docker Engine or Podman, for building and tagging images.
#[derive(Debug)]
pub(crate) struct Engine {
    builder: Builder,
    /// The same engine's Docker-compatible API.
    docker: Docker,
    /// Scratch tags created and not yet removed.
    scratch: Mutex<BTreeSet<String>>,
}

impl Engine {
    /// Connects to the engine `which` names.
    pub(crate) async fn connect(which: &ImageEngine) -> Result<Self, ImageBuildError> {
        let builder = match which {
            ImageEngine::Docker(Some(host)) => {
                Builder::Docker(DockerRuntime::connect_with_host(host).await?)
            }
            ImageEngine::Docker(None) => Builder::Docker(DockerRuntime::connect().await?),
            ImageEngine::Podman(Some(host)) => {
                Builder::Podman(PodmanRuntime::connect_with_host(host).await?)
            }
            ImageEngine::Podman(None) => Builder::Podman(PodmanRuntime::connect().await?),
        };
        // The builder's own connection: the same endpoint, TLS and API
        // version.
        let docker = builder.client().clone();
        Ok(Self {
            builder,
            docker,
            scratch: Mutex::default(),
        })
    }

    /// The engine's Docker-compatible API (for listings).
    pub(crate) fn api(&self) -> &Docker {
        &self.docker
    }

    /// Runs one container to completion (the cross builds' compiler); the
    /// engine removes it. A failing command is an outcome, not an error.
    pub(crate) async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, ImageBuildError> {
        Ok(self.builder.run(spec).await?)
    }

    /// The image `reference` names, or `None` when there is none.
    pub(crate) async fn inspect(
        &self,
        reference: &str,
    ) -> Result<Option<ImageInfo>, ImageBuildError> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => {
                let mut labels = image.config.and_then(|c| c.labels).unwrap_or_default();
                let platform = [image.os, image.architecture, image.variant]
                    .into_iter()
                    .flatten()
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join("/");
                Ok(Some(ImageInfo {
                    id: image.id.unwrap_or_default(),
                    recipe: labels.remove(LABEL_RECIPE),
                    version: labels.remove(LABEL_VERSION),
                    repo_tags: image.repo_tags.unwrap_or_default(),
                    platform,
                }))
            }
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(err) => Err(engine_error("inspect image", reference, err)),
        }
    }

    /// Makes sure every one of `tags` names an image with `recipe`:
    /// nothing to do when they already do (unless `force`), retagging when
    /// one of them does, else building the spec `source()` gives. Reports one
    /// [`Step::Image`].
    pub(crate) async fn ensure<F, Fut>(
        &self,
        tags: &[String],
        recipe: &str,
        force: bool,
        progress: &dyn Progress,
        source: F,
    ) -> Result<BuiltImage, ImageBuildError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<BuildSpec, ImageBuildError>>,
    {
        let timer = StepTimer::start(
            progress,
            Step::Image {
                tags: tags.to_vec(),
            },
        );
        let result = self.ensure_inner(tags, recipe, force, source).await;
        match &result {
            Ok(image) => timer.finish(match image.status {
                ImageStatus::Built => StepOutcome::Done,
                ImageStatus::Retagged => StepOutcome::Skipped {
                    reason: format!("recipe {recipe} already built; tags added"),
                },
                ImageStatus::Unchanged => StepOutcome::Skipped {
                    reason: format!("recipe {recipe} already built"),
                },
            }),
            Err(err) => timer.finish(StepOutcome::Failed {
                message: err.to_string(),
            }),
        }
        result
    }

    async fn ensure_inner<F, Fut>(
        &self,
        tags: &[String],
        recipe: &str,
        force: bool,
        source: F,
    ) -> Result<BuiltImage, ImageBuildError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<BuildSpec, ImageBuildError>>,
    {
        let mut current = Vec::with_capacity(tags.len());
        for tag in tags {
            current.push(self.inspect(tag).await?);
        }
        let built = |id: String, status| BuiltImage {
            tags: tags.to_vec(),
            id,
            recipe: recipe.to_owned(),
            status,
        };
        if !force {
            let matching = current
                .iter()
                .flatten()
                .find(|info| info.recipe.as_deref() == Some(recipe));
            if let Some(info) = matching {
                let id = info.id.clone();
                if current
                    .iter()
                    .all(|c| c.as_ref().is_some_and(|c| c.id == id))
                {
                    return Ok(built(id, ImageStatus::Unchanged));
                }
                self.move_tags(&id, tags, &current).await?;
                return Ok(built(id, ImageStatus::Retagged));
            }
        }
        let primary = tags.first().expect("every image has at least one tag");
        let source = source().await?;
        let scratch = self.scratch_tag(primary);
        let result = match self.make(source, &scratch, recipe, primary).await {
            Ok(()) => self.adopt(&scratch, tags, &current).await,
            Err(err) => Err(err),
        };
        // Only untags when the tags moved; removes the image otherwise.
        self.release_scratch(&scratch).await;
        result.map(|id| built(id, ImageStatus::Built))
    }

    /// Moves `tags` onto the image just made as `scratch`; returns its id.
    async fn adopt(
        &self,
        scratch: &str,
        tags: &[String],
        current: &[Option<ImageInfo>],
    ) -> Result<String, ImageBuildError> {
        let info = self
            .inspect(scratch)
            .await?
            .ok_or_else(|| ImageBuildError::Engine {
                operation: "find the image just made as",
                object: scratch.to_owned(),
                status: None,
                message: "no such image".to_owned(),
            })?;
        self.move_tags(&info.id, tags, current).await?;
        Ok(info.id)
    }

    /// Builds `spec` as `scratch`: its tag is replaced by the scratch tag
    /// and the recipe label is added.
    async fn make(
        &self,
        spec: BuildSpec,
        scratch: &str,
        recipe: &str,
        primary: &str,
    ) -> Result<(), ImageBuildError> {
        let mut spec = spec;
        spec.tag = scratch.to_owned();
        let spec = spec.with_label(LABEL_RECIPE, recipe);
        let outcome = self.builder.build(&spec).await?;
        if outcome.success {
            Ok(())
        } else {
            Err(ImageBuildError::BuildFailed {
                tag: primary.to_owned(),
                output: outcome.output,
            })
        }
    }

    /// Points every tag at image `id`, then removes images the tags left
    /// with no tag at all.
    async fn move_tags(
        &self,
        id: &str,
        tags: &[String],
        previous: &[Option<ImageInfo>],
    ) -> Result<(), ImageBuildError> {
        for tag in tags {
            let (repo, tag_part) = split_reference(tag);
            let options = TagImageOptions {
                repo: Some(repo.to_owned()),
                tag: Some(tag_part.to_owned()),
            };
            self.docker
                .tag_image(id, Some(options))
                .await
                .map_err(|err| engine_error("tag image", tag, err))?;
        }
        let replaced: BTreeSet<&str> = previous
            .iter()
            .flatten()
            .map(|info| info.id.as_str())
            .filter(|old| *old != id)
            .collect();
        for old in replaced {
            self.remove_if_untagged(old).await;
        }
        Ok(())
    }

    /// Removes image `id` if nothing names it any more; an image still
    /// tagged elsewhere or used by a container stays.
    async fn remove_if_untagged(&self, id: &str) {
        match self.inspect(id).await {
            Ok(Some(info)) if info.repo_tags.is_empty() => {
                if let Err(err) = self.remove(id).await {
                    debug!(image = id, error = %err, "kept a replaced image");
                }
            }
            Ok(_) => {}
            Err(err) => debug!(image = id, error = %err, "failed to inspect a replaced image"),
        }
    }

    /// Removes `reference` (untags it when other tags name the image).
    /// An absent image counts as removed.
    pub(crate) async fn remove(&self, reference: &str) -> Result<(), ImageBuildError> {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
            ..RemoveImageOptions::default()
        };
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_)
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(err) => Err(engine_error("remove image", reference, err)),
        }
    }

    /// A fresh scratch tag in `primary`'s repository, recorded for
    /// [`Engine::cleanup`].
    fn scratch_tag(&self, primary: &str) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let (repo, _) = split_reference(primary);
        let tag = format!(
            "{repo}:qus-scratch-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.scratch
            .lock()
            .expect("the scratch set is never poisoned")
            .insert(tag.clone());
        tag
    }

    async fn release_scratch(&self, tag: &str) {
        match self.remove(tag).await {
            Ok(()) => {
                self.scratch
                    .lock()
                    .expect("the scratch set is never poisoned")
                    .remove(tag);
            }
            Err(err) => warn!(tag, error = %err, "failed to remove a scratch tag"),
        }
    }

    /// Removes every scratch tag still present (after a failure or a
    /// cancellation), with the images only they named.
    pub(crate) async fn cleanup(&self) {
        let left: Vec<String> = self
            .scratch
            .lock()
            .expect("the scratch set is never poisoned")
            .iter()
            .cloned()
            .collect();
        for tag in left {
            self.release_scratch(&tag).await;
        }
    }
}

/// `("qus/x", "latest")` from `qus/x:latest`; a reference without a tag
/// gets `latest`. A `:` before the last `/` is a registry port.
pub(crate) fn split_reference(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

pub(crate) fn engine_error(
    operation: &'static str,
    object: &str,
    err: BollardError,
) -> ImageBuildError {
    let (status, message) = match err {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => (Some(status_code), message),
        BollardError::DockerStreamError { error } => (None, error),
        err => (None, err.to_string()),
    };
    ImageBuildError::Engine {
        operation,
        object: object.to_owned(),
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag() {
        assert_eq!(split_reference("qus/x:latest"), ("qus/x", "latest"));
        assert_eq!(
            split_reference("host:5000/qus/x:1"),
            ("host:5000/qus/x", "1")
        );
        assert_eq!(
            split_reference("host:5000/qus/x"),
            ("host:5000/qus/x", "latest")
        );
        assert_eq!(split_reference("x"), ("x", "latest"));
    }
}
