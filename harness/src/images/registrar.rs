//! The static `qus-register` that goes into the images: compiled from the
//! workspace or taken from a file, and checked before use.
//!
//! The main items are [`RegistrarSource`] and [`Registrar`]. Compiling uses
//! `cargo build --release -p qus-registrar --target <host triple>` with
//! `RUSTFLAGS=-C target-feature=+crt-static`: naming the target explicitly
//! keeps those flags away from build scripts and proc macros (which must
//! stay dynamic) and puts the binary in its own target directory, so the
//! workspace's ordinary builds are not invalidated. Whatever the source, the
//! binary must be a static ELF file for the CPU it is meant for
//! ([`check_static`], through `qus_registrar::elf`): the images are
//! `FROM scratch`, with no loader. Binaries for other CPUs come from
//! `cross.rs`; such a binary is asked for its version through this host's
//! `qemu-<cpu>-static` (Debian's `qemu-user-static`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use qus_registrar::{elf, targets};

use super::error::ImageBuildError;
use super::paths::workspace_root;
use super::recipe::sha256_bytes;
use super::tool::{CARGO, Invocation, Tool};

/// The package and binary compiled.
const PACKAGE: &str = "qus-registrar";
const BINARY: &str = "qus-register";

/// Bound on a cold release build with LTO.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(1800);

/// Where the registrar comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrarSource {
    /// Compile it from the workspace at this path.
    Workspace(PathBuf),
    /// Use this prebuilt binary (`--registrar PATH`).
    File(PathBuf),
    /// Cross-compile it from the workspace for another CPU (`aarch64`) in
    /// a Debian builder image ([`cross_registrar`](super::cross_registrar)):
    /// the source of the images for another host
    /// ([`BuildOptions::host_arch`](super::BuildOptions::host_arch)), and
    /// the default one there.
    Cross {
        /// The target CPU as QEMU names it, or an alias (`arm64`).
        machine: String,
    },
}

impl Default for RegistrarSource {
    /// The workspace this harness was compiled from.
    fn default() -> Self {
        RegistrarSource::Workspace(workspace_root())
    }
}

/// A checked registrar binary, in memory.
#[derive(Debug, Clone)]
pub(crate) struct Registrar {
    /// The binary.
    pub(crate) bytes: Vec<u8>,
    /// Its SHA-256.
    pub(crate) sha256: String,
    /// What `qus-register --version` prints after the name (`0.1.0`).
    pub(crate) version: String,
}

/// The Rust target triple of this host (`x86_64-unknown-linux-gnu`).
pub(crate) fn host_triple(machine: &str) -> String {
    format!("{machine}-unknown-linux-gnu")
}

/// Compiles the static registrar in `workspace` and returns its path.
pub(crate) async fn compile(workspace: &Path, machine: &str) -> Result<PathBuf, ImageBuildError> {
    // `cargo` runs us under `cargo test`/`cargo run` with `$CARGO` set:
    // prefer that exact toolchain.
    let mut invocation = Invocation::new(CARGO);
    if let Some(cargo) = std::env::var_os("CARGO").filter(|c| !c.is_empty()) {
        invocation = invocation.program(cargo);
    }
    let output = invocation
        .args(["build", "--release", "-p", PACKAGE, "--bin", BINARY])
        .args(["--target", &host_triple(machine)])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // It would override RUSTFLAGS (cargo's precedence).
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .timeout(COMPILE_TIMEOUT)
        .hint("or pass a prebuilt static registrar with `--registrar PATH`")
        .output()
        .await?;
    executable_from_messages(&String::from_utf8_lossy(&output.stdout)).ok_or_else(|| {
        ImageBuildError::UnusableRegistrar {
            path: workspace.to_owned(),
            reason: format!("cargo reported no `{BINARY}` executable"),
        }
    })
}

/// The `executable` of the `qus-register` binary artifact in cargo's JSON
/// messages.
fn executable_from_messages(stdout: &str) -> Option<PathBuf> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == BINARY)
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
}

/// Reads and checks the binary at `path`: a static ELF executable for the
/// images' host CPU `machine` that answers `--version` (through this host's
/// QEMU when `machine` is not the CPU this runs on, `running`).
pub(crate) async fn load(
    path: &Path,
    machine: &str,
    running: &str,
) -> Result<Registrar, ImageBuildError> {
    let what = if machine == running {
        "this host's CPU"
    } else {
        "the images' host CPU"
    };
    let bytes = check_static(path, machine, what)?;
    let version = version(path, machine, running).await?;
    Ok(Registrar {
        sha256: sha256_bytes(&bytes),
        bytes,
        version,
    })
}

/// Reads the binary at `path` and checks that it is a static ELF
/// executable for the CPU `machine` (a QEMU target name; one the table
/// does not know is not checked), which messages call `what` (`this host's
/// CPU`); returns its bytes.
pub(crate) fn check_static(
    path: &Path,
    machine: &str,
    what: &str,
) -> Result<Vec<u8>, ImageBuildError> {
    let header = elf::read_file(path).map_err(|source| ImageBuildError::Elf {
        path: path.to_owned(),
        source,
    })?;
    if let Some(interp) = &header.interp {
        return Err(ImageBuildError::UnusableRegistrar {
            path: path.to_owned(),
            reason: format!(
                "it is dynamically linked (interpreter `{interp}`) and the images have no \
                 loader; build it with `RUSTFLAGS='-C target-feature=+crt-static'` and `--target`"
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(ImageBuildError::io("read", path))?;
    if let Some(target) = targets::find(machine)
        && !elf::matches(target, &bytes)
    {
        return Err(ImageBuildError::UnusableRegistrar {
            path: path.to_owned(),
            reason: format!("it is not an executable for {what} `{machine}`"),
        });
    }
    Ok(bytes)
}

/// This host's QEMU for a registrar built for `machine`: Debian's static
/// emulator, as the cross builds' tests run it.
fn emulator_for(machine: &str) -> Option<Tool> {
    const HINT: &str = "install the Debian package `qemu-user-static`: a registrar for another \
                        CPU is asked for its version under emulation";
    let program = match machine {
        "aarch64" => "qemu-aarch64-static",
        "ppc64le" => "qemu-ppc64le-static",
        "riscv64" => "qemu-riscv64-static",
        "s390x" => "qemu-s390x-static",
        _ => return None,
    };
    Some(Tool {
        program,
        hint: HINT,
    })
}

/// `0.1.0` from `qus-register 0.1.0`.
async fn version(path: &Path, machine: &str, running: &str) -> Result<String, ImageBuildError> {
    let tool = Tool {
        program: BINARY,
        hint: "",
    };
    // Another CPU's binary runs under this host's QEMU when one is known
    // for it; otherwise directly (a registered handler may run it).
    let invocation = match emulator_for(machine).filter(|_| machine != running) {
        Some(qemu) => Invocation::new(qemu).arg(path),
        None => Invocation::new(tool).program(path),
    };
    let output = invocation
        .arg("--version")
        .timeout(Duration::from_secs(30))
        .output()
        .await?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_version(&text).ok_or_else(|| ImageBuildError::UnusableRegistrar {
        path: path.to_owned(),
        reason: format!(
            "`--version` printed `{}`, not `{BINARY} <version>`",
            text.trim()
        ),
    })
}

fn parse_version(text: &str) -> Option<String> {
    let line = text.lines().next()?.trim();
    let version = line.strip_prefix(BINARY)?.trim();
    (!version.is_empty() && !version.contains(char::is_whitespace)).then(|| version.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_is_found_in_cargo_messages() {
        let stdout = r#"{"reason":"compiler-artifact","target":{"name":"clap","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"qus-register","kind":["bin"]},"executable":"/w/target/x86_64-unknown-linux-gnu/release/qus-register"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_from_messages(stdout),
            Some(PathBuf::from(
                "/w/target/x86_64-unknown-linux-gnu/release/qus-register"
            ))
        );
        assert_eq!(executable_from_messages("not json\n"), None);
    }

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("qus-register 0.1.0\n").as_deref(),
            Some("0.1.0")
        );
        assert_eq!(parse_version("other 0.1.0\n"), None);
        assert_eq!(parse_version("qus-register\n"), None);
    }

    #[test]
    fn other_cpus_run_under_debians_static_qemu() {
        for machine in ["aarch64", "ppc64le", "riscv64", "s390x"] {
            let tool = emulator_for(machine).unwrap();
            assert_eq!(tool.program, format!("qemu-{machine}-static"));
            assert!(tool.hint.contains("qemu-user-static"));
        }
        assert!(emulator_for("x86_64").is_none());
    }

    #[test]
    fn triples_name_the_gnu_target() {
        assert_eq!(host_triple("x86_64"), "x86_64-unknown-linux-gnu");
        assert_eq!(host_triple("aarch64"), "aarch64-unknown-linux-gnu");
    }

    #[test]
    fn a_dynamic_binary_is_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The harness's own test binary is dynamically linked.
        let me = std::env::current_exe().unwrap();
        let err = runtime.block_on(load(&me, "x86_64", "x86_64")).unwrap_err();
        assert!(
            matches!(&err, ImageBuildError::UnusableRegistrar { reason, .. }
                if reason.contains("dynamically linked")),
            "{err:?}"
        );
    }
}
