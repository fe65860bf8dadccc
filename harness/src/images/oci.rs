//! OCI image layouts on disk (the `oci:` transport of skopeo): read the
//! manifests one holds, add blobs and image indexes, write its
//! `index.json`.
//!
//! The main type is [`Layout`]. [`index`](super::index) has skopeo export
//! each image from the engine into a layout of its own, then assembles one
//! layout holding every image and one image index per multi-platform tag,
//! which skopeo pushes. Everything written here is deterministic: the same
//! images give the same index bytes, hence the same digests. Blocking file
//! I/O; no network, no engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::ImageBuildError;
use super::recipe::sha256_bytes;

/// An OCI image manifest.
pub(crate) const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// An OCI image index (a multi-platform image).
pub(crate) const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The annotation naming a tag in a layout's `index.json`.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor (OCI image spec, `descriptor.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
}

/// A platform as an image index names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Platform {
    pub(crate) architecture: String,
    pub(crate) os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<String>,
}

impl std::fmt::Display for Platform {
    /// `linux/arm64`, `linux/arm/v7`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

/// An image index (`index.json`, or a multi-platform image's blob).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

/// The parts of an image manifest the assembly follows.
#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// The parts of an image config that name its platform.
#[derive(Debug, Deserialize)]
struct Config {
    architecture: String,
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

/// One image in a layout: its manifest's descriptor and platform, and
/// every blob it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Image {
    pub(crate) manifest: Descriptor,
    pub(crate) platform: Platform,
    /// The config's digest: the engine's image id.
    pub(crate) config: String,
    pub(crate) blobs: Vec<String>,
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout at `dir` (not checked).
    pub(crate) fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Creates an empty layout at `dir`.
    pub(crate) fn create(dir: impl Into<PathBuf>) -> Result<Self, ImageBuildError> {
        let layout = Self::at(dir);
        let blobs = layout.dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(ImageBuildError::io("create directory", &blobs))?;
        let marker = layout.dir.join("oci-layout");
        std::fs::write(&marker, "{\"imageLayoutVersion\":\"1.0.0\"}")
            .map_err(ImageBuildError::io("write", &marker))?;
        Ok(layout)
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs/sha256").join(hex)
    }

    fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageBuildError> {
        let path = self.blob_path(digest);
        std::fs::read(&path).map_err(ImageBuildError::io("read", &path))
    }

    fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<T, ImageBuildError> {
        serde_json::from_slice(bytes).map_err(|e| ImageBuildError::InvalidLayout {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The entries of `index.json`.
    pub(crate) fn entries(&self) -> Result<Vec<Descriptor>, ImageBuildError> {
        let path = self.dir.join("index.json");
        let bytes = std::fs::read(&path).map_err(ImageBuildError::io("read", &path))?;
        Ok(self.parse::<Index>(&path, &bytes)?.manifests)
    }

    /// The single image manifest `index.json` names (what skopeo writes
    /// when it copies one image into an empty layout).
    pub(crate) fn only_image(&self) -> Result<Image, ImageBuildError> {
        let entries = self.entries()?;
        let [entry] = entries.as_slice() else {
            return Err(ImageBuildError::InvalidLayout {
                path: self.dir.join("index.json"),
                reason: format!("expected one image, found {} entries", entries.len()),
            });
        };
        if entry.media_type != MANIFEST {
            return Err(ImageBuildError::InvalidLayout {
                path: self.dir.join("index.json"),
                reason: format!("expected an image manifest, found `{}`", entry.media_type),
            });
        }
        let path = self.blob_path(&entry.digest);
        let manifest: Manifest = self.parse(&path, &self.read_blob(&entry.digest)?)?;
        let config_path = self.blob_path(&manifest.config.digest);
        let config: Config = self.parse(&config_path, &self.read_blob(&manifest.config.digest)?)?;
        let mut blobs = vec![entry.digest.clone(), manifest.config.digest.clone()];
        blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        Ok(Image {
            manifest: Descriptor {
                media_type: entry.media_type.clone(),
                digest: entry.digest.clone(),
                size: entry.size,
                platform: None,
                annotations: BTreeMap::new(),
            },
            platform: Platform {
                architecture: config.architecture,
                os: config.os,
                variant: config.variant.filter(|v| !v.is_empty()),
            },
            config: manifest.config.digest,
            blobs,
        })
    }

    /// Makes `image`'s blobs (from layout `from`) part of this layout: hard
    /// links when possible, else copies. Blobs already here are kept.
    pub(crate) fn adopt(&self, from: &Layout, image: &Image) -> Result<(), ImageBuildError> {
        for digest in &image.blobs {
            let target = self.blob_path(digest);
            if target.exists() {
                continue;
            }
            let source = from.blob_path(digest);
            if std::fs::hard_link(&source, &target).is_err() {
                std::fs::copy(&source, &target).map_err(ImageBuildError::io("copy", &source))?;
            }
        }
        Ok(())
    }

    /// Writes the image index over `images` (sorted by platform) as a blob;
    /// returns its descriptor.
    pub(crate) fn write_index(&self, images: &[&Image]) -> Result<Descriptor, ImageBuildError> {
        let mut manifests: Vec<Descriptor> = images
            .iter()
            .map(|image| Descriptor {
                platform: Some(image.platform.clone()),
                ..image.manifest.clone()
            })
            .collect();
        manifests.sort_by(|a, b| a.platform.cmp(&b.platform));
        let index = Index {
            schema_version: 2,
            media_type: Some(INDEX.to_owned()),
            manifests,
        };
        let bytes = serde_json::to_vec(&index).expect("an index serializes");
        let digest = format!("sha256:{}", sha256_bytes(&bytes));
        let path = self.blob_path(&digest);
        std::fs::write(&path, &bytes).map_err(ImageBuildError::io("write", &path))?;
        Ok(Descriptor {
            media_type: INDEX.to_owned(),
            digest,
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        })
    }

    /// Writes `index.json`: one entry per tag, sorted by tag.
    pub(crate) fn write_tags(
        &self,
        tags: &BTreeMap<String, Descriptor>,
    ) -> Result<(), ImageBuildError> {
        let manifests = tags
            .iter()
            .map(|(tag, descriptor)| Descriptor {
                annotations: BTreeMap::from([(REF_NAME.to_owned(), tag.clone())]),
                ..descriptor.clone()
            })
            .collect();
        let index = Index {
            schema_version: 2,
            media_type: Some(INDEX.to_owned()),
            manifests,
        };
        let path = self.dir.join("index.json");
        let bytes = serde_json::to_vec(&index).expect("an index serializes");
        std::fs::write(&path, bytes).map_err(ImageBuildError::io("write", &path))
    }

    /// The bytes of blob `digest`, for checks.
    #[cfg(test)]
    fn blob(&self, digest: &str) -> Result<Vec<u8>, ImageBuildError> {
        self.read_blob(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layout holding one image as skopeo writes it.
    fn one_image(dir: &Path, arch: &str, layer: &[u8]) -> Layout {
        let layout = Layout::create(dir).unwrap();
        let put = |bytes: &[u8]| {
            let digest = format!("sha256:{}", sha256_bytes(bytes));
            std::fs::write(layout.blob_path(&digest), bytes).unwrap();
            (digest, bytes.len() as u64)
        };
        let (layer_digest, layer_size) = put(layer);
        let config = format!(r#"{{"architecture":"{arch}","os":"linux","config":{{}}}}"#);
        let (config_digest, config_size) = put(config.as_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{layer_size}}}]}}"#
        );
        let (manifest_digest, manifest_size) = put(manifest.as_bytes());
        std::fs::write(
            dir.join("index.json"),
            format!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MANIFEST}","digest":"{manifest_digest}","size":{manifest_size},"annotations":{{"{REF_NAME}":"image"}}}}]}}"#
            ),
        )
        .unwrap();
        layout
    }

    #[test]
    fn images_are_read_merged_and_indexed_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let amd_layout = one_image(&dir.path().join("amd"), "amd64", b"amd layer");
        let arm_layout = one_image(&dir.path().join("arm"), "arm64", b"arm layer");
        let amd = amd_layout.only_image().unwrap();
        let arm = arm_layout.only_image().unwrap();
        assert_eq!(amd.platform.to_string(), "linux/amd64");
        assert_eq!(arm.platform.to_string(), "linux/arm64");
        assert_eq!(amd.blobs.len(), 3);

        let merged = Layout::create(dir.path().join("all")).unwrap();
        merged.adopt(&amd_layout, &amd).unwrap();
        merged.adopt(&arm_layout, &arm).unwrap();
        // The order given does not matter: sorted by platform.
        let one = merged.write_index(&[&arm, &amd]).unwrap();
        let two = merged.write_index(&[&amd, &arm]).unwrap();
        assert_eq!(one, two);
        let text = String::from_utf8(merged.blob(&one.digest).unwrap()).unwrap();
        assert!(text.starts_with(&format!(
            r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[{{"mediaType":"{MANIFEST}","digest":"{}""#,
            amd.manifest.digest
        )));
        assert!(text.contains(r#""platform":{"architecture":"arm64","os":"linux"}"#));

        let tags = BTreeMap::from([
            ("latest".to_owned(), one.clone()),
            ("x86_64-aarch64".to_owned(), amd.manifest.clone()),
        ]);
        merged.write_tags(&tags).unwrap();
        let entries = merged.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].annotations[REF_NAME], "latest");
        assert_eq!(entries[0].media_type, INDEX);
        assert_eq!(entries[1].digest, amd.manifest.digest);
        // Every blob an entry needs is in the merged layout.
        for digest in amd.blobs.iter().chain(&arm.blobs) {
            assert!(merged.blob(digest).is_ok(), "{digest}");
        }
    }

    #[test]
    fn a_layout_of_several_images_is_refused_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let layout = one_image(dir.path(), "amd64", b"x");
        let entries = layout.entries().unwrap();
        let tags = BTreeMap::from([
            ("a".to_owned(), entries[0].clone()),
            ("b".to_owned(), entries[0].clone()),
        ]);
        layout.write_tags(&tags).unwrap();
        let err = layout.only_image().unwrap_err();
        assert!(
            err.to_string().contains("expected one image, found 2"),
            "{err}"
        );
    }
}
