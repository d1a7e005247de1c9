//! The dashboards at scale, against a real Prometheus (Debian's `prometheus`): one
//! exporter with 1 organization and one with 500, both scraped every 2 s by one
//! Prometheus job (the `$instance` variable tells them apart), with
//! `deploy/prometheus/rules.yml` loaded.
//!
//! Every panel query of every dashboard runs with the variables as Grafana would
//! substitute them (`$k` at its default, `$organization` all and one organization,
//! `$job`, `$instance`) and must: succeed; return data; return only the selected
//! exporter's and organization's series (so the filters are really applied); return no
//! more than `$k` series when it ranks with topk/bottomk, and exactly `$k` at 500
//! organizations; and, when it does not rank, no more series at 500 organizations than
//! at 1 (or than `$k`), so that nothing else grows with the organizations.
//!
//! The case the dashboard does not offer is skipped: one organization on the exporter's
//! dashboard (no organization variable), All on the organization dashboard (it selects
//! exactly one).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use pipefy_sim::{SimAuth, SimData};
use serde_json::Value;

use crate::e2e::{dashboard_queries, date_in_days, grafana_variables, repo, Prometheus};
use crate::helpers::{pat_config, poll, TestApp};

const DASHBOARDS: [&str; 4] = [
    "pipefy-overview.json",
    "pipefy-organization.json",
    "pipefy-exporter.json",
    "pipefy-api-usage.json",
];

/// An exporter over `data`, refreshing every 10 s (500 organizations in a debug build on
/// a busy machine), with every collector the dashboards
/// read (calls by operation, the token-attribution deadline), its own requests billed to
/// organization `bill_to` as Pipefy would (for "What monitoring costs").
async fn exporter(mut data: SimData, bill_to: &str) -> TestApp {
    data.bill_requests_to = Some((bill_to.to_owned(), "pipefy-exporter".to_owned()));
    let config = pat_config(&format!(
        "refresh_interval: 10s\nstale_after: 1m\ncollectors:\n  api_usage: {{by_operation: true}}\n  token_attribution:\n    deadline: {}\n",
        date_in_days(30)
    ));
    let app = TestApp::builder(data)
        .auth(SimAuth::open())
        .config(&config)
        .spawn()
        .await;
    app.cycles(1).await;
    app
}

fn organization_variable(dashboard: &Value) -> &Value {
    dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "organization")
        .unwrap_or(&Value::Null)
}

/// The default of the dashboard's `k` variable (the same on every dashboard).
fn default_k(dashboard: &Value) -> usize {
    let k = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "k")
        .expect("a `k` variable");
    k["current"]["value"].as_str().unwrap().parse().unwrap()
}

/// One way of looking at the dashboards: an exporter and an organization selection.
struct Case {
    name: &'static str,
    instance: String,
    /// The organization ids a result may hold.
    allowed: Box<dyn Fn(&str) -> bool>,
    organization: &'static str,
}

impl Case {
    fn variables(&self, k: usize) -> BTreeMap<String, String> {
        grafana_variables(self.organization, k, &self.instance)
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's prometheus; run by scripts/test"]
async fn every_panel_query_stays_within_top_k_at_one_and_at_500_organizations() {
    // 501 look-alike organizations: "1000".."1499" for the large exporter, "1500" alone
    // for the small one, so that a query that forgets $instance shows foreign ids.
    let mut many = SimData::generated(501);
    let lone = many.orgs.remove("1500").unwrap();
    let one = exporter(SimData::from_orgs([lone]), "1500").await;
    let many = exporter(many, "1000").await;

    let dir = tempfile::tempdir().unwrap();
    let (_prometheus, prom) = Prometheus::start(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n  evaluation_interval: 2s\n\
             rule_files: [\"{}\"]\n\
             scrape_configs:\n  - job_name: pipefy-exporter\n    static_configs:\n      - targets: [\"{}\", \"{}\"]\n",
            repo().join("deploy/prometheus/rules.yml").display(),
            one.addr,
            many.addr
        ),
        &[],
    )
    .await;
    // Every query runs at one instant `at` whose preceding scrapes of both exporters all
    // succeeded (at least three, for rate() and deriv()), so that a scrape slowed down
    // by a loaded machine cannot make a series stale in the middle of the checks.
    let at = poll("Prometheus to scrape both exporters", || async {
        if !prom.ready().await {
            return None;
        }
        // Three seconds back: every scrape that started before then has ended (the scrape
        // timeout is two), so nothing written later changes what a query sees at `at`.
        let at = format!("{:.3}", unix_now() - 3.0);
        let healthy = prom
            .api(
                "/api/v1/query",
                &[
                    (
                        "query",
                        "count(count_over_time(up{job=\"pipefy-exporter\"}[10s]) >= 3 \
                         and min_over_time(up{job=\"pipefy-exporter\"}[10s]) == 1) == 2",
                    ),
                    ("time", &at),
                ],
            )
            .await;
        (!healthy["result"].as_array()?.is_empty()).then_some(at)
    })
    .await;

    let cases = [
        Case {
            name: "1 organization, all selected",
            instance: one.addr.to_string(),
            allowed: Box::new(|id| id == "1500"),
            organization: ".+",
        },
        Case {
            name: "1 organization, selected",
            instance: one.addr.to_string(),
            allowed: Box::new(|id| id == "1500"),
            organization: "1500",
        },
        Case {
            name: "500 organizations, all selected",
            instance: many.addr.to_string(),
            allowed: Box::new(|id| id != "1500"),
            organization: ".+",
        },
        Case {
            name: "500 organizations, one selected",
            instance: many.addr.to_string(),
            allowed: Box::new(|id| id == "1000"),
            organization: "1000",
        },
    ];

    let mut checked = 0;
    for file in DASHBOARDS {
        let dashboard: Value = serde_json::from_str(
            &std::fs::read_to_string(repo().join("dashboards").join(file)).unwrap(),
        )
        .unwrap();
        let k = default_k(&dashboard);
        let templates = dashboard_queries(&dashboard, &BTreeMap::new());
        // Series counts by query, then by case; `None` for a case the dashboard does not
        // offer: one organization without an organization variable (the exporter's
        // dashboard), All where the variable selects exactly one.
        let mut counts = vec![Vec::new(); templates.len()];
        let variable = organization_variable(&dashboard);
        for case in &cases {
            let offered = match case.organization {
                ".+" => variable.is_null() || variable["includeAll"] == true,
                _ => !variable.is_null(),
            };
            if !offered {
                counts.iter_mut().for_each(|c| c.push(None));
                continue;
            }
            let queries = dashboard_queries(&dashboard, &case.variables(k));
            for (i, (title, expr)) in queries.iter().enumerate() {
                let context = format!("{file} / {title} ({}): {expr}", case.name);
                let result = prom
                    .api("/api/v1/query", &[("query", expr), ("time", &at)])
                    .await["result"]
                    .as_array()
                    .cloned()
                    .unwrap();
                assert!(!result.is_empty(), "no data: {context}");
                for series in &result {
                    let labels = &series["metric"];
                    if let Some(instance) = labels["instance"].as_str() {
                        assert_eq!(instance, case.instance, "{context}");
                    }
                    if let Some(id) = labels["organization_id"].as_str() {
                        assert!((case.allowed)(id), "organization {id}: {context}");
                    }
                }
                counts[i].push(Some(result.len()));
                checked += 1;
            }
        }
        for ((title, template), counts) in templates.iter().zip(&counts) {
            let context = format!("{file} / {title}: {template}");
            if template.contains("topk(") || template.contains("bottomk(") {
                assert!(
                    counts.iter().flatten().all(|&n| n <= k),
                    "{counts:?} > {k}: {context}"
                );
                if let Some(n) = counts[2] {
                    assert_eq!(n, k, "at 500 organizations: {context}");
                }
            } else {
                // Not ranked: as many series at 500 organizations as at 1 (what Pipefy
                // bills by operation may differ a little between the two exporters), or
                // at most $k.
                for (large, small) in [(counts[2], counts[0]), (counts[3], counts[1])] {
                    assert!(
                        large <= small.max(Some(k)),
                        "{large:?} series at 500 organizations, {small:?} at 1: {context}"
                    );
                }
            }
        }
    }
    assert!(checked >= 280, "only {checked} panel queries run");

    one.shutdown().await;
    many.shutdown().await;
}
