//! What the benches share: a simulator with generated organizations and an exporter
//! configuration listing them all. (A directory module, so that cargo does not take it
//! for a bench target of its own.)

use pipefy_exporter::testing::Config;
use pipefy_sim::{SimAuth, SimData, SimServer, Simulator};

/// A simulator with `n` generated organizations, and an exporter configuration that
/// lists them all with every collector on (API usage broken down by token).
pub async fn setup(n: usize) -> (Simulator, SimServer, Config) {
    let sim = Simulator::new(SimData::generated(n), SimAuth::open());
    let server = sim
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let ids: Vec<String> = (1000..1000 + n).map(|i| format!("\"{i}\"")).collect();
    let yaml = format!(
        "pipefy:\n  endpoint: {}\norganizations: [{}]\n",
        server.graphql_url(),
        ids.join(",")
    );
    let config = Config::from_yaml(&yaml, "bench.yml".as_ref(), &|name| {
        (name == "PIPEFY_TOKEN").then(|| "bench".to_string())
    })
    .unwrap();
    (sim, server, config)
}
