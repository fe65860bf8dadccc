//! [`BuildHost`]: the host CPU a build's images are for, and what follows
//! from it: the repository they are tagged in, the platform they record,
//! and where their registrar and QEMU package come from.
//!
//! Pure: it takes the CPU this runs on (`uname -m`) and the host's Debian
//! release as arguments. Images for this machine's own CPU go to `<repo>`
//! as they always did. Images for another host (`--host-arch aarch64`) go
//! to `<repo>-<host>` (`qus/qemu-user-static-aarch64`): an engine's tag names
//! one image of one platform, and every tag of the scheme (`latest`,
//! `register`, `riscv64`...) exists for every host, so two hosts' images
//! cannot share a repository locally. One multi-platform name over all of
//! them is made in a registry ([`index`](super::index)). Another host's
//! registrar is cross-compiled (`cross.rs`), and its emulators come from
//! Debian's package for that architecture through a private APT directory
//! of a suite (the host's own APT serves only its own architecture).

use qus_registrar::targets;

use super::cross::CROSS_TARGETS;
use super::deb::DebSource;
use super::error::ImageBuildError;
use super::registrar::RegistrarSource;
use super::suite::Suite;
use super::tags::validate_repo;

/// The host a build's images are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildHost {
    /// Its CPU as QEMU and `uname -m` name it: `<from>` in tags (`aarch64`).
    pub(crate) machine: String,
    /// The CPU this build runs on.
    pub(crate) running: String,
    /// The repository of its images: `<repo>`, or `<repo>-<machine>` for
    /// another host.
    pub(crate) repo: String,
    /// The OCI platform its images record (`linux/arm64`); `None` for a
    /// CPU no OCI platform names (the engine records its own).
    pub(crate) platform: Option<String>,
}

impl BuildHost {
    /// Whether the images are for another CPU than this one.
    pub(crate) fn is_foreign(&self) -> bool {
        self.machine != self.running
    }
}

/// The repository of host `machine`'s images when they are not this
/// machine's: `<repo>-<machine>`.
pub(crate) fn host_repo(repo: &str, machine: &str) -> String {
    format!("{repo}-{machine}")
}

/// The OCI platform of a host CPU (`linux/arm64` for `aarch64`).
pub(crate) fn platform_of(machine: &str) -> Option<&'static str> {
    targets::find(machine).and_then(|t| targets::platforms(t).first().copied())
}

/// The QEMU name of a CPU name or alias (`arm64` → `aarch64`).
fn canonical(name: &str) -> Option<&'static str> {
    targets::find(name).map(|t| t.name)
}

/// The host `host_arch` (or, without it, a cross registrar's CPU, or this
/// machine) names, for a build running on `running` into `repo`.
///
/// # Errors
///
/// [`ImageBuildError::InvalidOption`] for a CPU that is neither this
/// machine's nor one the registrar is cross-compiled for, a cross registrar
/// for another CPU than `host_arch`, or a repository name that the host
/// suffix makes invalid.
pub(crate) fn resolve(
    host_arch: Option<&str>,
    registrar: &RegistrarSource,
    repo: &str,
    running: &str,
) -> Result<BuildHost, ImageBuildError> {
    let cross = match registrar {
        RegistrarSource::Cross { machine } => Some(machine.as_str()),
        RegistrarSource::Workspace(_) | RegistrarSource::File(_) => None,
    };
    let running_name = canonical(running).unwrap_or(running);
    let supported = || {
        let mut cpus = vec![running_name];
        cpus.extend(
            CROSS_TARGETS
                .iter()
                .map(|t| t.machine)
                .filter(|m| *m != running_name),
        );
        format!(
            "expected this host's CPU or one the registrar is cross-compiled for: {}",
            cpus.join(", ")
        )
    };
    let machine = match host_arch.or(cross) {
        None => running.to_owned(),
        Some(name) => {
            let found = canonical(name)
                .filter(|m| *m == running_name || CROSS_TARGETS.iter().any(|t| t.machine == *m));
            match found {
                Some(m) if m == running_name => running.to_owned(),
                Some(m) => m.to_owned(),
                None => {
                    return Err(ImageBuildError::InvalidOption {
                        what: "host architecture",
                        value: name.to_owned(),
                        reason: supported(),
                    });
                }
            }
        }
    };
    if let Some(cross) = cross
        && canonical(cross) != canonical(&machine)
    {
        return Err(ImageBuildError::InvalidOption {
            what: "registrar source",
            value: format!("cross:{cross}"),
            reason: format!("the images are for `{machine}`"),
        });
    }
    let repo = if machine == running {
        repo.to_owned()
    } else {
        host_repo(repo, &machine)
    };
    validate_repo(&repo).map_err(|reason| ImageBuildError::InvalidOption {
        what: "repository name",
        value: repo.clone(),
        reason,
    })?;
    Ok(BuildHost {
        platform: platform_of(&machine).map(str::to_owned),
        machine,
        running: running.to_owned(),
        repo,
    })
}

/// The package source for `host`: as given, except that another host
/// cannot use this host's APT sources (`--host-apt`: they serve this
/// architecture only), so it reads the suite of this host's Debian release,
/// `host_suite`, through a private APT directory for the other
/// architecture. The default (the newest QEMU of Debian's suites) and
/// `--suite`/`--qemu-version` already go through private APT directories
/// for the host's architecture.
///
/// # Errors
///
/// [`ImageBuildError::InvalidOption`] when another host's images would
/// need this host's APT sources and this host is no Debian release a suite
/// names.
pub(crate) fn deb_source(
    deb: &DebSource,
    host: &BuildHost,
    host_suite: Option<Suite>,
) -> Result<DebSource, ImageBuildError> {
    match deb {
        DebSource::Host if host.is_foreign() => match host_suite {
            Some(suite) => Ok(DebSource::Apt {
                version: None,
                suite: Some(suite),
            }),
            None => Err(ImageBuildError::InvalidOption {
                what: "QEMU source",
                value: "this host's APT sources".to_owned(),
                reason: format!(
                    "they serve this host's architecture, not `{}`, and this host is no \
                     Debian release a suite names: pass `--suite` or `--qemu-version`",
                    host.machine
                ),
            }),
        },
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn workspace() -> RegistrarSource {
        RegistrarSource::Workspace(PathBuf::from("/w"))
    }

    #[test]
    fn this_machine_keeps_the_repository() {
        let host = resolve(None, &workspace(), "qus/q", "x86_64").unwrap();
        assert_eq!(
            host,
            BuildHost {
                machine: "x86_64".into(),
                running: "x86_64".into(),
                repo: "qus/q".into(),
                platform: Some("linux/amd64".into()),
            }
        );
        assert!(!host.is_foreign());
        // Named explicitly, or by an alias: the same.
        for name in ["x86_64", "amd64", "linux/amd64"] {
            assert_eq!(
                resolve(Some(name), &workspace(), "qus/q", "x86_64").unwrap(),
                host
            );
        }
    }

    #[test]
    fn another_host_gets_its_own_repository_and_platform() {
        for name in ["aarch64", "arm64", "linux/arm64"] {
            let host = resolve(Some(name), &workspace(), "qus/q", "x86_64").unwrap();
            assert_eq!(host.machine, "aarch64");
            assert_eq!(host.repo, "qus/q-aarch64");
            assert_eq!(host.platform.as_deref(), Some("linux/arm64"));
            assert!(host.is_foreign());
        }
        let s390x = resolve(Some("s390x"), &workspace(), "localhost:5000/q", "x86_64").unwrap();
        assert_eq!(s390x.repo, "localhost:5000/q-s390x");
        assert_eq!(s390x.platform.as_deref(), Some("linux/s390x"));
        // A cross registrar names the host by itself.
        let cross = RegistrarSource::Cross {
            machine: "ppc64el".into(),
        };
        let host = resolve(None, &cross, "qus/q", "x86_64").unwrap();
        assert_eq!(
            (host.machine.as_str(), host.platform.as_deref()),
            ("ppc64le", Some("linux/ppc64le"))
        );
    }

    #[test]
    fn unsupported_hosts_and_mismatches_are_usage_errors() {
        let err = resolve(Some("mips64el"), &workspace(), "qus/q", "x86_64").unwrap_err();
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "invalid host architecture `mips64el`: expected this host's CPU or one the \
             registrar is cross-compiled for: x86_64, aarch64, ppc64le, riscv64, s390x"
        );
        assert!(resolve(Some("nope"), &workspace(), "qus/q", "x86_64").is_err());
        let cross = RegistrarSource::Cross {
            machine: "s390x".into(),
        };
        let err = resolve(Some("aarch64"), &cross, "qus/q", "x86_64").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid registrar source `cross:s390x`: the images are for `aarch64`"
        );
        // On an arm64 machine its own CPU is native, and x86_64 is not built.
        let native = resolve(Some("arm64"), &workspace(), "qus/q", "aarch64").unwrap();
        assert_eq!(native.repo, "qus/q");
        assert!(resolve(Some("x86_64"), &workspace(), "qus/q", "aarch64").is_err());
    }

    #[test]
    fn another_host_reads_a_suite_not_the_hosts_apt() {
        let foreign = resolve(Some("aarch64"), &workspace(), "q", "x86_64").unwrap();
        let native = resolve(None, &workspace(), "q", "x86_64").unwrap();
        let default = DebSource::default();
        assert_eq!(deb_source(&default, &foreign, None).unwrap(), default);
        assert_eq!(
            deb_source(&DebSource::Host, &foreign, Some(Suite::Bookworm)).unwrap(),
            DebSource::Apt {
                version: None,
                suite: Some(Suite::Bookworm)
            }
        );
        assert_eq!(
            deb_source(&DebSource::Host, &native, None).unwrap(),
            DebSource::Host
        );
        let err = deb_source(&DebSource::Host, &foreign, None).unwrap_err();
        assert!(err.is_usage());
        assert!(
            err.to_string()
                .contains("pass `--suite` or `--qemu-version`")
        );
        let file = DebSource::File(PathBuf::from("q.deb"));
        assert_eq!(deb_source(&file, &foreign, None).unwrap(), file);
    }
}
