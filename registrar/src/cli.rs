//! The `qus-register` command line: every flag, documented.
//!
//! The main type is [`Cli`]. It accepts the command line of the original
//! `multiarch/qemu-user-static` entrypoint (`register.sh`: `--reset` plus
//! everything QEMU's `qemu-binfmt-conf.sh` takes, with `--qemu-path
//! $QEMU_BIN_DIR` as default) and adds the verbs of qus:
//! `--targets`, `--uninstall`, `--status [--json]`, `--dry-run`, `--replace`,
//! `--force`, `--verify`. Without `--qemu-suffix` each target's interpreter is chosen
//! between `qemu-<cpu>-static` and a static `qemu-<cpu>` (`interpreter.rs`).
//! [`BinfmtCli`] is tonistiigi/binfmt's command line (`compat.rs`), taken
//! when the program is invoked as `binfmt` or with `--compat binfmt` first;
//! [`Invocation::parse`] tells the two apart. Parsing checks the raw
//! arguments only; `app.rs` and `compat.rs` resolve them and do the work.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

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
    /// `--private`: the private registry could not be set up (the kernel,
    /// the namespaces, the mount, or a registration failed); the command
    /// did not run. As `docker run` and `env` use it.
    pub const PRIVATE_FAILED: u8 = 125;
    /// `--private`: the command was found but could not be executed.
    pub const CANNOT_EXECUTE: u8 = 126;
    /// `--private`: the command was not found.
    pub const NOT_FOUND: u8 = 127;
}

const AFTER_HELP: &str = "\
Exit status: 0 every requested target ended as requested; 1 a target failed \
or was refused (each is named), or binfmt_misc is unusable; 2 usage error. \
With --private: COMMAND's status; 125 the private registry could not be set \
up (COMMAND did not run); 126 COMMAND cannot be executed; 127 not found.

Examples:
  qus-register --reset -p yes          register every foreign target with F
  qus-register --targets arm64,riscv64 register two targets
  qus-register --status --json         what is registered, for scripts
  qus-register --verify                does every registered handler run?
  qus-register --uninstall all         remove every qemu-* entry, nothing else
  qus-register --compat binfmt --install all   tonistiigi/binfmt's command line
  qus-register --private --targets arm64 -- make test   without root, host untouched
  qus-register -p yes --wait --health-file /run/qus/ready   keep them registered
  qus-register --check-health --health-file /run/qus/ready  is that process healthy?";

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

    /// Register in a private binfmt_misc, then run COMMAND in it: a new
    /// user and mount namespace (Linux 6.7+; no root needed) gets its own
    /// registry, which the kernel uses for COMMAND and everything it starts
    /// (rootless Podman, `apptainer --userns`, `unshare`); the host's
    /// registry is never touched. Without COMMAND, `$SHELL` runs. Every
    /// registration option applies.
    #[arg(
        long,
        conflicts_with_all = ["status", "uninstall", "systemd", "debian", "dry_run"]
    )]
    pub private: bool,

    /// Stay running after registering: every `--interval` check the
    /// requested entries again (and, with `--verify`, run their probes),
    /// mount binfmt_misc if it went, re-register what vanished or changed,
    /// log each repair, and keep `--health-file` up to date. SIGTERM or
    /// SIGINT ends it with exit 0.
    #[arg(
        long,
        conflicts_with_all = ["status", "uninstall", "systemd", "debian", "dry_run", "private"]
    )]
    pub wait: bool,

    /// With `--wait`: seconds between checks (1 to 86400). With
    /// `--check-health`: the interval of the process that writes the file.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "QUS_INTERVAL",
        default_value = "10",
        value_parser = clap::value_parser!(u64).range(1..=86400)
    )]
    pub interval: u64,

    /// With `--wait`: a file that exists while every requested target is
    /// registered as asked (and runnable, with `--verify`), and not
    /// otherwise; one entry name a line, rewritten at every check. For
    /// readiness probes.
    #[arg(long, value_name = "PATH", env = "QUS_HEALTH_FILE")]
    pub health_file: Option<PathBuf>,

    /// With `--wait`: when stopped, first remove the entries this process
    /// registered (at start or in a repair) that are still as it registered
    /// them; entries it found registered are left.
    #[arg(long, requires = "wait")]
    pub uninstall_on_exit: bool,

    /// Check the `--health-file` of a `--wait` process, for readiness and
    /// health probes (the registrar images have no shell): exit 0, printing
    /// its entry names, when it exists and was rewritten within two
    /// `--interval`s and a minute; exit 1, saying why, otherwise. Reads
    /// nothing else and changes nothing.
    #[arg(
        long,
        conflicts_with_all = [
            "wait", "reset", "targets", "status", "uninstall", "systemd", "debian",
            "dry_run", "private", "verify",
        ]
    )]
    pub check_health: bool,

    /// With `--private`: the command to run, after `--`.
    #[arg(last = true, value_name = "COMMAND", requires = "private")]
    pub command: Vec<OsString>,

    /// Behave as another tool's command line; must be the first argument.
    /// `binfmt`: tonistiigi/binfmt's (`--install`, `--uninstall`,
    /// `--version`, status JSON), as docker/setup-qemu-action runs it; the
    /// same as invoking this program under the name `binfmt`.
    #[arg(long, value_name = "TOOL")]
    pub compat: Option<Compat>,
}

/// The other tools' command lines `qus-register` can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compat {
    /// tonistiigi/binfmt (`binfmt --install all`).
    Binfmt,
}

const BINFMT_AFTER_HELP: &str = "\
Environment (tonistiigi/binfmt's): QEMU_BINARY_PATH is --binary-path; \
QEMU_PRESERVE_ARGV0, when set and not empty, adds `P` to the flags; \
QEMU_BINARY_PREFIX is refused (qus registers `qemu-*` entries only). \
Single-dash long options (`-install all`) are taken as Go's flag package \
takes them.

Exit status: 0 done; 1 a platform failed or was refused, or binfmt_misc is \
unusable (the last line of stderr names the first cause); 2 usage error. \
On success stdout is the status JSON (`supported`, `emulators`, `entries`); \
progress goes to stderr.";

/// tonistiigi/binfmt's command line, as docker/setup-qemu-action runs it:
/// `--version`, `--uninstall qemu-*`, `--install LIST|all`, then no
/// argument for the status JSON.
///
/// Registers with `CF` by default (tonistiigi's flags), where
/// `qus-register` uses no flags without `-p`/`-c`: see `--flags`.
#[derive(Debug, Clone, Parser)]
#[command(name = "binfmt", disable_version_flag = true, after_help = BINFMT_AFTER_HELP)]
pub struct BinfmtCli {
    /// Register these platforms (comma-separated: arm64, riscv64, arm,
    /// linux/arm/v7, amd64, 386, ppc64le, s390x, mips64le, mips64, loong64,
    /// or any qus target name), or `all`: every target outside the host's
    /// family whose interpreter is present.
    #[arg(long, value_name = "LIST|all")]
    pub install: Option<String>,

    /// Remove these `qemu-*` entries (comma-separated): entry names
    /// (`qemu-aarch64`), targets or platforms (`arm64`), or globs
    /// (`qemu-*`). Entries of other software are never touched.
    #[arg(long, value_name = "LIST")]
    pub uninstall: Option<String>,

    /// Print the qus and QEMU versions (`binfmt/qus-<v> qemu/<v>`).
    #[arg(long)]
    pub version: bool,

    /// Where binfmt_misc is (or gets) mounted.
    #[arg(long, value_name = "PATH", env = "QUS_BINFMT_MOUNT", default_value = DEFAULT_MOUNT)]
    pub mount: PathBuf,

    /// Directory holding the QEMU interpreters; each target uses
    /// `qemu-<cpu>-static` there, else a static `qemu-<cpu>`. Default
    /// `/usr/bin`.
    #[arg(long, value_name = "DIR", env = "QEMU_BINARY_PATH")]
    pub binary_path: Option<String>,

    /// Flags to register with (letters of `POCF`). Default `CF`, as
    /// tonistiigi/binfmt: `C` makes setuid programs (`sudo`) work, and a
    /// setuid-root foreign binary then runs as root; `F` pins the
    /// interpreter. `QEMU_PRESERVE_ARGV0` adds `P`.
    #[arg(long, value_name = "LETTERS", env = "QUS_BINFMT_FLAGS")]
    pub flags: Option<String>,

    /// tonistiigi's `QEMU_PRESERVE_ARGV0`: any non-empty value adds `P`.
    #[arg(long, value_name = "VALUE", env = "QEMU_PRESERVE_ARGV0", hide = true)]
    pub preserve_argv0: Option<String>,

    /// tonistiigi's `QEMU_BINARY_PREFIX`: refused unless empty.
    #[arg(long, value_name = "PREFIX", env = "QEMU_BINARY_PREFIX", hide = true)]
    pub binary_prefix: Option<String>,

    /// The host CPU as `uname -m` names it (decides the host family).
    #[arg(long, value_name = "CPU", env = "HOST_ARCH", hide = true)]
    pub host_arch: Option<String>,
}

/// Which command line a process was started with.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// `qus-register`'s own.
    Register(Box<Cli>),
    /// tonistiigi/binfmt's: the program was invoked as `binfmt`, or with
    /// `--compat binfmt` first.
    Binfmt(BinfmtCli),
}

/// tonistiigi/binfmt's long options, which Go's flag package also takes
/// with one dash.
const BINFMT_LONG: [&str; 4] = ["install", "uninstall", "version", "mount"];

/// A command line that does not parse, or `--help`.
#[derive(Debug)]
pub struct ParseError {
    /// clap's error (or help text).
    pub error: clap::Error,
    /// Whether it was tonistiigi's command line.
    pub binfmt: bool,
}

impl ParseError {
    /// The exit status: 0 for `--help`, 2 for a usage error.
    pub fn exit_code(&self) -> u8 {
        u8::try_from(self.error.exit_code()).unwrap_or(exit::USAGE)
    }

    /// Prints it as clap does, except that tonistiigi's command line puts
    /// the `error:` line last: docker/setup-qemu-action shows only the last
    /// line of stderr, which clap fills with "For more information, try
    /// '--help'".
    pub fn print(&self) -> std::io::Result<()> {
        if !self.binfmt || !self.error.use_stderr() {
            return self.error.print();
        }
        let text = self.error.render().to_string();
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        let rest: Vec<&str> = lines
            .filter(|l| !l.starts_with("For more information"))
            .collect();
        let mut err = std::io::stderr().lock();
        use std::io::Write as _;
        writeln!(err, "{}", rest.join("\n").trim())?;
        writeln!(err, "{first}")
    }
}

impl Invocation {
    /// Parses a whole command line, `args[0]` included: under the name
    /// `binfmt`, or with `--compat binfmt` (or `--compat=binfmt`) first, as
    /// [`BinfmtCli`]; otherwise as [`Cli`].
    pub fn parse<I, T>(args: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let name = args
            .first()
            .map(|a| Path::new(a).file_name().unwrap_or(a.as_os_str()).to_owned());
        let binfmt = |at: usize| {
            parse_binfmt(&args[at..])
                .map(Self::Binfmt)
                .map_err(|error| ParseError {
                    error,
                    binfmt: true,
                })
        };
        if name.as_deref() == Some(OsStr::new("binfmt")) {
            return binfmt(1);
        }
        let first = args.get(1).and_then(|a| a.to_str());
        let rest = match first {
            Some("--compat=binfmt") => Some(2),
            Some("--compat") if args.get(2).and_then(|a| a.to_str()) == Some("binfmt") => Some(3),
            _ => None,
        };
        match rest {
            Some(at) => binfmt(at),
            None => Cli::try_parse_from(args)
                .map(|c| Self::Register(Box::new(c)))
                .map_err(|error| ParseError {
                    error,
                    binfmt: false,
                }),
        }
    }
}

/// Parses tonistiigi's options (after the program name), taking `-install`
/// for `--install` as Go does.
fn parse_binfmt(args: &[OsString]) -> Result<BinfmtCli, clap::Error> {
    let normalised = args.iter().map(|a| {
        let Some(text) = a.to_str() else {
            return a.clone();
        };
        let single = text
            .strip_prefix('-')
            .filter(|rest| !rest.starts_with('-'))
            .filter(|rest| BINFMT_LONG.contains(&rest.split('=').next().unwrap_or(rest)));
        match single {
            Some(rest) => OsString::from(format!("--{rest}")),
            None => a.clone(),
        }
    });
    BinfmtCli::try_parse_from(std::iter::once(OsString::from("binfmt")).chain(normalised))
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
