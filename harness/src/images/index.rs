//! [`index`]: one multi-platform name over the images of every host built,
//! pushed to a registry as OCI image indexes.
//!
//! The local engine holds this machine's images in `<repo>` and another
//! host's in `<repo>-<host>` (`host.rs`). A tag of the scheme that exists
//! for several hosts (`latest`, `binfmt`, `register`, `<version>`,
//! `binfmt-<version>`, `<to>`, `<to>-<version>`) becomes an image index over
//! the hosts' images of that tag, one manifest per platform, so `docker run
//! <repo>` picks the one for the machine it runs on; a tag naming the host
//! (`<from>-<to>`, `<from>-<to>-<version>`) is one host's image and is pushed
//! as it is.
//!
//! How, with skopeo (Debian's `skopeo`; no registry is needed to assemble):
//!
//! 1. every distinct image is copied from Docker into an OCI layout of its
//!    own (`skopeo copy docker-daemon:<image> oci:<dir>:image`, layers
//!    gzip-compressed), cached by image id under `<cache>/oci/` (an image id
//!    names its content, so a cached layout never goes stale; layouts of
//!    images the engine no longer has are removed);
//! 2. one layout gets every blob (hard links), an image index per
//!    multi-platform tag (written here, deterministic: the same images give
//!    the same digest) and an `index.json` naming every tag;
//! 3. each tag is pushed with `skopeo copy --all --preserve-digests`, then
//!    read back with `skopeo inspect --raw` and its digest compared.
//!
//! A registry on a loopback address (`127.0.0.1:5000`, `localhost`) is
//! spoken to in plain HTTP, as Docker does; others with TLS verified.
//! Credentials are skopeo's (`$REGISTRY_AUTH_FILE`, containers'
//! `auth.json`, else `~/.docker/config.json`, which `docker login` writes).
//! Docker only: skopeo reads images through Docker's API (`DOCKER_HOST`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};
use qus_registrar::binfmt::HostFacts;

use super::cross::CROSS_TARGETS;
use super::engine::{Engine, ImageEngine};
use super::error::ImageBuildError;
use super::host::{host_repo, platform_of};
use super::listing::tags_in;
use super::oci::{Descriptor, Image, Layout};
use super::paths::default_cache_dir;
use super::progress::{Progress, Step, StepOutcome, StepTimer};
use super::recipe::sha256_bytes;
use super::session;
use super::tags::validate_repo;
use super::tool::{Invocation, SKOPEO};
use super::workdir::WorkDir;

/// Bound on one skopeo command (`latest` is about 370 MB uncompressed).
const SKOPEO_TIMEOUT: Duration = Duration::from_secs(900);

/// The scratch tags a build uses while it runs: never published.
const SCRATCH_PREFIX: &str = "qus-scratch-";

/// What to assemble, and where to push it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexOptions {
    /// The local repository: this machine's images, and other hosts' in
    /// `<repo>-<host>`.
    pub repo: String,
    /// The registry repository the tags are pushed to
    /// (`127.0.0.1:5000/qus/qemu-user-static`, `ghcr.io/o/qemu-user-static`).
    pub destination: String,
    /// Whether to require HTTPS and verify the registry's certificate;
    /// `None`: plain HTTP on a loopback address, verified TLS elsewhere.
    pub tls_verify: Option<bool>,
    /// Where exported layouts are cached (`<cache>/oci/<image id>`).
    pub cache_dir: PathBuf,
    /// Where to create the work directory; `None` is the system temporary
    /// directory.
    pub work_dir: Option<PathBuf>,
    /// How many skopeo commands run at once.
    pub jobs: usize,
    /// Whether Ctrl-C cancels (then cleans up); for CLIs only.
    pub handle_ctrl_c: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            repo: super::DEFAULT_REPO.to_owned(),
            destination: String::new(),
            tls_verify: None,
            cache_dir: default_cache_dir(),
            work_dir: None,
            jobs: 4,
            handle_ctrl_c: false,
        }
    }
}

/// One host whose images were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexHost {
    /// Its CPU (`aarch64`).
    pub machine: String,
    /// The local repository of its images.
    pub repo: String,
    /// Their platform (`linux/arm64`).
    pub platform: String,
    /// How many tags it has.
    pub tags: usize,
}

/// One tag pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedTag {
    /// `<destination>:<tag>`.
    pub reference: String,
    /// The digest the registry serves for it (read back).
    pub digest: String,
    /// Whether it is an image index (else one host's image).
    pub is_index: bool,
    /// The platforms it holds, sorted.
    pub platforms: Vec<String>,
}

/// What [`index`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexReport {
    /// The hosts found, this machine's first.
    pub hosts: Vec<IndexHost>,
    /// Every tag pushed, sorted.
    pub pushed: Vec<PushedTag>,
}

/// Assembles the multi-platform tags of `options.repo` and pushes every
/// tag to `options.destination`.
///
/// Blocking: it runs its own tokio runtime.
///
/// # Errors
///
/// A bad option, no image to push, images of one host with several
/// platforms, skopeo missing or failing (export, push), or a registry
/// serving another digest than the one pushed.
pub fn index(
    options: &IndexOptions,
    progress: &dyn Progress,
) -> Result<IndexReport, ImageBuildError> {
    validate(options)?;
    let running = HostFacts::read(None).machine;
    session::run(
        &ImageEngine::Docker(None),
        options.handle_ctrl_c,
        |engine| async move { index_all(engine, options, &running, progress).await },
    )
}

fn validate(options: &IndexOptions) -> Result<(), ImageBuildError> {
    for (what, value) in [
        ("repository name", &options.repo),
        ("destination", &options.destination),
    ] {
        validate_repo(value).map_err(|reason| ImageBuildError::InvalidOption {
            what,
            value: value.clone(),
            reason,
        })?;
    }
    if options.jobs == 0 {
        return Err(ImageBuildError::InvalidOption {
            what: "job count",
            value: "0".to_owned(),
            reason: "at least one job is needed".to_owned(),
        });
    }
    Ok(())
}

/// Whether `destination`'s registry is on a loopback address, which Docker
/// and skopeo users reach in plain HTTP.
pub(crate) fn is_loopback(destination: &str) -> bool {
    let Some((host, _)) = destination.split_once('/') else {
        return false;
    };
    if !(host.contains(['.', ':']) || host == "localhost") {
        return false;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    name == "localhost" || name == "[::1]" || name.starts_with("127.")
}

/// Whether `tag`, found in host `machine`'s repository, names that host
/// (`<machine>-<to>`, `<machine>-<to>-<version>`) rather than a tag every
/// host has.
pub(crate) fn names_host(tag: &str, machine: &str) -> bool {
    tag.strip_prefix(machine)
        .is_some_and(|rest| rest.starts_with('-'))
}

/// One tag of one host, and its image.
#[derive(Debug, Clone)]
struct Found {
    machine: String,
    tag: String,
    reference: String,
    id: String,
}

async fn index_all(
    engine: Arc<Engine>,
    options: &IndexOptions,
    running: &str,
    progress: &dyn Progress,
) -> Result<IndexReport, ImageBuildError> {
    let (hosts, found) = find_images(&engine, &options.repo, running).await?;
    let parent = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir::create(&parent, "qus-index")?;

    // 1. One layout per distinct image, from the cache or exported.
    let mut distinct: BTreeMap<String, &Found> = BTreeMap::new();
    for f in &found {
        distinct.entry(f.id.clone()).or_insert(f);
    }
    let cache = options.cache_dir.join("oci");
    let exported: BTreeMap<String, (Layout, Image)> = futures_util::stream::iter(distinct.values())
        .map(|f| export(f, &cache, work.path(), progress))
        .buffer_unordered(options.jobs)
        .try_collect()
        .await?;

    // 2. One layout with every blob, the indexes and the tags.
    let merged = Layout::create(work.path().join("oci"))?;
    for (layout, image) in exported.values() {
        merged.adopt(layout, image)?;
    }
    let mut multi: BTreeMap<&str, Vec<&Image>> = BTreeMap::new();
    let mut tags: BTreeMap<String, Descriptor> = BTreeMap::new();
    // Every blob a tag's push uploads or links: its manifests', configs'
    // and layers'.
    let mut blobs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &found {
        let image = &exported[&f.id].1;
        if names_host(&f.tag, &f.machine) {
            tags.insert(f.tag.clone(), image.manifest.clone());
            blobs.insert(f.tag.clone(), image.blobs.clone());
        } else {
            multi.entry(&f.tag).or_default().push(image);
            blobs
                .entry(f.tag.clone())
                .or_default()
                .extend(image.blobs.iter().cloned());
        }
    }
    let mut platforms: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (tag, images) in &multi {
        let mut names: Vec<String> = images.iter().map(|i| i.platform.to_string()).collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(ImageBuildError::InvalidLayout {
                path: merged.dir().to_owned(),
                reason: format!("tag `{tag}` has two images for one platform: {names:?}"),
            });
        }
        let descriptor = merged.write_index(images)?;
        if let Some(list) = blobs.get_mut(*tag) {
            list.push(descriptor.digest.clone());
        }
        tags.insert((*tag).to_owned(), descriptor);
        platforms.insert((*tag).to_owned(), names);
    }
    merged.write_tags(&tags)?;

    // 3. Push every tag and read it back. Tags that share a blob are pushed
    // one after the other: Debian's registry (distribution 2.8) writes its
    // link files in place, and a read racing a second write of the same
    // link fails ("invalid checksum digest format").
    let tls = options
        .tls_verify
        .unwrap_or_else(|| !is_loopback(&options.destination));
    let groups = share_blobs(&blobs);
    let pushed: Vec<Vec<PushedTag>> = futures_util::stream::iter(groups)
        .map(|group| {
            let (merged, tags, platforms, found, exported) =
                (&merged, &tags, &platforms, &found, &exported);
            async move {
                let mut done = Vec::with_capacity(group.len());
                for tag in group {
                    let descriptor = &tags[&tag];
                    let reference = format!("{}:{tag}", options.destination);
                    let platforms = platforms.get(&tag).cloned().unwrap_or_else(|| {
                        let host = found
                            .iter()
                            .find(|f| f.tag == tag)
                            .map(|f| &exported[&f.id].1);
                        host.map(|i| vec![i.platform.to_string()])
                            .unwrap_or_default()
                    });
                    push(merged, &tag, &reference, descriptor, tls, progress).await?;
                    done.push(PushedTag {
                        reference,
                        digest: descriptor.digest.clone(),
                        is_index: descriptor.media_type == super::oci::INDEX,
                        platforms,
                    });
                }
                Ok::<_, ImageBuildError>(done)
            }
        })
        .buffer_unordered(options.jobs)
        .try_collect()
        .await?;
    let mut pushed: Vec<PushedTag> = pushed.into_iter().flatten().collect();
    pushed.sort_by(|a, b| a.reference.cmp(&b.reference));

    prune_cache(&engine, &cache).await;
    Ok(IndexReport { hosts, pushed })
}

/// `blobs`' tags in groups, each holding every tag that shares a blob with
/// another of the group (transitively); groups and their tags sorted.
pub(crate) fn share_blobs(blobs: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    let tags: Vec<&String> = blobs.keys().collect();
    let mut parent: Vec<usize> = (0..tags.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, tag) in tags.iter().enumerate() {
        for blob in &blobs[*tag] {
            match owner.get(blob.as_str()) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    owner.insert(blob, i);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (i, tag) in tags.iter().enumerate() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push((*tag).clone());
    }
    groups.into_values().collect()
}

/// Every tag of every host's repository, with its image; the hosts found.
async fn find_images(
    engine: &Engine,
    repo: &str,
    running: &str,
) -> Result<(Vec<IndexHost>, Vec<Found>), ImageBuildError> {
    let mut candidates = vec![(running.to_owned(), repo.to_owned())];
    for target in CROSS_TARGETS.iter().filter(|t| t.machine != running) {
        candidates.push((target.machine.to_owned(), host_repo(repo, target.machine)));
    }
    let (mut hosts, mut found) = (Vec::new(), Vec::new());
    for (machine, host_repo) in candidates {
        let tags: Vec<String> = tags_in(engine, &host_repo)
            .await?
            .into_iter()
            .map(|t| t.tag)
            .filter(|t| !t.starts_with(SCRATCH_PREFIX))
            .collect();
        if tags.is_empty() {
            continue;
        }
        let wanted = platform_of(&machine).unwrap_or_default();
        for tag in &tags {
            let reference = format!("{host_repo}:{tag}");
            let info =
                engine
                    .inspect(&reference)
                    .await?
                    .ok_or_else(|| ImageBuildError::Engine {
                        operation: "inspect image",
                        object: reference.clone(),
                        status: Some(404),
                        message: "no such image".to_owned(),
                    })?;
            if !wanted.is_empty() && info.platform.split('/').take(2).ne(wanted.split('/')) {
                return Err(ImageBuildError::WrongPlatform {
                    tag: reference,
                    expected: wanted.to_owned(),
                    actual: info.platform,
                });
            }
            found.push(Found {
                machine: machine.clone(),
                tag: tag.clone(),
                reference,
                id: info.id,
            });
        }
        hosts.push(IndexHost {
            machine,
            repo: host_repo,
            platform: wanted.to_owned(),
            tags: tags.len(),
        });
    }
    if hosts.is_empty() {
        return Err(ImageBuildError::InvalidOption {
            what: "repository name",
            value: repo.to_owned(),
            reason: format!(
                "neither it nor `{}` holds an image; build them with `qus-harness images build \
                 [--host-arch CPU]`",
                host_repo(repo, "<host>")
            ),
        });
    }
    Ok((hosts, found))
}

/// The layout of `found`'s image: cached, or exported by skopeo into the
/// cache.
async fn export(
    found: &Found,
    cache: &Path,
    work: &Path,
    progress: &dyn Progress,
) -> Result<(String, (Layout, Image)), ImageBuildError> {
    let hex = found.id.strip_prefix("sha256:").unwrap_or(&found.id);
    let dir = cache.join(hex);
    let timer = StepTimer::start(
        progress,
        Step::ExportImage {
            image: found.reference.clone(),
            layout: dir.clone(),
        },
    );
    if let Ok(image) = Layout::at(&dir).only_image() {
        timer.finish(StepOutcome::Skipped {
            reason: "its layout is cached".to_owned(),
        });
        return Ok((found.id.clone(), (Layout::at(&dir), image)));
    }
    let result = async {
        // Exported beside the cache, checked, then renamed into place: the
        // cache never holds a partial layout.
        let staging = WorkDir::create(cache, ".export")?;
        let layout_dir = staging.path().join("layout");
        Invocation::new(SKOPEO)
            .args(["copy", "--quiet"])
            .arg(format!("docker-daemon:{}", found.reference))
            .arg(format!("oci:{}:image", layout_dir.display()))
            // Its temporary copy of the image (`docker save`) is big.
            .env("TMPDIR", work)
            .timeout(SKOPEO_TIMEOUT)
            .output()
            .await?;
        let image = Layout::at(&layout_dir).only_image()?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(ImageBuildError::io("remove", &dir))?;
        }
        std::fs::rename(&layout_dir, &dir)
            .map_err(ImageBuildError::io("move into the cache", &dir))?;
        Ok((found.id.clone(), (Layout::at(&dir), image)))
    }
    .await;
    timer.done(result)
}

/// Pushes `tag` of `layout` to `reference`, then checks the registry
/// serves `descriptor`'s digest for it.
async fn push(
    layout: &Layout,
    tag: &str,
    reference: &str,
    descriptor: &Descriptor,
    tls: bool,
    progress: &dyn Progress,
) -> Result<(), ImageBuildError> {
    let timer = StepTimer::start(
        progress,
        Step::PushTag {
            reference: reference.to_owned(),
        },
    );
    let result = async {
        Invocation::new(SKOPEO)
            .args(["copy", "--quiet", "--all", "--preserve-digests"])
            .arg(format!("--dest-tls-verify={tls}"))
            .arg(format!("oci:{}:{tag}", layout.dir().display()))
            .arg(format!("docker://{reference}"))
            .timeout(SKOPEO_TIMEOUT)
            .output()
            .await?;
        let raw = Invocation::new(SKOPEO)
            .args(["inspect", "--raw"])
            .arg(format!("--tls-verify={tls}"))
            .arg(format!("docker://{reference}"))
            .timeout(SKOPEO_TIMEOUT)
            .output()
            .await?
            .stdout;
        let served = format!("sha256:{}", sha256_bytes(&raw));
        if served == descriptor.digest {
            Ok(())
        } else {
            Err(ImageBuildError::InvalidLayout {
                path: layout.dir().to_owned(),
                reason: format!(
                    "the registry serves `{reference}` as {served}, not the pushed {}",
                    descriptor.digest
                ),
            })
        }
    }
    .await;
    timer.done(result)
}

/// Removes cached layouts of images the engine no longer has (their ids
/// will never be asked for again). Failures are only logged.
async fn prune_cache(engine: &Engine, cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.len() != 64 || !name.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        if let Ok(None) = engine.inspect(&format!("sha256:{name}")).await
            && let Err(err) = std::fs::remove_dir_all(entry.path())
        {
            tracing::debug!(layout = %entry.path().display(), error = %err, "kept a stale layout");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::tags::{binfmt_tags, latest_tags, register_tags, target_tags};

    #[test]
    fn tags_sharing_a_blob_are_pushed_in_one_group() {
        let blobs: BTreeMap<String, Vec<String>> = [
            ("a", vec!["1", "2"]),
            ("b", vec!["3"]),
            ("c", vec!["2", "4"]),
            ("d", vec!["4"]),
            ("e", vec!["5"]),
        ]
        .into_iter()
        .map(|(t, b)| (t.to_owned(), b.into_iter().map(str::to_owned).collect()))
        .collect();
        assert_eq!(
            share_blobs(&blobs),
            [vec!["a", "c", "d"], vec!["b"], vec!["e"]]
        );
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        for yes in [
            "127.0.0.1:5000/qus/q",
            "localhost:5000/q",
            "localhost/q",
            "127.1.2.3/q",
            "[::1]:5000/q",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "ghcr.io/o/q",
            "qus/qemu-user-static",
            "registry.example:5000/q",
            "q",
            "localhostile.example/q",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn only_the_from_to_tags_name_a_host() {
        let version = "7.2.0-1";
        for (from, to) in [
            ("x86_64", "aarch64"),
            ("aarch64", "x86_64"),
            ("aarch64", "aarch64_be"),
        ] {
            let tags = target_tags("r", from, to, version);
            let named: Vec<bool> = tags
                .iter()
                .map(|t| names_host(t.rsplit_once(':').unwrap().1, from))
                .collect();
            assert_eq!(named, [true, true, false, false], "{from} {to}: {tags:?}");
        }
        for tag in latest_tags("r", version)
            .into_iter()
            .chain(binfmt_tags("r", version))
            .chain(register_tags("r"))
        {
            let tag = tag.rsplit_once(':').unwrap().1.to_owned();
            for host in ["x86_64", "aarch64", "s390x"] {
                assert!(!names_host(&tag, host), "{tag} on {host}");
            }
        }
        // `<to>-<version>` of an aarch64 host whose `<to>` is x86_64 is no
        // x86_64 host's tag in that host's repository.
        assert!(!names_host("x86_64-7.2.0-1", "aarch64"));
    }
}
