//! The object stores against real servers on loopback: Garage and MinIO, started by
//! berth-services, each put through the same test body through the `ObjectStore` trait, with a
//! real S3 client (aws-sdk-s3) in the role of the project's workloads.

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use berth_providers::storage::{self, BucketSpec, ObjectStore, StoreConfig};
use berth_providers::{ErrorKind, IssuedCredential, Owner, Secret};
use berth_services::{Garage, Minio};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const QUOTA: u64 = 1024 * 1024;

/// What differs between the backends, for the shared test body.
struct Backend {
    kind: &'static str,
    config: StoreConfig,
    /// Whether a write that would take the bucket over its quota, counting what it already
    /// holds, is refused at once (Garage keeps exact counters; MinIO compares with a usage
    /// figure its background scanner updates).
    cumulative_quota_at_once: bool,
    /// An admin S3 client, where the backend has one, to count buckets.
    admin_s3: Option<Client>,
    /// A bucket someone made outside Berth, holding the object `theirs.txt`.
    foreign: &'static str,
}

/// Project a's, b's and c's owner records, as the naming authority makes them.
fn owner(n: u8, adopt: bool) -> Owner {
    Owner {
        uid: format!("3f1c0a7e-0000-4000-8000-00000000000{n}"),
        marker: format!("berth-owner-3f1c0a7e00004000800000000000000{n}"),
        adopt,
    }
}

/// A project key's name: the owner's UID (128 bits nobody else can produce) and a serial. Longer
/// than the 20 characters MinIO generates for its own keys, which MinIO accepts.
fn key_name(n: u8) -> String {
    format!("berth-3f1c0a7e00004000800000000000000{n}-1")
}

fn bucket(name: &str, quota_bytes: Option<u64>) -> BucketSpec {
    BucketSpec {
        name: name.to_owned(),
        quota_bytes,
        policy: format!("berth-bucket-{name}"),
    }
}

fn s3_client(endpoint: &str, region: &str, id: &str, secret: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(id, secret, None, None, "test"))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

fn key_client(store: &dyn ObjectStore, key: &IssuedCredential) -> Client {
    s3_client(
        store.endpoint(),
        store.region(),
        &key.login,
        key.secret.expose(),
    )
}

/// The S3 error code of a failed call, or what went wrong if the call succeeded.
fn denied<T, E: ProvideErrorMetadata>(r: Result<T, E>) -> Result<String, String> {
    match r {
        Ok(_) => Err("the call succeeded".to_owned()),
        Err(e) => Ok(e.code().unwrap_or("<no code>").to_owned()),
    }
}

async fn put(client: &Client, bucket: &str, key: &str, len: usize) -> TestResult {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(vec![7u8; len]))
        .send()
        .await?;
    Ok(())
}

/// Waits until `f` stops succeeding, for a store that applies a deletion a moment later.
async fn until_refused<F, Fut, T, E>(mut f: F) -> Option<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: ProvideErrorMetadata,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(code) = denied(f().await) {
            return Some(code);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn the_same_body(backend: &Backend) -> TestResult {
    let started = Instant::now();
    let store = storage::connect(backend.kind, backend.config.clone())?;
    let store = store.as_ref();
    assert_eq!(store.kind(), backend.kind);
    store.check().await?;
    let mut messages = Vec::new();

    // Two projects, a and b. Ensuring twice makes one bucket.
    let (a, b) = ("berth-proj-a", "berth-proj-b");
    let (owner_a, owner_b) = (owner(1, false), owner(2, false));
    let quota = store.supports_quota().then_some(QUOTA);
    let spec_a = bucket(a, quota);
    let spec_b = bucket(b, None);
    store.ensure_bucket(&spec_a, &owner_a).await?;
    store.ensure_bucket(&spec_a, &owner_a).await?;
    store.ensure_bucket(&spec_b, &owner_b).await?;
    assert!(store.bucket_exists(a).await?);
    assert!(store.owns_bucket(a, &owner_a).await?);
    assert!(!store.owns_bucket(a, &owner_b).await?);
    assert!(!store.bucket_exists("berth-no-such-bucket").await?);
    if let Some(admin) = &backend.admin_s3 {
        let all = admin.list_buckets().send().await?;
        let named_a = all.buckets().iter().filter(|x| x.name() == Some(a)).count();
        assert_eq!(named_a, 1, "one bucket for project a");
    }

    let key_a = store.create_key(&key_name(1), &spec_a).await?;
    let key_b = store.create_key(&key_name(2), &spec_b).await?;
    assert!(!format!("{key_a:?}").contains(key_a.secret.expose()));
    let client_a = key_client(store, &key_a);
    let client_b = key_client(store, &key_b);

    // Project a's key reads, writes and lists its bucket.
    client_a
        .put_object()
        .bucket(a)
        .key("hello.txt")
        .body(ByteStream::from_static(b"hello, project a"))
        .send()
        .await?;
    let got = client_a
        .get_object()
        .bucket(a)
        .key("hello.txt")
        .send()
        .await?
        .body
        .collect()
        .await?
        .into_bytes();
    assert_eq!(&got[..], b"hello, project a");
    let listed = client_a.list_objects_v2().bucket(a).send().await?;
    assert!(
        listed
            .contents()
            .iter()
            .any(|o| o.key() == Some("hello.txt"))
    );

    // The quota, where there is one: a write that alone is over it is refused, and (where the
    // backend counts at once) so is one that takes the bucket over it.
    if store.supports_quota() {
        let over = denied(
            client_a
                .put_object()
                .bucket(a)
                .key("too-big")
                .body(ByteStream::from(vec![
                    0u8;
                    QUOTA as usize + QUOTA as usize / 2
                ]))
                .send()
                .await,
        );
        assert!(over.is_ok(), "an object over the quota was stored");
        eprintln!(
            "{}: an object over the quota: refused with {over:?}",
            backend.kind
        );
        put(&client_a, a, "part-1", 600 * 1024).await?;
        let second = denied(
            client_a
                .put_object()
                .bucket(a)
                .key("part-2")
                .body(ByteStream::from(vec![0u8; 600 * 1024]))
                .send()
                .await,
        );
        if backend.cumulative_quota_at_once {
            assert!(second.is_ok(), "a write over the quota was accepted");
        }
        eprintln!(
            "{}: 600 KiB + 600 KiB into a 1 MiB quota: {}",
            backend.kind,
            match &second {
                Ok(code) => format!("the second refused ({code})"),
                Err(_) => "both accepted (the usage the backend compares with lags)".to_owned(),
            }
        );
    }

    // Project b's key cannot reach project a's bucket in any way.
    let list = denied(client_b.list_objects_v2().bucket(a).send().await);
    let read = denied(
        client_b
            .get_object()
            .bucket(a)
            .key("hello.txt")
            .send()
            .await,
    );
    let write = denied(
        client_b
            .put_object()
            .bucket(a)
            .key("intruder.txt")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
    );
    let delete = denied(
        client_b
            .delete_object()
            .bucket(a)
            .key("hello.txt")
            .send()
            .await,
    );
    for (what, r) in [
        ("list", &list),
        ("read", &read),
        ("write", &write),
        ("delete", &delete),
    ] {
        assert!(
            r.as_deref() == Ok("AccessDenied"),
            "{}: b's key may {what} a's bucket: {r:?}",
            backend.kind
        );
    }
    // Nor list every bucket (at most its own), nor create one.
    match client_b.list_buckets().send().await {
        Ok(all) => {
            let names: Vec<_> = all.buckets().iter().filter_map(|x| x.name()).collect();
            assert!(
                names.iter().all(|n| *n == b),
                "{}: b's key lists {names:?}",
                backend.kind
            );
        }
        Err(e) => assert_eq!(e.code(), Some("AccessDenied")),
    }
    let create = denied(
        client_b
            .create_bucket()
            .bucket("berth-proj-b-extra")
            .send()
            .await,
    );
    assert!(create.is_ok(), "{}: b's key created a bucket", backend.kind);
    assert!(!store.bucket_exists("berth-proj-b-extra").await?);
    // And project a's object is still there.
    client_a
        .head_object()
        .bucket(a)
        .key("hello.txt")
        .send()
        .await?;

    // Takeover attempts. A bucket someone made outside Berth is never used, changed or deleted
    // on a name alone: its objects stay, and it does not become a project's.
    let foreign = backend.foreign;
    let refused = store.ensure_bucket(&bucket(foreign, quota), &owner_a).await;
    match &refused {
        Err(e) if e.kind == ErrorKind::Conflict => {
            assert!(e.message.contains("records no owner"), "{e}");
            messages.push(e.to_string());
        }
        other => {
            return Err(format!("{}: a foreign bucket was taken: {other:?}", backend.kind).into());
        }
    }
    assert!(!store.owns_bucket(foreign, &owner_a).await?);
    let refused = store.delete_bucket(&bucket(foreign, None), &owner_a).await;
    assert!(
        matches!(refused, Err(ref e) if e.kind == ErrorKind::Conflict),
        "{refused:?}"
    );
    assert!(
        store.bucket_exists(foreign).await?,
        "a foreign bucket was deleted"
    );
    // Nor is another project's bucket: project b cannot claim or delete a's.
    let refused = store.ensure_bucket(&spec_a, &owner_b).await;
    match &refused {
        Err(e) if e.kind == ErrorKind::Conflict => {
            assert!(e.message.contains("belongs to another project"), "{e}");
        }
        other => return Err(format!("{}: b took a's bucket: {other:?}", backend.kind).into()),
    }
    let refused = store.delete_bucket(&spec_a, &owner_b).await;
    assert!(
        matches!(refused, Err(ref e) if e.kind == ErrorKind::Conflict),
        "{refused:?}"
    );
    client_a
        .head_object()
        .bucket(a)
        .key("hello.txt")
        .send()
        .await?;
    // A platform admin adopts the foreign bucket for project c: its objects stay, and from then
    // on it is c's, and still not a's.
    let owner_c = owner(3, true);
    store
        .ensure_bucket(&bucket(foreign, None), &owner_c)
        .await?;
    assert!(
        store
            .owns_bucket(
                foreign,
                &Owner {
                    adopt: false,
                    ..owner_c.clone()
                }
            )
            .await?
    );
    assert!(!store.owns_bucket(foreign, &owner_a).await?);
    assert!(
        store
            .ensure_bucket(&bucket(foreign, None), &owner_a)
            .await
            .is_err_and(|e| e.kind == ErrorKind::Conflict)
    );

    // Listing by prefix finds the keys, to pick up after a crash, and only the owner's.
    let found = store
        .list_keys("berth-3f1c0a7e000040008000000000000001-")
        .await?;
    assert_eq!(found, vec![key_a.credential.clone()]);
    assert!(store.list_keys("berth-zz").await?.is_empty());

    // Recovering a key gives a secret that works.
    let recovered = store.recover_key(&key_a.credential, &spec_a).await?;
    assert_eq!(recovered.credential, key_a.credential);
    let client_a = key_client(store, &recovered);
    let ok = until_ok(|| client_a.head_object().bucket(a).key("hello.txt").send()).await;
    assert!(ok, "{}: the recovered secret does not work", backend.kind);
    store.ensure_grant(&key_b.credential, &spec_b).await?;
    store.ensure_grant(&key_a.credential, &spec_a).await?;
    client_a
        .head_object()
        .bucket(a)
        .key("hello.txt")
        .send()
        .await?;

    // A deleted key stops working; deleting it again is no error.
    store.delete_key(&key_a.credential).await?;
    store.delete_key(&key_a.credential).await?;
    let gone = until_refused(|| client_a.list_objects_v2().bucket(a).send()).await;
    assert!(
        gone.is_some(),
        "{}: a deleted key still works",
        backend.kind
    );
    eprintln!("{}: a deleted key is refused with {gone:?}", backend.kind);
    assert!(
        store
            .list_keys("berth-3f1c0a7e000040008000000000000001-")
            .await?
            .is_empty()
    );

    // Deleting buckets with objects in them, and an unfinished multipart upload.
    put(&client_b, b, "dir/one", 10).await?;
    put(&client_b, b, "dir/two", 10).await?;
    let upload = client_b
        .create_multipart_upload()
        .bucket(b)
        .key("big")
        .send()
        .await?;
    client_b
        .upload_part()
        .bucket(b)
        .key("big")
        .upload_id(upload.upload_id().unwrap_or_default())
        .part_number(1)
        .body(ByteStream::from(vec![1u8; 1024]))
        .send()
        .await?;
    store.delete_bucket(&spec_a, &owner_a).await?;
    store.delete_bucket(&spec_b, &owner_b).await?;
    store.delete_bucket(&spec_b, &owner_b).await?;
    assert!(!store.bucket_exists(a).await?);
    assert!(!store.bucket_exists(b).await?);
    store
        .delete_bucket(&bucket(foreign, None), &owner_c)
        .await?;
    assert!(
        !store.bucket_exists(foreign).await?,
        "the adopted bucket went with its project"
    );
    store.delete_key(&key_b.credential).await?;

    // Bad names never reach the server.
    let bad = store.create_key("Not_A_Key_Name", &spec_b).await;
    assert!(matches!(bad, Err(ref e) if e.kind == ErrorKind::Rejected));
    if let Err(e) = bad {
        messages.push(e.to_string());
    }
    // A missing key to recover.
    let ghost = berth_providers::Credential {
        id: "GKffffffffffffffffffffffff".into(),
        name: "berth-ghost".into(),
    };
    store.ensure_bucket(&spec_b, &owner_b).await?;
    // Garage has no such key to read back; MinIO, which sets a new secret anyway, creates the
    // user.
    match store.recover_key(&ghost, &spec_b).await {
        Err(e) => messages.push(e.to_string()),
        Ok(_) => store.delete_key(&ghost).await?,
    }
    store.delete_bucket(&spec_b, &owner_b).await?;

    // Wrong admin credentials, and nobody listening.
    let mut wrong = backend.config.clone();
    if backend.kind == "garage" {
        wrong.admin_id = "0".repeat(64);
    } else {
        wrong.admin_secret = Secret::new("wrong-secret-0123456789");
    }
    let wrong_secret = format!("{}{}", wrong.admin_id, wrong.admin_secret.expose());
    let wrong_store = storage::connect(backend.kind, wrong)?;
    for r in [
        wrong_store.check().await,
        wrong_store
            .ensure_bucket(&bucket("berth-proj-c", None), &owner(3, false))
            .await,
        wrong_store.list_keys("").await.map(|_| ()),
    ] {
        match r {
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Unauthorized, "{}: {e}", backend.kind);
                messages.push(e.to_string());
            }
            Ok(()) => {
                return Err(format!("{}: wrong admin credentials worked", backend.kind).into());
            }
        }
    }
    let mut closed = backend.config.clone();
    let port = closed_port()?;
    closed.endpoint = format!("http://127.0.0.1:{port}");
    closed.admin_endpoint = format!("http://127.0.0.1:{port}");
    match storage::connect(backend.kind, closed)?.check().await {
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Unreachable, "{}: {e}", backend.kind);
            messages.push(e.to_string());
        }
        Ok(()) => return Err("a closed port answered".into()),
    }

    // No message carries a secret: the admin's, the wrong one tried, or a key's.
    let secrets = [
        backend.config.admin_secret.expose(),
        if backend.kind == "garage" {
            backend.config.admin_id.as_str()
        } else {
            ""
        },
        &wrong_secret,
        "wrong-secret-0123456789",
        key_a.secret.expose(),
        key_b.secret.expose(),
        recovered.secret.expose(),
    ];
    for m in &messages {
        eprintln!("{}: error message: {m}", backend.kind);
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            assert!(
                !m.contains(s),
                "{}: a message carries a secret",
                backend.kind
            );
        }
    }
    eprintln!(
        "{}: the test body took {:.1} s",
        backend.kind,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn until_ok<F, Fut, T, E>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if f().await.is_ok() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn closed_port() -> TestResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_gives_each_project_its_own_bucket_and_key() -> TestResult {
    let garage = Garage::start().await?;
    // Someone's bucket, made straight in Garage, with an object in it.
    let foreign = "someone-elses-data";
    let bucket_id = garage.create_bucket(foreign).await?;
    let them = garage.create_key("someone", false).await?;
    garage.allow(&bucket_id, &them, true, true, false).await?;
    put(
        &s3_client(
            garage.s3_endpoint(),
            garage.region(),
            &them.access_key_id,
            &them.secret_access_key,
        ),
        foreign,
        "theirs.txt",
        5,
    )
    .await?;
    let backend = Backend {
        kind: "garage",
        config: StoreConfig {
            endpoint: garage.s3_endpoint().to_owned(),
            admin_endpoint: garage.admin_endpoint().to_owned(),
            region: garage.region().to_owned(),
            admin_id: garage.admin_token().to_owned(),
            admin_secret: Secret::new(""),
        },
        cumulative_quota_at_once: true,
        admin_s3: None,
        foreign,
    };
    the_same_body(&backend).await?;

    // Ensuring twice made one bucket: Garage lists buckets by their aliases.
    let store = storage::connect("garage", backend.config.clone())?;
    let spec = bucket("berth-proj-d", None);
    store.ensure_bucket(&spec, &owner(4, false)).await?;
    store.ensure_bucket(&spec, &owner(4, false)).await?;
    let all: serde_json::Value = garage.admin_get("ListBuckets").await?;
    let named = all
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .filter(|b| {
                    b["globalAliases"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|n| n == "berth-proj-d"))
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(named, 1, "one bucket for project d");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minio_gives_each_project_its_own_bucket_and_key() -> TestResult {
    let minio = Minio::start().await?;
    let admin = s3_client(
        minio.endpoint(),
        minio.region(),
        minio.access_key(),
        minio.secret_key(),
    );
    // Someone's bucket, made straight in MinIO, with an object in it.
    let foreign = "someone-elses-data";
    admin.create_bucket().bucket(foreign).send().await?;
    put(&admin, foreign, "theirs.txt", 5).await?;
    let backend = Backend {
        kind: "minio",
        config: StoreConfig {
            endpoint: minio.endpoint().to_owned(),
            admin_endpoint: String::new(),
            region: minio.region().to_owned(),
            admin_id: minio.access_key().to_owned(),
            admin_secret: Secret::new(minio.secret_key()),
        },
        cumulative_quota_at_once: false,
        admin_s3: Some(admin),
        foreign,
    };
    the_same_body(&backend).await
}
