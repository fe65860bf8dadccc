//! The cross builder images: `qus-builders/rust-cross:<suite>-<arch>`,
//! Debian's Rust toolchain plus one target's standard library and cross
//! gcc, built without a registry.
//!
//! The main items are [`BuilderPlan`] (tag, recipe and base root filesystem
//! of one target's builder) and [`ensure_builder`]. The image is
//! `images/rust-cross.Containerfile` over a `debootstrap --variant=minbase`
//! root filesystem of this host's architecture, cached as a tarball keyed
//! by recipe in `<cache>/builders/` (apart from the fixtures' `rootfs/`, so
//! that an amd64 fixture and the builder never replace each other's
//! tarball). The image's recipe label hashes that tarball's recipe, the
//! Containerfile and the target; an image with the same recipe is reused.
//! Nothing here compiles the registrar (`cross.rs` does).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::containerfile;
use super::cross::CrossTarget;
use super::engine::{BuiltImage, Engine};
use super::error::ImageBuildError;
use super::labels::{
    LABEL_CREATED, LABEL_DEBIAN_ARCH, LABEL_DESCRIPTION, LABEL_QEMU_TARGET, LABEL_SOURCE,
    LABEL_TITLE, SOURCE_URL, build_time, rfc3339,
};
use super::progress::Progress;
use super::recipe::Recipe;
use super::rootfs::{DebianArch, Flavor, RootfsRecipe, ensure_tarball_at};
use crate::runtime::{BuildSpec, ContextFile};

/// The repository of the builder images.
pub const BUILDER_REPO: &str = "qus-builders/rust-cross";

/// The Debian suite the builders come from by default. Testing, not sid:
/// testing only takes a package once it is built for every release
/// architecture, so `libstd-rust-dev:<arch>` and its dependencies have the
/// same version on the host's architecture and the target's (multiarch
/// needs that); in sid one lagging architecture breaks the install. Stable
/// (trixie) has Rust 1.85, older than the workspace needs.
pub const DEFAULT_CROSS_SUITE: &str = "testing";

/// Part of every builder recipe: bump it when the way a builder is made
/// changes outside the Containerfile.
const BUILDER_VERSION: &str = "1";

/// The root filesystem's name in the build context.
const ROOTFS_FILE: &str = "rootfs.tar.gz";

/// Bound on one builder image build (two `apt-get install`s, about
/// 300 MB of packages).
const BUILDER_TIMEOUT: Duration = Duration::from_secs(1800);

/// One target's builder: what it is made from and what it is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuilderPlan {
    /// The target it compiles for.
    pub(crate) target: &'static CrossTarget,
    /// The base root filesystem (this host's architecture).
    pub(crate) rootfs: RootfsRecipe,
    /// Where that root filesystem is cached.
    pub(crate) tarball: PathBuf,
    /// `qus-builders/rust-cross:testing-arm64`.
    pub(crate) tag: String,
    /// The image's recipe label.
    pub(crate) recipe: String,
}

impl BuilderPlan {
    /// The builder of `target` from `suite` at `mirror`, for a host of
    /// Debian architecture `host`, with its base cached under `cache_dir`.
    pub(crate) fn new(
        target: &'static CrossTarget,
        host: DebianArch,
        suite: &str,
        mirror: &str,
        cache_dir: &Path,
    ) -> Self {
        let rootfs = RootfsRecipe {
            arch: host,
            suite: suite.to_owned(),
            variant: "minbase".to_owned(),
            mirror: mirror.to_owned(),
            include: Vec::new(),
            flavor: Flavor::Base,
        };
        let tarball = rootfs.tarball_in(&cache_dir.join("builders"));
        let recipe = Recipe::new("qus-builders/rust-cross")
            .field("builder", BUILDER_VERSION)
            .field("rootfs", rootfs.hash())
            .field("containerfile", containerfile::RUST_CROSS)
            .field("deb-arch", target.debian_arch)
            .field("gnu-triple", target.gnu_triple)
            .finish();
        Self {
            target,
            tag: format!("{BUILDER_REPO}:{suite}-{}", target.debian_arch),
            rootfs,
            tarball,
            recipe,
        }
    }

    /// The build arguments of the Containerfile.
    pub(crate) fn build_args(&self) -> [(&'static str, &'static str); 2] {
        [
            ("DEB_ARCH", self.target.debian_arch),
            ("GNU_TRIPLE", self.target.gnu_triple),
        ]
    }

    /// The image's labels besides its recipe and creation time.
    fn labels(&self) -> [(&'static str, String); 5] {
        [
            (
                LABEL_TITLE,
                format!("qus cross builder for {}", self.target.machine),
            ),
            (
                LABEL_DESCRIPTION,
                format!(
                    "Debian {} rustc, cargo, gcc-{} and libstd-rust-dev:{}: compiles a static \
                     qus-register for {}",
                    self.rootfs.suite,
                    self.target.gnu_triple,
                    self.target.debian_arch,
                    self.target.machine
                ),
            ),
            (LABEL_SOURCE, SOURCE_URL.to_owned()),
            (LABEL_DEBIAN_ARCH, self.target.debian_arch.to_owned()),
            (LABEL_QEMU_TARGET, self.target.machine.to_owned()),
        ]
    }

    /// The build of the image from the cached root filesystem's bytes.
    fn spec(&self, rootfs: Vec<u8>) -> BuildSpec {
        let mut spec = BuildSpec::inline(
            containerfile::RUST_CROSS,
            vec![ContextFile::new(ROOTFS_FILE, rootfs)],
            self.tag.clone(),
        )
        .with_timeout(BUILDER_TIMEOUT)
        .with_label(LABEL_CREATED, rfc3339(build_time()));
        for (name, value) in self.build_args() {
            spec = spec.with_build_arg(name, value);
        }
        for (key, value) in self.labels() {
            spec = spec.with_label(key, value);
        }
        spec
    }
}

/// Makes sure the builder image of `plan` exists with its recipe: nothing
/// to do when it does, else the base root filesystem is taken from the
/// cache (or debootstrapped, which needs root) and the image built.
/// Reports a [`Step::Image`](super::Step::Image), and a
/// [`Step::Rootfs`](super::Step::Rootfs) when the image is built.
pub(crate) async fn ensure_builder(
    engine: &Engine,
    plan: &BuilderPlan,
    progress: &dyn Progress,
) -> Result<BuiltImage, ImageBuildError> {
    engine
        .ensure(
            std::slice::from_ref(&plan.tag),
            &plan.recipe,
            false,
            progress,
            || async {
                if !plan.tarball.is_file() && !rustix::process::geteuid().is_root() {
                    return Err(ImageBuildError::NotRoot {
                        operation: "debootstrap",
                    });
                }
                let (tarball, _cached) =
                    ensure_tarball_at(&plan.rootfs, plan.tarball.clone(), progress).await?;
                let bytes = tokio::fs::read(&tarball)
                    .await
                    .map_err(ImageBuildError::io("read", &tarball))?;
                Ok(plan.spec(bytes))
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::cross::CROSS_TARGETS;

    fn plan(machine: &str, suite: &str) -> BuilderPlan {
        let target = CrossTarget::find(machine).unwrap();
        BuilderPlan::new(
            target,
            DebianArch::Amd64,
            suite,
            "http://deb.debian.org/debian",
            Path::new("/c"),
        )
    }

    #[test]
    fn builders_are_named_by_suite_and_debian_arch() {
        let arm64 = plan("aarch64", "testing");
        assert_eq!(arm64.tag, "qus-builders/rust-cross:testing-arm64");
        assert_eq!(
            arm64.tarball,
            PathBuf::from(format!("/c/builders/amd64-{}.tar.gz", arm64.rootfs.hash()))
        );
        assert_eq!(arm64.rootfs.variant, "minbase");
        assert!(arm64.rootfs.include.is_empty());
        assert_eq!(
            plan("ppc64le", "sid").tag,
            "qus-builders/rust-cross:sid-ppc64el"
        );
    }

    #[test]
    fn the_recipe_follows_the_target_the_suite_and_the_mirror() {
        let base = plan("aarch64", "testing");
        assert_eq!(base.recipe.len(), 16);
        assert_eq!(base.recipe, plan("aarch64", "testing").recipe);
        assert_ne!(base.recipe, base.rootfs.hash());
        assert_ne!(base.recipe, plan("riscv64", "testing").recipe);
        assert_ne!(base.recipe, plan("aarch64", "sid").recipe);
        let other_mirror = BuilderPlan::new(
            base.target,
            DebianArch::Amd64,
            "testing",
            "http://m.example/debian",
            Path::new("/c"),
        );
        assert_ne!(base.recipe, other_mirror.recipe);
        // Where the cache is does not change what is built.
        let elsewhere = BuilderPlan::new(
            base.target,
            DebianArch::Amd64,
            "testing",
            "http://deb.debian.org/debian",
            Path::new("/elsewhere"),
        );
        assert_eq!(base.recipe, elsewhere.recipe);
    }

    #[test]
    fn the_spec_adds_the_rootfs_and_passes_the_target() {
        let plan = plan("s390x", "testing");
        let spec = plan.spec(b"tarball".to_vec());
        assert_eq!(spec.tag, "qus-builders/rust-cross:testing-s390x");
        assert_eq!(spec.build_args["DEB_ARCH"], "s390x");
        assert_eq!(spec.build_args["GNU_TRIPLE"], "s390x-linux-gnu");
        assert_eq!(spec.labels[LABEL_QEMU_TARGET], "s390x");
        assert!(spec.labels.contains_key(LABEL_CREATED));
        let crate::runtime::BuildContext::Inline {
            containerfile,
            files,
        } = &spec.context
        else {
            panic!("{:?}", spec.context);
        };
        assert_eq!(containerfile, containerfile::RUST_CROSS);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, ROOTFS_FILE);
    }

    #[test]
    fn the_containerfile_adds_the_rootfs_and_installs_the_target() {
        let lines: Vec<&str> = containerfile::RUST_CROSS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(lines[..2], ["FROM scratch", "ADD rootfs.tar.gz /"]);
        for arg in ["ARG DEB_ARCH", "ARG GNU_TRIPLE"] {
            assert!(lines.contains(&arg), "{arg}");
        }
        let text = containerfile::RUST_CROSS;
        for needed in [
            "rustc cargo",
            "dpkg --add-architecture \"$DEB_ARCH\"",
            "\"gcc-$GNU_TRIPLE\"",
            "\"libc6-dev-$DEB_ARCH-cross\"",
            "\"libstd-rust-dev:$DEB_ARCH\"",
        ] {
            assert!(text.contains(needed), "{needed}");
        }
        // The host toolchain comes before the arguments: its layer is
        // shared by every target's image.
        let first_arg = text.find("ARG DEB_ARCH").unwrap();
        assert!(text.find("rustc cargo").unwrap() < first_arg);
        assert_eq!(CROSS_TARGETS.len(), 4);
    }
}
