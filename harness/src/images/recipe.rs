//! Recipes: short hashes of everything that goes into an image or a cached
//! root filesystem.
//!
//! The main type is [`Recipe`], an ordered list of `key=value` lines hashed
//! with SHA-256. Two builds with the same recipe produce equivalent images,
//! so an image (or cache file) carrying the recipe is reused instead of
//! rebuilt. Callers add fields in a fixed order (sorted maps, sorted file
//! lists) so that the hash never depends on iteration order. Timestamps and
//! the source revision are deliberately not part of any recipe: they
//! describe a build, not its content.

use std::io::Read as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// Hex digits of a recipe: 64 bits, plenty to tell inputs apart.
const RECIPE_HEX_LEN: usize = 16;

/// An ordered set of inputs, hashed.
#[derive(Debug, Clone)]
pub(crate) struct Recipe {
    hasher: Sha256,
}

impl Recipe {
    /// A recipe of `kind` (`qus-images/registrar`), which separates recipes
    /// of different things that happen to have the same fields.
    pub(crate) fn new(kind: &str) -> Self {
        let mut recipe = Self {
            hasher: Sha256::new(),
        };
        recipe.push("kind", kind);
        recipe
    }

    /// Adds one `key=value` input.
    pub(crate) fn field(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.push(key, value.as_ref());
        self
    }

    fn push(&mut self, key: &str, value: &str) {
        // Length prefixes make the encoding unambiguous whatever the
        // values contain (newlines, `=`).
        for part in [key, value] {
            self.hasher.update((part.len() as u64).to_le_bytes());
            self.hasher.update(part.as_bytes());
        }
    }

    /// The recipe: the first 16 hex digits of the hash.
    pub(crate) fn finish(self) -> String {
        let mut hex = hex(&self.hasher.finalize());
        hex.truncate(RECIPE_HEX_LEN);
        hex
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The SHA-256 of `bytes`, in hex.
pub(crate) fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The SHA-256 of a file's contents, in hex.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_depend_on_every_field_and_its_order() {
        let a = Recipe::new("k").field("x", "1").field("y", "2").finish();
        assert_eq!(a.len(), RECIPE_HEX_LEN);
        assert_eq!(a, Recipe::new("k").field("x", "1").field("y", "2").finish());
        assert_ne!(a, Recipe::new("k").field("y", "2").field("x", "1").finish());
        assert_ne!(a, Recipe::new("j").field("x", "1").field("y", "2").finish());
        // Boundaries between key and value are not ambiguous.
        assert_ne!(
            Recipe::new("k").field("ab", "c").finish(),
            Recipe::new("k").field("a", "bc").finish()
        );
    }

    #[test]
    fn sha256_matches_the_known_vector() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("abc");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(sha256_file(&file).unwrap(), sha256_bytes(b"abc"));
    }
}
