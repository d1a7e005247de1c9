//! Cost of the scrape path and of one refresh cycle, on this machine.
//!
//! `cargo bench --bench exposition` prints a table; under `cargo test --all-targets`
//! (no `--bench` argument) it runs each case once as a smoke test.
//!
//! - render: `/metrics` body for N organizations from a snapshot (what every scrape
//!   costs: no Pipefy call is involved);
//! - cycle: one full refresh of N organizations against the simulator on loopback
//!   (requests made and wall time; the simulator's own work is included).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pipefy_exporter::config::Config;
use pipefy_exporter::metrics::{render, ExpositionInfo, SelfMetrics};
use pipefy_exporter::refresh::Refresher;
use pipefy_exporter::simulator::{SimAuth, SimData, Simulator};
use pipefy_exporter::snapshot::{merge, AiCredits, Limit, OrgMeta, OrgResult, Snapshot, Token};
use tokio::sync::watch;

fn snapshot(n: usize) -> Snapshot {
    let results = (0..n)
        .map(|i| {
            let id = (1000 + i).to_string();
            OrgResult {
                meta: Some(OrgMeta {
                    id: id.clone(),
                    uuid: Some(format!("uuid-{id}")),
                    name: format!("Organization {id}"),
                    plan: Some("Business".into()),
                }),
                account: "default".into(),
                limits: Some(Ok([
                    "pipes",
                    "users",
                    "cards",
                    "records",
                    "interfaces",
                    "ai_credits",
                ]
                .iter()
                .map(|r| Limit {
                    resource: (*r).into(),
                    limit: 100.0,
                    used: 42.0,
                })
                .collect())),
                ai_credits: Some(Ok(Some(AiCredits {
                    used: 25.0,
                    limit: 100.0,
                    free_used: 20.0,
                    free_limit: 20.0,
                    addon_enabled: false,
                }))),
                tokens: Some(Ok(vec![
                    Token {
                        id: format!("t-{id}-1"),
                        name: "Zapier".into(),
                        assigned: false,
                    },
                    Token {
                        id: format!("t-{id}-2"),
                        name: "ETL".into(),
                        assigned: true,
                    },
                ])),
                id,
            }
        })
        .collect();
    merge(
        &Snapshot::default(),
        results,
        SystemTime::now(),
        Duration::from_secs(900),
    )
}

fn bench_render(n: usize, iterations: u32) {
    let snap = snapshot(n);
    let metrics = SelfMetrics::default();
    let info = ExpositionInfo {
        deadline: Some(1_799_107_200),
        refresh_interval: Duration::from_secs(300),
        stale_after: Duration::from_secs(900),
        version: "bench",
        revision: "bench",
    };
    let mut bytes = 0;
    let started = Instant::now();
    for _ in 0..iterations {
        bytes = std::hint::black_box(render(&snap, &metrics, &info, SystemTime::now())).len();
    }
    let per = started.elapsed() / iterations;
    println!(
        "render  {n:>5} orgs  {:>9.1} µs/scrape  {:>8} bytes  {:>6} series",
        per.as_secs_f64() * 1e6,
        bytes,
        render(&snap, &metrics, &info, SystemTime::now())
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count()
    );
}

async fn bench_cycle(n: usize, rounds: u32) {
    let sim = Simulator::new(
        SimData::generated(n),
        SimAuth {
            open: true,
            ..SimAuth::default()
        },
    );
    let server = sim
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let ids: Vec<String> = (1000..1000 + n).map(|i| format!("\"{i}\"")).collect();
    let yaml = format!(
        "pipefy:\n  endpoint: {}\nrefresh_interval: 1h\norganizations: [{}]\n",
        server.graphql_url(),
        ids.join(",")
    );
    let config = Config::from_yaml(&yaml, "bench.yml".as_ref(), &|name| {
        (name == "PIPEFY_TOKEN").then(|| "bench".to_string())
    })
    .unwrap();
    let (tx, _rx) = watch::channel(Arc::new(Snapshot::default()));
    let refresher = Refresher::new(Arc::new(config), Arc::new(SelfMetrics::default()), tx).unwrap();
    let mut previous = Snapshot::default();
    let mut total = Duration::ZERO;
    for _ in 0..rounds {
        sim.reset_stats();
        let started = Instant::now();
        let outcome = refresher.cycle(&previous).await;
        total += started.elapsed();
        assert_eq!(outcome.results.len(), n);
        previous = merge(
            &previous,
            outcome.results,
            SystemTime::now(),
            Duration::from_secs(900),
        );
    }
    println!(
        "cycle   {n:>5} orgs  {:>9.1} ms/cycle   {:>3} requests/cycle",
        (total / rounds).as_secs_f64() * 1e3,
        sim.stats().graphql_requests
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (render_iterations, cycle_rounds) = if bench { (200, 5) } else { (1, 1) };
    for n in [3, 120, 1000] {
        bench_render(n, render_iterations);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in [3, 120, 1000] {
        runtime.block_on(bench_cycle(n, cycle_rounds));
    }
}
