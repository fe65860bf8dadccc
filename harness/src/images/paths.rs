//! Where the image builders find the source tree and keep their cache.
//!
//! Pure lookups: nothing here creates a directory.

use std::path::{Path, PathBuf};

/// Environment variable that moves the cache.
pub const CACHE_DIR_ENV: &str = "QUS_CACHE_DIR";

/// The cache directory when [`CACHE_DIR_ENV`] is unset.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/qus";

/// The repository this harness was compiled from (the workspace root):
/// where `cargo build -p qus-registrar` runs and `fixtures/probes` lives.
///
/// It is a compile-time path, so it is only meaningful on the machine
/// that built the harness, which is how the harness is used.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("the harness crate sits one level below the workspace root")
        .to_owned()
}

/// `$QUS_CACHE_DIR` when set and not empty, else [`DEFAULT_CACHE_DIR`].
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os(CACHE_DIR_ENV)
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_both_crates() {
        let root = workspace_root();
        assert!(root.join("registrar/Cargo.toml").is_file());
        assert!(root.join("harness/Cargo.toml").is_file());
    }
}
