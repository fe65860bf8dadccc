//! The `qus-register` command line: every flag, documented.
//!
//! The main type is [`Cli`]. It accepts the command line of the original
//! `multiarch/qemu-user-static` entrypoint (`register.sh`: `--reset` plus
//! everything QEMU's `qemu-binfmt-conf.sh` takes, with `--qemu-path
//! $QEMU_BIN_DIR` as default) and adds the verbs of qus:
//! `--targets`, `--uninstall`, `--status [--json]`, `--dry-run`, `--replace`,
//! `--force`, `--verify`. Without `--qemu-suffix` each target's interpreter is chosen
//! between `qemu-<cpu>-static` and a static `qemu-<cpu>` (`interpreter.rs`).
//! Parsing checks the raw arguments only; `app.rs` resolves them
//! and does the work.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::binfmt::DEFAULT_MOUNT;

/// Exit statuses of `qus-register`.
pub mod exit {
    /// Every requested target ended as requested.
    pub const OK: u8 = 0;
    /// At least one target failed or was refused (each is named on stderr),
    /// or binfmt_misc is unusable.
    pub const FAILED: u8 = 1;
    /// Usage error: an unknown option, target or value.
    pub const USAGE: u8 = 2;
}

const AFTER_HELP: &str = "\
Exit status: 0 every requested target ended as requested; 1 a target failed \
or was refused (each is named), or binfmt_misc is unusable; 2 usage error.

Examples:
  qus-register --reset -p yes          register every foreign target with F
  qus-register --targets arm64,riscv64 register two targets
  qus-register --status --json         what is registered, for scripts
  qus-register --verify                does every registered handler run?
  qus-register --uninstall all         remove every qemu-* entry, nothing else";

/// `yes` or `no`, as QEMU's script spells its switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum YesNo {
    /// Turn the setting on.
    Yes,
    /// Turn the setting off.
    No,
}

impl YesNo {
    /// `true` for `yes`.
    pub fn is_yes(self) -> bool {
        self == Self::Yes
    }

    /// The word, as written to Debian templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
        }
    }
}

/// Registers QEMU user-mode emulators as binfmt_misc handlers, so that
/// foreign-architecture binaries and containers run on this host.
///
/// A drop-in for `multiarch/qemu-user-static`'s entrypoint and QEMU's
/// `qemu-binfmt-conf.sh`: idempotent, never touches entries not named
/// `qemu-*`, refuses registrations that cannot work, and fails loudly.
#[derive(Debug, Clone, Parser)]
#[command(name = "qus-register", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Remove every `qemu-*` entry before registering (other entries are
    /// kept).
    #[arg(long)]
    pub reset: bool,

    /// Directory holding the QEMU interpreters.
    #[arg(
        short = 'Q',
        long,
        value_name = "PATH",
        env = "QEMU_BIN_DIR",
        default_value = "/usr/bin"
    )]
    pub qemu_path: String,

    /// Suffix of the interpreter file names: the interpreter is
    /// `<qemu-path>/qemu-<cpu><SUFFIX>`, as in QEMU's script. Default: per
    /// target, `qemu-<cpu>-static` if it exists, else `qemu-<cpu>` if it is
    /// statically linked (Debian's `qemu-user` since QEMU 9.1), else
    /// `qemu-<cpu>-static`.
    #[arg(short = 'F', long, value_name = "SUFFIX", allow_hyphen_values = true)]
    pub qemu_suffix: Option<String>,

    /// Register with `F`: the kernel opens the interpreter now, so
    /// containers need no copy of it. The interpreter must exist and be static.
    #[arg(short = 'p', long, value_name = "yes|no", default_value = "no")]
    pub persistent: YesNo,

    /// Register with `OC`: credentials come from the binary, so setuid
    /// programs work. A setuid-root foreign binary then runs as root.
    #[arg(short = 'c', long, value_name = "yes|no", default_value = "no")]
    pub credential: YesNo,

    /// Register with `P`: pass the original argv[0] to the program.
    #[arg(
        short = 'g',
        long = "preserve-argv0",
        value_name = "yes|no",
        default_value = "no"
    )]
    pub preserve_argv0: YesNo,

    /// Also register the other members of the host's family (arm on an
    /// aarch64 host that cannot run 32-bit code). Never the host's own
    /// architecture.
    #[arg(short = 'i', long, value_name = "yes|no", default_value = "no")]
    pub ignore_family: YesNo,

    /// Do not touch the kernel: write `qemu-<cpu>.conf` files for
    /// systemd-binfmt, for one CPU or ALL (to `--exportdir`, default
    /// `/etc/binfmt.d`).
    #[arg(short = 's', long, value_name = "CPU|ALL", conflicts_with_all = ["debian", "reset", "status", "uninstall"])]
    pub systemd: Option<String>,

    /// Do not touch the kernel: write update-binfmts templates (to
    /// `--exportdir`, default `/usr/share/binfmts`).
    #[arg(short = 'd', long, conflicts_with_all = ["reset", "status", "uninstall"])]
    pub debian: bool,

    /// Where `--systemd` and `--debian` write their files.
    #[arg(short = 'e', long, value_name = "DIR")]
    pub exportdir: Option<PathBuf>,

    /// Register only these targets (comma-separated). QEMU names and the
    /// aliases people type: arm64, amd64, armhf, ppc64el, linux/arm64,
    /// linux/arm/v7...
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub targets: Option<Vec<String>>,

    /// Remove the `qemu-*` entries of these targets (comma-separated), or
    /// `all` of them. Entries of other software are never touched.
    #[arg(long, value_name = "LIST|all", conflicts_with_all = ["reset", "status", "targets"])]
    pub uninstall: Option<String>,

    /// Show what is registered (a table; `--json` for scripts).
    #[arg(long, conflicts_with_all = ["reset", "targets", "dry_run"])]
    pub status: bool,

    /// With `--status`: print JSON (`supported`, `emulators`, `entries`).
    #[arg(long, requires = "status")]
    pub json: bool,

    /// Run each target's embedded probe through the kernel and report it
    /// runnable, registered but not runnable (with the likely cause), or not
    /// registered; exit 1 when a requested target is not runnable. After a
    /// registration it checks the targets registered; alone, every
    /// registered `qemu-*` entry; with `--status`, it adds `runnable`.
    #[arg(long, conflicts_with_all = ["uninstall", "dry_run", "systemd", "debian"])]
    pub verify: bool,

    /// Print the plan and the exact register lines; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Replace a registered entry that differs from the wanted one.
    #[arg(long)]
    pub replace: bool,

    /// Allow what is refused by default: an explicit target of the host's
    /// own family, or registering from a non-initial user namespace.
    #[arg(long)]
    pub force: bool,

    /// Where binfmt_misc is (or gets) mounted.
    #[arg(long, value_name = "PATH", env = "QUS_BINFMT_MOUNT", default_value = DEFAULT_MOUNT)]
    pub mount: PathBuf,

    /// The host CPU as `uname -m` names it (decides the host family).
    #[arg(long, value_name = "CPU", env = "HOST_ARCH", hide_short_help = true)]
    pub host_arch: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("qus-register").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn original_entrypoint_command_lines_parse() {
        let c = parse(&["--reset", "-p", "yes"]).unwrap();
        assert!(c.reset);
        assert_eq!(c.persistent, YesNo::Yes);
        assert_eq!(c.qemu_suffix, None);
        let c = parse(&[
            "--reset",
            "--persistent=yes",
            "--credential",
            "yes",
            "-g",
            "yes",
        ])
        .unwrap();
        assert!(c.credential.is_yes() && c.preserve_argv0.is_yes());
        let c = parse(&["-Q", "/opt/qemu", "-F", "", "-s", "ALL", "-e", "/tmp/x"]).unwrap();
        assert_eq!(c.qemu_path, "/opt/qemu");
        assert_eq!(c.qemu_suffix.as_deref(), Some(""));
        assert_eq!(c.systemd.as_deref(), Some("ALL"));
    }

    #[test]
    fn suffix_may_start_with_a_hyphen() {
        assert_eq!(
            parse(&["--qemu-suffix", "-static"])
                .unwrap()
                .qemu_suffix
                .as_deref(),
            Some("-static")
        );
    }

    #[test]
    fn targets_are_a_comma_list() {
        let c = parse(&["--targets", "arm64,linux/arm/v7"]).unwrap();
        assert_eq!(c.targets.unwrap(), ["arm64", "linux/arm/v7"]);
    }

    #[test]
    fn bad_values_and_conflicts_are_usage_errors() {
        for args in [
            &["-p", "maybe"][..],
            &["--status", "--reset"],
            &["--json"],
            &["--uninstall", "all", "--reset"],
            &["--systemd", "ALL", "--debian"],
            &["--no-such-flag"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), i32::from(exit::USAGE), "{args:?}");
        }
        let text = parse(&["-p", "maybe"]).unwrap_err().to_string();
        assert!(
            text.contains("maybe") && text.contains("--persistent"),
            "{text}"
        );
    }
}
