//! [`QusRegistrar`], the qus registrar image as a [`testcontainers::Image`],
//! and [`Registration`], the handlers it registered, uninstalled on drop.
//!
//! Knowing what to uninstall: before registering, the registrar reports the
//! registry (`--status --json`); after, again. An entry this process
//! registered is one of the requested targets that was absent before and
//! present after. Such entries are counted per process, so that two
//! registrations of one platform (parallel tests) share it and the last one
//! dropped removes it; entries that were there before are never removed.
//! Which entry a platform needs (`linux/arm64` → `qemu-aarch64`) is the
//! registrar library's knowledge, used here as is.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use qus_registrar::targets::{self, Target};
use testcontainers::core::WaitFor;
use testcontainers::core::client::docker_client_instance;
use testcontainers::core::wait::ExitWaitStrategy;
use testcontainers::{ContainerRequest, Image};

use crate::container::{Finished, run_once};
use crate::error::{ContainerError, RegisterError};

/// The registrar image's repository, as `qus-harness images build` names it.
pub const DEFAULT_NAME: &str = "qus/qemu-user-static";

/// The registrar image's tag: the one holding every static emulator.
pub const DEFAULT_TAG: &str = "latest";

/// Bound on one registrar run (they take well under a second).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Entries this process registered, with how many live registrations hold
/// each.
static OWNED: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// One registration at a time in this process: its before/after reports
/// must see only its own changes.
static REGISTERING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The qus registrar image, registering QEMU handlers for some platforms
/// with the `F` flag (`--targets LIST -p yes`) when its container starts.
///
/// Run it through [`register`](Self::register) (or
/// [`Registration::start`]) to have the entries removed again on drop. As a
/// plain [`Image`] it registers, and testcontainers waits for exit code 0,
/// but nothing is uninstalled and the container needs privileges:
///
/// ```no_run
/// use qus_testcontainers::QusRegistrar;
/// use testcontainers::{ImageExt, runners::AsyncRunner};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let registrar = QusRegistrar::new(["linux/riscv64"])?;
/// registrar.with_privileged(true).start().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct QusRegistrar {
    name: String,
    tag: String,
    targets: Vec<&'static Target>,
    /// What the container runs; the registration by default.
    args: Vec<String>,
}

impl QusRegistrar {
    /// `$QUS_REPO:latest` (by default `qus/qemu-user-static:latest`),
    /// registering `platforms`: OCI platforms
    /// (`linux/arm64`, `linux/arm/v7`), aliases (`arm64`, `armhf`,
    /// `ppc64el`) or QEMU target names (`aarch64`).
    ///
    /// # Errors
    ///
    /// [`RegisterError::UnknownPlatform`] for a platform no QEMU target
    /// runs, [`RegisterError::NoPlatform`] for none.
    pub fn new<S: AsRef<str>>(
        platforms: impl IntoIterator<Item = S>,
    ) -> Result<Self, RegisterError> {
        let mut found: Vec<&'static Target> = Vec::new();
        for platform in platforms {
            let platform = platform.as_ref();
            let target = targets::find(platform).ok_or_else(|| RegisterError::UnknownPlatform {
                platform: platform.to_owned(),
            })?;
            if !found.iter().any(|t| t.name == target.name) {
                found.push(target);
            }
        }
        if found.is_empty() {
            return Err(RegisterError::NoPlatform);
        }
        // Table order: deterministic arguments.
        found.sort_by_key(|t| t.name);
        let names: Vec<&str> = found.iter().map(|t| t.name).collect();
        // The variable qus's scenarios and harness read for the same image.
        let name = std::env::var("QUS_REPO")
            .ok()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| DEFAULT_NAME.to_owned());
        Ok(Self {
            name,
            tag: DEFAULT_TAG.to_owned(),
            args: vec![
                "--targets".to_owned(),
                names.join(","),
                "-p".to_owned(),
                "yes".to_owned(),
            ],
            targets: found,
        })
    }

    /// Runs the registrar from `name:tag` instead of
    /// `qus/qemu-user-static:latest` (it must hold the emulators: a
    /// `latest`-like tag, not `register`).
    pub fn with_image(self, name: impl Into<String>, tag: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            tag: tag.into(),
            ..self
        }
    }

    /// The registrar's arguments (`--targets aarch64,riscv64 -p yes`).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The binfmt_misc entries the registration makes (`qemu-aarch64`).
    pub fn entries(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.entry_name()).collect()
    }

    /// This image running `args` instead.
    fn running(&self, args: &[&str]) -> Self {
        Self {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..self.clone()
        }
    }

    /// `name:tag`.
    fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// Registers, and returns the [`Registration`] that uninstalls what
    /// this process registered when dropped.
    ///
    /// # Errors
    ///
    /// [`RegisterError::ImageMissing`] when the image is not in the local
    /// engine, [`RegisterError::Registrar`] with the registrar's message
    /// when it refuses or fails (an entry that differs from the wanted one
    /// is refused, not replaced), [`RegisterError::Container`] when the
    /// engine fails.
    pub async fn register(self) -> Result<Registration, RegisterError> {
        let _one_at_a_time = REGISTERING.lock().await;
        self.check_image().await?;
        let before = self.registered().await?;
        let run = self
            .run(&self.args.iter().map(String::as_str).collect::<Vec<_>>())
            .await?;
        self.succeeded(&run, &self.args)?;
        let after = self.registered().await?;
        let mut owned = OWNED.lock().unwrap_or_else(PoisonError::into_inner);
        let mut held = Vec::new();
        for name in self.entries() {
            if let Some(count) = owned.get_mut(&name) {
                *count += 1;
                held.push(name);
            } else if after.contains(&name) && !before.contains(&name) {
                owned.insert(name.clone(), 1);
                held.push(name);
            }
        }
        Ok(Registration {
            registrar: self,
            held,
            released: false,
        })
    }

    /// Fails with [`RegisterError::ImageMissing`] when the image is not
    /// local (testcontainers would try to pull it).
    async fn check_image(&self) -> Result<(), RegisterError> {
        let image = self.reference();
        let docker = docker_client_instance().await.map_err(|e| ContainerError {
            operation: "connect to the engine for",
            image: image.clone(),
            source: Box::new(e),
        })?;
        match docker.inspect_image(&image).await {
            Ok(_) => Ok(()),
            Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            }) => Err(RegisterError::ImageMissing { image }),
            Err(e) => Err(ContainerError {
                operation: "inspect",
                image,
                source: Box::new(e),
            }
            .into()),
        }
    }

    /// The `qemu-*` entries registered now, as the registrar reports them.
    async fn registered(&self) -> Result<BTreeSet<String>, RegisterError> {
        let args = ["--status", "--json"];
        let run = self.run(&args).await?;
        self.succeeded(&run, &args)?;
        let status: Status =
            serde_json::from_str(&run.stdout).map_err(|source| RegisterError::Status {
                image: self.reference(),
                source,
            })?;
        Ok(status.entries.into_iter().map(|e| e.name).collect())
    }

    /// Runs the image with `args`, privileged.
    async fn run(&self, args: &[&str]) -> Result<Finished, RegisterError> {
        let image = self.running(args);
        Ok(run_once(|| ContainerRequest::from(image.clone()), true, TIMEOUT).await?)
    }

    /// `Ok` when `run` exited 0, else the registrar's message.
    fn succeeded<S: AsRef<str>>(&self, run: &Finished, args: &[S]) -> Result<(), RegisterError> {
        if run.exit_code == 0 {
            return Ok(());
        }
        Err(RegisterError::Registrar {
            image: self.reference(),
            args: args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" "),
            exit_code: run.exit_code,
            stderr: run.stderr.trim().to_owned(),
        })
    }
}

impl Image for QusRegistrar {
    fn name(&self) -> &str {
        &self.name
    }

    fn tag(&self) -> &str {
        &self.tag
    }

    /// The registrar exits when it is done; 0 means every target ended
    /// registered.
    fn ready_conditions(&self) -> Vec<WaitFor> {
        vec![WaitFor::exit(ExitWaitStrategy::new().with_exit_code(0))]
    }

    fn cmd(&self) -> impl IntoIterator<Item = impl Into<Cow<'_, str>>> {
        self.args.iter().map(String::as_str)
    }
}

/// The part of `--status --json` read here.
#[derive(serde::Deserialize)]
struct Status {
    entries: Vec<StatusEntry>,
}

#[derive(serde::Deserialize)]
struct StatusEntry {
    name: String,
}

/// QEMU handlers registered by [`QusRegistrar::register`]; dropping it
/// uninstalls the entries this process registered once no other live
/// registration holds them.
///
/// Dropping runs the uninstalling container on a thread of its own, with
/// its own tokio runtime (so it works inside `#[tokio::test]`, whose runtime
/// is blocked in the drop), and prints a failure on stderr as `error: ...`.
/// [`uninstall`](Self::uninstall) does the same and returns the error.
#[derive(Debug)]
#[must_use = "dropping a registration uninstalls what it registered"]
pub struct Registration {
    registrar: QusRegistrar,
    held: Vec<String>,
    released: bool,
}

impl Registration {
    /// Registers `platforms` with the default image: see [`QusRegistrar::new`]
    /// and [`QusRegistrar::register`].
    ///
    /// # Errors
    ///
    /// As those two.
    pub async fn start<S: AsRef<str>>(
        platforms: impl IntoIterator<Item = S>,
    ) -> Result<Self, RegisterError> {
        QusRegistrar::new(platforms)?.register().await
    }

    /// The entries this registration will uninstall, unless another live
    /// registration of this process holds them too (`qemu-aarch64`). Empty
    /// when everything was registered before.
    pub fn entries(&self) -> &[String] {
        &self.held
    }

    /// Uninstalls what [`entries`](Self::entries) lists and no other live
    /// registration holds; returns the entries removed.
    ///
    /// # Errors
    ///
    /// [`RegisterError::Registrar`] or [`RegisterError::Container`] when the
    /// uninstalling container fails.
    pub async fn uninstall(mut self) -> Result<Vec<String>, RegisterError> {
        let names = self.release();
        uninstall(&self.registrar, &names).await?;
        Ok(names)
    }

    /// Gives up this registration's hold; returns the entries nobody holds
    /// any more.
    fn release(&mut self) -> Vec<String> {
        if self.released {
            return Vec::new();
        }
        self.released = true;
        let mut owned = OWNED.lock().unwrap_or_else(PoisonError::into_inner);
        let mut free = Vec::new();
        for name in &self.held {
            if let Some(count) = owned.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    owned.remove(name);
                    free.push(name.clone());
                }
            }
        }
        free
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let names = self.release();
        if names.is_empty() {
            return;
        }
        let registrar = self.registrar.clone();
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(uninstall(&registrar, &names))
                .map_err(|e| chain(&e))
        });
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => eprintln!("error: failed to uninstall QEMU handlers: {message}"),
            Err(_) => eprintln!("error: failed to uninstall QEMU handlers: the worker panicked"),
        }
    }
}

/// Removes the entries `names` (`qemu-aarch64`) with the registrar.
async fn uninstall(registrar: &QusRegistrar, names: &[String]) -> Result<(), RegisterError> {
    if names.is_empty() {
        return Ok(());
    }
    let targets: Vec<&str> = names
        .iter()
        .map(|n| n.strip_prefix("qemu-").unwrap_or(n))
        .collect();
    let list = targets.join(",");
    let args = ["--uninstall", list.as_str()];
    let run = registrar.run(&args).await?;
    registrar.succeeded(&run, &args)
}

/// `err` and its causes, `: `-separated.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_aliases_and_qemu_names_resolve_to_targets() {
        let registrar = QusRegistrar::new(["linux/arm64", "riscv64", "aarch64", "armhf"]).unwrap();
        assert_eq!(
            registrar.args(),
            ["--targets", "aarch64,arm,riscv64", "-p", "yes"]
        );
        assert_eq!(
            registrar.entries(),
            ["qemu-aarch64", "qemu-arm", "qemu-riscv64"]
        );
        let cmd: Vec<String> = Image::cmd(&registrar)
            .into_iter()
            .map(|a| a.into().into_owned())
            .collect();
        assert_eq!(cmd, registrar.args());
        assert_eq!(Image::tag(&registrar), DEFAULT_TAG);
        let other = registrar.with_image("qus-test/qemu-user-static", "7.2.0-1");
        assert_eq!(other.reference(), "qus-test/qemu-user-static:7.2.0-1");
    }

    #[test]
    fn unknown_and_missing_platforms_are_errors() {
        let err = QusRegistrar::new(["linux/nope"]).unwrap_err();
        assert!(
            matches!(&err, RegisterError::UnknownPlatform { platform } if platform == "linux/nope")
        );
        assert!(err.to_string().starts_with("unknown platform `linux/nope`"));
        assert!(matches!(
            QusRegistrar::new(Vec::<&str>::new()),
            Err(RegisterError::NoPlatform)
        ));
    }

    #[test]
    fn a_hold_is_released_once_and_the_last_holder_frees() {
        let registrar = QusRegistrar::new(["s390x"]).unwrap();
        let name = "qemu-test-release".to_owned();
        OWNED.lock().unwrap().insert(name.clone(), 2);
        let holder = || Registration {
            registrar: registrar.clone(),
            held: vec![name.clone()],
            released: false,
        };
        let (mut first, mut second) = (holder(), holder());
        assert!(first.release().is_empty());
        assert!(first.release().is_empty(), "a second release counts twice");
        assert_eq!(second.release(), std::slice::from_ref(&name));
        assert!(!OWNED.lock().unwrap().contains_key(&name));
    }
}
