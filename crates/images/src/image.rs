//! An image: its configuration and manifest, built from its layers.

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{
    Arch, ConfigBuilder, HistoryBuilder, ImageConfigurationBuilder, ImageManifestBuilder,
    MediaType, Os, RootFsBuilder,
};

use crate::layer::Layer;
use crate::{Blob, Result, json};

/// How a container of the image runs: the image configuration's `config` object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// `uid:gid`, such as `65532:65532`. Numeric, so that the kubelet can check `runAsNonRoot`
    /// without reading `/etc/passwd`.
    pub user: String,
    /// The command, with an absolute path (none when empty: `cmd` is then the command).
    pub entrypoint: Vec<String>,
    /// Default arguments after the entrypoint (none when empty).
    pub cmd: Vec<String>,
    /// `NAME=value` pairs.
    pub env: Vec<String>,
    /// The working directory (absolute).
    pub working_dir: String,
    /// Labels, such as `org.opencontainers.image.version`.
    pub labels: BTreeMap<String, String>,
}

/// A built image: its blobs, and the reference it is known by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The reference it is tagged with, such as `berth.dev/pause:0.1.0`.
    pub reference: String,
    /// The manifest, `application/vnd.oci.image.manifest.v1+json`: its digest is the image's.
    pub manifest: Blob,
    /// The configuration, `application/vnd.oci.image.config.v1+json`.
    pub config: Blob,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
}

/// RFC 3339 (UTC, seconds) of `epoch` seconds since 1970-01-01, for the config's `created`.
/// Civil-from-days after Howard Hinnant, <https://howardhinnant.github.io/date_algorithms.html>.
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

impl Image {
    /// Builds the configuration and the manifest for `layers` (bottom first), for the build
    /// machine's platform (for example linux/amd64). `created` is the time recorded in the
    /// configuration and history, in seconds since the Unix epoch (normally `SOURCE_DATE_EPOCH`).
    pub fn build(
        reference: &str,
        run: &RunConfig,
        layers: Vec<Layer>,
        created: u64,
    ) -> Result<Self> {
        Self::build_for(
            reference,
            run,
            layers,
            created,
            Arch::default(),
            Os::default(),
        )
    }

    /// [`Image::build`] for a given platform.
    pub fn build_for(
        reference: &str,
        run: &RunConfig,
        layers: Vec<Layer>,
        created: u64,
        architecture: Arch,
        os: Os,
    ) -> Result<Self> {
        let created = rfc3339(created);
        let mut config = ConfigBuilder::default()
            .user(run.user.clone())
            .env(run.env.clone())
            .working_dir(run.working_dir.clone())
            .labels(
                run.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            );
        if !run.entrypoint.is_empty() {
            config = config.entrypoint(run.entrypoint.clone());
        }
        if !run.cmd.is_empty() {
            config = config.cmd(run.cmd.clone());
        }
        let history = layers
            .iter()
            .map(|layer| {
                HistoryBuilder::default()
                    .created(created.clone())
                    .created_by(format!("berth-images: {}", layer.comment))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let configuration = ImageConfigurationBuilder::default()
            .created(created)
            .architecture(architecture)
            .os(os)
            .config(config.build()?)
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>())
                    .build()?,
            )
            .history(history)
            .build()?;
        let config = Blob::new(
            MediaType::ImageConfig,
            json::canonical(&configuration, "the image configuration")?,
        );
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config.descriptor()?)
            .layers(
                layers
                    .iter()
                    .map(|l| l.blob.descriptor())
                    .collect::<Result<Vec<_>>>()?,
            )
            .build()?;
        let manifest = Blob::new(
            MediaType::ImageManifest,
            json::canonical(&manifest, "the image manifest")?,
        );
        Ok(Self {
            reference: reference.to_owned(),
            manifest,
            config,
            layers,
        })
    }

    /// The image's digest: the manifest's, `sha256:<hex>`.
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    /// The bytes a registry or a node fetches: manifest, config and compressed layers.
    pub fn compressed_size(&self) -> u64 {
        self.manifest.size()
            + self.config.size()
            + self.layers.iter().map(|l| l.blob.size()).sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::image::{ImageConfiguration, ImageManifest};

    use super::*;
    use crate::layer::{Content, Tree};

    pub(crate) fn sample_image(reference: &str) -> Image {
        let mut base = Tree::new();
        base.file(
            "/etc/passwd",
            Content::Bytes(b"nonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n".to_vec()),
            0o644,
        )
        .unwrap();
        let mut app = Tree::new();
        app.file("/usr/local/bin/app", Content::Bytes(b"app".to_vec()), 0o755)
            .unwrap();
        let layers = vec![
            Layer::from_tree(&base, 0, "base").unwrap(),
            Layer::from_tree(&app, 0, "app").unwrap(),
        ];
        let run = RunConfig {
            user: "65532:65532".into(),
            entrypoint: vec!["/usr/local/bin/app".into()],
            cmd: vec![],
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
            working_dir: "/home/nonroot".into(),
            labels: [
                ("org.opencontainers.image.version", "0.1.0"),
                ("org.opencontainers.image.source", "https://example.com/src"),
                ("org.opencontainers.image.revision", "abc"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        };
        Image::build_for(reference, &run, layers, 0, Arch::Amd64, Os::Linux).unwrap()
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn config_says_how_the_container_runs_and_lists_the_layers() {
        let image = sample_image("berth.dev/app:0.1.0");
        let config: ImageConfiguration = serde_json::from_slice(&image.config.bytes).unwrap();
        assert_eq!(config.architecture(), &Arch::Amd64);
        assert_eq!(config.os(), &Os::Linux);
        assert_eq!(config.created().as_deref(), Some("1970-01-01T00:00:00Z"));
        let run = config.config().as_ref().unwrap();
        assert_eq!(run.user().as_deref(), Some("65532:65532"));
        assert_eq!(
            run.entrypoint().as_deref(),
            Some(&["/usr/local/bin/app".to_owned()][..])
        );
        assert_eq!(run.cmd(), &None);
        assert_eq!(run.working_dir().as_deref(), Some("/home/nonroot"));
        assert_eq!(
            run.labels().as_ref().unwrap()["org.opencontainers.image.version"],
            "0.1.0"
        );
        let diff_ids: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
        assert_eq!(config.rootfs().diff_ids(), &diff_ids);
        assert_eq!(config.rootfs().typ(), "layers");
        assert_eq!(config.history().as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn manifest_names_the_config_and_layers_by_digest_and_size() {
        let image = sample_image("berth.dev/app:0.1.0");
        let text = String::from_utf8(image.manifest.bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"config":"#), "keys are sorted: {text}");
        let manifest: ImageManifest = serde_json::from_slice(&image.manifest.bytes).unwrap();
        assert_eq!(manifest.schema_version(), 2);
        assert_eq!(manifest.media_type(), &Some(MediaType::ImageManifest));
        assert_eq!(manifest.config().digest().to_string(), image.config.digest);
        assert_eq!(manifest.config().size(), image.config.size());
        assert_eq!(manifest.config().media_type(), &MediaType::ImageConfig);
        for (descriptor, layer) in manifest.layers().iter().zip(&image.layers) {
            assert_eq!(descriptor.digest().to_string(), layer.blob.digest);
            assert_eq!(descriptor.size(), layer.blob.size());
            assert_eq!(descriptor.media_type(), &MediaType::ImageLayerGzip);
        }
        assert_eq!(image.digest(), crate::sha256_digest(&image.manifest.bytes));
    }

    #[test]
    fn the_same_inputs_give_the_same_digest_and_any_change_another() {
        let a = sample_image("berth.dev/app:0.1.0");
        let b = sample_image("berth.dev/app:0.1.0");
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.config.bytes, b.config.bytes);
        let mut run = RunConfig {
            user: "65532:65532".into(),
            ..RunConfig::default()
        };
        let plain =
            Image::build_for("x:1", &run, a.layers.clone(), 0, Arch::Amd64, Os::Linux).unwrap();
        run.user = "0:0".into();
        let root =
            Image::build_for("x:1", &run, a.layers.clone(), 0, Arch::Amd64, Os::Linux).unwrap();
        assert_ne!(plain.digest(), root.digest());
        let later = Image::build_for("x:1", &run, a.layers, 1, Arch::Amd64, Os::Linux).unwrap();
        assert_ne!(root.digest(), later.digest());
    }
}
