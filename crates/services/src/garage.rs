//! A single-node Garage cluster on loopback.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testenv::Process;
use serde::Deserialize;

use crate::common::{
    RunDir, answers_ok, expect_success, free_ports, http_client, locate, parse_json, progress,
    random_hex, spawn, wait_until, write,
};
use crate::{Error, Result};

/// The region Garage's S3 API is configured with (`s3_region`); S3 clients must sign for it.
pub const GARAGE_REGION: &str = "garage";

/// A running single-node Garage cluster (replication factor 1) with its layout applied, its RPC,
/// S3 and admin APIs each on a free loopback port. Dropping it stops the server and removes its
/// data directory.
pub struct Garage {
    // Fields drop in order: the server stops before its directory is removed.
    process: Process,
    dir: RunDir,
    s3_endpoint: String,
    admin_endpoint: String,
    admin_token: String,
    node_id: String,
    client: reqwest::Client,
    /// The binary and its arguments, to start it again after [`Garage::stop`].
    command: (std::path::PathBuf, Vec<String>),
}

/// An S3 access key made through Garage's admin API.
#[derive(Clone, Debug)]
pub struct GarageKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterStatus {
    nodes: Vec<NodeStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeStatus {
    id: String,
}

#[derive(Deserialize)]
struct BucketInfo {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyInfo {
    access_key_id: String,
    secret_access_key: Option<String>,
}

impl Garage {
    /// Builds Garage if it is not cached (`tools/garage/build.sh`, or the directory holding
    /// `garage` named by `BERTH_GARAGE_DIR`), writes its configuration, starts `garage server`,
    /// assigns this node all of a 1 GB single-zone layout and applies it, and returns once
    /// `/health` on the admin API answers 200.
    pub async fn start() -> Result<Self> {
        Self::start_on("127.0.0.1").await
    }

    /// [`Garage::start`] with the S3 and admin APIs on `address` instead of loopback: the real
    /// node's address (`berth_testenv::realnode::NODE_IP`), where its pods reach them and no
    /// other machine does. Its cluster RPC stays on loopback.
    pub async fn start_on(address: &str) -> Result<Self> {
        let bin = locate("garage", "tools/garage/build.sh", "BERTH_GARAGE_DIR")?.join("garage");
        let begin = Instant::now();
        let dir = RunDir::new("garage")?;
        let [rpc_port, s3_port, admin_port] = free_ports()?;
        let s3_endpoint = format!("http://{address}:{s3_port}");
        let admin_endpoint = format!("http://{address}:{admin_port}");
        let admin_token = random_hex(32)?;
        progress(
            "garage",
            &format!(
                "starting with S3 on {s3_endpoint}, admin on {admin_endpoint}, in {}",
                dir.path().display()
            ),
        );
        let config = dir.join("garage.toml");
        write(
            &config,
            &format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
metadata_fsync = false
data_fsync = false
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{GARAGE_REGION}"
api_bind_addr = "{address}:{s3_port}"

[admin]
api_bind_addr = "{address}:{admin_port}"
admin_token = "{admin_token}"
metrics_token = "{metrics_token}"
"#,
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
                rpc_secret = random_hex(32)?,
                metrics_token = random_hex(32)?,
            ),
        )?;
        // The configuration holds the secrets: readable by us only.
        restrict(&config)?;
        let args = vec![
            "-c".to_owned(),
            config.display().to_string(),
            "server".to_owned(),
        ];
        let env = [("RUST_LOG", "garage=info".to_owned())];
        let mut process = spawn("garage", &bin, &args, &env, &dir.join("garage.log"))?;
        let client = http_client()?;

        // The admin API answers once the server is up; the node has no role until the layout is
        // applied, and /health says unhealthy until then.
        let status_url = format!("{admin_endpoint}/v2/GetClusterStatus");
        wait_until(
            &mut process,
            "the admin API",
            Duration::from_secs(60),
            begin,
            || async {
                matches!(
                    client.get(&status_url).bearer_auth(&admin_token).send().await,
                    Ok(r) if r.status().is_success()
                )
            },
        )
        .await?;
        let mut garage = Self {
            process,
            dir,
            s3_endpoint,
            admin_endpoint,
            admin_token,
            node_id: String::new(),
            client,
            command: (bin.clone(), args.clone()),
        };
        let status: ClusterStatus = garage.admin_get("GetClusterStatus").await?;
        let [node] = status.nodes.as_slice() else {
            return Err(Error::Answer {
                what: "GetClusterStatus".into(),
                message: format!("expected one node, got {}", status.nodes.len()),
            });
        };
        garage.node_id = node.id.clone();
        garage
            .admin_post::<serde_json::Value>(
                "UpdateClusterLayout",
                &serde_json::json!({"roles": [{
                    "id": garage.node_id,
                    "zone": "dc1",
                    "capacity": 1_000_000_000u64,
                    "tags": [],
                }]}),
            )
            .await?;
        garage
            .admin_post::<serde_json::Value>(
                "ApplyClusterLayout",
                &serde_json::json!({"version": 1}),
            )
            .await?;
        progress(
            "garage",
            &format!("layout applied to node {:.16}…", garage.node_id),
        );
        let health = format!("{}/health", garage.admin_endpoint);
        let client = garage.client.clone();
        wait_until(
            &mut garage.process,
            "/health",
            Duration::from_secs(60),
            begin,
            || answers_ok(&client, &health),
        )
        .await?;
        progress(
            "garage",
            &format!("healthy after {:.1} s", begin.elapsed().as_secs_f64()),
        );
        Ok(garage)
    }

    /// Stops the server, as an outage would: its ports refuse connections until
    /// [`Garage::restart`]. Its data stays.
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(5));
        progress("garage", "stopped");
    }

    /// Starts the server again after [`Garage::stop`], on the same ports with the same data, and
    /// returns once `/health` answers 200.
    pub async fn restart(&mut self) -> Result<()> {
        let begin = Instant::now();
        let (bin, args) = &self.command;
        let env = [("RUST_LOG", "garage=info".to_owned())];
        self.process = spawn(
            "garage",
            bin,
            args,
            &env,
            &self.dir.join("garage-restarted.log"),
        )?;
        let health = format!("{}/health", self.admin_endpoint);
        let client = self.client.clone();
        wait_until(
            &mut self.process,
            "/health",
            Duration::from_secs(60),
            begin,
            || answers_ok(&client, &health),
        )
        .await?;
        progress(
            "garage",
            &format!(
                "restarted, healthy after {:.1} s",
                begin.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }

    /// `GET /v2/<endpoint>` on the admin API with the admin token, decoded from JSON.
    pub async fn admin_get<T: serde::de::DeserializeOwned>(&self, endpoint: &str) -> Result<T> {
        let url = format!("{}/v2/{endpoint}", self.admin_endpoint);
        let what = format!("Garage admin API {endpoint}");
        let body = expect_success(
            &what,
            self.client
                .get(&url)
                .bearer_auth(&self.admin_token)
                .send()
                .await,
        )
        .await?;
        parse_json(&what, &body)
    }

    /// `POST /v2/<endpoint>` (the query string may follow the name) on the admin API with the
    /// admin token and a JSON body, decoded from JSON.
    pub async fn admin_post<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &serde_json::Value,
    ) -> Result<T> {
        let url = format!("{}/v2/{endpoint}", self.admin_endpoint);
        let what = format!("Garage admin API {endpoint}");
        let answer = expect_success(
            &what,
            self.client
                .post(&url)
                .bearer_auth(&self.admin_token)
                .json(body)
                .send()
                .await,
        )
        .await?;
        parse_json(&what, &answer)
    }

    /// Makes an access key through the admin API (`CreateKey`). With `create_bucket` it may
    /// create buckets through S3 (Garage names those by an alias local to that key, and makes the
    /// key their owner); without, it may touch only buckets it is granted with [`Garage::allow`].
    pub async fn create_key(&self, name: &str, create_bucket: bool) -> Result<GarageKey> {
        let info: KeyInfo = self
            .admin_post(
                "CreateKey",
                &serde_json::json!({"name": name, "allow": {"createBucket": create_bucket}}),
            )
            .await?;
        let Some(secret_access_key) = info.secret_access_key else {
            return Err(Error::Answer {
                what: "Garage admin API CreateKey".into(),
                message: "no secretAccessKey in the answer".into(),
            });
        };
        Ok(GarageKey {
            access_key_id: info.access_key_id,
            secret_access_key,
        })
    }

    /// Makes a bucket known to every key by `global_alias` (`CreateBucket`) and returns its id.
    /// No key may use it until granted with [`Garage::allow`].
    pub async fn create_bucket(&self, global_alias: &str) -> Result<String> {
        let info: BucketInfo = self
            .admin_post(
                "CreateBucket",
                &serde_json::json!({"globalAlias": global_alias}),
            )
            .await?;
        Ok(info.id)
    }

    /// Grants `key` read, write and/or owner rights on a bucket (`AllowBucketKey`).
    pub async fn allow(
        &self,
        bucket_id: &str,
        key: &GarageKey,
        read: bool,
        write: bool,
        owner: bool,
    ) -> Result<()> {
        self.admin_post::<serde_json::Value>(
            "AllowBucketKey",
            &serde_json::json!({
                "bucketId": bucket_id,
                "accessKeyId": key.access_key_id,
                "permissions": {"read": read, "write": write, "owner": owner},
            }),
        )
        .await?;
        Ok(())
    }

    /// The S3 endpoint, `http://127.0.0.1:<port>`; use path-style addressing.
    pub fn s3_endpoint(&self) -> &str {
        &self.s3_endpoint
    }

    /// The admin API endpoint, `http://127.0.0.1:<port>`.
    pub fn admin_endpoint(&self) -> &str {
        &self.admin_endpoint
    }

    /// The admin API's bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The region S3 requests must be signed for.
    pub fn region(&self) -> &str {
        GARAGE_REGION
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Where the server keeps its configuration, data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        // On SIGTERM Garage waits for its clients to close their connections, and a client that
        // lives in a runtime blocked by this very drop never does: its data is thrown away, so
        // give it a short grace before the kill.
        self.process.stop(Duration::from_secs(1));
    }
}

fn restrict(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("restricting {}", path.display()), e))
}
