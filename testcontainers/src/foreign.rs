//! [`run_foreign`]: one command in a foreign-architecture image, through
//! testcontainers, with its exit code and output ([`ForeignOutput`]).
//!
//! The image is looked up in the local engine first: testcontainers pulls
//! an image it cannot find, which fails obscurely (or takes minutes) where
//! no registry is reachable, and a local image of another platform would
//! make the engine look for the right one in a registry too. Both are
//! errors here, saying how to get the image. Running the command needs the
//! platform's QEMU handler registered (see [`Registration`](crate::Registration)).

use std::time::Duration;

use testcontainers::core::client::docker_client_instance;
use testcontainers::{ContainerRequest, GenericImage, ImageExt};

use crate::container::run_once;
use crate::error::{BoxError, ContainerError, RunForeignError};

/// How long [`run_foreign`] lets a command run: emulated programs are slow.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// What a foreign command did. A non-zero exit is a result, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignOutput {
    /// The exit code.
    pub exit_code: i64,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl ForeignOutput {
    /// Whether the command exited 0.
    pub fn is_success(&self) -> bool {
        self.exit_code == 0
    }
}

/// Runs `command` in `image` (`name[:tag]`, present in the local engine)
/// for `platform` (`linux/arm64`), waits up to 5 minutes for it to exit,
/// and returns its exit code and output. The container is removed.
///
/// # Errors
///
/// [`RunForeignError::ImageMissing`] when the image is not local,
/// [`RunForeignError::WrongPlatform`] when it is for another platform,
/// [`RunForeignError::Container`] when the engine fails (no engine, no
/// handler for the platform and a start that fails, a timeout).
pub async fn run_foreign<S: Into<String>>(
    image: &str,
    platform: &str,
    command: impl IntoIterator<Item = S>,
) -> Result<ForeignOutput, RunForeignError> {
    run_foreign_with_timeout(image, platform, command, DEFAULT_TIMEOUT).await
}

/// [`run_foreign`] with another limit on the command's run time.
///
/// # Errors
///
/// As [`run_foreign`].
pub async fn run_foreign_with_timeout<S: Into<String>>(
    image: &str,
    platform: &str,
    command: impl IntoIterator<Item = S>,
    timeout: Duration,
) -> Result<ForeignOutput, RunForeignError> {
    let wanted = Platform::parse(platform)?;
    check_image(image, &wanted).await?;
    let (name, tag) = split_reference(image);
    let command: Vec<String> = command.into_iter().map(Into::into).collect();
    let make = || -> ContainerRequest<GenericImage> {
        GenericImage::new(name, tag)
            .with_platform(platform)
            .with_cmd(command.clone())
    };
    let finished = run_once(make, false, timeout).await?;
    Ok(ForeignOutput {
        exit_code: finished.exit_code,
        stdout: finished.stdout,
        stderr: finished.stderr,
    })
}

/// `os/architecture[/variant]`.
#[derive(Debug, PartialEq, Eq)]
struct Platform<'a> {
    os: &'a str,
    architecture: &'a str,
    variant: Option<&'a str>,
}

impl<'a> Platform<'a> {
    fn parse(platform: &'a str) -> Result<Self, RunForeignError> {
        let invalid = || RunForeignError::InvalidPlatform {
            platform: platform.to_owned(),
        };
        let mut parts = platform.split('/');
        let os = parts.next().filter(|s| !s.is_empty()).ok_or_else(invalid)?;
        let architecture = parts.next().filter(|s| !s.is_empty()).ok_or_else(invalid)?;
        let variant = parts.next();
        if parts.next().is_some() || variant == Some("") {
            return Err(invalid());
        }
        Ok(Self {
            os,
            architecture,
            variant,
        })
    }

    /// Whether an image's metadata names this platform. An image without a
    /// variant matches any (arm64 images often have none).
    fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == architecture
            && match (self.variant, variant) {
                (Some(wanted), Some(found)) => wanted == found,
                _ => true,
            }
    }
}

/// Fails unless `image` is in the local engine, for `wanted`.
async fn check_image(image: &str, wanted: &Platform<'_>) -> Result<(), RunForeignError> {
    let engine_error = |operation, source: BoxError| ContainerError {
        operation,
        image: image.to_owned(),
        source,
    };
    let docker = docker_client_instance()
        .await
        .map_err(|e| engine_error("connect to the engine for", Box::new(e)))?;
    let found = match docker.inspect_image(image).await {
        Ok(found) => found,
        Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }) => {
            return Err(RunForeignError::ImageMissing {
                image: image.to_owned(),
            });
        }
        Err(e) => return Err(engine_error("inspect", Box::new(e)).into()),
    };
    let os = found.os.unwrap_or_default();
    let architecture = found.architecture.unwrap_or_default();
    let variant = found.variant.filter(|v| !v.is_empty());
    if wanted.matches(&os, &architecture, variant.as_deref()) {
        return Ok(());
    }
    let mut found = format!("{os}/{architecture}");
    if let Some(variant) = variant {
        found.push_str(&format!("/{variant}"));
    }
    Err(RunForeignError::WrongPlatform {
        image: image.to_owned(),
        found,
        platform: format!(
            "{}/{}{}",
            wanted.os,
            wanted.architecture,
            wanted.variant.map(|v| format!("/{v}")).unwrap_or_default()
        ),
    })
}

/// `name[:tag]` split at the tag (`latest` when there is none); a colon
/// before the last `/` belongs to a registry's port.
fn split_reference(image: &str) -> (&str, &str) {
    let last = image.rfind('/').map_or(0, |i| i + 1);
    match image[last..].rfind(':') {
        Some(colon) => (&image[..last + colon], &image[last + colon + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            split_reference("localhost:5000/arm64/ubuntu"),
            ("localhost:5000/arm64/ubuntu", "latest")
        );
        assert_eq!(
            split_reference("localhost:5000/ubuntu:24.04"),
            ("localhost:5000/ubuntu", "24.04")
        );
    }

    #[test]
    fn platforms_parse_and_match_image_metadata() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert!(arm64.matches("linux", "arm64", Some("v8")));
        assert!(arm64.matches("linux", "arm64", None));
        assert!(!arm64.matches("linux", "amd64", None));
        let armv7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(armv7.matches("linux", "arm", Some("v7")));
        assert!(!armv7.matches("linux", "arm", Some("v6")));
        for bad in [
            "",
            "linux",
            "linux/",
            "/arm64",
            "linux/arm/v7/x",
            "linux/arm/",
        ] {
            assert!(
                matches!(
                    Platform::parse(bad),
                    Err(RunForeignError::InvalidPlatform { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
