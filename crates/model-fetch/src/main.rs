use berth_model_fetch::{Args, progress_summary, run};
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args = Args::parse();
    let dest = args.dest.clone();
    let quiet = args.quiet;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-model-fetch: internal error: cannot start the async runtime: {e}");
            return ExitCode::from(berth_model_fetch::exit::INTERNAL);
        }
    };
    let result = rt.block_on(run(args));
    rt.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(summary) => {
            if !quiet {
                eprintln!(
                    "berth-model-fetch: done: {}",
                    progress_summary(&summary, &dest)
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth-model-fetch: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
