//! The configurations users copy from the README and the deployment files are valid:
//! the exporter's own parser accepts them (a token in the environment stands in for the
//! secret files, which do not exist here).

use std::path::Path;

use pipefy_exporter::config::{Config, ENV_TOKEN};

fn parse(yaml: &str, name: &str) -> Config {
    Config::from_yaml(yaml, Path::new(name), &|key| {
        (key == ENV_TOKEN).then(|| "test-token".to_owned())
    })
    .unwrap_or_else(|e| panic!("{name} does not parse: {e}\n{yaml}"))
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The first ```yaml block after `heading` in README.md.
fn readme_yaml_after(heading: &str) -> String {
    let readme = repo_file("README.md");
    let section = &readme[readme
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading}"))..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_owned()
}

#[test]
fn the_readme_configuration_reference_is_valid() {
    let config = parse(
        &readme_yaml_after("## Configuration reference"),
        "README.md",
    );
    assert_eq!(
        config.accounts[0].organizations,
        Some(vec!["2".to_string(), "300".to_string()])
    );
    assert_eq!(config.max_orgs_per_request, 500);
    assert_eq!(config.token_attribution_deadline(), Some(1_799_107_200));
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

#[test]
fn the_shipped_example_configurations_are_valid() {
    for file in [
        "deploy/exporter/pipefy-exporter.yml",
        "deploy/systemd/pipefy-exporter.yml",
    ] {
        let config = parse(&repo_file(file), file);
        assert_eq!(config.accounts.len(), 1, "{file}");
    }
    // The Helm chart's `config:` value, rendered verbatim into the ConfigMap.
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&repo_file("deploy/helm/pipefy-exporter/values.yaml")).unwrap();
    let chart_config = serde_yaml_ng::to_string(&values["config"]).unwrap();
    let config = parse(&chart_config, "values.yaml config");
    assert_eq!(
        config.accounts[0].organizations, None,
        "empty list: discovery"
    );
}
