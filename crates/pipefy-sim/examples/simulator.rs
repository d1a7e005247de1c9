//! The Pipefy simulator alone, serving N generated organizations (the benchmarks'), so
//! that the release binary can be measured against many organizations with nothing
//! but itself in its process (`scripts/bench-scrape`). Any token is accepted.
//!
//! ```text
//! cargo run --release -p pipefy-sim --example simulator -- 1000 127.0.0.1:10196 [LATENCY_MS] [SCHEMA]
//! ```
//!
//! `LATENCY_MS` (default 0) is added to every answer, as a network and Pipefy's own time
//! would be (`scripts/bench-scale`). `SCHEMA` is the schema served: `guessed` (default, the
//! exporter's token query works), `public` (Pipefy's public reference: no token listing),
//! `relocated` (tokens under another root field), each with `-no-introspection` to refuse
//! introspection (`public-no-introspection`). Prints the GraphQL endpoint, then serves
//! until killed; `GET /sim/stats` tells what it was asked and what it refused.

use std::time::Duration;

use anyhow::Context;
use pipefy_sim::{SimAuth, SimData, SimSchema, Simulator};
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
    let latency_ms: u64 = args
        .next()
        .as_deref()
        .unwrap_or("0")
        .parse()
        .context("the third argument is the latency added to every answer, in milliseconds")?;
    let schema = args.next().unwrap_or_else(|| "guessed".to_owned());
    let (name, introspection) = match schema.strip_suffix("-no-introspection") {
        Some(name) => (name, false),
        None => (schema.as_str(), true),
    };
    let schema = match name {
        "guessed" => SimSchema::Guessed,
        "public" => SimSchema::Public,
        "relocated" => SimSchema::Relocated,
        other => anyhow::bail!(
            "the fourth argument is the schema: guessed, public or relocated (with -no-introspection), not {other:?}"
        ),
    };
    let simulator = Simulator::new(SimData::generated(organizations), SimAuth::open());
    simulator.set_latency(Duration::from_millis(latency_ms));
    simulator.set_schema(schema);
    simulator.set_introspection(introspection);
    let listener = TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let server = simulator.spawn(listener).await?;
    println!("{}", server.graphql_url());
    std::future::pending::<()>().await;
    Ok(())
}
