//! Starts one local S3 store for the model-fetch benchmark (bench/model-fetch/run.sh) through
//! `berth-services`, the way the tests start them: MinIO or Garage on loopback, with a bucket and
//! credentials that may read and write it. Writes the settings every S3 client reads, as shell
//! `export` lines, to `--env-file` once the store is ready, then serves until SIGTERM or Ctrl-C and
//! removes the store's data on the way out.
//!
//!     s3-store minio --bucket bench --env-file /tmp/minio.env

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, ValueEnum)]
enum Store {
    Minio,
    Garage,
}

#[derive(Parser)]
struct Args {
    store: Store,
    /// The bucket to create.
    #[arg(long, default_value = "bench")]
    bucket: String,
    /// Where to write the `export AWS_…=…` lines.
    #[arg(long)]
    env_file: PathBuf,
}

fn env_lines(
    endpoint: &str,
    region: &str,
    id: &str,
    secret: &str,
    dir: &std::path::Path,
) -> String {
    // aws-cli v1 reads AWS_DEFAULT_REGION, the SDKs AWS_REGION: both.
    format!(
        "export AWS_ENDPOINT_URL='{endpoint}' S3_ENDPOINT_URL='{endpoint}' AWS_REGION='{region}' \
         AWS_DEFAULT_REGION='{region}' AWS_ACCESS_KEY_ID='{id}' AWS_SECRET_ACCESS_KEY='{secret}' \
         S3_STORE_DIR='{}'\n",
        dir.display()
    )
}

async fn stopped() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    match args.store {
        Store::Minio => {
            let minio = berth_services::Minio::start().await?;
            let s3 = berth_services::s3_client(
                minio.endpoint(),
                minio.region(),
                minio.access_key(),
                minio.secret_key(),
            );
            s3.create_bucket().bucket(&args.bucket).send().await?;
            std::fs::write(
                &args.env_file,
                env_lines(
                    minio.endpoint(),
                    minio.region(),
                    minio.access_key(),
                    minio.secret_key(),
                    minio.dir(),
                ),
            )?;
            eprintln!(
                "s3-store: MinIO at {} (pid {})",
                minio.endpoint(),
                minio.pid()
            );
            stopped().await;
        }
        Store::Garage => {
            let garage = berth_services::Garage::start().await?;
            let key = garage.create_key("bench", false).await?;
            let bucket = garage.create_bucket(&args.bucket).await?;
            garage.allow(&bucket, &key, true, true, false).await?;
            std::fs::write(
                &args.env_file,
                env_lines(
                    garage.s3_endpoint(),
                    garage.region(),
                    &key.access_key_id,
                    &key.secret_access_key,
                    garage.dir(),
                ),
            )?;
            eprintln!(
                "s3-store: Garage at {} (pid {})",
                garage.s3_endpoint(),
                garage.pid()
            );
            stopped().await;
        }
    }
    Ok(())
}
