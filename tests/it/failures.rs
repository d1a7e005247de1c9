//! Upstream failures: one denied organization, throttling, outages and stale values.

use pipefy_sim::demo_data;

use crate::helpers::{pat_config, pat_config_with, poll, TestApp};

const THREE_ORGS: &str = "refresh_interval: 1h\norganizations: [2, 300, 4242]\n";

#[tokio::test]
async fn a_denied_organization_fails_alone() {
    let mut data = demo_data();
    data.denied.insert("300".into());
    let app = TestApp::builder(data)
        .config(&pat_config(THREE_ORGS))
        .spawn()
        .await;
    let m = app.cycles(1).await;

    for collector in ["subscription_limits", "ai_credits", "token_attribution"] {
        assert_eq!(
            m.value(
                "pipefy_up",
                &[("organization_id", "300"), ("collector", collector)]
            ),
            0.0
        );
        assert_eq!(
            m.value(
                "pipefy_up",
                &[("organization_id", "2"), ("collector", collector)]
            ),
            1.0
        );
        assert_eq!(
            m.value(
                "pipefy_up",
                &[("organization_id", "4242"), ("collector", collector)]
            ),
            1.0
        );
    }
    assert!(!m.has("pipefy_subscription_limit", &[("organization_id", "300")]));
    assert!(!m.has(
        "pipefy_last_success_timestamp_seconds",
        &[("organization_id", "300")]
    ));
    assert_eq!(
        m.value(
            "pipefy_subscription_limit",
            &[("organization_id", "2"), ("resource", "pipes")]
        ),
        5.0
    );
    assert_eq!(
        m.value(
            "pipefy_subscription_used",
            &[("organization_id", "4242"), ("resource", "cards")]
        ),
        96.0
    );
    assert_eq!(
        m.value(
            "pipefy_tokens",
            &[("organization_id", "4242"), ("billing", "unassigned")]
        ),
        1.0
    );
    // Every collector is partial: 300 fails each of them (its uuid is unknown to the
    // usage-statistics collectors since `organization(id:)` was denied).
    assert_eq!(
        m.sum_of("pipefy_exporter_refreshes_total", &[("result", "partial")]),
        6.0
    );
    // Three requests, as without a denial (the schema check; limits and tokens; then the
    // usage statistics together): the denial travels as a per-alias error, and no
    // identity request is spent on an organization that was just denied.
    assert_eq!(app.sim.stats().graphql_requests, 3);
    // The landing page says why, under the status: the first failing collector's
    // error, and how many more fail.
    let page = app.get("/").await.text().await.unwrap();
    let why = "ai_credits: organization uuid unknown: Permission denied (and 5 more collectors)";
    assert!(
        page.contains(&format!(
            "<td class=\"status failing\" data-label=\"status\" title=\"{why}\">failing\
             <small>never updated</small><small class=\"reason\">{why}</small></td>"
        )),
        "{page}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn last_good_values_are_kept_until_stale_after_then_dropped() {
    // The outage outlasts three refreshes, so the circuit opens; a short backoff_base
    // lets the half-open probe see the recovery within the test's patience (the
    // default, 30 s, doubling at each failed probe, would not).
    let config = pat_config_with(
        "  backoff_base: 200ms\n  backoff_max: 1s\n",
        "refresh_interval: 300ms\nstale_after: 3s\norganizations: [2]\n",
    );
    let app = TestApp::builder(demo_data()).config(&config).spawn().await;
    let first = app.cycles(1).await;
    let pipes = [("organization_id", "2"), ("resource", "pipes")];
    let up = [
        ("organization_id", "2"),
        ("collector", "subscription_limits"),
    ];
    let last_success = first.value("pipefy_last_success_timestamp_seconds", &up);

    app.sim.fail_all(Some((503, None)));
    // Failing now: up is 0 at once, values stay.
    let failing = poll("a failed cycle", || async {
        let m = app.metrics().await;
        (m.value("pipefy_up", &up) == 0.0).then_some(m)
    })
    .await;
    assert_eq!(failing.value("pipefy_subscription_limit", &pipes), 5.0);
    assert_eq!(
        failing.value("pipefy_ai_credits_used", &[("organization_id", "2")]),
        25.0
    );
    assert_eq!(
        failing.value("pipefy_last_success_timestamp_seconds", &up),
        last_success
    );
    // After the first refresh every collector shares one request.
    assert!(
        failing.value(
            "pipefy_exporter_api_requests_total",
            &[("operation", "PipefyRefresh"), ("status", "503")]
        ) >= 1.0
    );
    assert!(failing.sum_of("pipefy_exporter_refreshes_total", &[("result", "failure")]) >= 1.0);

    // After stale_after the series disappear; up and the last success stay.
    let stale = poll("values to go stale", || async {
        let m = app.metrics().await;
        (!m.has("pipefy_subscription_limit", &pipes)).then_some(m)
    })
    .await;
    assert!(!stale.has("pipefy_ai_credits_used", &[]));
    assert!(!stale.has("pipefy_tokens", &[]));
    assert_eq!(stale.value("pipefy_up", &up), 0.0);
    assert_eq!(
        stale.value("pipefy_last_success_timestamp_seconds", &up),
        last_success
    );
    let page = app.get("/").await.text().await.unwrap();
    // The reason is the last answer, or, once three refreshes in a row failed, the
    // open circuit that stops asking.
    let failing_cell = "<td class=\"status failing\" data-label=\"status\" title=\"ai_credits: ";
    let shown = "<small class=\"reason\">ai_credits: ";
    assert!(
        (page.contains(&format!("{failing_cell}HTTP 503"))
            || page.contains(&format!("{failing_cell}not asked: circuit open")))
            && (page.contains(&format!("{shown}HTTP 503"))
                || page.contains(&format!("{shown}not asked: circuit open")))
            && page.contains("\">failing<small>updated "),
        "{page}"
    );

    // Recovery brings them back.
    app.sim.fail_all(None);
    let back = poll("recovery", || async {
        let m = app.metrics().await;
        (m.value("pipefy_up", &up) == 1.0).then_some(m)
    })
    .await;
    assert_eq!(back.value("pipefy_subscription_limit", &pipes), 5.0);
    app.shutdown().await;
}

#[tokio::test]
async fn stale_values_are_marked_on_the_landing_page() {
    let config = pat_config("refresh_interval: 200ms\nstale_after: 1h\norganizations: [2]\n");
    let app = TestApp::builder(demo_data()).config(&config).spawn().await;
    app.cycles(1).await;
    app.sim.fail_all(Some((500, None)));
    let up = [("organization_id", "2"), ("collector", "ai_credits")];
    poll("a failed cycle", || async {
        (app.metrics().await.value("pipefy_up", &up) == 0.0).then_some(())
    })
    .await;
    let page = app.get("/").await.text().await.unwrap();
    let why = "ai_credits: HTTP 500 (and 5 more collectors)";
    assert!(
        page.contains(&format!(
            "<td class=\"status stale\" data-label=\"status\" title=\"{why}\">stale<small>updated "
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!("<small class=\"reason\">{why}</small></td>")),
        "{page}"
    );
    assert!(
        page.contains("data-label=\"pipes\">3 / 5<small>60 %</small></td>"),
        "{page}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn throttling_is_counted_and_keeps_the_last_values() {
    // Retry-After (30 s) is longer than the interval (200 ms). That the next refresh
    // then waits it out, whatever collector is due, is the scheduler's unit test on
    // paused time (src/refresh/schedule/tests.rs: a_retry_after_holds_back_every_collector);
    // that the refresh reports the wait, tests/it/batching.rs.
    let config = pat_config("refresh_interval: 200ms\nstale_after: 1h\norganizations: [2]\n");
    let app = TestApp::builder(demo_data()).config(&config).spawn().await;
    app.cycles(1).await;
    app.sim.fail_all(Some((429, Some(30))));
    // Wait for the cycle that was throttled to be published (pipefy_up turns 0).
    let up = [
        ("organization_id", "2"),
        ("collector", "subscription_limits"),
    ];
    let m = poll("a throttled cycle", || async {
        let m = app.metrics().await;
        (m.value("pipefy_up", &up) == 0.0).then_some(m)
    })
    .await;
    let cycles = m.refreshes();
    // After the first refresh every collector shares one request.
    let throttled = m.value(
        "pipefy_exporter_api_requests_total",
        &[("operation", "PipefyRefresh"), ("status", "429")],
    );
    assert_eq!(throttled, 1.0);
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
    assert_eq!(
        m.value(
            "pipefy_subscription_limit",
            &[("organization_id", "2"), ("resource", "pipes")]
        ),
        5.0,
        "last good value kept"
    );
    assert!(cycles >= 2.0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_graphql_validation_error_fails_the_collector_not_the_process() {
    // A token selection naming a field the schema does not have: the schema check finds
    // it, and only token attribution fails (without a schema Pipefy would answer with an
    // error without `path`: see tests/it/schema_check.rs).
    let config = pat_config(
        "refresh_interval: 1h\norganizations: [2]\ncollectors:\n  token_attribution:\n    selection: \"personalAccessTokens: apiTokens { id name billingOrganization { id } }\"\n",
    );
    let app = TestApp::builder(demo_data()).config(&config).spawn().await;
    let m = app.cycles(1).await;
    let labels = |c| [("organization_id", "2"), ("collector", c)];
    assert_eq!(m.value("pipefy_up", &labels("token_attribution")), 0.0);
    assert_eq!(m.value("pipefy_up", &labels("subscription_limits")), 1.0);
    assert_eq!(m.value("pipefy_up", &labels("ai_credits")), 1.0);
    assert_eq!(m.value("pipefy_up", &labels("api_usage")), 1.0);
    assert_eq!(
        m.value(
            "pipefy_exporter_refreshes_total",
            &[("collector", "token_attribution"), ("result", "failure")]
        ),
        1.0
    );
    assert_eq!(
        m.sum_of("pipefy_exporter_refreshes_total", &[("result", "success")]),
        5.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_failed_discovery_keeps_the_organizations_found_before() {
    let config = pat_config("refresh_interval: 300ms\nstale_after: 1h\n");
    let app = TestApp::builder(demo_data()).config(&config).spawn().await;
    app.cycles(1).await;
    app.sim.fail_all(Some((502, None)));
    let m = poll("a failed discovery", || async {
        let m = app.metrics().await;
        (m.value(
            "pipefy_up",
            &[
                ("organization_id", "4242"),
                ("collector", "token_attribution"),
            ],
        ) == 0.0)
            .then_some(m)
    })
    .await;
    for org in ["2", "300", "4242"] {
        for collector in ["subscription_limits", "ai_credits", "token_attribution"] {
            assert_eq!(
                m.value(
                    "pipefy_up",
                    &[("organization_id", org), ("collector", collector)]
                ),
                0.0
            );
        }
    }
    assert_eq!(
        m.value(
            "pipefy_subscription_limit",
            &[("organization_id", "4242"), ("resource", "users")]
        ),
        5.0,
        "values kept until stale_after"
    );
    assert!(
        m.value(
            "pipefy_exporter_api_requests_total",
            &[("operation", "PipefyOrganizations"), ("status", "502")]
        ) >= 1.0
    );
    // Without the list of organizations, nothing else is asked.
    assert!(!m.has(
        "pipefy_exporter_api_requests_total",
        &[("operation", "PipefySubscriptionLimits"), ("status", "502")]
    ));
    assert!(m.sum_of("pipefy_exporter_refreshes_total", &[("result", "failure")]) >= 1.0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_failing_token_selection_does_not_stop_the_usage_collectors() {
    // Without subscription limits, the usage-statistics collectors learn uuids from an
    // identity request. A token selection that fails must not stand in for identity.
    let config = pat_config(
        "refresh_interval: 1h\norganizations: [2, 300]\ncollectors:\n  subscription_limits: false\n  token_attribution:\n    selection: \"personalAccessTokens: apiTokens { id name billingOrganization { id } }\"\n",
    );
    let app = TestApp::builder(demo_data()).config(&config).spawn().await;
    let m = app.cycles(1).await;
    for org in ["2", "300"] {
        let up = |c| m.value("pipefy_up", &[("organization_id", org), ("collector", c)]);
        assert_eq!(up("token_attribution"), 0.0, "{org}");
        for collector in ["ai_credits", "api_usage", "automation_jobs", "integrations"] {
            assert_eq!(up(collector), 1.0, "{org} {collector}");
        }
    }
    assert_eq!(
        app.sim.stats().operations.get("PipefyOrganizationInfo"),
        Some(&1)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_first_discovery_that_fails_is_counted_as_a_failure() {
    // No organizations listed and discovery answers 500 from the start: nothing is
    // known, and every collector's refresh counts as failed (not as a success of none).
    let app = TestApp::builder(demo_data())
        .prepare(|sim| sim.fail_all(Some((500, None))))
        .config(&pat_config("refresh_interval: 1h\n"))
        .spawn()
        .await;
    let m = app.cycles(1).await;
    assert_eq!(
        m.sum_of("pipefy_exporter_refreshes_total", &[("result", "failure")]),
        6.0
    );
    assert_eq!(
        m.sum_of("pipefy_exporter_refreshes_total", &[("result", "success")]),
        0.0
    );
    assert!(!m.has("pipefy_up", &[]));
    app.shutdown().await;
}
