//! The faults a test injects and the server's life: HTTP failures with `Retry-After`,
//! added latency, and a server that keeps running when dropped and stops when shut down.

use std::time::{Duration, Instant};

use super::*;

#[tokio::test]
async fn injected_failures_with_retry_after() {
    let sim = Simulator::demo();
    let server = start(&sim).await;
    let q = json!({"query": "{ organizations { id } }"});

    sim.fail_next(1, 429, Some(7));
    let a = post(&server, None, q.clone()).await;
    assert_eq!(a.status, 429);
    assert_eq!(
        a.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("7")
    );
    assert_eq!(
        a.body,
        json!({"errors": [{"message": "Simulated failure (HTTP 429)"}]})
    );
    let a = post(&server, None, q.clone()).await;
    assert_eq!(a.status, 200);
    assert!(a.headers.get("retry-after").is_none());

    // Queued failures come in order, before a persistent one.
    sim.fail_all(Some((503, None)));
    sim.fail_next(1, 500, None);
    let statuses = [
        post(&server, None, q.clone()).await.status,
        post(&server, None, q.clone()).await.status,
        post(&server, None, q.clone()).await.status,
    ];
    assert_eq!(statuses, [500, 503, 503]);
    sim.fail_all(None);
    assert_eq!(post(&server, None, q.clone()).await.status, 200);

    let stats = sim.stats();
    assert_eq!(stats.graphql_requests, 6);
    // Failed requests never reach the engine.
    assert_eq!(stats.operations, counts(&[("anonymous", 2)]));
    assert_eq!(stats.root_fields, counts(&[("organizations", 2)]));
}

#[tokio::test]
async fn latency_delays_answers() {
    let sim = Simulator::demo();
    let server = start(&sim).await;
    sim.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    let a = query(&server, "{ organizations { id } }", json!(null)).await;
    assert_eq!(a.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn dropping_the_server_keeps_it_running_and_shutdown_stops_it() {
    let sim = Simulator::demo();
    let server = start(&sim).await;
    let url = server.graphql_url();
    let addr = server.addr;
    drop(server);
    let client = reqwest::Client::new();
    let body = json!({"query": "{ organizations { id } }"});
    let resp = client.post(&url).json(&body).send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 200);

    let server = start(&sim).await;
    assert_ne!(server.addr, addr);
    let url = server.graphql_url();
    assert_eq!(
        server.base_url(),
        format!("http://127.0.0.1:{}", server.addr.port())
    );
    assert_eq!(
        server.token_url(),
        format!("{}/oauth/token", server.base_url())
    );
    server.shutdown_and_wait().await;
    // A fresh client, so no pooled connection can hide the stop.
    let result = reqwest::Client::new().post(&url).json(&body).send().await;
    assert!(result.is_err(), "server still answering after shutdown");
}
