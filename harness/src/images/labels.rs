//! The labels every built image carries, and the build timestamp.
//!
//! Keys follow the OCI image spec's annotations
//! (<https://github.com/opencontainers/image-spec/blob/main/annotations.md>)
//! plus `io.qus.*` for what only qus needs: the recipe that makes builds
//! idempotent and the `uname -m` a fixture is expected to print.

use std::time::{SystemTime, UNIX_EPOCH};

/// Human-readable title.
pub const LABEL_TITLE: &str = "org.opencontainers.image.title";
/// What the image holds.
pub const LABEL_DESCRIPTION: &str = "org.opencontainers.image.description";
/// The image version (`7.2.0-1`).
pub const LABEL_VERSION: &str = "org.opencontainers.image.version";
/// Where the source lives.
pub const LABEL_SOURCE: &str = "org.opencontainers.image.source";
/// SPDX license expression of the content.
pub const LABEL_LICENSES: &str = "org.opencontainers.image.licenses";
/// Source revision (git commit) the image was built from.
pub const LABEL_REVISION: &str = "org.opencontainers.image.revision";
/// Build time, RFC 3339.
pub const LABEL_CREATED: &str = "org.opencontainers.image.created";
/// Debian's version of the `qemu-user-static` package the emulators come
/// from (`1:7.2+dfsg-7+deb12u18`).
pub const LABEL_QEMU_VERSION: &str = "io.qus.qemu-version";
/// Version of the `qus-register` binary inside.
pub const LABEL_REGISTRAR_VERSION: &str = "io.qus.registrar-version";
/// Hash of every input of the image; equal recipes mean equivalent images.
pub const LABEL_RECIPE: &str = "io.qus.recipe";
/// What `uname -m` prints in this image when QEMU runs it (the
/// `uname` column of `fixtures/probes/probes.tsv`).
pub const LABEL_UNAME: &str = "io.qus.uname";
/// QEMU target that runs this image's binaries (`aarch64`).
pub const LABEL_QEMU_TARGET: &str = "io.qus.qemu-target";
/// Debian architecture of a root filesystem fixture (`arm64`).
pub const LABEL_DEBIAN_ARCH: &str = "io.qus.debian-arch";

/// The project's source repository, from the workspace manifest.
pub(crate) const SOURCE_URL: &str = env!("CARGO_PKG_REPOSITORY");

/// QEMU's license (Debian's `qemu` copyright: GPL-2 as a whole).
pub(crate) const QEMU_LICENSE: &str = "GPL-2.0-only";

/// qus's license.
pub(crate) const QUS_LICENSE: &str = env!("CARGO_PKG_LICENSE");

/// The build time as seconds since the epoch: `SOURCE_DATE_EPOCH` when set
/// (reproducible builds, <https://reproducible-builds.org/specs/source-date-epoch/>),
/// else now.
pub(crate) fn build_time() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
}

/// `secs` since the epoch as RFC 3339 UTC (`2024-05-01T12:00:00Z`).
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`, <https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn source_is_the_workspace_repository() {
        assert!(SOURCE_URL.starts_with("https://"));
        assert_eq!(QUS_LICENSE, "MIT");
    }
}
