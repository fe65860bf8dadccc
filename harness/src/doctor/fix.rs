//! `qus-harness doctor --fix`: the fixes the doctor prints, performed on
//! Debian and Ubuntu hosts, as root: mount binfmt_misc, install Debian's
//! `qemu-user-static`, `docker.io` or `podman`, start dockerd or Podman's
//! API service.
//!
//! [`plan`] derives the fixes from the doctor's [`Inputs`] (so only what
//! is missing is planned: running it again plans nothing); [`Fix::commands`]
//! is what `--dry-run` lists and [`apply`] runs, each fix announced first.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qus_registrar::binfmt::MountState;

use super::inputs::Inputs;
use crate::runtime::RuntimeKind;

/// Where a started daemon's output goes.
const LOG_DIR: &str = "/var/log";

/// Where `--fix` starts Podman's API service without systemd.
const PODMAN_SOCKET: &str = "unix:///run/podman/podman.sock";

/// How long a started daemon gets to answer.
const START_WAIT: Duration = Duration::from_secs(30);

/// One fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Load binfmt_misc (when the kernel shows no mount point) and mount it.
    Mount {
        /// The mount point.
        point: PathBuf,
        /// Whether `modprobe binfmt_misc` comes first.
        modprobe: bool,
    },
    /// `apt-get install` these packages.
    Install(Vec<&'static str>),
    /// Start an engine's daemon (Docker) or API service (Podman).
    Start {
        /// The engine.
        engine: RuntimeKind,
        /// Whether systemd runs (then `systemctl start`).
        systemd: bool,
    },
}

/// Why a fix could not be performed.
#[derive(Debug, thiserror::Error)]
pub enum FixError {
    /// Not root.
    #[error("`doctor --fix` needs root (hint: `sudo qus-harness doctor --fix`)")]
    NotRoot,
    /// Not a Debian or Ubuntu host.
    #[error(
        "`doctor --fix` knows Debian and Ubuntu only, and `/etc/os-release` says `{0}` \
         (hint: perform the fixes `qus-harness doctor` prints by hand)"
    )]
    NotDebian(String),
    /// A command failed.
    #[error("`{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status or start error.
        reason: String,
    },
    /// A started daemon did not answer in time.
    #[error("`{command}` started, but `{engine}` did not answer within {secs}s: {reason}")]
    NotAnswering {
        /// The command line.
        command: String,
        /// The engine.
        engine: &'static str,
        /// The wait.
        secs: u64,
        /// The last probe error.
        reason: String,
    },
}

impl Fix {
    /// What the fix does, one line.
    pub fn describe(&self) -> String {
        match self {
            Fix::Mount { point, .. } => format!("mount binfmt_misc at `{}`", point.display()),
            Fix::Install(packages) => format!("install {}", packages.join(", ")),
            Fix::Start { engine, .. } => match engine {
                RuntimeKind::Docker => "start dockerd".to_owned(),
                _ => "start Podman's API service".to_owned(),
            },
        }
    }

    /// The commands it runs, in order (what `--dry-run` prints).
    pub fn commands(&self) -> Vec<Vec<String>> {
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        match self {
            Fix::Mount { point, modprobe } => {
                let mut commands = Vec::new();
                if *modprobe {
                    commands.push(words(&["modprobe", "binfmt_misc"]));
                }
                let mut mount = words(&["mount", "-t", "binfmt_misc", "binfmt_misc"]);
                mount.push(point.display().to_string());
                commands.push(mount);
                commands
            }
            Fix::Install(packages) => {
                let mut install = words(&["apt-get", "install", "-y", "--no-install-recommends"]);
                install.extend(packages.iter().map(|p| (*p).to_owned()));
                vec![words(&["apt-get", "update"]), install]
            }
            Fix::Start {
                engine: RuntimeKind::Docker,
                systemd: true,
            } => vec![words(&["systemctl", "start", "docker"])],
            Fix::Start {
                engine: RuntimeKind::Docker,
                systemd: false,
            } => vec![words(&["setsid", "-f", "dockerd"])],
            Fix::Start { systemd: true, .. } => {
                vec![words(&["systemctl", "start", "podman.socket"])]
            }
            Fix::Start { systemd: false, .. } => vec![words(&[
                "setsid",
                "-f",
                "podman",
                "system",
                "service",
                "--time=0",
                PODMAN_SOCKET,
            ])],
        }
    }
}

/// The fixes `inputs` call for, in the order they must run (packages
/// before the daemons they provide). `host_qemu` says whether the host has
/// Debian's static emulators.
pub fn plan(inputs: &Inputs, host_qemu: bool) -> Vec<Fix> {
    let mut fixes = Vec::new();
    match inputs.mount_state {
        MountState::NotMounted => fixes.push(Fix::Mount {
            point: inputs.mount_point.clone(),
            modprobe: false,
        }),
        MountState::Missing => fixes.push(Fix::Mount {
            point: inputs.mount_point.clone(),
            modprobe: true,
        }),
        MountState::Mounted => {}
    }
    let mut packages = Vec::new();
    if !host_qemu {
        packages.push("qemu-user-static");
    }
    let mut starts = Vec::new();
    for engine in &inputs.engines {
        let package = match engine.kind {
            RuntimeKind::Docker => "docker.io",
            RuntimeKind::Podman => "podman",
            // Apptainer is not in Debian 12 or Ubuntu's archive.
            _ => continue,
        };
        if engine.error.is_none() && engine.found {
            continue;
        }
        if !engine.found {
            packages.push(package);
        }
        starts.push(Fix::Start {
            engine: engine.kind,
            systemd: inputs.systemd.running,
        });
    }
    if !packages.is_empty() {
        fixes.push(Fix::Install(packages));
    }
    fixes.extend(starts);
    fixes
}

/// Whether `os_release` is Debian's, Ubuntu's or a derivative's; `Err` is
/// its `ID`.
pub fn check_debian(os_release: &str) -> Result<(), String> {
    let field = |name: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    let (id, like) = (field("ID="), field("ID_LIKE="));
    let debian = |w: &str| w == "debian" || w == "ubuntu";
    if debian(&id) || like.split_whitespace().any(debian) {
        Ok(())
    } else {
        Err(id)
    }
}

/// Performs `fix`, then, for a started engine, waits until `answers`
/// says it answers.
pub fn apply(
    fix: &Fix,
    answers: &dyn Fn(RuntimeKind) -> Result<(), String>,
) -> Result<(), FixError> {
    for command in fix.commands() {
        let line = command.join(" ");
        let mut c = Command::new(&command[0]);
        c.args(&command[1..]).stdin(Stdio::null());
        if command[0] == "setsid" {
            // A daemon: its output goes to a log file, not to our terminal.
            let log = PathBuf::from(LOG_DIR).join(format!("qus-{}.log", command[2]));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| FixError::Command {
                    command: line.clone(),
                    reason: format!("cannot open `{}`: {e}", log.display()),
                })?;
            let err = file.try_clone().map_err(|e| FixError::Command {
                command: line.clone(),
                reason: e.to_string(),
            })?;
            c.stdout(file).stderr(err);
        } else if command[0] == "apt-get" {
            c.env("DEBIAN_FRONTEND", "noninteractive");
        }
        let status = c.status().map_err(|e| FixError::Command {
            command: line.clone(),
            reason: e.to_string(),
        })?;
        if !status.success() {
            return Err(FixError::Command {
                command: line,
                reason: status.to_string(),
            });
        }
    }
    if let Fix::Start { engine, .. } = fix {
        let deadline = Instant::now() + START_WAIT;
        loop {
            match answers(*engine) {
                Ok(()) => break,
                Err(reason) if Instant::now() > deadline => {
                    return Err(FixError::NotAnswering {
                        command: fix.commands()[0].join(" "),
                        engine: engine.as_str(),
                        secs: START_WAIT.as_secs(),
                        reason,
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_and_ubuntu_and_their_derivatives() {
        assert_eq!(check_debian("ID=debian\nVERSION_ID=\"12\"\n"), Ok(()));
        assert_eq!(check_debian("ID=ubuntu\n"), Ok(()));
        assert_eq!(
            check_debian("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n"),
            Ok(())
        );
        assert_eq!(check_debian("ID=fedora\n"), Err("fedora".to_owned()));
        assert_eq!(check_debian(""), Err(String::new()));
    }

    #[test]
    fn commands_of_each_fix() {
        let mount = Fix::Mount {
            point: "/proc/sys/fs/binfmt_misc".into(),
            modprobe: true,
        };
        assert_eq!(
            mount.commands(),
            [
                vec!["modprobe", "binfmt_misc"],
                vec![
                    "mount",
                    "-t",
                    "binfmt_misc",
                    "binfmt_misc",
                    "/proc/sys/fs/binfmt_misc"
                ]
            ]
        );
        let start = Fix::Start {
            engine: RuntimeKind::Docker,
            systemd: false,
        };
        assert_eq!(start.commands(), [vec!["setsid", "-f", "dockerd"]]);
        let start = Fix::Start {
            engine: RuntimeKind::Podman,
            systemd: true,
        };
        assert_eq!(
            start.commands(),
            [vec!["systemctl", "start", "podman.socket"]]
        );
        assert_eq!(
            Fix::Install(vec!["qemu-user-static"]).commands()[1],
            [
                "apt-get",
                "install",
                "-y",
                "--no-install-recommends",
                "qemu-user-static"
            ]
        );
    }
}
