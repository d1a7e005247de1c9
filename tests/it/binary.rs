//! The real binary, as a user runs it: bad configs, secrets, `--demo`, signals,
//! `promtool check metrics` on the text format and the Python client's strict parser on
//! OpenMetrics.

use std::process::{Command, Stdio};
use std::time::Duration;

use pipefy_sim::{demo_data, SimData, Simulator};

use crate::helpers::{
    poll, run, sim_auth, spawn_simulator, write_config, Exit, Metrics, Running, CLIENT_ID,
    CLIENT_SECRET, PAT,
};

#[test]
fn an_unknown_config_key_exits_non_zero_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pipefy.yml");
    std::fs::write(
        &config,
        "pipefy:\n  auth:\n    token_file: /dev/null\nrefresh_intervall: 5m\n",
    )
    .unwrap();
    let Exit { code, stderr, .. } = run(&["--config.file", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("refresh_intervall"), "{stderr}");
    assert!(stderr.contains(config.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("level=error"), "{stderr}");
}

#[test]
fn a_missing_secret_file_exits_non_zero_naming_key_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pipefy.yml");
    let missing = dir.path().join("no-such-secret");
    std::fs::write(
        &config,
        format!(
            "pipefy:\n  auth:\n    service_account:\n      client_id: abc\n      client_secret_file: {}\n      token_endpoint: https://auth.example/oauth/token\n",
            missing.display()
        ),
    )
    .unwrap();
    let Exit { code, stderr, .. } = run(&[
        "--config.file",
        config.to_str().unwrap(),
        "--log.format",
        "json",
    ]);
    assert_eq!(code, 1, "{stderr}");
    let line: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "pipefy-exporter failed");
    let error = line["error"].as_str().unwrap();
    assert!(
        error.contains("pipefy.auth.service_account.client_secret_file"),
        "{error}"
    );
    assert!(error.contains(missing.to_str().unwrap()), "{error}");
    assert!(error.contains(config.to_str().unwrap()), "{error}");
}

#[test]
fn a_missing_config_file_is_named_with_how_to_start() {
    let Exit { code, stderr, .. } = run(&["--config.file", "/nonexistent/pipefy-exporter.yml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot read config file /nonexistent/pipefy-exporter.yml"),
        "{stderr}"
    );
    // The first run, with no flag, in a directory without the default file.
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(crate::helpers::binary())
        .current_dir(dir.path())
        .args(["--log.format", "json"])
        .env_remove("PIPEFY_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(
        line["error"],
        "cannot read config file pipefy-exporter.yml: No such file or directory (os error 2); \
         point --config.file at your configuration file, or try the exporter with --demo \
         (a built-in Pipefy simulator, no credentials)"
    );
}

#[test]
fn version_flag_prints_the_version() {
    let exit = run(&["--version"]);
    assert_eq!(exit.code, 0, "{}", exit.stderr);
    let stdout = exit.stdout;
    assert!(
        stdout.starts_with(&format!(
            "pipefy-exporter {} (revision: ",
            env!("CARGO_PKG_VERSION")
        )),
        "{stdout}"
    );
}

async fn scrape(addr: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn demo_mode_serves_the_seed_values_and_stops_on_sigterm() {
    let mut exporter = Running::start(&["--demo", "--web.listen-address", "127.0.0.1:0"]);
    let addr = exporter.address().await;
    let metrics = poll("the first demo refresh", || async {
        let (status, body) = scrape(&addr, "/metrics").await;
        let m = Metrics::parse(&body);
        (status == 200 && m.refreshes() >= 1.0).then_some(m)
    })
    .await;
    let vandeley = [
        ("organization_id", "2"),
        ("organization_name", "Vandeley Industries"),
        ("resource", "pipes"),
    ];
    assert_eq!(metrics.value("pipefy_subscription_limit", &vandeley), 5.0);
    assert_eq!(metrics.value("pipefy_subscription_used", &vandeley), 3.0);
    assert_eq!(
        metrics.value(
            "pipefy_exporter_collector_interval_seconds",
            &[("collector", "api_usage")]
        ),
        15.0
    );
    assert_eq!(metrics.find("pipefy_organization_info", &[]).len(), 3);
    assert_eq!(scrape(&addr, "/-/ready").await.0, 200);
    // The reader thread may not have caught up with the announcement yet.
    poll("the demo saying where to look", || async {
        exporter.logs().contains("/sim/stats").then_some(())
    })
    .await;
    assert_eq!(exporter.terminate(), 0, "graceful shutdown on SIGTERM");
    let logs = exporter.logs();
    assert!(logs.contains("msg=\"shutting down\""));
    // What the demo does, in its own words, and none of the warnings about paid calls
    // that short intervals deserve against the real Pipefy.
    assert!(
        logs.contains("msg=\"demo mode: a built-in Pipefy simulator on loopback with 3 sample organizations, every collector refreshed every 15s; no credentials, nothing is paid\""),
        "{logs}"
    );
    assert!(
        logs.contains("msg=\"watching all 3 organizations the credential can see\" account=demo organizations=3"),
        "{logs}"
    );
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("level=warn")).collect();
    assert_eq!(warnings, Vec::<&str>::new());
}

#[tokio::test]
async fn secrets_never_appear_in_logs_metrics_or_pages() {
    // Two accounts: a personal access token and a service account, debug logging,
    // and failures on both paths (a denied organization, then a 401 storm).
    let mut data: SimData = demo_data();
    data.denied.insert("4242".into());
    let sim = Simulator::new(data, sim_auth(Duration::from_secs(3600)));
    let server = spawn_simulator(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &format!("pipefy:\n  endpoint: {{endpoint}}\nrefresh_interval: 300ms\naccounts:\n  - name: pat\n    auth: {{token_file: {{token_file}}}}\n    organizations: [2]\n  - name: sa\n    auth:\n      service_account: {{client_id: {CLIENT_ID}, client_secret_file: {{secret_file}}, token_endpoint: '{{token_endpoint}}'}}\n    organizations: [300, 4242]\n"),
        &server,
        dir.path(),
    );
    let exporter = Running::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.level",
        "debug",
    ]);
    let addr = exporter.address().await;
    poll("two refreshes", || async {
        let m = Metrics::parse(&scrape(&addr, "/metrics").await.1);
        (m.refreshes() >= 2.0).then_some(())
    })
    .await;
    sim.revoke_access_tokens();
    sim.fail_all(Some((401, None)));
    poll("a failing refresh", || async {
        let m = Metrics::parse(&scrape(&addr, "/metrics").await.1);
        (m.sum_of("pipefy_exporter_refreshes_total", &[("result", "failure")]) >= 1.0).then_some(())
    })
    .await;
    let (_, metrics) = scrape(&addr, "/metrics").await;
    let (_, page) = scrape(&addr, "/").await;
    let logs = exporter.logs();
    assert!(
        metrics.contains("organization_id=\"300\""),
        "the service account worked"
    );
    assert!(
        logs.contains("Permission denied"),
        "the debug logs saw the failures: {logs}"
    );
    assert!(logs.contains("unauthorized"), "{logs}");
    let access_tokens = sim.issued_access_tokens();
    assert!(
        access_tokens.len() >= 2,
        "tokens were issued, then one was revoked"
    );
    let secrets: Vec<&str> = [PAT, CLIENT_SECRET]
        .into_iter()
        .chain(access_tokens.iter().map(String::as_str))
        .collect();
    for secret in secrets {
        for (place, text) in [
            ("logs", &logs),
            ("metrics", &metrics),
            ("landing page", &page),
        ] {
            assert!(!text.contains(secret), "{secret} leaked into the {place}");
        }
    }
}

/// The binary against `data` (Pendant Publishing renamed with every character the
/// formats escape, a token-attribution deadline), after its first refresh.
struct Refreshed {
    addr: String,
    /// Its first body with a refresh counted, in the text format.
    text: String,
    _exporter: Running,
    _guards: (Simulator, pipefy_sim::SimServer, tempfile::TempDir),
}

impl Refreshed {
    async fn start(mut data: SimData) -> Refreshed {
        data.orgs.get_mut("4242").unwrap().name = "Pendant \"Publishing\" \\ Ünïcode\nLtd".into();
        let sim = Simulator::new(data, sim_auth(Duration::from_secs(3600)));
        let server = spawn_simulator(&sim).await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(
            "pipefy:\n  endpoint: {endpoint}\n  auth: {token_file: {token_file}}\norganizations: [2, 300, 4242]\ncollectors:\n  token_attribution:\n    deadline: 2027-01-05\n",
            &server,
            dir.path(),
        );
        let exporter = Running::start(&[
            "--config.file",
            config.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
        ]);
        let addr = exporter.address().await;
        let text = poll("the first refresh", || async {
            let body = scrape(&addr, "/metrics").await.1;
            (Metrics::parse(&body).refreshes() >= 1.0).then_some(body)
        })
        .await;
        Refreshed {
            addr,
            text,
            _exporter: exporter,
            _guards: (sim, server, dir),
        }
    }
}

#[tokio::test]
#[ignore = "needs Debian's prometheus (promtool); run by scripts/test"]
async fn promtool_accepts_the_exposition() {
    let mut data = demo_data();
    data.denied.insert("300".into());
    let exporter = Refreshed::start(data).await;
    let body = &exporter.text;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool is installed (apt-get install prometheus, or scripts/install-test-tools)",
        );
    std::io::Write::write_all(promtool.stdin.as_mut().unwrap(), body.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(body.contains("pipefy_up{organization_id=\"300\""));
    assert!(body.contains("Pendant \\\"Publishing\\\" \\\\ Ünïcode\\nLtd"));
}

/// Reads an OpenMetrics body from stdin with the Python client's parser (strict: a
/// missing `# EOF`, a counter without `_total`, a unit the name does not end with, an
/// info value other than 1 are errors) and prints its families as JSON, values as
/// Python's `repr` (JSON has no infinity).
const OPENMETRICS_PARSER: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = [
    {"name": f.name, "type": f.type, "unit": f.unit,
     "samples": [[s.name, s.labels, repr(s.value)] for s in f.samples]}
    for f in text_string_to_metric_families(sys.stdin.read())
]
print(json.dumps(families))
"#;

/// Parses `body` with [`OPENMETRICS_PARSER`]: the families, or the parser's error.
fn parse_openmetrics(body: &str) -> Result<serde_json::Value, String> {
    let python = crate::helpers::venv_python();
    let mut child = Command::new(&python)
        .args(["-c", OPENMETRICS_PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), body.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[tokio::test]
#[ignore = "needs the Python client (deploy/requirements-ci.txt); run by scripts/test"]
async fn the_python_clients_strict_parser_reads_the_openmetrics_body() {
    let exporter = Refreshed::start(demo_data()).await;
    let (addr, text) = (&exporter.addr, &exporter.text);
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    let families = parse_openmetrics(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    let family = |name: &str| -> &serde_json::Value {
        let all = families.as_array().unwrap();
        all.iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no family {name} in {families}"))
    };
    let value = |name: &str, sample: &str, labels: &[(&str, &str)]| -> String {
        let samples = family(name)["samples"].as_array().unwrap();
        let found: Vec<&serde_json::Value> = samples
            .iter()
            .filter(|s| s[0] == sample && labels.iter().all(|(k, v)| s[1][k] == *v))
            .collect();
        assert_eq!(found.len(), 1, "{sample}{labels:?} in {samples:?}");
        found[0][2].as_str().unwrap().to_owned()
    };
    let kind = |name: &str| {
        (
            family(name)["type"].as_str().unwrap().to_owned(),
            family(name)["unit"].as_str().unwrap().to_owned(),
        )
    };

    // Types and units as declared.
    for (name, kind_, unit) in [
        ("pipefy_organization", "info", ""),
        ("pipefy_subscription_limit", "gauge", ""),
        ("pipefy_exporter_api_requests", "counter", ""),
        (
            "pipefy_exporter_refresh_duration_seconds",
            "histogram",
            "seconds",
        ),
        (
            "pipefy_token_attribution_deadline_timestamp_seconds",
            "gauge",
            "seconds",
        ),
        ("process_cpu_seconds", "counter", "seconds"),
        ("process_resident_memory_bytes", "gauge", "bytes"),
    ] {
        assert_eq!(kind(name), (kind_.to_owned(), unit.to_owned()), "{name}");
    }
    // Values: a limit, an unlimited one as positive infinity, a deadline, a name with
    // every character the format escapes.
    let pipes = |org| [("organization_id", org), ("resource", "pipes")];
    assert_eq!(
        value(
            "pipefy_subscription_limit",
            "pipefy_subscription_limit",
            &pipes("2")
        ),
        "5.0"
    );
    assert_eq!(
        value(
            "pipefy_subscription_limit",
            "pipefy_subscription_limit",
            &pipes("300")
        ),
        "inf"
    );
    assert_eq!(
        value(
            "pipefy_token_attribution_deadline_timestamp_seconds",
            "pipefy_token_attribution_deadline_timestamp_seconds",
            &[]
        ),
        "1799107200.0"
    );
    assert_eq!(
        value(
            "pipefy_organization",
            "pipefy_organization_info",
            &[("organization_id", "4242")]
        ),
        "1"
    );
    let pendant = family("pipefy_organization")["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[1]["organization_id"] == "4242")
        .unwrap()[1]["organization_name"]
        .clone();
    assert_eq!(pendant, "Pendant \"Publishing\" \\ Ünïcode\nLtd");
    // The same request counts as the text format, under the same sample names.
    for sample in Metrics::parse(text).find("pipefy_exporter_api_requests_total", &[]) {
        let labels: Vec<(&str, &str)> = sample
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let counted = value(
            "pipefy_exporter_api_requests",
            "pipefy_exporter_api_requests_total",
            &labels,
        );
        assert_eq!(counted.parse::<f64>().unwrap(), sample.value, "{labels:?}");
    }

    // A body cut short is not taken for a whole one: cut after any whole line (here the
    // last, then a quarter, half and three quarters of the way) the parser refuses it,
    // for want of its `# EOF` if not of a histogram's last bucket first.
    let whole_but_eof = body.strip_suffix("# EOF\n").unwrap();
    let error = parse_openmetrics(whole_but_eof).unwrap_err();
    assert!(error.contains("Missing # EOF"), "{error}");
    for quarter in 1..4 {
        let at = body[..body.len() * quarter / 4].rfind('\n').unwrap() + 1;
        assert!(parse_openmetrics(&body[..at]).is_err(), "cut at {at}");
    }
}

#[test]
fn a_reserved_telemetry_path_is_refused_before_listening() {
    let Exit { code, stderr, .. } = run(&["--demo", "--web.telemetry-path", "/-/ready"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--web.telemetry-path \\\"/-/ready\\\" is taken by the health endpoints"),
        "{stderr}"
    );
    assert!(!stderr.contains("starting pipefy-exporter"), "{stderr}");
}

#[test]
fn config_check_validates_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, PAT).unwrap();
    let config = dir.path().join("pipefy.yml");
    std::fs::write(
        &config,
        format!(
            "pipefy:\n  auth:\n    token_file: {}\norganizations: [2, 300]\n",
            token.display()
        ),
    )
    .unwrap();
    let Exit { code, stderr, .. } =
        run(&["--config.file", config.to_str().unwrap(), "--config.check"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("msg=\"configuration is valid\""),
        "{stderr}"
    );
    assert!(stderr.contains("organizations=default:2"), "{stderr}");
    assert!(!stderr.contains("starting pipefy-exporter"), "{stderr}");

    std::fs::remove_file(&token).unwrap();
    let Exit { code, stderr, .. } =
        run(&["--config.file", config.to_str().unwrap(), "--config.check"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("pipefy.auth.token_file"), "{stderr}");
}

/// `--config.check` of the shipped files says what the exporter will do: every collector
/// on its own default schedule, and, for `organizations: []`, that every organization
/// the credential can see will be watched.
#[test]
fn config_check_tells_the_schedule_and_what_an_empty_organization_list_means() {
    let check = |file: &std::path::Path| {
        let output = Command::new(crate::helpers::binary())
            .args(["--config.check", "--config.file", file.to_str().unwrap()])
            .env("PIPEFY_TOKEN", PAT)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        // Everything after the time stamp, which differs.
        stderr
            .lines()
            .map(|l| l.split_once(' ').unwrap().1.to_owned())
            .collect::<Vec<_>>()
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let schedule = [
        "level=info source=pipefy_exporter::cli msg=\"collector enabled: every 5m, stale after 15m\" collector=subscription_limits",
        "level=info source=pipefy_exporter::cli msg=\"collector enabled: every 15m, stale after 45m\" collector=ai_credits",
        "level=info source=pipefy_exporter::cli msg=\"collector enabled: every 15m, stale after 45m\" collector=api_usage",
        "level=info source=pipefy_exporter::cli msg=\"collector enabled: every 15m, stale after 45m\" collector=automation_jobs",
        "level=info source=pipefy_exporter::cli msg=\"collector enabled: every 1h, stale after 3h\" collector=integrations",
        "level=info source=pipefy_exporter::cli msg=\"collector enabled: every 1h, stale after 3h\" collector=token_attribution",
    ];
    for file in [
        "deploy/exporter/pipefy-exporter.yml",
        "deploy/systemd/pipefy-exporter.yml",
    ] {
        let path = root.join(file);
        let mut expected = vec![format!(
            "level=info source=pipefy_exporter::cli msg=\"configuration is valid\" file={} organizations=default:2 shard=0/1",
            path.display()
        )];
        expected.extend(schedule.iter().map(|l| l.to_string()));
        assert_eq!(check(&path), expected, "{file}");
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pipefy.yml");
    std::fs::write(&config, "organizations: []\n").unwrap();
    let mut expected = vec![format!(
        "level=info source=pipefy_exporter::cli msg=\"configuration is valid\" file={} organizations=default:all shard=0/1",
        config.display()
    )];
    expected.extend(schedule.iter().map(|l| l.to_string()));
    expected.push("level=info source=pipefy_exporter::cli msg=\"no organizations listed (`organizations` omitted or empty): the exporter watches every organization the credential can see, found by one `organizations` request per refresh\" account=default".to_owned());
    assert_eq!(check(&config), expected);
}

/// The hard limit of open files of this process, which the exporter inherits and
/// raises its soft limit to: the `Max open files` line of `/proc/self/limits`.
fn hard_open_file_limit() -> serde_json::Value {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let hard = line.split_whitespace().nth(4).unwrap();
    match hard {
        "unlimited" => serde_json::json!("unlimited"),
        n => serde_json::json!(n.parse::<u64>().unwrap()),
    }
}

#[tokio::test]
async fn json_logs_keep_numbers_as_numbers() {
    let mut exporter = Running::start(&[
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.format",
        "json",
    ]);
    let lines = poll("the first refresh's discovery line", || async {
        let logs = exporter.logs();
        let lines: Vec<serde_json::Value> = logs
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        lines
            .iter()
            .any(|l| {
                l["source"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("pipefy_exporter::refresh"))
            })
            .then_some(lines)
    })
    .await;
    exporter.terminate();
    let line = |msg: &str| {
        lines
            .iter()
            .find(|l| l["msg"].as_str().is_some_and(|m| m.starts_with(msg)))
            .unwrap_or_else(|| panic!("no {msg:?} in {lines:?}"))
            .clone()
    };
    let hard = hard_open_file_limit();
    let limits = lines
        .iter()
        .find(|l| {
            l["source"] == "pipefy_exporter::server"
                && l["msg"].as_str().unwrap().contains("open file limit")
        })
        .unwrap();
    assert_eq!(limits["hard"], hard, "{limits}");
    // Raised to the hard limit, or already there.
    let soft = if limits.get("after").is_some() {
        &limits["after"]
    } else {
        &limits["soft"]
    };
    assert_eq!(soft, &hard, "{limits}");
    assert_eq!(line("demo mode: a built-in")["organizations"], 3);
    assert_eq!(line("watching all")["organizations"], 3);
    assert_eq!(line("TLS is disabled")["tls"], false);
}

/// `--web.listen-address` repeated, as node_exporter allows: one exporter answering on
/// every address; an address already taken stops the start, naming it.
#[tokio::test]
async fn several_listen_addresses_serve_the_same_exporter() {
    let mut exporter = Running::start(&[
        "--demo",
        "--web.listen-address=127.0.0.1:0",
        "--web.listen-address=127.0.0.1:0",
    ]);
    let addresses = exporter.address().await;
    let addresses: Vec<&str> = addresses.split(',').collect();
    assert_eq!(addresses.len(), 2, "{addresses:?}");
    assert_ne!(addresses[0], addresses[1]);
    let organizations = |body: &str| {
        let m = Metrics::parse(body);
        let mut ids: Vec<String> = m
            .find("pipefy_organization_info", &[])
            .iter()
            .map(|s| s.labels["organization_id"].clone())
            .collect();
        ids.sort();
        ids
    };
    for address in &addresses {
        let seen = poll("the first refresh on every address", || async {
            let (status, body) = scrape(address, "/metrics").await;
            let ids = organizations(&body);
            (status == 200 && !ids.is_empty()).then_some(ids)
        })
        .await;
        assert_eq!(seen, ["2", "300", "4242"], "{address}");
        assert_eq!(scrape(address, "/-/ready").await.0, 200, "{address}");
    }
    // One process: the same start time on both.
    let start = |body: String| Metrics::parse(&body).value("process_start_time_seconds", &[]);
    assert_eq!(
        start(scrape(addresses[0], "/metrics").await.1),
        start(scrape(addresses[1], "/metrics").await.1)
    );
    assert_eq!(exporter.terminate(), 0);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let busy = format!("--web.listen-address=127.0.0.1:{port}");
    let Exit { code, stderr, .. } = run(&["--demo", "--web.listen-address=127.0.0.1:0", &busy]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on 127.0.0.1:{port} (--web.listen-address)"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("starting pipefy-exporter"), "{stderr}");
}
