//! Thin entry point: flags, logging, run, and a readable error with its cause chain.
use std::process::ExitCode;

use clap::Parser;
use pipefy_exporter::cli::{run, Cli};
use pipefy_exporter::logging;

/// mimalloc rather than glibc's malloc: a refresh of thousands of organizations frees
/// tens of megabytes in many sizes on several threads, and glibc kept much of it as
/// resident memory (per-thread arenas, returned to the system only from their top);
/// BENCHMARKS.md has the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
