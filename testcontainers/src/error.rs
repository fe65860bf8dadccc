//! The errors of this crate: [`RegisterError`] (registering and
//! uninstalling), [`RunForeignError`] (running a foreign image) and the
//! [`ContainerError`] both wrap when the engine fails.

/// The cause of a [`ContainerError`]: testcontainers' or bollard's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The engine could not run a container.
#[derive(Debug, thiserror::Error)]
#[error("failed to {operation} `{image}`")]
pub struct ContainerError {
    /// What was being done (`start a container from`).
    pub operation: &'static str,
    /// The image concerned.
    pub image: String,
    /// testcontainers' (or bollard's) error.
    #[source]
    pub source: BoxError,
}

/// Why QEMU's handlers could not be registered or uninstalled.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// A platform no QEMU target runs.
    #[error(
        "unknown platform `{platform}`: give an OCI platform (`linux/arm64`), an alias (`arm64`, \
         `armhf`) or a QEMU target name (`aarch64`)"
    )]
    UnknownPlatform {
        /// The platform as given.
        platform: String,
    },

    /// No platform was given.
    #[error("no platform to register")]
    NoPlatform,

    /// The registrar image is not in the local engine.
    #[error(
        "the registrar image `{image}` is not in the local engine, and nothing is pulled: build it \
         with `qus-harness images build` (or `docker pull`/`docker load` it)"
    )]
    ImageMissing {
        /// The image.
        image: String,
    },

    /// The registrar ran and failed; its message says why.
    #[error("the registrar `{image} {args}` exited with {exit_code}: {stderr}")]
    Registrar {
        /// The image.
        image: String,
        /// Its arguments, space-separated.
        args: String,
        /// Its exit code.
        exit_code: i64,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },

    /// `--status --json` printed something else than the status document.
    #[error("failed to read the status `{image} --status --json` printed")]
    Status {
        /// The image.
        image: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// The engine failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// Why a foreign-architecture container could not be run. A command that
/// runs and fails is not an error: see [`ForeignOutput`](crate::ForeignOutput).
#[derive(Debug, thiserror::Error)]
pub enum RunForeignError {
    /// The image is not in the local engine (testcontainers would pull it).
    #[error(
        "the image `{image}` is not in the local engine, and nothing is pulled: `docker pull` it \
         where a registry is reachable, `docker load` a saved copy, or build qus's fixtures with \
         `qus-harness images fixtures` (`qus-fixtures/arm64:bookworm`, ...)"
    )]
    ImageMissing {
        /// The image.
        image: String,
    },

    /// The image is for another platform than the one asked for.
    #[error("the image `{image}` is `{found}`, not `{platform}`")]
    WrongPlatform {
        /// The image.
        image: String,
        /// Its platform (`linux/amd64`).
        found: String,
        /// The platform asked for.
        platform: String,
    },

    /// The platform is not `os/architecture[/variant]`.
    #[error("invalid platform `{platform}`: expected `os/architecture[/variant]` (`linux/arm64`)")]
    InvalidPlatform {
        /// The platform as given.
        platform: String,
    },

    /// The engine failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
}
