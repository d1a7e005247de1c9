//! What the README and the docs tell is true: the configurations users copy from them
//! and from the deployment files are valid (the exporter's own parser accepts them; a
//! token in the environment stands in for the secret files, which do not exist here),
//! the sample of `/metrics` is the demo's, every relative link leads somewhere, and the
//! README stays short.

use std::path::Path;

use pipefy_exporter::testing::{Config, ENV_CLIENT_SECRET, ENV_TOKEN};

fn parse(yaml: &str, name: &str) -> Config {
    Config::from_yaml(yaml, Path::new(name), &|key| {
        (key == ENV_TOKEN || key == ENV_CLIENT_SECRET).then(|| "test-secret".to_owned())
    })
    .unwrap_or_else(|e| panic!("{name} does not parse: {e}\n{yaml}"))
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The first ```LANG block after `heading` in the Markdown file `path`.
fn block_after(path: &str, heading: &str, lang: &str) -> String {
    let text = repo_file(path);
    let section = &text[text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading} in {path}"))..];
    let fence = format!("```{lang}\n");
    let start = section.find(&fence).unwrap() + fence.len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_owned()
}

#[test]
fn the_configuration_reference_is_valid() {
    let config = parse(
        &block_after("docs/configuration.md", "## The configuration file", "yaml"),
        "docs/configuration.md",
    );
    assert_eq!(
        config.accounts[0].organizations,
        Some(vec!["2".to_string(), "300".to_string()])
    );
    // The deadline, as the exporter exports it.
    let body = pipefy_exporter::testing::render(
        &Default::default(),
        &Default::default(),
        &pipefy_exporter::testing::exposition_info(&config),
        std::time::SystemTime::now(),
        pipefy_exporter::testing::Format::Text,
    );
    assert!(
        body.contains("\npipefy_token_attribution_deadline_timestamp_seconds 1799107200\n"),
        "{body}"
    );
    let intervals: Vec<(&str, u64)> = config
        .schedules()
        .into_iter()
        .map(|(name, schedule)| (name, schedule.interval.as_secs()))
        .collect();
    assert_eq!(
        intervals,
        [
            ("subscription_limits", 300),
            ("ai_credits", 900),
            ("api_usage", 900),
            ("automation_jobs", 900),
            ("integrations", 3600),
            ("token_attribution", 3600),
        ]
    );
}

/// Each collector's documented default: `(name, interval, stale_after)` in seconds
/// (stale after 15 minutes, or three intervals when that is longer).
const DEFAULT_SCHEDULE: [(&str, u64, u64); 6] = [
    ("subscription_limits", 300, 900),
    ("ai_credits", 900, 2700),
    ("api_usage", 900, 2700),
    ("automation_jobs", 900, 2700),
    ("integrations", 3600, 10_800),
    ("token_attribution", 3600, 10_800),
];

/// `(name, interval, stale_after)` in seconds of each enabled collector.
fn schedule(config: &Config) -> Vec<(&'static str, u64, u64)> {
    config
        .schedules()
        .into_iter()
        .map(|(name, s)| (name, s.interval.as_secs(), s.stale_after.as_secs()))
        .collect()
}

#[test]
fn the_shipped_example_configurations_run_each_collector_at_its_default_interval() {
    for file in [
        "deploy/exporter/pipefy-exporter.yml",
        "deploy/systemd/pipefy-exporter.yml",
    ] {
        let config = parse(&repo_file(file), file);
        assert_eq!(config.accounts.len(), 1, "{file}");
        // A top-level refresh_interval would give all six the same, paid, interval.
        assert_eq!(schedule(&config), DEFAULT_SCHEDULE, "{file}");
    }
    // The Helm chart's `config:` value, rendered verbatim into the ConfigMap
    // (`the_helm_chart_renders_each_collector_at_its_default_interval` renders it).
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&repo_file("deploy/helm/pipefy-exporter/values.yaml")).unwrap();
    let chart_config = serde_yaml_ng::to_string(&values["config"]).unwrap();
    let config = parse(&chart_config, "values.yaml config");
    assert_eq!(
        config.accounts[0].organizations, None,
        "empty list: discovery"
    );
    assert_eq!(schedule(&config), DEFAULT_SCHEDULE, "values.yaml config");
}

/// Renders the Helm chart offline (helm-python-sdk, as scripts/check-helm.py does) with
/// `values`, and returns the configuration file of its ConfigMap.
fn rendered_chart_config(values: &serde_json::Value) -> String {
    const RENDER: &str = r#"
import json, sys, yaml
import helm_python as helm
with helm.Chart.load("deploy/helm/pipefy-exporter") as chart:
    out = chart.render(json.loads(sys.argv[1]) or None, name="pipefy-exporter",
                       namespace="monitoring", is_install=True)
for name, text in out.items():
    if not name.endswith((".yaml", ".yml")):
        continue
    for doc in yaml.safe_load_all(text):
        if doc and doc["kind"] == "ConfigMap":
            print(doc["data"]["pipefy-exporter.yml"])
"#;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = crate::helpers::venv_python();
    let output = std::process::Command::new(&python)
        .current_dir(root)
        .args(["-c", RENDER, &values.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "helm template with {values} failed (scripts/install-test-tools installs helm-python-sdk):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A rendered configuration whose secret files, under the chart's mount point, exist.
fn parse_rendered(yaml: &str, name: &str) -> Config {
    let secrets = tempfile::tempdir().unwrap();
    for key in ["token", "client-secret", "acme", "group"] {
        std::fs::write(secrets.path().join(key), "test-secret").unwrap();
    }
    let yaml = yaml.replace("/run/secrets/pipefy", &secrets.path().display().to_string());
    Config::from_yaml(&yaml, Path::new(name), &|_| None)
        .unwrap_or_else(|e| panic!("{name} does not parse: {e}\n{yaml}"))
}

#[test]
#[ignore = "needs helm-python-sdk (deploy/requirements-ci.txt); run by scripts/test"]
fn the_helm_chart_renders_each_collector_at_its_default_interval() {
    // The chart's defaults, with the one value they cannot do without.
    let config = parse_rendered(
        &rendered_chart_config(&serde_json::json!({"existingSecret": "pipefy-exporter"})),
        "chart defaults",
    );
    assert_eq!(schedule(&config), DEFAULT_SCHEDULE);
    assert_eq!(config.accounts[0].organizations, None);
    // The example values of the chart's CI: none overrides an interval with another.
    for file in [
        "secret-values.yaml",
        "service-account-values.yaml",
        "sharded-values.yaml",
        "accounts-values.yaml",
    ] {
        let values: serde_json::Value = serde_yaml_ng::from_str(&repo_file(&format!(
            "deploy/helm/pipefy-exporter/ci/{file}"
        )))
        .unwrap();
        let config = parse_rendered(&rendered_chart_config(&values), file);
        let expected: Vec<_> = DEFAULT_SCHEDULE
            .into_iter()
            // service-account-values.yaml turns automation_jobs off.
            .filter(|(name, ..)| config.schedules().iter().any(|(n, _)| n == name))
            .collect();
        assert_eq!(schedule(&config), expected, "{file}");
    }
}

#[test]
fn the_readme_configuration_is_valid() {
    let config = parse(&block_after("README.md", "## Run it", "yaml"), "README.md");
    assert_eq!(
        config.accounts[0].organizations,
        Some(vec!["2".to_string(), "300".to_string()])
    );
    assert_eq!(schedule(&config), DEFAULT_SCHEDULE);
}

/// A newcomer reads the README top-down; the reference lives in docs/.
#[test]
fn the_readme_is_under_300_lines() {
    let lines = repo_file("README.md").lines().count();
    assert!(lines < 300, "README.md has {lines} lines");
}

/// The README's sample of `/metrics` is what the demo serves: each of its lines is a
/// line of the demo's first scrape, in the same order; and every family the demo serves
/// is in the README's table of metrics.
#[tokio::test]
async fn the_readme_sample_of_metrics_is_the_demos() {
    let sample = block_after("README.md", "## A sample of `/metrics`", "text");
    let sample: Vec<&str> = sample.lines().collect();
    assert!(sample.len() >= 10, "{sample:?}");
    let exporter =
        crate::helpers::Running::start(&["--demo", "--web.listen-address", "127.0.0.1:0"]);
    let addr = exporter.address().await;
    let body = crate::helpers::poll("the first demo refresh", || async {
        let body = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (crate::helpers::Metrics::parse(&body).refreshes() >= 1.0).then_some(body)
    })
    .await;
    let mut served = body.lines();
    for line in &sample {
        assert!(
            served.any(|l| l == *line),
            "not in the demo's /metrics (or out of order): {line}\n{body}"
        );
    }
    // And every family it serves is in the README's table of metrics.
    let readme = repo_file("README.md");
    let table = &readme[readme.find("## Metrics").unwrap()..];
    let table = &table[..table.find("\n## ").unwrap()];
    for family in body.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split(' ').next().unwrap();
        assert!(
            name.starts_with("process_") || table.contains(&format!("`{name}`")),
            "{name} is served but not in the README's metrics table"
        );
    }
}

/// GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of the headings of a Markdown text, code blocks left out.
fn anchors(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.push(slug(line.trim_start_matches('#')));
        }
    }
    found
}

/// Every relative link of the README and of docs/*.md leads to a file of the
/// repository, and to a heading of it when it names one.
#[test]
fn every_relative_link_of_the_docs_leads_somewhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let mut in_code = false;
        for line in text.lines() {
            if line.starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if in_code {
                continue;
            }
            for (at, _) in line.match_indices("](") {
                let rest = &line[at + 2..];
                let Some(end) = rest.find(')') else { continue };
                let target = &rest[..end];
                if target.starts_with("http") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
                let file = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(file)
                };
                assert!(
                    file.exists(),
                    "{}: link to {target}: no such file",
                    page.display()
                );
                if !anchor.is_empty() {
                    let headings = anchors(&std::fs::read_to_string(&file).unwrap());
                    assert!(
                        headings.iter().any(|h| h == anchor),
                        "{}: link to {target}: no such heading in {}",
                        page.display(),
                        file.display()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "only {checked} links found");
}
