//! What a cross build compiles: the registrar's sources, hashed for the
//! recipe, the crates they need, vendored for an offline build, and the
//! cargo command that runs in the builder.
//!
//! The main items are [`sources_recipe`] (a hash of `registrar/`,
//! `Cargo.lock` and the root `Cargo.toml`), [`vendor`] (`cargo vendor` on
//! the host, from the host's cargo registry) and [`CargoBuild`] (the
//! arguments and environment of `cargo build` inside the builder). The
//! builder runs without a network: crates come from the vendor directory,
//! so no TLS or proxy setting of the host has to reach the container, and
//! `--locked` holds the build to the workspace's `Cargo.lock`. Nothing here
//! talks to an engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cross::CrossTarget;
use super::error::ImageBuildError;
use super::recipe::{Recipe, sha256_file};
use super::tool::{CARGO, Invocation};

/// The package and binary compiled.
const PACKAGE: &str = "qus-registrar";
const BINARY: &str = "qus-register";

/// Where the builder sees the workspace (read-only), the vendored crates
/// (read-only) and cargo's target directory.
pub(crate) const SRC_MOUNT: &str = "/src";
pub(crate) const VENDOR_MOUNT: &str = "/vendor";
pub(crate) const TARGET_MOUNT: &str = "/target";

/// Bound on `cargo vendor` (a few seconds from a warm registry).
const VENDOR_TIMEOUT: Duration = Duration::from_secs(900);

/// The recipe of the registrar's sources in `workspace`: every file under
/// `registrar/` (by relative path, sorted, with its SHA-256), `Cargo.lock`
/// and the root `Cargo.toml` (workspace dependencies, release profile).
///
/// # Errors
///
/// A file that cannot be read.
pub(crate) fn sources_recipe(workspace: &Path) -> Result<String, ImageBuildError> {
    let mut files = Vec::new();
    collect_files(workspace, Path::new("registrar"), &mut files)?;
    files.sort();
    let mut recipe = Recipe::new("qus-registrar/sources");
    for name in ["Cargo.toml", "Cargo.lock"]
        .into_iter()
        .map(str::to_owned)
        .chain(files)
    {
        let path = workspace.join(&name);
        let sha = sha256_file(&path).map_err(ImageBuildError::io("hash", &path))?;
        recipe = recipe.field(&name, sha);
    }
    Ok(recipe.finish())
}

/// Appends the regular files below `workspace/dir` as `/`-separated paths
/// relative to `workspace`. Symbolic links are followed as files; a
/// `target` directory (a stray build) is skipped.
fn collect_files(
    workspace: &Path,
    dir: &Path,
    files: &mut Vec<String>,
) -> Result<(), ImageBuildError> {
    let full = workspace.join(dir);
    let entries = std::fs::read_dir(&full).map_err(ImageBuildError::io("read directory", &full))?;
    for entry in entries {
        let entry = entry.map_err(ImageBuildError::io("read directory", &full))?;
        let relative = dir.join(entry.file_name());
        let is_dir = std::fs::metadata(entry.path())
            .map_err(ImageBuildError::io("inspect", entry.path()))?
            .is_dir();
        if is_dir {
            if entry.file_name() != "target" {
                collect_files(workspace, &relative, files)?;
            }
        } else {
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            files.push(name);
        }
    }
    Ok(())
}

/// `cargo vendor --locked --versioned-dirs DIR` in `workspace`: every
/// crate `Cargo.lock` names, copied out of the host's cargo registry
/// (downloaded from crates.io first when missing there).
pub(crate) async fn vendor(workspace: &Path, dir: &Path) -> Result<(), ImageBuildError> {
    // Under `cargo test`/`cargo run`, `$CARGO` is the toolchain running us.
    let mut invocation = Invocation::new(CARGO);
    if let Some(cargo) = std::env::var_os("CARGO").filter(|c| !c.is_empty()) {
        invocation = invocation.program(cargo);
    }
    invocation
        .args(["vendor", "--locked", "--versioned-dirs"])
        .arg(dir)
        .current_dir(workspace)
        .timeout(VENDOR_TIMEOUT)
        .hint("the cross builds take their crates from the host's cargo registry: crates.io must be reachable once")
        .output()
        .await?;
    Ok(())
}

/// `cargo build` of the static registrar for one target, as the builder
/// runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CargoBuild {
    /// The command line.
    pub(crate) command: Vec<String>,
    /// The environment it needs.
    pub(crate) env: Vec<(String, String)>,
}

impl CargoBuild {
    /// The build for `target`: release profile, `--locked` to the
    /// workspace's lock file, offline from the vendored crates, glibc
    /// linked statically by the target's cross gcc.
    pub(crate) fn new(target: &CrossTarget) -> Self {
        let command = [
            "cargo",
            "build",
            "--release",
            "--locked",
            "--offline",
            "--manifest-path",
            &format!("{SRC_MOUNT}/Cargo.toml"),
            "--config",
            "source.crates-io.replace-with=\"vendored-sources\"",
            "--config",
            &format!("source.vendored-sources.directory=\"{VENDOR_MOUNT}\""),
            "-p",
            PACKAGE,
            "--bin",
            BINARY,
            "--target",
            target.rust_target,
        ]
        .map(str::to_owned)
        .to_vec();
        let env = [
            // RUSTFLAGS with `--target` reach the target's crates only:
            // build scripts and proc macros stay dynamic host programs.
            ("RUSTFLAGS", rustflags(target)),
            ("CARGO_TARGET_DIR", TARGET_MOUNT.to_owned()),
            // The container's user may have no home directory.
            ("CARGO_HOME", "/tmp/cargo-home".to_owned()),
            ("CARGO_TERM_COLOR", "never".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec();
        Self { command, env }
    }

    /// The command line with its environment, for messages and recipes.
    pub(crate) fn display(&self) -> String {
        self.env
            .iter()
            .map(|(k, v)| {
                if v.contains(' ') {
                    format!("{k}='{v}'")
                } else {
                    format!("{k}={v}")
                }
            })
            .chain(self.command.iter().map(|a| {
                if a.contains('"') {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            }))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `-C target-feature=+crt-static -C linker=<triple>-gcc`.
pub(crate) fn rustflags(target: &CrossTarget) -> String {
    format!(
        "-C target-feature=+crt-static -C linker={}-gcc",
        target.gnu_triple
    )
}

/// Where cargo leaves the binary in the target directory `target_dir`.
pub(crate) fn built_binary(target_dir: &Path, target: &CrossTarget) -> PathBuf {
    target_dir
        .join(target.rust_target)
        .join("release")
        .join(BINARY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aarch64() -> &'static CrossTarget {
        CrossTarget::find("aarch64").unwrap()
    }

    #[test]
    fn cargo_builds_the_registrar_offline_locked_and_static() {
        let build = CargoBuild::new(aarch64());
        assert_eq!(
            build.command,
            [
                "cargo",
                "build",
                "--release",
                "--locked",
                "--offline",
                "--manifest-path",
                "/src/Cargo.toml",
                "--config",
                "source.crates-io.replace-with=\"vendored-sources\"",
                "--config",
                "source.vendored-sources.directory=\"/vendor\"",
                "-p",
                "qus-registrar",
                "--bin",
                "qus-register",
                "--target",
                "aarch64-unknown-linux-gnu",
            ]
        );
        let env: std::collections::BTreeMap<_, _> = build.env.iter().cloned().collect();
        assert_eq!(
            env["RUSTFLAGS"],
            "-C target-feature=+crt-static -C linker=aarch64-linux-gnu-gcc"
        );
        assert_eq!(env["CARGO_TARGET_DIR"], "/target");
        assert!(
            build
                .display()
                .starts_with("RUSTFLAGS='-C target-feature=+crt-static -C linker=aarch64-linux-gnu-gcc' CARGO_TARGET_DIR=/target "),
            "{}",
            build.display()
        );
        assert!(
            build
                .display()
                .contains(" --config 'source.crates-io.replace-with=\"vendored-sources\"' "),
            "{}",
            build.display()
        );
    }

    #[test]
    fn riscv64_links_with_its_gnu_triple_and_builds_rv64gc() {
        let riscv = CrossTarget::find("riscv64").unwrap();
        assert_eq!(
            rustflags(riscv),
            "-C target-feature=+crt-static -C linker=riscv64-linux-gnu-gcc"
        );
        assert_eq!(
            built_binary(Path::new("/t"), riscv),
            PathBuf::from("/t/riscv64gc-unknown-linux-gnu/release/qus-register")
        );
    }

    fn workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("registrar/src/export")).unwrap();
        std::fs::create_dir_all(root.join("registrar/target/release")).unwrap();
        std::fs::create_dir_all(root.join("harness/src")).unwrap();
        for (path, text) in [
            ("Cargo.toml", "[workspace]\n"),
            ("Cargo.lock", "version = 4\n"),
            ("registrar/Cargo.toml", "[package]\n"),
            ("registrar/src/main.rs", "fn main() {}\n"),
            ("registrar/src/export/mod.rs", "//! x\n"),
            ("registrar/target/release/junk", "x"),
            ("harness/src/lib.rs", "//! h\n"),
        ] {
            std::fs::write(root.join(path), text).unwrap();
        }
        dir
    }

    #[test]
    fn the_sources_recipe_follows_the_registrar_and_the_lock_only() {
        let dir = workspace();
        let root = dir.path();
        let before = sources_recipe(root).unwrap();
        assert_eq!(before.len(), 16);
        assert_eq!(before, sources_recipe(root).unwrap());

        // Neither the harness nor a stray target directory counts.
        std::fs::write(root.join("harness/src/lib.rs"), "//! changed\n").unwrap();
        std::fs::write(root.join("registrar/target/release/junk"), "y").unwrap();
        assert_eq!(before, sources_recipe(root).unwrap());

        for (path, text) in [
            ("registrar/src/export/mod.rs", "//! y\n"),
            ("registrar/src/new.rs", ""),
            ("Cargo.lock", "version = 4\n# changed\n"),
            ("Cargo.toml", "[workspace]\n# changed\n"),
        ] {
            let previous = sources_recipe(root).unwrap();
            std::fs::write(root.join(path), text).unwrap();
            assert_ne!(previous, sources_recipe(root).unwrap(), "{path}");
        }

        // A renamed file changes it too, with the same content.
        let previous = sources_recipe(root).unwrap();
        std::fs::rename(
            root.join("registrar/src/new.rs"),
            root.join("registrar/src/renamed.rs"),
        )
        .unwrap();
        assert_ne!(previous, sources_recipe(root).unwrap());
    }

    #[test]
    fn a_workspace_without_the_registrar_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = sources_recipe(dir.path()).unwrap_err();
        assert!(
            matches!(&err, ImageBuildError::Io { path, .. } if path.ends_with("registrar")),
            "{err:?}"
        );
    }

    #[test]
    fn the_real_workspace_hashes() {
        let root = crate::images::paths::workspace_root();
        assert_eq!(sources_recipe(&root).unwrap().len(), 16);
    }
}
