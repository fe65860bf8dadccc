//! What one repository holds in an engine: its tags, with their labels.
//!
//! The main function is [`repository_tags`]; a `--qemu` run reads the
//! image versions a repository offers from it (`qemu::resolve`). It only
//! reads; it builds and removes nothing.

use std::collections::BTreeMap;

use bollard::query_parameters::ListImagesOptions;

use super::engine::{Engine, ImageEngine, engine_error};
use super::error::ImageBuildError;

/// Registry prefixes Podman puts in front of local names.
const LOCAL_PREFIXES: &[&str] = &["localhost/", "docker.io/library/", "docker.io/"];

/// One tag of a repository, and the labels of the image it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryTag {
    /// The tag (`7.2.0-1`), without the repository.
    pub tag: String,
    /// The image's labels (`io.qus.qemu-version`...).
    pub labels: BTreeMap<String, String>,
}

/// Every tag of `repo` in `engine`'s store, sorted by tag.
///
/// # Errors
///
/// The engine does not answer, or refuses the listing.
pub async fn repository_tags(
    engine: &ImageEngine,
    repo: &str,
) -> Result<Vec<RepositoryTag>, ImageBuildError> {
    let engine = Engine::connect(engine).await?;
    tags_in(&engine, repo).await
}

/// Every tag of `repo` in a connected engine's store, sorted by tag.
pub(crate) async fn tags_in(
    engine: &Engine,
    repo: &str,
) -> Result<Vec<RepositoryTag>, ImageBuildError> {
    let images = engine
        .api()
        .list_images(Some(ListImagesOptions::default()))
        .await
        .map_err(|e| engine_error("list the images of", repo, e))?;
    let mut tags: Vec<RepositoryTag> = images
        .into_iter()
        .flat_map(|image| {
            let labels: BTreeMap<String, String> = image.labels.into_iter().collect();
            image
                .repo_tags
                .into_iter()
                .filter_map(|reference| tag_of(&reference, repo).map(str::to_owned))
                .map(move |tag| RepositoryTag {
                    tag,
                    labels: labels.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    tags.dedup_by(|a, b| a.tag == b.tag);
    Ok(tags)
}

/// The tag of `reference` when it is a tag of `repo` (Podman's
/// `localhost/` and `docker.io/` prefixes allowed).
fn tag_of<'a>(reference: &'a str, repo: &str) -> Option<&'a str> {
    let name = LOCAL_PREFIXES
        .iter()
        .find_map(|p| reference.strip_prefix(p))
        .unwrap_or(reference);
    let (repository, tag) = name.rsplit_once(':')?;
    (repository == repo && !tag.contains('/')).then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_with_or_without_podman_prefixes() {
        let repo = "qus/qemu-user-static";
        assert_eq!(
            tag_of("qus/qemu-user-static:7.2.0-1", repo),
            Some("7.2.0-1")
        );
        assert_eq!(
            tag_of("localhost/qus/qemu-user-static:latest", repo),
            Some("latest")
        );
        assert_eq!(
            tag_of("docker.io/qus/qemu-user-static:register", repo),
            Some("register")
        );
        assert_eq!(tag_of("other/qemu-user-static:7.2.0-1", repo), None);
        assert_eq!(tag_of("qus/qemu-user-static-x:7.2.0-1", repo), None);
        assert_eq!(tag_of("<none>:<none>", repo), None);
        assert_eq!(
            tag_of("localhost:5000/qus:1", "localhost:5000/qus"),
            Some("1")
        );
    }
}
