//! Thin entry point: flags, logging, run, and a readable error with its cause chain.
use std::process::ExitCode;

use clap::Parser;
use pipefy_exporter::cli::{run, Cli};
use pipefy_exporter::logging;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_level, cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "pipefy-exporter failed");
            ExitCode::FAILURE
        }
    }
}
