//! The host runtime's sandboxes: private binfmt_misc registries for the
//! instances that write binfmt state, and registrar images without an
//! engine.
//!
//! The main type is [`Sandbox`], prepared once per run on the host runtime
//! ([`Sandbox::prepare`]):
//!
//! - **Hermetic instances.** Where the kernel gives every user namespace a
//!   binfmt_misc of its own (Linux 6.7+) and the harness runs as root,
//!   every host-runtime instance that writes binfmt_misc gets a
//!   [`Namespace`]: a user and mount namespace with a fresh registry, held
//!   by a helper process (`qus-harness internal hold-namespace`). Its host
//!   steps (`exec`, `register`, `probe`, `reset`) run inside it and its
//!   `binfmt` steps read it, so such instances need no snapshot or
//!   restore of the host's registry and run in parallel with everything
//!   else. Whether the kernel allows it is detected once, by creating one
//!   ([`detect_private`]).
//! - **Registrar images on the host.** A `register` (or `reset`) step
//!   naming one of the repository's registrar images runs the host's
//!   `qus-register` in a [`View`] of that image: a mount namespace of its
//!   own whose `/usr/bin` holds exactly the image's emulators
//!   (`qus-harness internal view-exec`), taken from the host or fetched
//!   into the cache from Debian ([`emulators`]).
//! - **Probes on the host.** The static probe programs the registrar
//!   embeds (the bytes of `fixtures/probes/bin/`) are written once into
//!   the sandbox's scratch directory and executed there.
//!
//! Container runtimes use none of this: dockerd's and Podman's containers
//! share the host's user namespace, so they see, and write, the host's
//! registry.

mod emulators;
mod helper;
mod namespace;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

pub use emulators::{RegistrarImage, View, host_emulators, host_suite};
pub use helper::{BINFMT_MOUNT, SETUP_FAILED, VIEW_DIR, ViewFile, hold, view_exec};
pub use namespace::{HOLD_ARGS, Launch, Namespace, NamespaceError};

use crate::images::{self, DebSource, ImageBuildError, Progress};
use crate::plan::Planned;
use crate::scenario::{Action, Instance, Registrar};

/// The hidden command line that runs a command in a view.
pub const VIEW_ARGS: [&str; 2] = ["internal", "view-exec"];

/// Where the host's own emulators are looked for.
pub const HOST_QEMU_DIR: &str = "/usr/bin";

/// The repository of the registrar images when a scenario declares no
/// `QUS_REPO`.
const DEFAULT_REPO: &str = images::DEFAULT_REPO;

/// What a sandbox needs to know.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The `qus-harness` binary, which is also the helper.
    pub helper: PathBuf,
    /// The host's registrar (`REGISTRAR_BIN`).
    pub registrar: String,
    /// The cache of fetched emulators (`$QUS_CACHE_DIR`).
    pub cache_dir: PathBuf,
    /// Where the host's own emulators are looked for ([`HOST_QEMU_DIR`]).
    pub host_qemu_dir: PathBuf,
    /// Whether to look for private namespaces at all (`false` keeps every
    /// instance on the host's registry).
    pub private: bool,
}

/// Why a sandbox could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The scratch directory could not be made.
    #[error("failed to prepare the sandbox directory `{}`", path.display())]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The emulators of a registrar image could not be fetched.
    #[error("failed to fetch the emulators of `{image}` for the host runtime")]
    Emulators {
        /// The image.
        image: String,
        /// Why.
        #[source]
        source: Box<ImageBuildError>,
    },
}

/// Private namespaces, image views and probes for one run (see the module
/// documentation).
#[derive(Debug)]
pub struct Sandbox {
    helper: PathBuf,
    registrar: String,
    private: Result<(), String>,
    views: BTreeMap<String, View>,
    scratch: Scratch,
}

impl Sandbox {
    /// Detects private namespaces (unless `options.private` is off) and
    /// gets the view of every registrar image in `images`, fetching
    /// emulators into the cache where the host has none.
    pub async fn prepare(
        options: &SandboxOptions,
        images: &BTreeSet<(String, RegistrarImage)>,
        progress: &dyn Progress,
    ) -> Result<Self, SandboxError> {
        let private = if options.private {
            detect_private(&options.helper).await
        } else {
            Err("private namespaces are turned off".to_owned())
        };
        let scratch = Scratch::create()?;
        let machine = qus_registrar::binfmt::HostFacts::read(None).machine;
        let suite = host_suite(&std::fs::read_to_string("/etc/os-release").unwrap_or_default());
        let mut fetched: BTreeMap<String, View> = BTreeMap::new();
        let mut views = BTreeMap::new();
        for (image, kind) in images {
            let host = match kind {
                RegistrarImage::Latest => host_emulators(&options.host_qemu_dir, &machine),
                _ => Vec::new(),
            };
            let view = match kind.debian_source(suite) {
                None => View::empty(),
                Some(_) if !host.is_empty() => View::host(&options.host_qemu_dir, host),
                Some(source) => {
                    let key = format!("{source:?}");
                    match fetched.get(&key) {
                        Some(view) => view.clone(),
                        None => {
                            let view = fetch(&options.cache_dir, &source, &machine, progress)
                                .await
                                .map_err(|source| SandboxError::Emulators {
                                    image: image.clone(),
                                    source: Box::new(source),
                                })?;
                            fetched.insert(key, view.clone());
                            view
                        }
                    }
                }
            };
            views.insert(image.clone(), view);
        }
        Ok(Self {
            helper: options.helper.clone(),
            registrar: options.registrar.clone(),
            private,
            views,
            scratch,
        })
    }

    /// Whether hermetic instances get private namespaces.
    pub fn is_private(&self) -> bool {
        self.private.is_ok()
    }

    /// `Ok` when instances get private namespaces, else why not.
    pub fn private_status(&self) -> &Result<(), String> {
        &self.private
    }

    /// The helper program (`qus-harness`).
    pub fn helper(&self) -> &Path {
        &self.helper
    }

    /// The view of a registrar image, when the run prepared one.
    pub fn view(&self, image: &str) -> Option<&View> {
        self.views.get(image)
    }

    /// Every prepared view, by image.
    pub fn views(&self) -> impl Iterator<Item = (&str, &View)> {
        self.views.iter().map(|(i, v)| (i.as_str(), v))
    }

    /// The command that runs the host's registrar with `args` in the view
    /// of `image`, and a short description for reports; `None` when the
    /// run prepared no view of it.
    pub fn registrar_in_view(&self, image: &str, args: &[String]) -> Option<(Vec<String>, String)> {
        let view = self.views.get(image)?;
        let mut command: Vec<String> = std::iter::once(self.helper.display().to_string())
            .chain(VIEW_ARGS.iter().map(|a| (*a).to_owned()))
            .chain([
                "--scratch".to_owned(),
                self.scratch.view_dir().display().to_string(),
            ])
            .collect();
        for file in &view.files {
            command.push("--emulator".to_owned());
            command.push(file.to_arg());
        }
        command.push("--".to_owned());
        command.push(self.registrar.clone());
        command.extend(args.iter().cloned());
        let description = format!(
            "{} {} (on the host, as the image `{image}`: {})",
            self.registrar,
            args.join(" "),
            view.origin
        );
        Some((command, description))
    }

    /// The probe program of `target` on the host, when the registrar has
    /// one.
    pub fn probe(&self, target: &str) -> Option<PathBuf> {
        let path = self.scratch.path.join("probes").join(target);
        path.is_file().then_some(path)
    }

    /// A directory of the sandbox that every user may enter, for copies
    /// such as a setuid probe (`name` must be unique within the run).
    pub fn private_dir(&self, name: &str) -> std::io::Result<PathBuf> {
        let dir = self.scratch.path.join("work").join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        Ok(dir)
    }
}

/// Fetches `source` into the cache and makes its view.
async fn fetch(
    cache_dir: &Path,
    source: &DebSource,
    machine: &str,
    progress: &dyn Progress,
) -> Result<View, ImageBuildError> {
    let cached = images::cached_emulators(cache_dir, source, progress).await?;
    Ok(View::cached(&cached, machine))
}

/// Whether this host gives a harness instance a private binfmt_misc: the
/// harness runs as root and creating one works. `Err` says why not.
pub async fn detect_private(helper: &Path) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err(
            "the harness does not run as root: hermetic instances map every user into their \
             namespace, which needs root"
                .to_owned(),
        );
    }
    Namespace::create(helper)
        .await
        .map(drop)
        .map_err(|e| crate::runner::error_chain(&e))
}

/// The repository of an instance's registrar images: its `QUS_REPO`.
pub fn instance_repo(instance: &Instance) -> &str {
    instance
        .variables
        .get("QUS_REPO")
        .map_or(DEFAULT_REPO, String::as_str)
}

/// The registrar images the runnable instances of `planned` run on the
/// host runtime (`register` and `reset` steps with an image), with what
/// each is.
pub fn registrar_images(planned: &[Planned]) -> BTreeSet<(String, RegistrarImage)> {
    let mut images = BTreeSet::new();
    for p in planned.iter().filter(|p| p.skip.is_none()) {
        let repo = instance_repo(&p.instance);
        for step in p
            .instance
            .setup
            .iter()
            .chain(&p.instance.steps)
            .chain(&p.instance.teardown)
        {
            let image = match &step.action {
                Action::Register(r) => match &r.registrar {
                    Registrar::Image(image) => image,
                    Registrar::Host { .. } => continue,
                },
                Action::Reset(r) => match &r.image {
                    Some(image) => image,
                    None => continue,
                },
                _ => continue,
            };
            if let Some(kind) = RegistrarImage::parse(image, repo) {
                images.insert((image.clone(), kind));
            }
        }
    }
    images
}

/// The sandbox's own directory: probes, the views' mount point, copies.
/// Removed when dropped.
#[derive(Debug)]
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn create() -> Result<Self, SandboxError> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "qus-sandbox-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let fail = |source| SandboxError::Scratch {
            path: path.clone(),
            source,
        };
        let scratch = Self { path: path.clone() };
        for dir in [
            &path,
            &path.join("probes"),
            &path.join("view"),
            &path.join("work"),
        ] {
            std::fs::create_dir_all(dir).map_err(fail)?;
            // Probes and setuid copies run as other users too.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
        }
        for target in qus_registrar::verify::probed_targets() {
            let (bytes, _) = qus_registrar::verify::probe(target).expect("a probed target");
            let file = path.join("probes").join(target);
            std::fs::write(&file, bytes).map_err(fail)?;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                .map_err(fail)?;
        }
        Ok(scratch)
    }

    fn view_dir(&self) -> PathBuf {
        self.path.join("view")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!("failed to remove `{}`: {e}", self.path.display());
        }
    }
}
