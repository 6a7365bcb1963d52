//! The `berth-model-server` binary: flags, logging, and the exit code.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use berth_model_server::{Cli, Command, error::flatten_whitespace, run, server::panic_message};
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Keep any panic to one line on stderr, like every other fatal message.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "berth-model-server: internal error{location}: {}",
            flatten_whitespace(&panic_message(info.payload()))
        );
    }));

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-model-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Proxy(proxy)) => berth_model_server::proxy::run(proxy).await,
            None => run(cli.serve).await,
        }
    });
    // Do not wait for a model load still running after a shutdown signal.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-model-server: {e}");
            ExitCode::FAILURE
        }
    }
}
