//! Exact values for the seed organizations, escaping, and the pages.

use pipefy_sim::{
    demo_data, Resource, SimApiCall, SimApiUsage, SimData, SimIntegrations, SimLimit, SimOrg,
    SimToken,
};

use crate::helpers::{pat_config, Metrics, TestApp};
use std::time::Duration;

const DEMO_ORGS: &str = "refresh_interval: 1h\norganizations: [\"2\", \"300\", \"4242\"]\n\
collectors:\n  token_attribution:\n    deadline: 2027-01-05\n";

fn org2(m: &Metrics, name: &str, extra: &[(&str, &str)]) -> f64 {
    let mut labels = vec![
        ("organization_id", "2"),
        ("organization_name", "Vandeley Industries"),
    ];
    labels.extend_from_slice(extra);
    m.value(name, &labels)
}

#[tokio::test]
async fn vandeley_industries_has_the_seed_values() {
    let app = TestApp::builder(demo_data())
        .config(&pat_config(DEMO_ORGS))
        .spawn()
        .await;
    let m = app.cycles(1).await;

    for (resource, limit, used) in [
        ("pipes", 5.0, 3.0),
        ("users", 10.0, 7.0),
        ("cards", 50.0, 12.0),
        ("records", 500.0, 45.0),
        ("interfaces", 2.0, 1.0),
        ("ai_credits", 100.0, 25.0),
    ] {
        assert_eq!(
            org2(&m, "pipefy_subscription_limit", &[("resource", resource)]),
            limit,
            "{resource}"
        );
        assert_eq!(
            org2(&m, "pipefy_subscription_used", &[("resource", resource)]),
            used,
            "{resource}"
        );
    }
    assert_eq!(
        m.find("pipefy_subscription_limit", &[("organization_id", "2")])
            .len(),
        6
    );
    assert_eq!(
        org2(
            &m,
            "pipefy_organization_info",
            &[
                ("organization_uuid", "1f1c6d2e-0002-4a00-9000-000000000002"),
                ("plan", "Business")
            ]
        ),
        1.0
    );
    assert_eq!(org2(&m, "pipefy_ai_credits_used", &[]), 25.0);
    assert_eq!(org2(&m, "pipefy_ai_credits_limit", &[]), 100.0);
    // The combined AI-credit query (the default source) tells no free credits.
    assert!(!m.has("pipefy_ai_credits_free_used", &[]));
    assert_eq!(org2(&m, "pipefy_ai_credits_addon_enabled", &[]), 0.0);
    assert_eq!(org2(&m, "pipefy_tokens", &[("billing", "assigned")]), 1.0);
    assert_eq!(org2(&m, "pipefy_tokens", &[("billing", "unassigned")]), 2.0);
    let unassigned: Vec<(&str, &str)> = m
        .find("pipefy_token_unassigned_info", &[("organization_id", "2")])
        .iter()
        .map(|s| {
            (
                s.labels["token_id"].as_str(),
                s.labels["token_name"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        unassigned,
        vec![("t-201", "Zapier integration"), ("t-202", "Nightly ETL")]
    );
    for collector in ["subscription_limits", "ai_credits", "token_attribution"] {
        assert_eq!(
            org2(&m, "pipefy_up", &[("collector", collector)]),
            1.0,
            "{collector}"
        );
        assert!(
            org2(
                &m,
                "pipefy_last_success_timestamp_seconds",
                &[("collector", collector)]
            ) > 1.7e9
        );
    }
    // 2027-01-05T00:00:00Z.
    assert_eq!(
        m.value("pipefy_token_attribution_deadline_timestamp_seconds", &[]),
        1_799_107_200.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let remaining = m.value("pipefy_token_attribution_deadline_remaining_seconds", &[]);
    assert!(
        (remaining - (1_799_107_200.0 - now)).abs() < 60.0,
        "{remaining}"
    );
    assert_eq!(
        m.value(
            "pipefy_exporter_collector_interval_seconds",
            &[("collector", "subscription_limits")]
        ),
        3600.0
    );
    assert_eq!(
        m.sum_of("pipefy_exporter_refreshes_total", &[("result", "success")]),
        6.0,
        "one successful refresh per collector"
    );
    assert_eq!(
        m.sum_of("pipefy_exporter_refreshes_total", &[("result", "failure")]),
        0.0
    );
    app.shutdown().await;
}

#[tokio::test]
async fn unlimited_and_uncapped_are_inf_and_new_resources_are_kept() {
    let mut data = demo_data();
    data.orgs.get_mut("4242").unwrap().limits.push(SimLimit {
        resource: Resource::Automations,
        limit: Some(1000),
        used: 250,
    });
    let app = TestApp::builder(data)
        .config(&pat_config(DEMO_ORGS))
        .spawn()
        .await;
    let m = app.cycles(1).await;
    fn kramerica<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut l = vec![("organization_id", "300")];
        l.extend_from_slice(extra);
        l
    }
    assert_eq!(
        m.value(
            "pipefy_subscription_limit",
            &kramerica(&[("resource", "pipes")])
        ),
        f64::INFINITY
    );
    assert_eq!(
        m.value(
            "pipefy_subscription_used",
            &kramerica(&[("resource", "pipes")])
        ),
        40.0
    );
    assert_eq!(
        m.value(
            "pipefy_subscription_limit",
            &kramerica(&[("resource", "cards")])
        ),
        f64::INFINITY
    );
    assert_eq!(
        m.value(
            "pipefy_subscription_limit",
            &kramerica(&[("resource", "users")])
        ),
        250.0
    );
    assert_eq!(
        m.value("pipefy_ai_credits_limit", &kramerica(&[])),
        f64::INFINITY
    );
    assert_eq!(
        m.value("pipefy_ai_credits_addon_enabled", &kramerica(&[])),
        1.0
    );
    assert!(m.text.contains(
        "pipefy_subscription_limit{organization_id=\"300\",organization_name=\"Kramerica Industries\",resource=\"pipes\"} +Inf\n"
    ));
    let automations = [("organization_id", "4242"), ("resource", "automations")];
    assert_eq!(m.value("pipefy_subscription_limit", &automations), 1000.0);
    assert_eq!(m.value("pipefy_subscription_used", &automations), 250.0);
    app.shutdown().await;
}

const TRICKY: &str = "Quote \" back\\slash \\n literal\nnewline Ünïcödé 東京 <b>&'";

fn tricky_data() -> SimData {
    let org = SimOrg {
        id: "77".into(),
        uuid: "1f1c6d2e-0077-4a00-9000-000000000077".into(),
        name: TRICKY.into(),
        plan: Some("Plan \"X\"".into()),
        limits: vec![SimLimit {
            resource: Resource::Pipes,
            limit: Some(9),
            used: 4,
        }],
        ai: None,
        tokens: vec![SimToken {
            id: "t-1".into(),
            name: "<script>alert(1)</script>".into(),
            billing_organization: None,
        }],
        api: SimApiUsage {
            limit: None,
            calls: vec![SimApiCall {
                token: "<script>alert(1)</script>".into(),
                operation: TRICKY.into(),
                count: 3.0,
            }],
        },
        automation_jobs: 0.0,
        integrations: SimIntegrations::default(),
    };
    let mut data = SimData::default();
    data.orgs.insert(org.id.clone(), org);
    data
}

#[tokio::test]
async fn label_values_round_trip_exactly() {
    let app = TestApp::builder(tricky_data())
        .config(&pat_config("refresh_interval: 1h\norganizations: [77]\n"))
        .spawn()
        .await;
    let m = app.cycles(1).await;
    let sample = m.find("pipefy_subscription_limit", &[("organization_id", "77")])[0].clone();
    assert_eq!(sample.labels["organization_name"], TRICKY);
    assert_eq!(sample.value, 9.0);
    assert_eq!(
        m.value(
            "pipefy_organization_info",
            &[("organization_name", TRICKY), ("plan", "Plan \"X\"")]
        ),
        1.0
    );
    // The raw line, escaped as the format requires.
    assert!(m.text.contains(
        "organization_name=\"Quote \\\" back\\\\slash \\\\n literal\\nnewline Ünïcödé 東京 <b>&'\""
    ));
    // An organization without AI statistics is up with no AI series.
    assert_eq!(
        m.value(
            "pipefy_up",
            &[("organization_id", "77"), ("collector", "ai_credits")]
        ),
        1.0
    );
    assert!(!m.has("pipefy_ai_credits_used", &[("organization_id", "77")]));
    app.shutdown().await;
}

#[tokio::test]
async fn landing_page_lists_organizations_with_escaped_names() {
    let app = TestApp::builder(tricky_data())
        .config(&pat_config("refresh_interval: 1h\norganizations: [77]\n"))
        .spawn()
        .await;
    app.cycles(1).await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains(&format!("Version {}", env!("CARGO_PKG_VERSION"))));
    assert!(page.contains("<a href=\"/metrics\">Metrics</a>"));
    assert!(page.contains(
        "<td class=\"org\">Quote &quot; back\\slash \\n literal\nnewline Ünïcödé 東京 &lt;b&gt;&amp;&#39;<small>77</small></td><td class=\"status ok\" data-label=\"status\" title=\"\">ok<small>updated "
    ));
    assert!(
        page.contains("data-label=\"pipes\">4 / 9<small>44 %</small></td>"),
        "pipes used / limit: {page}"
    );
    assert!(
        page.contains("<td class=\"ok\" data-label=\"unassigned tokens\">1</td></tr>"),
        "one unassigned token, no deadline configured, so no alert: {page}"
    );
    assert!(!page.contains("<b>&"));
    app.shutdown().await;
}

#[tokio::test]
async fn health_readiness_and_gzip() {
    // Every request takes 700 ms, set before the exporter starts: the first cycle
    // cannot be done at the first look.
    let app = TestApp::builder(demo_data())
        .prepare(|sim| sim.set_latency(Duration::from_millis(700)))
        .config(&pat_config(DEMO_ORGS))
        .spawn()
        .await;
    // The first cycle cannot be done yet: every request takes 700 ms.
    let ready = app.get("/-/ready").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(app.get("/-/healthy").await.status(), 200);
    app.cycles(1).await;
    assert_eq!(app.get("/-/ready").await.status(), 200);
    assert_eq!(app.get("/nope").await.status(), 404);

    let gz = app
        .http
        .get(app.url("/metrics"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "Accept, Accept-Encoding");
    assert_eq!(
        gz.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let bytes = gz.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .unwrap();
    let m = Metrics::parse(&text);
    assert_eq!(
        m.value(
            "pipefy_subscription_limit",
            &[("organization_id", "2"), ("resource", "pipes")]
        ),
        5.0
    );
    app.shutdown().await;
}
