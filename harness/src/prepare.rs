//! Preparing a run: building the images it needs that qus can build and
//! the engine lacks, before anything runs.
//!
//! Scenarios refer to two kinds of images nobody else provides:
//!
//! - the registrar images `qus-harness images build` makes, in the
//!   repository `qus/qemu-user-static` or the one the instance's `QUS_REPO`
//!   variable names (`<repo>:latest`, `<repo>:register`,
//!   `<repo>:x86_64-aarch64`...);
//! - the fixtures `qus-harness images fixtures` makes: Debian root
//!   filesystems `qus-fixtures/<debian arch>:<suite>`, the workload ones
//!   `qus-fixtures/workload-<debian arch>:<suite>` and probe images
//!   `qus-fixtures/probe:<target>`.
//!
//! [`prepare_run`] does it all for a plan: [`referenced_images`] lists what
//! runnable instances refer to (minus what their own `build` steps
//! produce); the engine is asked which of those it lacks;
//! [`PrepareNeeds::of`] sorts those into what to build and what qus cannot
//! build (public images: the harness never pulls); [`prepare`] builds them
//! with Docker, as the `images` commands do (idempotent by recipe, root
//! filesystems cached); Podman then gets a copy of what it lacks from
//! Docker, and of qus's own images where its copy is not Docker's image
//! (an older `latest`), and Apptainer unpacks Docker's images when it runs them. Where
//! Docker does not answer, Podman builds what it lacks itself.

use std::collections::{BTreeMap, BTreeSet};

use crate::images::{
    self, BuildOptions, DEFAULT_FIXTURE_REPO, DEFAULT_REPO, DebianArch, FixtureOptions, Flavor,
    ImageBuildError, ImageEngine, Progress,
};
use crate::plan::Planned;
use crate::runner::error_chain;
use crate::runtime::{
    DockerRuntime, PodmanRuntime, Runtime, containerfile_in, copy_image_from_docker,
};
use crate::scenario::{Action, BuildSource, Instance, Registrar};

/// The variable naming the registrar images' repository in scenarios.
pub const REPO_VARIABLE: &str = "QUS_REPO";

/// The repository of the probe images under the fixture prefix.
const PROBE_REPOSITORY: &str = "probe";

/// The images the runnable instances of `planned` refer to (`run`,
/// `register` and `reset` images, `FROM` lines of inline Containerfiles),
/// except those a `build` step of the same instance tags, with the
/// registrar repositories those instances use ([`REPO_VARIABLE`] and the
/// default).
pub fn referenced_images(planned: &[Planned]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut images = BTreeSet::new();
    let mut repos = BTreeSet::from([DEFAULT_REPO.to_owned()]);
    for p in planned.iter().filter(|p| p.skip.is_none()) {
        images.extend(instance_images(&p.instance));
        repos.extend(p.instance.variables.get(REPO_VARIABLE).cloned());
    }
    (images, repos)
}

/// The images one instance refers to and does not build itself.
fn instance_images(instance: &Instance) -> BTreeSet<String> {
    let (mut used, mut built) = (BTreeSet::new(), BTreeSet::new());
    let steps = instance
        .setup
        .iter()
        .chain(&instance.steps)
        .chain(&instance.teardown);
    for step in steps {
        match &step.action {
            Action::Run(r) => {
                used.insert(r.image.clone());
            }
            Action::Register(r) => {
                if let Registrar::Image(image) = &r.registrar {
                    used.insert(image.clone());
                }
            }
            Action::Reset(r) => used.extend(r.image.clone()),
            Action::Probe(p) => {
                used.insert(p.image.clone());
            }
            Action::Build(b) => {
                let text = match &b.source {
                    BuildSource::Containerfile(text) => Some(text.clone()),
                    // Unreadable: the build step reports it.
                    BuildSource::Context(dir) => {
                        containerfile_in(dir).and_then(|path| std::fs::read_to_string(path).ok())
                    }
                };
                used.extend(text.as_deref().map(base_images).unwrap_or_default());
                built.extend(b.tag.clone());
            }
            Action::Binfmt(_) | Action::Exec(_) => {}
        }
    }
    used.retain(|image| !built.contains(image));
    used
}

/// The images a Containerfile builds from: `FROM` lines and `COPY
/// --from=`, except `scratch`, earlier stages (by name or index) and
/// references to build arguments (`${BASE}`), which only the build knows.
pub fn base_images(containerfile: &str) -> Vec<String> {
    let mut stages: BTreeSet<String> = BTreeSet::new();
    let mut images = Vec::new();
    let mut add = |image: &str, stages: &BTreeSet<String>| {
        let is_stage =
            stages.contains(&image.to_ascii_lowercase()) || image.parse::<usize>().is_ok();
        if image != "scratch" && !is_stage && !image.contains('$') {
            images.push(image.to_owned());
        }
    };
    for line in containerfile.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(instruction) = words.first() else {
            continue;
        };
        if instruction.eq_ignore_ascii_case("FROM") {
            let rest: Vec<&str> = words[1..]
                .iter()
                .copied()
                .filter(|w| !w.starts_with("--"))
                .collect();
            if let Some(image) = rest.first() {
                add(image, &stages);
            }
            if let [_, alias_keyword, alias, ..] = rest.as_slice()
                && alias_keyword.eq_ignore_ascii_case("AS")
            {
                stages.insert(alias.to_ascii_lowercase());
            }
        } else if instruction.eq_ignore_ascii_case("COPY") {
            for source in words[1..].iter().filter_map(|w| w.strip_prefix("--from=")) {
                add(source, &stages);
            }
        }
    }
    images
}

/// What to build for a set of absent images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrepareNeeds {
    /// Registrar repositories to run `images build` for.
    pub registrar_repos: BTreeSet<String>,
    /// Root filesystems to make, by Debian suite.
    pub rootfs: BTreeMap<String, BTreeSet<DebianArch>>,
    /// Workload root filesystems (`workload-<arch>`) to make, by suite.
    pub workloads: BTreeMap<String, BTreeSet<DebianArch>>,
    /// Whether probe images are needed.
    pub probes: bool,
    /// The absent images qus builds, in order.
    pub buildable: Vec<String>,
    /// The absent images qus does not build (they must be pulled or loaded
    /// by hand; the harness never pulls).
    pub foreign: Vec<String>,
}

impl PrepareNeeds {
    /// Sorts `absent` images: registrar images of one of `registrar_repos`,
    /// fixtures under `qus-fixtures/`, and the rest.
    pub fn of<'a>(
        absent: impl IntoIterator<Item = &'a str>,
        registrar_repos: &BTreeSet<String>,
    ) -> Self {
        let mut needs = Self::default();
        for image in absent {
            let (repository, tag) = split_reference(image);
            let fixture = repository
                .strip_prefix(DEFAULT_FIXTURE_REPO)
                .and_then(|rest| rest.strip_prefix('/'));
            if registrar_repos.contains(repository) {
                needs.registrar_repos.insert(repository.to_owned());
            } else if fixture == Some(PROBE_REPOSITORY) {
                needs.probes = true;
            } else if let Some((flavor, arch)) = fixture.and_then(Flavor::parse_stem) {
                let by_suite = match flavor {
                    Flavor::Base => &mut needs.rootfs,
                    Flavor::Workload => &mut needs.workloads,
                };
                by_suite.entry(tag.to_owned()).or_default().insert(arch);
            } else {
                needs.foreign.push(image.to_owned());
                continue;
            }
            needs.buildable.push(image.to_owned());
        }
        needs
    }

    /// Whether there is anything to build.
    pub fn is_empty(&self) -> bool {
        self.buildable.is_empty()
    }
}

/// `repository` and `tag` of an image reference (`latest` when untagged; a
/// `:` in a registry's port is not a tag).
fn split_reference(image: &str) -> (&str, &str) {
    let name = image.split('@').next().unwrap_or(image);
    match name.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, tag),
        _ => (name, "latest"),
    }
}

/// Builds what `needs` says with `engine`: `images build` per registrar
/// repository, then `images fixtures` per suite (probe images with the
/// first). Blocking; call it outside any async runtime.
///
/// # Errors
///
/// The first build that fails, as the `images` commands report it.
pub fn prepare(
    needs: &PrepareNeeds,
    engine: &ImageEngine,
    progress: &dyn Progress,
) -> Result<(), ImageBuildError> {
    for repo in &needs.registrar_repos {
        let options = BuildOptions {
            repo: repo.clone(),
            engine: engine.clone(),
            handle_ctrl_c: true,
            ..BuildOptions::default()
        };
        images::build(&options, progress)?;
    }
    // Base and workload root filesystems, by suite.
    let mut suites: BTreeMap<String, RootfsLists> = BTreeMap::new();
    for (suite, arches) in &needs.rootfs {
        suites.entry(suite.clone()).or_default().base.extend(arches);
    }
    for (suite, arches) in &needs.workloads {
        suites
            .entry(suite.clone())
            .or_default()
            .workload
            .extend(arches);
    }
    if needs.probes && suites.is_empty() {
        let default = FixtureOptions::default().suite;
        suites.insert(default, RootfsLists::default());
    }
    for (i, (suite, RootfsLists { base, workload })) in suites.into_iter().enumerate() {
        let defaults = FixtureOptions::default();
        let options = FixtureOptions {
            arches: base,
            workloads: workload,
            suite,
            probes_dir: defaults
                .probes_dir
                .clone()
                .filter(|_| needs.probes && i == 0),
            engine: engine.clone(),
            handle_ctrl_c: true,
            ..defaults
        };
        images::fixtures(&options, progress)?;
    }
    Ok(())
}

/// The root filesystems of one suite to make, by flavour.
#[derive(Debug, Default)]
struct RootfsLists {
    base: Vec<DebianArch>,
    workload: Vec<DebianArch>,
}

/// Where the run's images must be.
#[derive(Debug, Clone, Copy)]
pub enum ImageStore<'a> {
    /// Docker's store.
    Docker(&'a DockerRuntime),
    /// Podman's own store, filled from Docker's, or built by Podman where
    /// Docker does not answer.
    Podman(&'a PodmanRuntime),
    /// Docker's store, read by another runtime (Apptainer unpacks Docker's
    /// images into sandboxes).
    FromDocker,
    /// No images: the host runtime, or an unusable engine.
    None,
}

/// What [`prepare_run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Images that were absent and are qus's: built (or found up to date)
    /// with Docker, or with Podman where Docker does not answer.
    pub built: Vec<String>,
    /// Images copied from Docker into Podman: absent there, or (qus's own)
    /// another image than Docker's under the same name.
    pub copied: Vec<String>,
    /// Absent images qus does not build; the steps that use them will fail.
    pub foreign: Vec<String>,
}

/// Why [`prepare_run`] could not make the images present.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Images qus builds are missing, and Docker, which builds them, does
    /// not answer.
    #[error("the run needs images that qus builds with Docker, which does not answer: {reason}")]
    DockerUnreachable {
        /// The images.
        missing: Vec<String>,
        /// Docker's error.
        reason: String,
    },
    /// A build failed.
    #[error("failed to prepare the images the run needs")]
    Build(#[source] ImageBuildError),
    /// Podman lacks an image Docker has, and the copy failed.
    #[error("failed to copy `{image}` from docker to podman: {reason}")]
    Copy {
        /// The image.
        image: String,
        /// The copy's error.
        reason: String,
    },
}

/// Makes the images the runnable instances of `planned` refer to present in
/// `store`: builds those qus builds and the store lacks (calling `announce`
/// with them and the engine that builds first), then, for Podman, copies
/// from Docker what it lacks; a Podman store builds for itself when Docker
/// does not answer. Images nobody here can provide are returned in
/// [`Prepared::foreign`].
///
/// Blocking: the engine queries run on `tokio`, the builds on their own
/// runtimes; call it outside any async context.
///
/// # Errors
///
/// [`PrepareError`]: Docker unreachable when a build is needed, a failed
/// build, a failed copy to Podman.
pub fn prepare_run(
    tokio: &tokio::runtime::Runtime,
    store: ImageStore<'_>,
    planned: &[Planned],
    announce: &mut dyn FnMut(&PrepareNeeds, &ImageEngine),
    progress: &dyn Progress,
) -> Result<Prepared, PrepareError> {
    let (images, repos) = referenced_images(planned);
    // Podman's copies of qus's own images are brought up to date with
    // Docker's too: a tag such as `latest` moves to another QEMU when the
    // images are rebuilt, and a stale copy would test the old one.
    let own: Vec<String> = match store {
        ImageStore::Podman(_) => {
            PrepareNeeds::of(images.iter().map(String::as_str), &repos).buildable
        }
        _ => Vec::new(),
    };
    let lacking: Vec<String> = match store {
        ImageStore::None => Vec::new(),
        ImageStore::Docker(_) | ImageStore::FromDocker => images.into_iter().collect(),
        // Podman may have them without Docker (loaded by hand).
        ImageStore::Podman(podman) => tokio.block_on(absent_from(podman, images)),
    };
    if lacking.is_empty() && own.is_empty() {
        return Ok(Prepared::default());
    }
    let docker = tokio.block_on(async {
        match store {
            ImageStore::Docker(docker) => Ok(docker.clone()),
            _ => DockerRuntime::connect().await.map_err(|e| error_chain(&e)),
        }
    });
    // Docker builds when it answers (Podman then copies from it); without
    // Docker, a Podman store builds for itself.
    let (builder, absent, docker) = match (docker, store) {
        (Ok(docker), _) => (
            ImageEngine::Docker(Some(docker.endpoint().to_owned())),
            tokio.block_on(absent_from(&docker, lacking.iter().cloned())),
            Some(docker),
        ),
        (Err(_), ImageStore::Podman(podman)) => (
            ImageEngine::Podman(Some(podman.endpoint().to_owned())),
            lacking.clone(),
            None,
        ),
        // Nothing lacking, and no Docker to compare Podman's copies with.
        (Err(_), _) if lacking.is_empty() => return Ok(Prepared::default()),
        (Err(reason), _) => {
            let needs = PrepareNeeds::of(lacking.iter().map(String::as_str), &repos);
            if needs.is_empty() {
                return Ok(Prepared {
                    foreign: needs.foreign,
                    ..Prepared::default()
                });
            }
            return Err(PrepareError::DockerUnreachable {
                missing: needs.buildable,
                reason,
            });
        }
    };
    let needs = PrepareNeeds::of(absent.iter().map(String::as_str), &repos);
    if !needs.is_empty() {
        announce(&needs, &builder);
        prepare(&needs, &builder, progress).map_err(PrepareError::Build)?;
    }
    let mut copied = Vec::new();
    if let (ImageStore::Podman(podman), Some(docker)) = (store, &docker) {
        let foreign: BTreeSet<&String> = needs.foreign.iter().collect();
        let sync: BTreeSet<&String> = lacking
            .iter()
            .filter(|i| !foreign.contains(i))
            .chain(&own)
            .collect();
        for image in sync {
            let copy = tokio
                .block_on(copy_image_from_docker(docker, podman, image))
                .map_err(|e| PrepareError::Copy {
                    image: image.clone(),
                    reason: error_chain(&e),
                })?;
            if copy {
                copied.push(image.clone());
            }
        }
    }
    Ok(Prepared {
        built: needs.buildable,
        copied,
        foreign: needs.foreign,
    })
}

/// The `images` that `runtime` does not have; an unanswered question counts
/// as absent (building is idempotent).
async fn absent_from<R: Runtime>(
    runtime: &R,
    images: impl IntoIterator<Item = String>,
) -> Vec<String> {
    let mut absent = Vec::new();
    for image in images {
        if !runtime.image_exists(&image).await.unwrap_or(false) {
            absent.push(image);
        }
    }
    absent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repos(extra: &[&str]) -> BTreeSet<String> {
        std::iter::once(DEFAULT_REPO)
            .chain(extra.iter().copied())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn absent_images_are_sorted_by_who_builds_them() {
        let absent = [
            "qus/qemu-user-static:latest",
            "qus/qemu-user-static:register",
            "me/qus:x86_64-aarch64",
            "qus-fixtures/arm64:bookworm",
            "qus-fixtures/s390x:bookworm",
            "qus-fixtures/armhf:trixie",
            "qus-fixtures/probe:riscv64",
            "qus-fixtures/workload-arm64:bookworm",
            "qus-fixtures/workload-amd64:bookworm",
            "arm64v8/ubuntu",
            "qus-fixtures/sparc:bookworm",
            "qus-fixtures/workload-sparc:bookworm",
            "other/qemu-user-static:latest",
            "qus-fixturesx/arm64:bookworm",
        ];
        let needs = PrepareNeeds::of(absent, &repos(&["me/qus"]));
        assert_eq!(
            needs.registrar_repos,
            BTreeSet::from(["me/qus".to_owned(), "qus/qemu-user-static".to_owned()])
        );
        assert_eq!(
            needs.rootfs,
            BTreeMap::from([
                (
                    "bookworm".to_owned(),
                    BTreeSet::from([DebianArch::Arm64, DebianArch::S390x])
                ),
                ("trixie".to_owned(), BTreeSet::from([DebianArch::Armhf])),
            ])
        );
        assert_eq!(
            needs.workloads,
            BTreeMap::from([(
                "bookworm".to_owned(),
                BTreeSet::from([DebianArch::Amd64, DebianArch::Arm64])
            )])
        );
        assert!(needs.probes);
        assert_eq!(needs.buildable, absent[..9]);
        // No Debian architecture is called `sparc`; nobody else's
        // repository is ours.
        assert_eq!(needs.foreign, absent[9..]);
    }

    #[test]
    fn nothing_absent_needs_nothing() {
        let needs = PrepareNeeds::of([], &repos(&[]));
        assert!(needs.is_empty());
        assert_eq!(needs, PrepareNeeds::default());
        let public = PrepareNeeds::of(["i386/ubuntu"], &repos(&[]));
        assert!(public.is_empty());
        assert_eq!(public.foreign, ["i386/ubuntu"]);
    }

    #[test]
    fn references_split_at_the_tag_not_the_port() {
        assert_eq!(
            split_reference("qus-fixtures/arm64:bookworm"),
            ("qus-fixtures/arm64", "bookworm")
        );
        assert_eq!(
            split_reference("arm64v8/ubuntu"),
            ("arm64v8/ubuntu", "latest")
        );
        assert_eq!(
            split_reference("localhost:5000/qus"),
            ("localhost:5000/qus", "latest")
        );
        assert_eq!(
            split_reference("localhost:5000/qus:register"),
            ("localhost:5000/qus", "register")
        );
        assert_eq!(
            split_reference("qus/qemu-user-static@sha256:abc"),
            ("qus/qemu-user-static", "latest")
        );
    }

    fn planned(yaml: &str, skip: Option<&str>) -> Vec<Planned> {
        let scenario = crate::scenario::load_str("test.yaml", yaml).unwrap();
        crate::scenario::expand(&scenario, &crate::scenario::VarOverrides::new())
            .unwrap()
            .into_iter()
            .map(|instance| Planned {
                instance,
                skip: skip.map(str::to_owned),
            })
            .collect()
    }

    #[test]
    fn every_step_kind_refers_to_images_but_what_the_instance_builds() {
        let yaml = r#"
apiVersion: qus/v1
name: uses
vars: { QUS_REPO: me/qus }
setup:
  - register: { image: "${QUS_REPO}:latest", args: [--reset] }
steps:
  - reset: { image: "${QUS_REPO}:register" }
  - build:
      containerfile: "FROM qus-fixtures/arm64:bookworm\nRUN true\n"
      tag: local/built
  - run: { image: local/built, command: [true] }
  - run: { image: "qus-fixtures/probe:${ARCH}", command: [true] }
  - exec: { command: [true] }
matrix:
  ARCH: [riscv64, s390x]
teardown:
  - run: { image: arm64v8/ubuntu, command: [true] }
"#;
        let (images, repos) = referenced_images(&planned(yaml, None));
        assert_eq!(
            images.into_iter().collect::<Vec<_>>(),
            [
                "arm64v8/ubuntu",
                "me/qus:latest",
                "me/qus:register",
                "qus-fixtures/arm64:bookworm",
                "qus-fixtures/probe:riscv64",
                "qus-fixtures/probe:s390x",
            ]
        );
        assert_eq!(repos, super::tests::repos(&["me/qus"]));
        // Skipped instances need nothing.
        let (images, _) = referenced_images(&planned(yaml, Some("not here")));
        assert!(images.is_empty());
    }

    #[test]
    fn base_images_are_from_lines_and_copy_sources_but_not_stages() {
        let text = "FROM --platform=linux/arm64 qus-fixtures/arm64:bookworm AS Base\n\
                    RUN true\nfrom scratch\nFROM base\n\
                    COPY --from=base /a /a\nCOPY --from=0 /b /b\n\
                    COPY --chown=1:1 --from=qus/qemu-user-static:x86_64-aarch64 /c /c\n\
                    ARG BASE=x\nFROM ${BASE}\nFROM qus/qemu-user-static:register\n";
        assert_eq!(
            base_images(text),
            [
                "qus-fixtures/arm64:bookworm",
                "qus/qemu-user-static:x86_64-aarch64",
                "qus/qemu-user-static:register"
            ]
        );
    }

    #[test]
    fn directory_builds_are_read_for_their_base_images() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Containerfile"),
            "FROM qus-fixtures/s390x:bookworm\n",
        )
        .unwrap();
        let yaml = format!(
            "apiVersion: qus/v1\nname: dir\nsteps:\n  - build: {{ context: {} }}\n  \
             - build: {{ context: /nonexistent/qus }}\n",
            dir.path().display()
        );
        let (images, _) = referenced_images(&planned(&yaml, None));
        assert_eq!(
            images.into_iter().collect::<Vec<_>>(),
            ["qus-fixtures/s390x:bookworm"]
        );
    }
}
