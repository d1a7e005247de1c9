//! Cost of the scrape path and of one refresh cycle, on this machine.
//!
//! `cargo bench --bench exposition` prints a table; under `cargo test --all-targets`
//! (no `--bench` argument) it runs each case once as a smoke test.
//!
//! - publish: the exposition of N organizations rendered from the snapshot of one
//!   refresh in one format, gzip and (below 16 MiB) plain (what each refresh costs once
//!   per format scraped, off the scrape path); per format: the text format 0.0.4 (by
//!   hand) and OpenMetrics (prometheus-client);
//! - scrape: one `/metrics` body from that publication, plain and gzip, drained as a
//!   connection would (the shared bytes plus the live part, or for a plain body above
//!   16 MiB its inflation: what every scrape costs; no Pipefy call is involved);
//! - cycle: one refresh of every collector for N organizations against the simulator on
//!   loopback (requests made per collector and wall time; the simulator's own work is
//!   included).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pipefy_exporter::testing::Config;
use pipefy_exporter::testing::SelfMetrics;
use pipefy_exporter::testing::{merge, Snapshot};
use pipefy_exporter::testing::{render, Format, Published, SelfMetricsParts};
use pipefy_exporter::testing::{Due, Refresher};

#[path = "common/mod.rs"]
mod common;
use common::setup;

/// One refresh with every collector due, from `previous`.
async fn refresh(refresher: &Refresher, previous: &Snapshot) -> Snapshot {
    let outcome = refresher.refresh(previous, Due::All).await;
    merge(previous, outcome.orgs, outcome.outcomes, SystemTime::now())
}

fn refresher(config: &Config) -> Refresher {
    Refresher::standalone(Arc::new(config.clone()), Arc::new(SelfMetrics::default())).unwrap()
}

async fn bench_render(n: usize, iterations: u32) {
    let (_sim, _server, config) = setup(n).await;
    let snap = Arc::new(refresh(&refresher(&config), &Snapshot::default()).await);
    let metrics = SelfMetrics::default();
    let own = SelfMetricsParts::default();
    let info = Arc::new(pipefy_exporter::testing::exposition_info(&config));
    for format in Format::ALL {
        let formats = [format];
        let publishes = iterations.div_ceil(20).max(5);
        let started = Instant::now();
        for _ in 0..publishes {
            std::hint::black_box(Published::new(
                snap.clone(),
                info.clone(),
                SystemTime::now(),
                &formats,
            ));
        }
        let publish = started.elapsed() / publishes;
        let published = Published::new(snap.clone(), info.clone(), SystemTime::now(), &formats);
        let mut per_scrape = [Duration::ZERO; 2];
        let mut bytes = [0; 2];
        for (gzip, (per, bytes)) in [false, true]
            .into_iter()
            .zip(per_scrape.iter_mut().zip(&mut bytes))
        {
            let started = Instant::now();
            for _ in 0..iterations {
                // Drained as a connection would: above the size kept plain, a plain
                // scrape inflates the gzip body as it goes.
                let own = own.get(&metrics, format);
                let mut body = published
                    .scrape(&own, &metrics, SystemTime::now(), format, gzip)
                    .await;
                *bytes = 0;
                while let Some(chunk) = body.next_chunk() {
                    *bytes += std::hint::black_box(chunk.expect("inflates")).len();
                }
            }
            *per = started.elapsed() / iterations;
        }
        let series = render(&snap, &metrics, &info, SystemTime::now(), format)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count();
        let name = match format {
            Format::Text => "text",
            Format::OpenMetrics => "openmetrics",
        };
        println!(
            "publish {n:>5} orgs  {name:<11}  {:>9.1} ms/publish  {:>8} bytes  {:>8} gzip  {:>6} series",
            publish.as_secs_f64() * 1e3,
            bytes[0],
            bytes[1],
            series
        );
        println!(
            "scrape  {n:>5} orgs  {name:<11}  {:>9.1} µs plain  {:>9.1} µs gzip",
            per_scrape[0].as_secs_f64() * 1e6,
            per_scrape[1].as_secs_f64() * 1e6,
        );
    }
}

/// One refresh of every collector: wall time, and the requests the simulator counted
/// per operation (that is, per collector).
async fn bench_cycle(n: usize, rounds: u32) {
    let (sim, _server, config) = setup(n).await;
    let refresher = refresher(&config);
    let mut previous = Snapshot::default();
    let mut total = Duration::ZERO;
    for _ in 0..rounds {
        sim.reset_stats();
        let started = Instant::now();
        previous = refresh(&refresher, &previous).await;
        total += started.elapsed();
        assert_eq!(previous.orgs.len(), n);
    }
    let stats = sim.stats();
    let per_operation: Vec<String> = stats
        .operations
        .iter()
        .map(|(op, count)| format!("{op}={count}"))
        .collect();
    println!(
        "cycle   {n:>5} orgs  {:>9.1} ms/cycle   {:>3} requests/cycle ({})",
        (total / rounds).as_secs_f64() * 1e3,
        stats.graphql_requests,
        per_operation.join(" ")
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (render_iterations, cycle_rounds): (u32, u32) = if bench { (200, 5) } else { (1, 1) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // 10,000 organizations: fewer scrapes (a plain one inflates 45 MB).
    for (n, iterations) in [
        (3, render_iterations),
        (120, render_iterations),
        (1000, render_iterations),
        (10_000, render_iterations.div_ceil(10)),
    ] {
        if n == 10_000 && !bench {
            continue;
        }
        runtime.block_on(bench_render(n, iterations));
    }
    for n in [3, 120, 1000] {
        runtime.block_on(bench_cycle(n, cycle_rounds));
    }
}
