//! Fault injection, one test per upstream fault, against the simulator: `/metrics`
//! answers throughout, `pipefy_up` is 0 for what failed, the last good values stay
//! until `stale_after`, the requests Pipefy sees stay inside the budget each test states,
//! and the next good refresh recovers.
//!
//! The setting: one organization (2), six collectors, every 300 ms, one root field per
//! request (`max_orgs_per_request: 1`), so that a fault hits one request of several:
//! six requests per refresh once the uuid is known and the assumed selections were
//! accepted (from the second refresh on). Waits are
//! short through the config (`retry_delay: 10ms`, `backoff_base: 1s`), and nothing is
//! asserted about how long anything took: budgets are counted at the simulator, and
//! each state is reached by polling.

use std::sync::Arc;
use std::time::Duration;

use pipefy_exporter::testing::ServeOptions;
use pipefy_sim::{demo_data, Corruption, Simulator};
use tokio::net::TcpListener;

use crate::helpers::{
    load_config, pat_config_with, poll, sim_auth, spawn_simulator, Metrics, TestApp, CLIENT_ID,
    COLLECTORS,
};

/// Requests of one refresh: the organization's shared `organization(id:)` (subscription
/// limits and token attribution), AI credits, API usage (total, and by token),
/// automation jobs, integrations.
const PER_REFRESH: u64 = 6;
/// `pipefy.max_tries` below.
const TRIES: u64 = 3;
/// Failed refreshes in a row before the circuit opens (`backoff::CIRCUIT_THRESHOLD`).
const THRESHOLD: u64 = 3;
const ACCOUNT: [(&str, &str); 1] = [("account", "default")];
const PIPES: [(&str, &str); 2] = [("organization_id", "2"), ("resource", "pipes")];

const PIPEFY_KEYS: &str = "  max_tries: 3\n  retry_delay: 10ms\n  backoff_base: 1s\n  backoff_max: 1h\n  max_orgs_per_request: 1\n";
const TOP: &str = "refresh_interval: 300ms\nstale_after: 1h\norganizations: [2]\n";

fn config(more_pipefy_keys: &str) -> String {
    pat_config_with(&format!("{PIPEFY_KEYS}{more_pipefy_keys}"), TOP)
}

fn up(m: &Metrics, collector: &str) -> f64 {
    m.value(
        "pipefy_up",
        &[("organization_id", "2"), ("collector", collector)],
    )
}

fn all_up(m: &Metrics) -> bool {
    COLLECTORS.iter().all(|c| up(m, c) == 1.0)
}

fn all_down(m: &Metrics) -> bool {
    COLLECTORS.iter().all(|c| up(m, c) == 0.0)
}

/// The last good values are still served.
fn assert_values_kept(m: &Metrics) {
    assert_eq!(m.value("pipefy_subscription_limit", &PIPES), 5.0);
    assert_eq!(
        m.value("pipefy_ai_credits_used", &[("organization_id", "2")]),
        25.0
    );
}

fn backoff(m: &Metrics) -> f64 {
    m.value("pipefy_exporter_backoff_seconds", &ACCOUNT)
}

fn circuit(m: &Metrics) -> f64 {
    m.value("pipefy_exporter_circuit_open", &ACCOUNT)
}

async fn wait_for(app: &TestApp, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
    poll(what, || async {
        let m = app.metrics().await;
        check(&m).then_some(m)
    })
    .await
}

/// A healthy start: good refreshes, no backoff, circuit closed. Returns the requests
/// the simulator has seen, read just after a refresh was published, so that a fault
/// injected now hits the whole of the next refresh (refreshes take milliseconds and
/// start 300 ms apart).
async fn healthy_start(app: &TestApp) -> u64 {
    let first = app.cycles(1).await.refreshes();
    let m = app.cycles(first as u64 + 1).await;
    assert!(all_up(&m));
    assert_eq!(backoff(&m), 0.0);
    assert_eq!(circuit(&m), 0.0);
    app.sim.stats().graphql_requests
}

/// Recovery: every collector up again, no backoff, circuit closed, values fresh.
async fn assert_recovers(app: &TestApp) {
    let m = wait_for(app, "recovery", |m| {
        all_up(m) && backoff(m) == 0.0 && circuit(m) == 0.0
    })
    .await;
    assert_values_kept(&m);
}

/// Waits until the circuit opens, then checks the budget: `per_refresh` requests in
/// each of the refreshes that failed before it opened, and nothing after.
async fn assert_circuit_opens(app: &TestApp, before: u64, per_refresh: u64) -> Metrics {
    let m = wait_for(app, "the circuit to open", |m| circuit(m) == 1.0).await;
    assert!(all_down(&m));
    assert_values_kept(&m);
    assert_eq!(backoff(&m), 1.0, "the first wait is backoff_base");
    assert_eq!(
        app.sim.stats().graphql_requests - before,
        THRESHOLD * per_refresh,
        "{THRESHOLD} failed refreshes of {per_refresh} requests each, then none"
    );
    m
}

#[tokio::test]
async fn a_500_is_tried_three_times_and_fails_its_batch_only() {
    // Budget: at most 3 tries per batch for a 5xx (unbilled); the other batches of the
    // refresh are unaffected. One request at a time, so that the three 500s all land on
    // the first batch of the refresh.
    let app = TestApp::builder(demo_data())
        .config(&config("  max_concurrent_requests: 1\n"))
        .spawn()
        .await;
    let before = healthy_start(&app).await;
    app.sim.fail_next(3, 500, None);
    let m = wait_for(&app, "one collector to fail", |m| {
        COLLECTORS.iter().filter(|c| up(m, c) == 0.0).count() == 1
    })
    .await;
    assert_values_kept(&m);
    assert_eq!(
        m.sum_of("pipefy_exporter_api_requests_total", &[("status", "500")]),
        3.0
    );
    let failed = COLLECTORS.iter().find(|c| up(&m, c) == 0.0).unwrap();
    assert_eq!(
        m.value(
            "pipefy_exporter_refreshes_total",
            &[("collector", failed), ("result", "failure")]
        ),
        1.0
    );
    // The other collectors answered: the account is healthy, no backoff.
    assert_eq!(backoff(&m), 0.0);
    assert_eq!(circuit(&m), 0.0);
    assert!(app.sim.stats().graphql_requests - before >= PER_REFRESH + 2);
    assert_recovers(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_503_storm_opens_the_circuit_which_probes_and_closes_by_itself() {
    // Budget: 3 tries per batch in each of the 3 refreshes that fail before the circuit
    // opens (54 requests), none while it is open, one refresh (18) per failed probe.
    let app = TestApp::builder(demo_data())
        .config(&config(""))
        .spawn()
        .await;
    let before = healthy_start(&app).await;
    app.sim.fail_all(Some((503, None)));
    let open = assert_circuit_opens(&app, before, PER_REFRESH * TRIES).await;
    assert_eq!(
        open.sum_of("pipefy_exporter_api_requests_total", &[("status", "503")]),
        (THRESHOLD * PER_REFRESH * TRIES) as f64
    );

    // The probe after the wait fails: open again, for twice as long.
    let reopened = wait_for(&app, "the failed probe", |m| backoff(m) == 2.0).await;
    assert_eq!(circuit(&reopened), 1.0);
    assert!(all_down(&reopened));
    assert_values_kept(&reopened);
    assert_eq!(
        app.sim.stats().graphql_requests - before,
        (THRESHOLD + 1) * PER_REFRESH * TRIES,
        "one probe refresh, nothing else"
    );

    app.sim.fail_all(None);
    assert_recovers(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_long_retry_after_holds_back_every_request_of_the_account() {
    // Budget: the 429 costs one request; no other request is sent before Retry-After
    // (30 s, cut to backoff_max: 2 s) has passed, neither later in the same refresh nor
    // in the next refreshes. One request at a time, so that the 429 comes first.
    let keys = "  max_tries: 3\n  retry_delay: 10ms\n  backoff_base: 1s\n  backoff_max: 2s\n  timeout: 1s\n  max_concurrent_requests: 1\n  max_orgs_per_request: 1\n";
    let app = TestApp::builder(demo_data())
        .config(&pat_config_with(keys, TOP))
        .spawn()
        .await;
    let before = healthy_start(&app).await;
    app.sim.fail_next(1, 429, Some(30));
    let m = wait_for(&app, "the throttled refresh", all_down).await;
    assert_eq!(
        app.sim.stats().graphql_requests - before,
        1,
        "the rest of the refresh was not sent"
    );
    assert_eq!(
        m.sum_of("pipefy_exporter_api_requests_total", &[("status", "429")]),
        1.0
    );
    assert_values_kept(&m);
    // Throttling is not an outage, nor a refused credential.
    assert_eq!(backoff(&m), 0.0);
    assert_eq!(circuit(&m), 0.0);
    // The page shows the first collector's error (ai_credits): its request, the
    // costliest, went first and got the 429; the others were not sent (counted above).
    let page = app.get("/").await.text().await.unwrap();
    assert!(
        page.contains("rate limited (HTTP 429), retry after 30s"),
        "{page}"
    );
    assert_recovers(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_short_retry_after_delays_the_rest_of_the_refresh() {
    // Budget: one request per batch; the 429 fails its own batch, and the batches
    // after it wait for Retry-After (1 s, shorter than the timeout) and then succeed.
    let app = TestApp::builder(demo_data())
        .config(&config("  max_concurrent_requests: 1\n"))
        .spawn()
        .await;
    let before = healthy_start(&app).await;
    let refreshes = app.metrics().await.refreshes();
    app.sim.fail_next(1, 429, Some(1));
    let m = wait_for(&app, "the throttled refresh", |m| {
        m.refreshes() > refreshes
            && m.sum_of("pipefy_exporter_api_requests_total", &[("status", "429")]) == 1.0
    })
    .await;
    let failed: Vec<&&str> = COLLECTORS.iter().filter(|c| up(&m, c) == 0.0).collect();
    assert_eq!(
        failed.len(),
        1,
        "only the throttled batch failed: {failed:?}"
    );
    assert_eq!(
        app.sim.stats().graphql_requests - before,
        PER_REFRESH,
        "no batch was sent twice"
    );
    assert_values_kept(&m);
    assert_recovers(&app).await;
    app.shutdown().await;
}

/// A 200 whose body is broken may have been billed: never tried again within a
/// refresh. Budget: one request per batch in each of the 3 refreshes before the
/// circuit opens (18), none while it is open.
async fn a_broken_body(corruption: Corruption) {
    let app = TestApp::builder(demo_data())
        .config(&config(""))
        .spawn()
        .await;
    let before = healthy_start(&app).await;
    app.sim.corrupt_all(Some(corruption));
    let m = assert_circuit_opens(&app, before, PER_REFRESH).await;
    // Pipefy answered 200: counted as such, not as an error.
    assert_eq!(
        m.sum_of("pipefy_exporter_api_requests_total", &[("status", "200")]),
        ((before + THRESHOLD * PER_REFRESH) as f64)
    );
    app.sim.corrupt_all(None);
    assert_recovers(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_garbage_body_is_not_retried_and_opens_the_circuit() {
    a_broken_body(Corruption::Garbage).await;
}

#[tokio::test]
async fn a_truncated_body_is_not_retried_and_opens_the_circuit() {
    a_broken_body(Corruption::Truncated).await;
}

#[tokio::test]
async fn a_hang_longer_than_the_timeout_is_not_retried_and_opens_the_circuit() {
    // Pipefy may still process (and bill) a request the exporter gave up on: a timeout
    // is never tried again within a refresh. Budget: one request per batch in each of
    // the 3 refreshes before the circuit opens, none while it is open.
    let app = TestApp::builder(demo_data())
        .config(&config("  timeout: 200ms\n"))
        .spawn()
        .await;
    let before = healthy_start(&app).await;
    app.sim.set_latency(Duration::from_secs(5));
    let m = assert_circuit_opens(&app, before, PER_REFRESH).await;
    assert_eq!(
        m.sum_of("pipefy_exporter_api_requests_total", &[("status", "error")]),
        (THRESHOLD * PER_REFRESH) as f64
    );
    app.sim.set_latency(Duration::ZERO);
    assert_recovers(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn connection_refused_is_retried_opens_the_circuit_and_values_go_stale() {
    // The simulator goes away. A refused connection carried no request: 3 tries per
    // batch, then the circuit opens after 3 refreshes and nothing is tried while it is
    // open. Values still go stale on time (stale_after 2 s), and come back when the
    // simulator does, at the same address.
    let sim = Simulator::new(demo_data(), sim_auth(Duration::from_secs(3600)));
    let server = spawn_simulator(&sim).await;
    let addr = server.addr;
    let dir = tempfile::tempdir().unwrap();
    let top = "refresh_interval: 300ms\nstale_after: 2s\norganizations: [2]\n";
    let config = load_config(&pat_config_with(PIPEFY_KEYS, top), &server, dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exporter = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pipefy_exporter::testing::serve(
        Arc::new(config),
        vec![listener],
        ServeOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let http = reqwest::Client::new();
    let until = |what: &'static str, check: fn(&Metrics) -> bool| {
        until_scraped(&http, exporter, what, check)
    };

    until("a good refresh", |m| m.refreshes() >= 1.0 && all_up(m)).await;
    server.shutdown_and_wait().await;

    let open = until("the circuit to open", |m| circuit(m) == 1.0).await;
    assert!(all_down(&open));
    let refused = open.sum_of("pipefy_exporter_api_requests_total", &[("status", "error")]);
    assert!(
        refused <= (THRESHOLD * PER_REFRESH * TRIES) as f64,
        "at most 3 tries per batch in 3 refreshes: {refused}"
    );
    let stale = until("values to go stale", |m| {
        !m.has("pipefy_subscription_limit", &PIPES)
    })
    .await;
    assert!(all_down(&stale));
    // While open, tries only come from the probes, one refresh each.
    let probes =
        stale.sum_of("pipefy_exporter_api_requests_total", &[("status", "error")]) - refused;
    assert!(
        probes <= (PER_REFRESH * TRIES) as f64 * 2.0,
        "at most two probes within stale_after: {probes}"
    );

    let listener = TcpListener::bind(addr).await.unwrap();
    let _server = sim.spawn(listener).await.unwrap();
    let back = until("recovery", |m| {
        all_up(m) && backoff(m) == 0.0 && circuit(m) == 0.0
    })
    .await;
    assert_values_kept(&back);

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// Scrapes the exporter at `addr` until `check` holds; every scrape must succeed.
async fn until_scraped(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    what: &str,
    check: fn(&Metrics) -> bool,
) -> Metrics {
    poll(what, || async {
        let response = http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let m = Metrics::parse(&response.text().await.unwrap());
        check(&m).then_some(m)
    })
    .await
}

#[tokio::test]
async fn a_401_backs_the_account_off_then_it_recovers() {
    // A personal access token cannot be renewed: a 401 backs off at once. Budget: in a
    // refused refresh only the requests already in flight are sent (at most
    // max_concurrent_requests, 4, of the refresh's 6), none of the rest; none while
    // backing off.
    let app = TestApp::builder(demo_data())
        .config(&config(""))
        .spawn()
        .await;
    let before = healthy_start(&app).await;
    app.sim.fail_all(Some((401, None)));
    let m = wait_for(&app, "the backoff", |m| backoff(m) == 1.0).await;
    let first = app.sim.stats().graphql_requests - before;
    assert!((1..=4).contains(&first), "{first} requests");
    assert!(all_down(&m));
    assert_values_kept(&m);
    assert_eq!(circuit(&m), 0.0, "a refused credential is no outage");

    // Refused again after the wait: the wait doubles.
    let m = wait_for(&app, "a longer backoff", |m| backoff(m) == 2.0).await;
    let second = app.sim.stats().graphql_requests - before - first;
    assert!((1..=4).contains(&second), "{second} requests");
    assert_values_kept(&m);

    app.sim.fail_all(None);
    assert_recovers(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_403_renews_the_access_token_once_then_backs_off() {
    // A service account: a 403 is tried once more with a new access token, then the
    // account backs off. Budget per refused refresh: two tries (old and new token) for
    // each request in flight (at most max_concurrent_requests, 4), one token request.
    let service_account = format!(
        "pipefy:\n  endpoint: {{endpoint}}\n{PIPEFY_KEYS}  auth:\n    service_account:\n      client_id: {CLIENT_ID}\n      client_secret_file: {{secret_file}}\n      token_endpoint: {{token_endpoint}}\n{TOP}"
    );
    let app = TestApp::builder(demo_data())
        .config(&service_account)
        .spawn()
        .await;
    let before = healthy_start(&app).await;
    let tokens = app.sim.stats().token_requests;
    app.sim.fail_all(Some((403, None)));
    let m = wait_for(&app, "the backoff", |m| backoff(m) == 1.0).await;
    let stats = app.sim.stats();
    let sent = stats.graphql_requests - before;
    assert!((2..=8).contains(&sent), "{sent} requests");
    assert_eq!(stats.token_requests - tokens, 1, "one new access token");
    assert!(all_down(&m));
    assert_values_kept(&m);
    assert_eq!(
        m.sum_of("pipefy_exporter_api_requests_total", &[("status", "403")]),
        sent as f64
    );

    app.sim.fail_all(None);
    assert_recovers(&app).await;
    app.shutdown().await;
}
