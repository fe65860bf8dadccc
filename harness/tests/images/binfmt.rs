//! The `binfmt` image (part of `tests/images.rs`): `latest`'s files plus
//! the `usr/bin/binfmt` symlink, entered as tonistiigi/binfmt's command
//! line, sharing `latest`'s big layer. What docker/setup-qemu-action does
//! with it is `tests/setup_qemu_action.rs`'s.

use libtest_mimic::Failed;
use qus_harness::images::{
    LABEL_DESCRIPTION, LABEL_LICENSES, LABEL_REGISTRAR_VERSION, LABEL_TITLE,
};

use super::{Node, REPO, block_on, built, check, docker, image_files, labels, non_dirs, run};

pub fn binfmt_is_latest_entered_as_binfmt_sharing_its_layer() -> Result<(), Failed> {
    let built = built()?;
    let version = &built.report.version;
    block_on(async {
        let docker = docker().await;
        let (latest, binfmt) = (format!("{REPO}:latest"), format!("{REPO}:binfmt"));
        // Both tags name one image.
        let versioned = docker
            .inspect_image(&format!("{REPO}:binfmt-{version}"))
            .await?;
        let inspect = docker.inspect_image(&binfmt).await?;
        check(
            versioned.id == inspect.id,
            "binfmt-<version> is another image",
        )?;

        // Files: latest's, plus the relative symlink.
        let mut expected = non_dirs(&image_files(&docker, &latest).await);
        expected.insert(
            "usr/bin/binfmt".into(),
            Node::Symlink("qus-register".into()),
        );
        let files = non_dirs(&image_files(&docker, &binfmt).await);
        check(
            files == expected,
            format!(
                "binfmt differs from latest + usr/bin/binfmt: extra {:?}, missing {:?}",
                files
                    .keys()
                    .filter(|k| !expected.contains_key(*k))
                    .collect::<Vec<_>>(),
                expected
                    .keys()
                    .filter(|k| !files.contains_key(*k))
                    .collect::<Vec<_>>()
            ),
        )?;

        // Entrypoint and layers: the emulators are stored once.
        let config = inspect.config.clone().unwrap_or_default();
        check(
            config.entrypoint.as_deref() == Some(&["/usr/bin/binfmt".to_owned()][..]),
            format!("entrypoint {:?}", config.entrypoint),
        )?;
        let layers = |i: &bollard::models::ImageInspect| {
            i.root_fs
                .as_ref()
                .and_then(|r| r.layers.clone())
                .unwrap_or_default()
        };
        let latest_layers = layers(&docker.inspect_image(&latest).await?);
        let binfmt_layers = layers(&inspect);
        check(
            binfmt_layers.len() == 2
                && latest_layers.len() == 1
                && binfmt_layers[0] == latest_layers[0],
            format!("layers: latest {latest_layers:?}, binfmt {binfmt_layers:?}"),
        )?;

        // Labels as latest's, named for what it is.
        let labels = labels(&docker, &binfmt).await;
        let latest_labels = super::labels(&docker, &latest).await;
        check(labels[LABEL_TITLE] == "binfmt", "title")?;
        check(
            labels[LABEL_DESCRIPTION].contains("tonistiigi/binfmt's command line")
                && labels[LABEL_DESCRIPTION].contains("docker/setup-qemu-action"),
            format!("description {:?}", labels[LABEL_DESCRIPTION]),
        )?;
        for key in [LABEL_LICENSES, LABEL_REGISTRAR_VERSION] {
            check(labels[key] == latest_labels[key], format!("{key} differs"))?;
        }

        // The entrypoint speaks tonistiigi's command line.
        let out = run(&binfmt, &["--version"]).await;
        check(
            out.is_success()
                && out
                    .stdout
                    .starts_with(&format!("binfmt/qus-{} qemu/", env!("CARGO_PKG_VERSION"))),
            format!("binfmt --version: {out:?}"),
        )
    })
}
