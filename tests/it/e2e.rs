//! End to end: the exporter against the simulator, a real Prometheus (Debian's
//! `prometheus`) scraping it every second with `deploy/prometheus/rules.yml` loaded, and
//! a real Alertmanager (Debian's `prometheus-alertmanager`) running the shipped
//! `deploy/alertmanager/alertmanager.yml` routing, whose receivers are pointed at a
//! webhook in this test.
//!
//! Asserted: every PromQL expression of every dashboard panel returns data; every
//! recording rule produces series; every rule is healthy; an alert caused by simulator
//! data reaches the right receiver with the right labels and annotations, and resolves
//! when the data changes back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use axum::{Json, Router};
use pipefy_sim::{demo_data, Resource, SimAuth};
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;
use tokio::net::TcpListener;

use crate::helpers::{pat_config, poll, Running, TestApp};

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Debian's packages of the tools this test runs.
pub(crate) const INSTALL: &str = "apt-get install prometheus prometheus-alertmanager";

/// Notifications received, by receiver path (`critical` / `warning`).
type Inbox = Arc<Mutex<Vec<(String, Value)>>>;

async fn webhook() -> (u16, Inbox) {
    let inbox: Inbox = Arc::default();
    let app = Router::new()
        .route(
            "/{receiver}",
            post(
                |State(inbox): State<Inbox>,
                 UrlPath(receiver): UrlPath<String>,
                 Json(body): Json<Value>| async move {
                    inbox.lock().unwrap().push((receiver, body));
                },
            ),
        )
        .with_state(inbox.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, inbox)
}

/// The shipped Alertmanager config with each receiver's notifications sent to the
/// webhook, and waits shortened to test speed. Routing and inhibition stay as shipped.
fn alertmanager_config(webhook_port: u16) -> String {
    let text =
        std::fs::read_to_string(repo().join("deploy/alertmanager/alertmanager.yml")).unwrap();
    let mut config: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    let route = config.get_mut("route").unwrap();
    route["group_wait"] = Yaml::from("1s");
    route["group_interval"] = Yaml::from("1s");
    let receivers = config
        .get_mut("receivers")
        .unwrap()
        .as_sequence_mut()
        .unwrap();
    for receiver in receivers {
        let name = receiver["name"].as_str().unwrap().to_owned();
        let suffix = name.trim_start_matches("pipefy-").to_owned();
        let hook: Yaml = serde_yaml_ng::from_str(&format!(
            "- url: http://127.0.0.1:{webhook_port}/{suffix}\n  send_resolved: true\n"
        ))
        .unwrap();
        receiver
            .as_mapping_mut()
            .unwrap()
            .insert(Yaml::from("webhook_configs"), hook);
    }
    serde_yaml_ng::to_string(&config).unwrap()
}

pub(crate) struct Prometheus {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

impl Prometheus {
    /// Debian's Prometheus with `config` (a prometheus.yml) on a free port, its data in
    /// `dir`; `extra` flags added. Keep the `Running` alive as long as it is needed.
    pub(crate) async fn start(
        dir: &std::path::Path,
        config: &str,
        extra: &[&str],
    ) -> (Running, Prometheus) {
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let args = |port: u16| {
            let mut args = vec![
                format!("--config.file={}", file.display()),
                format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            args
        };
        let (running, port) = Running::tool_on_free_port("prometheus", args, INSTALL).await;
        let prom = Prometheus {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        (running, prom)
    }

    /// Whether `/-/ready` answers 2xx.
    pub(crate) async fn ready(&self) -> bool {
        match self.http.get(format!("{}/-/ready", self.base)).send().await {
            Ok(response) => response.status().is_success(),
            Err(_) => false,
        }
    }

    pub(crate) async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
        body["data"].clone()
    }

    pub(crate) async fn query(&self, expr: &str) -> Vec<Value> {
        self.api("/api/v1/query", &[("query", expr)]).await["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// The variables Grafana would substitute in the dashboards' queries, with these choices
/// for `$organization`, `$k` and `$instance` (job `pipefy-exporter`).
pub(crate) fn grafana_variables(
    organization: &str,
    k: usize,
    instance: &str,
) -> BTreeMap<String, String> {
    [
        ("datasource", "prometheus"),
        ("organization", organization),
        ("k", &k.to_string()),
        ("job", "pipefy-exporter"),
        ("instance", instance),
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__range", "1h"),
        ("__range_s", "3600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Panel queries of a dashboard (rows included) with Grafana's variables substituted.
pub(crate) fn dashboard_queries(
    dashboard: &Value,
    variables: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or("").to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.clone(), expr.to_owned()));
                }
            }
            walk(
                panel["panels"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                out,
            );
        }
    }
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().unwrap(), &mut out);
    out.into_iter()
        .map(|(title, expr)| (title, substitute(&expr, variables)))
        .collect()
}

/// Replaces `${name}`, `${name:format}` and `$name`, longest names first.
fn substitute(expr: &str, variables: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = expr.to_owned();
    for name in names {
        let value = &variables[name];
        while let Some(start) = out.find(&format!("${{{name}:")) {
            let end = start + out[start..].find('}').unwrap();
            out.replace_range(start..=end, value);
        }
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

pub(crate) fn date_in_days(days: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (y, m, d) = timefmt::civil_from_days(now.div_euclid(86_400) + days);
    format!("{y:04}-{m:02}-{d:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's prometheus and prometheus-alertmanager; run by scripts/test"]
async fn prometheus_and_alertmanager_end_to_end() {
    let dir = tempfile::tempdir().unwrap();

    // The exporter, with the deadline two days away: the "imminent" token alert fires
    // for organizations with unassigned tokens. Vandeley starts below its limits.
    let config = pat_config(&format!(
        "refresh_interval: 1s\nstale_after: 1m\ncollectors:\n  api_usage: {{by_operation: true}}\n  token_attribution:\n    deadline: {}\n",
        date_in_days(2)
    ));
    let app = TestApp::builder(demo_data())
        .auth(SimAuth::open())
        .config(&config)
        .spawn()
        .await;
    app.cycles(1).await;

    let (hook_port, inbox) = webhook().await;
    std::fs::write(
        dir.path().join("alertmanager.yml"),
        alertmanager_config(hook_port),
    )
    .unwrap();
    let am_args = |port: u16| {
        vec![
            format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ),
            format!("--storage.path={}", dir.path().join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
        ]
    };
    let (_alertmanager, am_port) =
        Running::tool_on_free_port("prometheus-alertmanager", am_args, INSTALL).await;

    let rules = repo().join("deploy/prometheus/rules.yml");
    let (_prometheus, prom) = Prometheus::start(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [\"{}\"]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{am_port}\"]\n\
             scrape_configs:\n  - job_name: pipefy-exporter\n    static_configs:\n      - targets: [\"{}\"]\n",
            rules.display(),
            app.addr
        ),
        &["--rules.alert.resend-delay=1s"],
    )
    .await;
    poll("Prometheus to scrape the exporter", || async {
        if !prom.ready().await {
            return None;
        }
        // Enough samples for rate() and friends over the dashboards' windows.
        let up = prom
            .query("count_over_time(up{job=\"pipefy-exporter\"}[1m]) >= 5")
            .await;
        (!up.is_empty()).then_some(())
    })
    .await;

    // Prometheus asked for OpenMetrics and got it: a unit is something only OpenMetrics
    // declares (`# UNIT`), and an info family is typed as such only there.
    let metadata = |metric: &str| {
        let metric = metric.to_owned();
        let prom = &prom;
        async move {
            let params = [
                ("match_target", "{job=\"pipefy-exporter\"}"),
                ("metric", metric.as_str()),
            ];
            let found = prom.api("/api/v1/targets/metadata", &params).await;
            let first = &found.as_array().unwrap_or_else(|| panic!("{found}"))[0];
            (first["type"].clone(), first["unit"].clone())
        }
    };
    assert_eq!(
        metadata("pipefy_exporter_refresh_duration_seconds").await,
        (Value::from("histogram"), Value::from("seconds"))
    );
    assert_eq!(
        metadata("pipefy_organization").await,
        (Value::from("info"), Value::from(""))
    );
    // And the exporter counted those scrapes as OpenMetrics, gzip (Prometheus asks for
    // both).
    let scrapes = prom
        .query("pipefy_exporter_scrapes_total{format=\"openmetrics\",encoding=\"gzip\"} >= 5")
        .await;
    assert_eq!(scrapes.len(), 1, "{scrapes:?}");
    // An unlimited plan resource, OpenMetrics' `inf`, is positive infinity to Prometheus.
    let unlimited = prom
        .query("pipefy_subscription_limit{organization_id=\"300\",resource=\"pipes\"}")
        .await;
    assert_eq!(unlimited[0]["value"][1], "+Inf", "{unlimited:?}");

    // Every rule evaluated and healthy; every recording rule has series.
    let groups = poll("every rule to be evaluated", || async {
        let data = prom.api("/api/v1/rules", &[]).await;
        let groups = data["groups"].as_array().cloned().unwrap_or_default();
        let all_evaluated = !groups.is_empty()
            && groups
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap().clone())
                .all(|r| {
                    r["health"] == "ok"
                        && !r["lastEvaluation"]
                            .as_str()
                            .unwrap_or("0001")
                            .starts_with("0001")
                });
        all_evaluated.then_some(groups)
    })
    .await;
    let rules: Vec<Value> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect();
    let recording: Vec<&str> = rules
        .iter()
        .filter(|r| r["type"] == "recording")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    let alerting: Vec<&str> = rules
        .iter()
        .filter(|r| r["type"] == "alerting")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(recording.len() >= 3, "{recording:?}");
    let mut names = alerting.clone();
    names.sort();
    assert_eq!(
        names,
        [
            "PipefyAICreditsForecastExhausted",
            "PipefyAICreditsUsageCritical",
            "PipefyAICreditsUsageHigh",
            "PipefyAPIQuotaExhaustionForecast",
            "PipefyAPIQuotaNearlyExhausted",
            "PipefyAPIQuotaUsageHigh",
            "PipefyCollectorFailing",
            "PipefyDataStale",
            "PipefyExporterConfigReloadFailed",
            "PipefyExporterDown",
            "PipefyQueryRejected",
            "PipefyResourceLimitReached",
            "PipefyResourceUsageHigh",
            "PipefyUnassignedTokensDeadlineImminent",
            "PipefyUnassignedTokensDeadlineSoon",
        ]
    );
    for name in &recording {
        let name = *name;
        poll(&format!("series of recording rule {name}"), || async {
            (!prom.query(name).await.is_empty()).then_some(())
        })
        .await;
    }

    // Every panel query of every dashboard is accepted and returns data.
    let org_variable = prom.api("/api/v1/label/organization_id/values", &[]).await;
    assert!(org_variable.as_array().unwrap().contains(&Value::from("2")));
    let variables = grafana_variables("2", 10, &app.addr.to_string());
    let mut checked = 0;
    for file in [
        "pipefy-overview.json",
        "pipefy-organization.json",
        "pipefy-exporter.json",
        "pipefy-api-usage.json",
    ] {
        let dashboard: Value = serde_json::from_str(
            &std::fs::read_to_string(repo().join("dashboards").join(file)).unwrap(),
        )
        .unwrap();
        for (title, expr) in dashboard_queries(&dashboard, &variables) {
            // `$1` is label_replace's capture group; `$name` / `${name}` is Grafana's.
            let unsubstituted = expr
                .split('$')
                .skip(1)
                .any(|rest| rest.starts_with(|c: char| c.is_alphabetic() || c == '_' || c == '{'));
            assert!(
                !unsubstituted,
                "{file} / {title}: unsubstituted variable in {expr}"
            );
            let result = prom.query(&expr).await;
            assert!(!result.is_empty(), "{file} / {title}: no data for {expr}");
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} panel queries found");

    // "unlimited" is +Inf, never "no data": Kramerica (300) has no pipes or cards limit
    // and an uncapped AI plan; the organization dashboard's usage column and AI share
    // carry +Inf there (the value its "unlimited"/"uncapped" mappings name), and finite
    // shares elsewhere.
    let organization: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("dashboards/pipefy-organization.json")).unwrap(),
    )
    .unwrap();
    let kramerica = BTreeMap::from_iter(variables.iter().map(|(k, v)| {
        (
            k.clone(),
            if k == "organization" {
                "300".into()
            } else {
                v.clone()
            },
        )
    }));
    let by_resource = |title: &str, index: usize| {
        let (_, expr) = dashboard_queries(&organization, &kramerica)
            .into_iter()
            .filter(|(t, _)| t == title)
            .nth(index)
            .unwrap();
        let prom = &prom;
        async move {
            prom.query(&expr)
                .await
                .iter()
                .map(|s| {
                    let label = s["metric"]["resource"].as_str().unwrap_or("").to_owned();
                    (label, s["value"][1].as_str().unwrap().to_owned())
                })
                .collect::<BTreeMap<String, String>>()
        }
    };
    let usage = by_resource("Current usage per resource", 2).await;
    assert_eq!(usage["pipes"], "+Inf");
    assert_eq!(usage["cards"], "+Inf");
    assert_eq!(usage["users"], "0.72");
    assert_eq!(usage["records"], "0.52");
    assert_eq!(by_resource("AI credits used %", 0).await[""], "+Inf");

    // Alert 0: Pendant Publishing has used 93 % of its API quota (9,300 of 10,000
    // calls): PipefyAPIQuotaNearlyExhausted reaches the critical receiver, and resolves
    // once the usage drops (a new month).
    let quota = poll("PipefyAPIQuotaNearlyExhausted for Pendant", || async {
        find_alert(
            &inbox,
            "critical",
            "PipefyAPIQuotaNearlyExhausted",
            "firing",
            &[("organization_id", "4242")],
        )
    })
    .await;
    assert_eq!(quota["labels"]["organization_name"], "Pendant Publishing");
    let description = quota["annotations"]["description"].as_str().unwrap();
    assert!(description.contains("93"), "{description}");
    let runbook = quota["annotations"]["runbook_url"].as_str().unwrap();
    let anchor = runbook.split_once('#').unwrap().1;
    assert!(
        heading_anchors(&std::fs::read_to_string(repo().join("docs/runbook.md")).unwrap())
            .contains(&anchor.to_owned()),
        "no section #{anchor} in docs/runbook.md"
    );
    app.sim.update(|data| {
        for call in &mut data.orgs.get_mut("4242").unwrap().api.calls {
            call.count = 10.0;
        }
    });
    poll("PipefyAPIQuotaNearlyExhausted to resolve", || async {
        find_alert(
            &inbox,
            "critical",
            "PipefyAPIQuotaNearlyExhausted",
            "resolved",
            &[("organization_id", "4242")],
        )
    })
    .await;

    // Alert 1: Vandeley reaches its pipes limit, then goes back under it.
    app.sim.update(|data| {
        let vandeley = data.orgs.get_mut("2").unwrap();
        vandeley
            .limits
            .iter_mut()
            .find(|l| l.resource == Resource::Pipes)
            .unwrap()
            .used = 5;
    });
    let firing = poll(
        "PipefyResourceLimitReached for Vandeley's pipes",
        || async {
            find_alert(
                &inbox,
                "critical",
                "PipefyResourceLimitReached",
                "firing",
                &[("organization_id", "2"), ("resource", "pipes")],
            )
        },
    )
    .await;
    assert_eq!(firing["labels"]["severity"], "critical");
    assert_eq!(firing["labels"]["organization_name"], "Vandeley Industries");
    let summary = firing["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("Vandeley Industries") && summary.contains("pipes"),
        "{summary}"
    );
    let description = firing["annotations"]["description"].as_str().unwrap();
    assert!(description.contains('5'), "{description}");
    let runbook = firing["annotations"]["runbook_url"].as_str().unwrap();
    let (document, anchor) = runbook.split_once('#').unwrap();
    assert!(document.ends_with("docs/runbook.md"), "{runbook}");
    let runbook_doc = std::fs::read_to_string(repo().join("docs/runbook.md")).unwrap();
    assert!(
        heading_anchors(&runbook_doc).contains(&anchor.to_owned()),
        "no section #{anchor} in docs/runbook.md"
    );

    app.sim.update(|data| {
        let vandeley = data.orgs.get_mut("2").unwrap();
        vandeley
            .limits
            .iter_mut()
            .find(|l| l.resource == Resource::Pipes)
            .unwrap()
            .used = 3;
    });
    poll("PipefyResourceLimitReached to resolve", || async {
        find_alert(
            &inbox,
            "critical",
            "PipefyResourceLimitReached",
            "resolved",
            &[("organization_id", "2"), ("resource", "pipes")],
        )
    })
    .await;

    // Alert 2: the deadline is two days away and Vandeley has unassigned tokens; once
    // they are assigned, the alert resolves.
    let imminent = poll(
        "PipefyUnassignedTokensDeadlineImminent for Vandeley",
        || async {
            find_alert(
                &inbox,
                "critical",
                "PipefyUnassignedTokensDeadlineImminent",
                "firing",
                &[("organization_id", "2")],
            )
        },
    )
    .await;
    assert_eq!(imminent["labels"]["severity"], "critical");
    app.sim.update(|data| {
        for token in &mut data.orgs.get_mut("2").unwrap().tokens {
            token.billing_organization = Some("2".into());
        }
    });
    poll(
        "PipefyUnassignedTokensDeadlineImminent to resolve",
        || async {
            find_alert(
                &inbox,
                "critical",
                "PipefyUnassignedTokensDeadlineImminent",
                "resolved",
                &[("organization_id", "2")],
            )
        },
    )
    .await;

    // Routing by severity: each receiver got only alerts of its own severity.
    for (receiver, body) in inbox.lock().unwrap().iter() {
        for alert in body["alerts"].as_array().unwrap() {
            let severity = alert["labels"]["severity"].as_str().unwrap_or("");
            assert_eq!(severity, receiver.as_str(), "{alert}");
        }
    }
    app.shutdown().await;
}

/// The first alert in the inbox of `receiver` with that name, status and labels.
fn find_alert(
    inbox: &Inbox,
    receiver: &str,
    name: &str,
    status: &str,
    labels: &[(&str, &str)],
) -> Option<Value> {
    let inbox = inbox.lock().unwrap();
    inbox
        .iter()
        .filter(|(r, _)| r == receiver)
        .flat_map(|(_, body)| body["alerts"].as_array().cloned().unwrap_or_default())
        .find(|alert| {
            alert["status"] == status
                && alert["labels"]["alertname"] == name
                && labels.iter().all(|(k, v)| alert["labels"][*k] == *v)
        })
}

/// The anchors GitHub gives Markdown headings: lower case, spaces to dashes,
/// punctuation other than `-` and `_` dropped.
fn heading_anchors(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}
