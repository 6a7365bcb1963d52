//! End-to-end tests of the real binary against a real MinIO on loopback.
//!
//! Each test starts its own MinIO (`berth-services`, built and cached by `tools/minio/build.sh`)
//! with random root credentials on a free loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::{data, sha256_hex};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_berth-model-fetch");
/// A real MinIO from `berth-services` (the pinned build in `tools/minio`), with the test's view of
/// its endpoint and root credentials.
struct Minio {
    _server: berth_services::Minio,
    endpoint: String,
    user: String,
    pass: String,
}

impl Minio {
    async fn start() -> Minio {
        let server = berth_services::Minio::start().await.unwrap();
        Minio {
            endpoint: server.endpoint().to_owned(),
            user: server.access_key().to_owned(),
            pass: server.secret_key().to_owned(),
            _server: server,
        }
    }

    fn client(&self) -> aws_sdk_s3::Client {
        berth_services::s3_client(&self.endpoint, "us-east-1", &self.user, &self.pass)
    }

    async fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let c = self.client();
        // The bucket may exist from an earlier put; any other failure is the test's to report.
        if let Err(e) = c.create_bucket().bucket(bucket).send().await {
            let code = e
                .as_service_error()
                .and_then(|s| s.meta().code())
                .unwrap_or_default()
                .to_owned();
            assert!(
                code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists",
                "creating bucket {bucket}: {e:?}"
            );
        }
        c.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap();
    }

    async fn fetch(
        &self,
        source: &str,
        dest: &Path,
        secret: Option<&str>,
        extra: &[&str],
    ) -> Output {
        let mut cmd = tokio::process::Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg(source)
            .arg(dest)
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", &self.user)
            .env("AWS_SECRET_ACCESS_KEY", secret.unwrap_or(&self.pass))
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/berth-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/berth-credentials",
            )
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .unwrap()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "$ berth-model-fetch {source} {extra:?} -> {:?}\n{err}",
            out.status.code()
        );
        assert!(!err.contains(&self.pass), "the secret key was printed");
        out
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_object_prefix_and_errors() {
    let m = Minio::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let weights = data(3 << 20);
    m.put("models", "resnet/v1/model.safetensors", &weights)
        .await;
    m.put("models", "resnet/v1/config.json", b"{}").await;
    m.put("models", "resnet/v1/tokenizer/vocab.txt", b"a b c")
        .await;
    m.put("models", "resnet/v2/other.bin", b"v2").await;

    // One object, verified.
    let dest = tmp.path().join("one");
    let out = m
        .fetch(
            "s3://models/resnet/v1/model.safetensors",
            &dest,
            None,
            &["--sha256", &sha256_hex(&weights)],
        )
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::read(dest.join("model.safetensors")).unwrap(),
        weights
    );
    assert_eq!(files(&dest), vec!["model.safetensors"]);

    // Checksum mismatch.
    let out = m
        .fetch(
            "s3://models/resnet/v1/config.json",
            &tmp.path().join("bad"),
            None,
            &["--sha256", &sha256_hex(b"x")],
        )
        .await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_eq!(files(&tmp.path().join("bad")), Vec::<String>::new());

    // A prefix: every object under it, relative paths preserved, nothing from v2.
    let dest = tmp.path().join("prefix");
    let out = m.fetch("s3://models/resnet/v1/", &dest, None, &[]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        files(&dest),
        vec!["config.json", "model.safetensors", "tokenizer/vocab.txt"]
    );
    assert_eq!(
        std::fs::read(dest.join("tokenizer/vocab.txt")).unwrap(),
        b"a b c"
    );
    assert!(stderr(&out).contains("done: 3 files"), "{}", stderr(&out));

    // Not found: key, bucket, empty prefix.
    for src in [
        "s3://models/resnet/v9/model.bin",
        "s3://no-such-bucket/model.bin",
        "s3://models/nothing/",
        "s3://no-such-bucket/",
    ] {
        let out = m.fetch(src, &tmp.path().join("nf"), None, &[]).await;
        assert_eq!(code(&out), 3, "{src}: {}", stderr(&out));
    }

    // Access denied: wrong secret (and it is never printed).
    let out = m
        .fetch(
            "s3://models/resnet/v1/config.json",
            &tmp.path().join("ad"),
            Some("wrong-secret-value"),
            &[],
        )
        .await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(!stderr(&out).contains("wrong-secret-value"));

    // No credentials at all.
    let out = tokio::process::Command::new(BIN)
        .args(["s3://models/resnet/v1/config.json"])
        .arg(tmp.path().join("nocreds"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL", &m.endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/berth-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/berth-credentials",
        )
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("AWS_ACCESS_KEY_ID"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_resume_with_ranged_get() {
    let m = Minio::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let body = data(5 << 20);
    m.put("bkt", "m/model.bin", &body).await;
    let cut = 1_500_000usize;

    // A partial whose first bytes were deliberately altered: if the tool resumes with a
    // ranged GetObject, the altered prefix survives (no --sha256 to catch it).
    let dest = tmp.path().join("poisoned");
    std::fs::create_dir_all(&dest).unwrap();
    let mut poisoned = body[..cut].to_vec();
    poisoned[..16].copy_from_slice(b"POISONEDPOISONED");
    std::fs::write(dest.join("model.bin.partial"), &poisoned).unwrap();
    // The version the partial download holds, as the first run recorded it: a partial without
    // one is started over (a range could splice two versions).
    let head = m
        .client()
        .head_object()
        .bucket("bkt")
        .key("m/model.bin")
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap().to_string();
    std::fs::write(dest.join("model.bin.partial.meta"), &etag).unwrap();
    let out = m.fetch("s3://bkt/m/model.bin", &dest, None, &[]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = std::fs::read(dest.join("model.bin")).unwrap();
    assert_eq!(got.len(), body.len());
    assert_eq!(
        &got[..16],
        b"POISONEDPOISONED",
        "the tool did not resume with a ranged GET"
    );
    assert_eq!(&got[16..], &body[16..]);

    // Same, with --sha256: the existing bytes are re-hashed, so the corruption is caught.
    let dest = tmp.path().join("poisoned-sha");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("model.bin.partial"), &poisoned).unwrap();
    std::fs::write(dest.join("model.bin.partial.meta"), &etag).unwrap();
    let out = m
        .fetch(
            "s3://bkt/m/model.bin",
            &dest,
            None,
            &["--sha256", &sha256_hex(&body)],
        )
        .await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(!dest.join("model.bin.partial").exists());

    // A good partial resumes and verifies.
    let dest = tmp.path().join("good");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("model.bin.partial"), &body[..cut]).unwrap();
    std::fs::write(dest.join("model.bin.partial.meta"), &etag).unwrap();
    let out = m
        .fetch(
            "s3://bkt/m/model.bin",
            &dest,
            None,
            &["--sha256", &sha256_hex(&body)],
        )
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.join("model.bin")).unwrap(), body);

    // The partial was started from another version of the object (ETag differs):
    // the ranged GET with If-Match fails and the tool starts over.
    let dest = tmp.path().join("changed");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("model.bin.partial"), &poisoned).unwrap();
    std::fs::write(
        dest.join("model.bin.partial.meta"),
        "\"0123456789abcdef0123456789abcdef\"",
    )
    .unwrap();
    let out = m.fetch("s3://bkt/m/model.bin", &dest, None, &[]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.join("model.bin")).unwrap(), body);
    assert_eq!(files(&dest), vec!["model.bin"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_archive_is_unpacked() {
    let m = Minio::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_path("weights/w.bin").unwrap();
    h.set_cksum();
    b.append(&h, &b"wwww"[..]).unwrap();
    let tgz = b.into_inner().unwrap().finish().unwrap();
    m.put("bkt", "bundle.tgz", &tgz).await;
    let out = m.fetch("s3://bkt/bundle.tgz", tmp.path(), None, &[]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(files(tmp.path()), vec!["weights/w.bin"]);
}
