//! Service accounts: the access token is fetched once, renewed before it expires,
//! and fetched again after a 401.

use std::time::Duration;

use pipefy_sim::demo_data;

use crate::helpers::{poll, sim_auth, TestApp, CLIENT_ID};

fn service_account_config(interval: &str) -> String {
    service_account_config_with(interval, "", "[2]")
}

/// `pipefy_keys` go into the `pipefy:` block (indented by two spaces).
fn service_account_config_with(interval: &str, pipefy_keys: &str, organizations: &str) -> String {
    format!(
        "pipefy:\n  endpoint: {{endpoint}}\n{pipefy_keys}  auth:\n    service_account:\n      client_id: {CLIENT_ID}\n      client_secret_file: {{secret_file}}\n      token_endpoint: {{token_endpoint}}\nrefresh_interval: {interval}\nstale_after: 1h\norganizations: {organizations}\n"
    )
}

#[tokio::test]
async fn the_access_token_is_fetched_once_and_reused() {
    let app = TestApp::builder(demo_data())
        .config(&service_account_config("200ms"))
        .spawn()
        .await;
    let m = app.cycles(4).await;
    let stats = app.sim.stats();
    assert_eq!(stats.token_requests, 1);
    assert_eq!(stats.tokens_issued, 1);
    assert_eq!(stats.unauthorized, 0);
    // The schema check and two requests in the first refresh, then one a refresh
    // (every collector shares it).
    assert!(stats.graphql_requests >= 6);
    assert_eq!(
        m.value(
            "pipefy_exporter_api_requests_total",
            &[("operation", "oauth_token"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "pipefy_subscription_limit",
            &[("organization_id", "2"), ("resource", "pipes")]
        ),
        5.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_access_token_is_renewed_before_it_expires() {
    // A 3 s token renews 0.6 s before expiry: cycles every 250 ms never send an
    // expired token, so the simulator never answers 401.
    let app = TestApp::builder(demo_data())
        .auth(sim_auth(Duration::from_secs(3)))
        .config(&service_account_config("250ms"))
        .spawn()
        .await;
    poll("a second token", || async {
        (app.sim.stats().tokens_issued >= 3).then_some(())
    })
    .await;
    let stats = app.sim.stats();
    assert_eq!(
        stats.unauthorized, 0,
        "no request was made with an expired token"
    );
    let m = app.metrics().await;
    assert_eq!(
        m.sum_of("pipefy_exporter_refreshes_total", &[("result", "failure")]),
        0.0
    );
    assert_eq!(
        m.sum_of("pipefy_exporter_refreshes_total", &[("result", "partial")]),
        0.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_401_fetches_a_new_token_once_and_retries() {
    // One root field per request: four requests in flight (three organizations' limits
    // and one AI-credits field, whose uuids are known by then) get the 401 together,
    // and one new token must serve all four retries.
    let app = TestApp::builder(demo_data()).config(&service_account_config_with(
            "1s",
            "  max_orgs_per_request: 1\n",
            "[2, 300, 4242]\ncollectors: {api_usage: false, automation_jobs: false, integrations: false, token_attribution: false}",
        )).spawn()
    .await;
    app.cycles(1).await;
    // Revoked between two cycles (they are a second apart and take milliseconds).
    app.sim.revoke_access_tokens();
    let m = app.cycles(3).await;
    let stats = app.sim.stats();
    assert_eq!(stats.tokens_issued, 2, "one new token after the revocation");
    assert_eq!(stats.token_requests, 2);
    assert_eq!(stats.unauthorized, 4, "the four requests of the next cycle");
    assert_eq!(
        m.value(
            "pipefy_exporter_api_requests_total",
            &[("operation", "PipefySubscriptionLimits"), ("status", "401")]
        ),
        3.0
    );
    assert_eq!(
        m.sum_of("pipefy_exporter_refreshes_total", &[("result", "partial")]),
        0.0
    );
    assert_eq!(
        m.sum_of("pipefy_exporter_refreshes_total", &[("result", "failure")]),
        0.0
    );
    for org in ["2", "300", "4242"] {
        assert_eq!(
            m.value(
                "pipefy_up",
                &[("organization_id", org), ("collector", "ai_credits")]
            ),
            1.0
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_rejected_client_secret_fails_every_collector() {
    let app = TestApp::builder(demo_data())
        .auth(pipefy_sim::SimAuth {
            clients: vec![(CLIENT_ID.into(), "another-secret".into())],
            ..sim_auth(Duration::from_secs(3600))
        })
        .config(&service_account_config("1h"))
        .spawn()
        .await;
    // The refresh stops after one failed token request: no GraphQL call is made, and
    // each of the six collectors counts one failed refresh.
    let m = app.cycles(1).await;
    assert_eq!(
        m.sum_of("pipefy_exporter_refreshes_total", &[("result", "failure")]),
        6.0
    );
    assert_eq!(
        m.value(
            "pipefy_exporter_api_requests_total",
            &[("operation", "oauth_token"), ("status", "401")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "pipefy_up",
            &[
                ("organization_id", "2"),
                ("collector", "subscription_limits")
            ]
        ),
        0.0
    );
    assert_eq!(app.sim.stats().graphql_requests, 0);
    app.shutdown().await;
}
