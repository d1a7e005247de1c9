//! The Pipefy simulator alone, serving N generated organizations (the benchmarks'), so
//! that the release binary can be measured against many organizations with nothing
//! but itself in its process (`scripts/bench-scrape`). Any token is accepted.
//!
//! ```text
//! cargo run --release --example simulator -- 1000 127.0.0.1:10196
//! ```
//!
//! Prints the GraphQL endpoint, then serves until killed.

use anyhow::Context;
use pipefy_exporter::simulator::{SimAuth, SimData, Simulator};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let organizations: usize = args
        .next()
        .as_deref()
        .unwrap_or("1000")
        .parse()
        .context("the first argument is the number of organizations")?;
    let address = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let simulator = Simulator::new(
        SimData::generated(organizations),
        SimAuth {
            open: true,
            ..SimAuth::default()
        },
    );
    let listener = TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let server = simulator.spawn(listener).await?;
    println!("{}", server.graphql_url());
    std::future::pending::<()>().await;
    Ok(())
}
