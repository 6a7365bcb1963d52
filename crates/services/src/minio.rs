//! A MinIO server on loopback.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testenv::Process;

use crate::Result;
use crate::common::{
    RunDir, answers_ok, free_ports, http_client, locate, progress, random_hex, spawn, wait_until,
};

/// The region MinIO is configured with; S3 clients must sign for it.
pub const MINIO_REGION: &str = "us-east-1";

/// A running single-drive MinIO server on a free loopback port, with root credentials generated at
/// random. Dropping it stops the server and removes its data directory.
pub struct Minio {
    // Fields drop in order: the server stops before its directory is removed.
    process: Process,
    dir: RunDir,
    endpoint: String,
    access_key: String,
    secret_key: String,
}

impl Minio {
    /// Builds MinIO if it is not cached (`tools/minio/build.sh`, or the directory named by
    /// `BERTH_MINIO_DIR`), starts it and returns once `/minio/health/ready` answers.
    pub async fn start() -> Result<Self> {
        let bin = locate("minio", "tools/minio/build.sh", "BERTH_MINIO_DIR")?.join("minio");
        let begin = Instant::now();
        let dir = RunDir::new("minio")?;
        let [port, console_port] = free_ports()?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let access_key = format!("berth{}", random_hex(8)?);
        let secret_key = random_hex(20)?;
        progress(
            "minio",
            &format!("starting on {endpoint} in {}", dir.path().display()),
        );
        let d = |name: &str| dir.join(name).display().to_string();
        let args = vec![
            "server".to_owned(),
            d("data"),
            format!("--address=127.0.0.1:{port}"),
            format!("--console-address=127.0.0.1:{console_port}"),
            format!("--certs-dir={}", d("certs")),
            "--quiet".to_owned(),
        ];
        let env = [
            ("MINIO_ROOT_USER", access_key.clone()),
            ("MINIO_ROOT_PASSWORD", secret_key.clone()),
            ("MINIO_REGION", MINIO_REGION.to_owned()),
            ("MINIO_BROWSER", "off".to_owned()),
            ("MINIO_UPDATE", "off".to_owned()),
        ];
        let mut process = spawn("minio", &bin, &args, &env, &dir.join("minio.log"))?;
        let client = http_client()?;
        let ready = format!("{endpoint}/minio/health/ready");
        wait_until(
            &mut process,
            "/minio/health/ready",
            Duration::from_secs(60),
            begin,
            || answers_ok(&client, &ready),
        )
        .await?;
        progress(
            "minio",
            &format!("ready after {:.1} s", begin.elapsed().as_secs_f64()),
        );
        Ok(Self {
            process,
            dir,
            endpoint,
            access_key,
            secret_key,
        })
    }

    /// The S3 endpoint, `http://127.0.0.1:<port>`; use path-style addressing.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The region S3 requests must be signed for.
    pub fn region(&self) -> &str {
        MINIO_REGION
    }

    /// The root user's access key.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The root user's secret key.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Where the server keeps its data and log.
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
