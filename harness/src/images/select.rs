//! Choosing which Debian package to fetch: given what each suite's lists
//! offer, the package and version that `--qemu-version` and `--suite`
//! select.
//!
//! Pure. The rules, documented in `images/README.md`:
//!
//! - a package is *usable* when it holds static emulators: `qemu-user-static`
//!   before QEMU 9.1, `qemu-user` from 9.1 on (before, `qemu-user` is
//!   dynamically linked; after, `qemu-user-static` is only symlinks);
//! - among the usable packages the selector matches (all of them without
//!   one), the highest QEMU version wins; between suites offering that same
//!   QEMU version, the stable-most (in [`Suite::ALL`] order); within that
//!   suite, the highest Debian version (a security update over the release).
//!
//! So `10.0` takes trixie's 10.0.13 over bookworm-backports' 10.0.2, `7.2`
//! takes bookworm's, and `11.1` sid's.

use std::cmp::Ordering;

use super::apt::Offer;
use super::deb::{QEMU_USER, QEMU_USER_STATIC};
use super::suite::Suite;
use super::version::{QemuVersion, Selector, compare_debian_versions};

/// The package chosen, and where from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub(crate) suite: Suite,
    pub(crate) offer: Offer,
    pub(crate) qemu: QemuVersion,
}

/// The QEMU version of `offer` when it holds static emulators.
pub(crate) fn usable(offer: &Offer) -> Option<QemuVersion> {
    let qemu = QemuVersion::from_debian(&offer.version).ok()?;
    let wanted = if qemu.is_in_qemu_user() {
        QEMU_USER
    } else {
        QEMU_USER_STATIC
    };
    (offer.package == wanted).then_some(qemu)
}

/// The usable package `selector` (every one when `None`) selects among
/// `offers`, by the rules of the module documentation; with `package`,
/// only that package's versions count.
pub(crate) fn choose(
    selector: Option<&Selector>,
    package: Option<&str>,
    offers: &[(Suite, Vec<Offer>)],
) -> Option<Choice> {
    let rank = |suite: Suite| Suite::ALL.iter().position(|s| *s == suite);
    offers
        .iter()
        .flat_map(|(suite, offers)| offers.iter().map(move |offer| (*suite, offer)))
        .filter(|(_, offer)| package.is_none_or(|p| offer.package == p))
        .filter(|(_, offer)| selector.is_none_or(|s| s.matches(&offer.version)))
        .filter_map(|(suite, offer)| {
            usable(offer).map(|qemu| Choice {
                suite,
                offer: offer.clone(),
                qemu,
            })
        })
        .max_by(|a, b| {
            a.qemu
                .cmp(&b.qemu)
                // The stable-most suite ranks first: higher is worse.
                .then_with(|| rank(b.suite).cmp(&rank(a.suite)))
                .then_with(|| compare_debian_versions(&a.offer.version, &b.offer.version))
        })
}

/// What each suite offers, for an error: `qemu-user 1:11.1.3+ds-1` for
/// every usable package, newest first; suites offering none are listed
/// with an empty list.
pub(crate) fn offered(offers: &[(Suite, Vec<Offer>)]) -> Vec<(Suite, Vec<String>)> {
    offers
        .iter()
        .map(|(suite, offers)| {
            let mut usable: Vec<&Offer> = offers.iter().filter(|o| usable(o).is_some()).collect();
            usable.sort_by(
                |a, b| match compare_debian_versions(&b.version, &a.version) {
                    Ordering::Equal => a.package.cmp(&b.package),
                    other => other,
                },
            );
            let names = usable
                .iter()
                .map(|o| format!("{} {}", o.package, o.version))
                .collect();
            (*suite, names)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(package: &str, version: &str) -> Offer {
        Offer {
            package: package.into(),
            version: version.into(),
            architecture: "amd64".into(),
            size: None,
            sha256: None,
        }
    }

    /// What the four suites offered on 2025-12-03 (`apt-cache show`).
    fn archive() -> Vec<(Suite, Vec<Offer>)> {
        vec![
            (
                Suite::Bookworm,
                vec![
                    offer("qemu-user-static", "1:7.2+dfsg-7+deb12u18+b3"),
                    offer("qemu-user", "1:7.2+dfsg-7+deb12u18+b3"),
                ],
            ),
            (
                Suite::BookwormBackports,
                vec![
                    offer("qemu-user-static", "1:10.0.2+ds-2+deb13u1~bpo12+1"),
                    offer("qemu-user", "1:10.0.2+ds-2+deb13u1~bpo12+1"),
                ],
            ),
            (
                Suite::Trixie,
                vec![
                    offer("qemu-user-static", "1:10.0.13+ds-0+deb13u1"),
                    offer("qemu-user", "1:10.0.13+ds-0+deb13u1"),
                ],
            ),
            (Suite::Sid, vec![offer("qemu-user", "1:11.1.3+ds-1")]),
        ]
    }

    fn pick(selector: Option<&str>, suites: &[Suite]) -> Option<(Suite, String, String)> {
        let offers: Vec<(Suite, Vec<Offer>)> = archive()
            .into_iter()
            .filter(|(s, _)| suites.contains(s))
            .collect();
        let selector = selector.map(|s| Selector::parse(s).unwrap());
        choose(selector.as_ref(), None, &offers)
            .map(|c| (c.suite, c.offer.package, c.offer.version))
    }

    #[test]
    fn the_layout_decides_the_package() {
        assert_eq!(
            pick(Some("7.2"), &Suite::ALL),
            Some((
                Suite::Bookworm,
                "qemu-user-static".into(),
                "1:7.2+dfsg-7+deb12u18+b3".into()
            ))
        );
        assert_eq!(
            pick(Some("11.1"), &Suite::ALL),
            Some((Suite::Sid, "qemu-user".into(), "1:11.1.3+ds-1".into()))
        );
        // The transitional qemu-user-static is never chosen.
        assert_eq!(
            pick(None, &[Suite::Trixie]),
            Some((
                Suite::Trixie,
                "qemu-user".into(),
                "1:10.0.13+ds-0+deb13u1".into()
            ))
        );
        // Nor the dynamic qemu-user of 7.2.
        assert!(usable(&offer("qemu-user", "1:7.2+dfsg-7+deb12u18+b3")).is_none());
    }

    #[test]
    fn the_highest_qemu_wins_then_the_stable_most_suite() {
        // 10.0: trixie's 10.0.13 over backports' 10.0.2.
        assert_eq!(
            pick(Some("10.0"), &Suite::ALL).map(|c| c.0),
            Some(Suite::Trixie)
        );
        assert_eq!(
            pick(Some("10.0.2"), &Suite::ALL).map(|c| c.0),
            Some(Suite::BookwormBackports)
        );
        assert_eq!(pick(None, &Suite::ALL).map(|c| c.0), Some(Suite::Sid));
        assert_eq!(
            pick(Some("11.1.3"), &[Suite::Sid]).map(|c| c.2),
            Some("1:11.1.3+ds-1".into())
        );
        // A full Debian version picks exactly that package.
        assert_eq!(
            pick(Some("1:10.0.2+ds-2+deb13u1~bpo12+1"), &Suite::ALL).map(|c| c.0),
            Some(Suite::BookwormBackports)
        );
        // One QEMU version in two suites: the stable-most.
        let offers = vec![
            (Suite::Sid, vec![offer("qemu-user", "1:10.0.13+ds-1")]),
            (
                Suite::Trixie,
                vec![offer("qemu-user", "1:10.0.13+ds-0+deb13u1")],
            ),
        ];
        assert_eq!(choose(None, None, &offers).unwrap().suite, Suite::Trixie);
        // Within a suite, the security update.
        let offers = vec![(
            Suite::Bookworm,
            vec![
                offer("qemu-user-static", "1:7.2+dfsg-7+deb12u18+b3"),
                offer("qemu-user-static", "1:7.2+dfsg-7+deb12u19"),
                offer("qemu-user-static", "1:7.2+dfsg-7+deb12u2"),
            ],
        )];
        assert_eq!(
            choose(None, None, &offers).unwrap().offer.version,
            "1:7.2+dfsg-7+deb12u19"
        );
    }

    #[test]
    fn nothing_matches_outside_the_offers() {
        assert_eq!(pick(Some("11.2"), &Suite::ALL), None);
        assert_eq!(pick(Some("7.2"), &[Suite::Sid, Suite::Trixie]), None);
        assert_eq!(pick(Some("1"), &Suite::ALL), None);
        let offered = offered(&archive());
        assert_eq!(
            offered,
            [
                (
                    Suite::Bookworm,
                    vec!["qemu-user-static 1:7.2+dfsg-7+deb12u18+b3".to_owned()]
                ),
                (
                    Suite::BookwormBackports,
                    vec!["qemu-user 1:10.0.2+ds-2+deb13u1~bpo12+1".to_owned()]
                ),
                (
                    Suite::Trixie,
                    vec!["qemu-user 1:10.0.13+ds-0+deb13u1".to_owned()]
                ),
                (Suite::Sid, vec!["qemu-user 1:11.1.3+ds-1".to_owned()]),
            ]
        );
    }

    #[test]
    fn a_package_can_be_required() {
        let offers = archive();
        let exact = Selector::parse("1:10.0.13+ds-0+deb13u1").unwrap();
        let choice = choose(Some(&exact), Some("qemu-user"), &offers).unwrap();
        assert_eq!(
            (choice.suite, choice.offer.package.as_str()),
            (Suite::Trixie, "qemu-user")
        );
        assert_eq!(
            choose(Some(&exact), Some("qemu-user-static"), &offers),
            None
        );
    }
}
