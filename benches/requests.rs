//! Paid Pipefy requests per day, counted at the simulator (which enforces Pipefy's
//! complexity limit of 50,000): `cargo bench --bench requests` prints the BENCHMARKS.md
//! table. Under `cargo test --all-targets` (no `--bench` argument) it runs 10
//! organizations only, as a smoke test.
//!
//! Per size: one cold refresh of every collector (listed organizations, no uuid known,
//! the schema check's introspection included), then one steady hour at the default
//! intervals, refresh by refresh (limits every 5 minutes; AI credits, API usage and
//! automation jobs every 15; integrations and tokens every hour: 12 refreshes), each
//! counted at the simulator. The schedule repeats every hour, so a day is 24 such hours
//! plus the daily schema check (one introspection, `pipefy.schema_check_interval`). The
//! naive design (one request per organization per collector per scrape, every 60 s) is
//! computed: 6 × N × 1,440.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use pipefy_exporter::testing::SelfMetrics;
use pipefy_exporter::testing::{merge, Snapshot};
use pipefy_exporter::testing::{Due, Refresher};

#[path = "common/mod.rs"]
mod common;
use common::setup;

const EVERY_5M: &[&str] = &["subscription_limits"];
const EVERY_15M: &[&str] = &[
    "subscription_limits",
    "ai_credits",
    "api_usage",
    "automation_jobs",
];
const EVERY_HOUR: &[&str] = &[
    "subscription_limits",
    "ai_credits",
    "api_usage",
    "automation_jobs",
    "integrations",
    "token_attribution",
];

/// Which collectors are due at minute `5 × i` of an hour, at the default intervals.
fn due(i: usize) -> &'static [&'static str] {
    match i {
        0 => EVERY_HOUR,
        3 | 6 | 9 => EVERY_15M,
        _ => EVERY_5M,
    }
}

async fn count(n: usize) {
    let (sim, _server, config) = setup(n).await;
    let refresher =
        Refresher::standalone(Arc::new(config), Arc::new(SelfMetrics::default())).unwrap();

    let started = Instant::now();
    let mut snapshot = Snapshot::default();
    let outcome = refresher.refresh(&snapshot, Due::All).await;
    assert!(outcome.outcomes.iter().all(|o| o.result.is_ok()));
    snapshot = merge(&snapshot, outcome.orgs, outcome.outcomes, SystemTime::now());
    let cold = sim.stats().graphql_requests;
    assert_eq!(
        sim.stats().operations.get("PipefySchemaCheck"),
        Some(&1),
        "one schema check in the cold refresh"
    );
    let mut per_refresh = Vec::new();
    for i in 0..12 {
        let before = sim.stats().graphql_requests;
        let outcome = refresher.refresh(&snapshot, Due::Only(due(i))).await;
        assert!(outcome.outcomes.iter().all(|o| o.result.is_ok()));
        snapshot = merge(&snapshot, outcome.orgs, outcome.outcomes, SystemTime::now());
        per_refresh.push(sim.stats().graphql_requests - before);
    }
    let stats = sim.stats();
    assert_eq!(stats.too_complex, 0, "the simulator refused a request");
    let hour: u64 = per_refresh.iter().sum();
    // The schema is checked again once a day.
    let day = 24 * hour + 1;
    let naive = 6 * n as u64 * 1440;
    println!(
        "| {n} | {cold} | {} | {} | {} | {hour} | {day} | {naive} | {:.0}× | {:.1} s |",
        per_refresh[1],
        per_refresh[3],
        per_refresh[0],
        naive as f64 / day as f64,
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if bench {
        &[10, 100, 1_000, 10_000]
    } else {
        &[10]
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| organizations | cold refresh (all) | limits only | limits + usage | all six | steady hour | day | naive day | fewer | wall |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &n in sizes {
        runtime.block_on(count(n));
    }
}
