//! The levels against the rules and the dashboards: a drift in either fails here.

use super::*;

#[test]
fn a_comparison_is_matched_with_its_whole_number() {
    assert!(has_comparison("x >= 0.9", "x >= 0.9"));
    assert!(has_comparison("x >= 0.9\nunless y", "x >= 0.9"));
    assert!(!has_comparison("x >= 0.95", "x >= 0.9"));
    assert!(!has_comparison("x >= 0.9.1", "x >= 0.9"));
}

#[test]
fn levels_follow_the_alerts() {
    assert_eq!(ratio_level(0.79, Kind::PlanLimit), Level::Ok);
    assert_eq!(ratio_level(0.8, Kind::PlanLimit), Level::Warning);
    assert_eq!(ratio_level(0.99, Kind::PlanLimit), Level::Warning);
    assert_eq!(ratio_level(1.0, Kind::PlanLimit), Level::Critical);
    assert_eq!(ratio_level(0.8, Kind::Quota), Level::Warning);
    assert_eq!(ratio_level(0.9, Kind::Quota), Level::Critical);
    assert_eq!(ratio_level(1.2, Kind::Quota), Level::Critical);
    assert_eq!(deadline_level(0, -5.0), Level::Ok);
    assert_eq!(deadline_level(2, 14.0), Level::Ok);
    assert_eq!(deadline_level(2, 13.9), Level::Warning);
    assert_eq!(deadline_level(2, 3.0), Level::Warning);
    assert_eq!(deadline_level(1, 2.9), Level::Critical);
    assert_eq!(deadline_level(1, -1.0), Level::Critical);
}

/// A repository file, read at test time (the test runs from the crate's directory).
fn repo_file(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// `0.8` as the rules write it, `1` for 1.0.
fn num(value: f64) -> String {
    format!("{value}")
}

/// `80 %`, as the rules' descriptions and the dashboards' texts say it.
fn pct(ratio: f64) -> String {
    format!("{:.0} %", ratio * 100.0)
}

/// Every alert that compares a share or a number of days, with the comparison its
/// expression must hold and the words its description must use.
fn expected_alerts() -> Vec<(&'static str, String, Option<String>)> {
    let ratio = |metric: &str, value: f64| format!("{metric} >= {}", num(value));
    let days = |value: f64| {
        format!(
            "pipefy:token_attribution_deadline_remaining:days < {}",
            num(value)
        )
    };
    let resources = "pipefy:subscription_usage:ratio{resource!=\"ai_credits\"}";
    let ai = "pipefy:ai_credits_usage:ratio";
    let api = "pipefy:api_calls_usage:ratio";
    let warning = Some(format!("warning at {}", pct(WARNING_RATIO)));
    let critical = Some(format!("critical at {}", pct(QUOTA_CRITICAL_RATIO)));
    vec![
        (
            "PipefyResourceUsageHigh",
            ratio(resources, WARNING_RATIO),
            warning.clone(),
        ),
        (
            "PipefyResourceLimitReached",
            ratio(resources, LIMIT_RATIO),
            None,
        ),
        (
            "PipefyAICreditsUsageHigh",
            ratio(ai, WARNING_RATIO),
            warning.clone(),
        ),
        (
            "PipefyAICreditsUsageCritical",
            ratio(ai, QUOTA_CRITICAL_RATIO),
            critical.clone(),
        ),
        // No forecast of running out for what has run out already.
        (
            "PipefyAICreditsForecastExhausted",
            format!("unless {}", ratio(ai, LIMIT_RATIO)),
            None,
        ),
        (
            "PipefyAPIQuotaUsageHigh",
            ratio(api, WARNING_RATIO),
            warning,
        ),
        (
            "PipefyAPIQuotaNearlyExhausted",
            ratio(api, QUOTA_CRITICAL_RATIO),
            critical,
        ),
        (
            "PipefyAPIQuotaExhaustionForecast",
            format!("unless {}", ratio(api, LIMIT_RATIO)),
            None,
        ),
        (
            "PipefyUnassignedTokensDeadlineSoon",
            days(DEADLINE_WARNING_DAYS),
            Some(format!("warning under {} days", num(DEADLINE_WARNING_DAYS))),
        ),
        (
            "PipefyUnassignedTokensDeadlineImminent",
            days(DEADLINE_CRITICAL_DAYS),
            Some(format!(
                "critical under {} days",
                num(DEADLINE_CRITICAL_DAYS)
            )),
        ),
    ]
}

/// Whether `expr` holds `comparison` with that very number (`>= 0.9`, not `>= 0.95`).
fn has_comparison(expr: &str, comparison: &str) -> bool {
    expr.match_indices(comparison).any(|(at, _)| {
        let next = expr[at + comparison.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_digit() || c == '.')
    })
}

/// The alerting rules compare at these levels, and say so in their descriptions.
#[test]
fn the_alerting_rules_use_these_levels() {
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&repo_file("deploy/helm/pipefy-exporter/files/rules.yml")).unwrap();
    let alerts: Vec<&serde_yaml_ng::Value> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .filter(|r| r.get("alert").is_some())
        .collect();
    let expected = expected_alerts();
    for alert in &alerts {
        let name = alert["alert"].as_str().unwrap();
        let expr = alert["expr"].as_str().unwrap();
        let description = alert["annotations"]["description"].as_str().unwrap();
        match expected.iter().find(|(n, ..)| *n == name) {
            Some((_, comparison, words)) => {
                assert!(
                    has_comparison(expr, comparison),
                    "{name}: {expr:?} lacks {comparison:?}"
                );
                if let Some(words) = words {
                    assert!(
                        description.contains(words.as_str()),
                        "{name}: {description:?} lacks {words:?}"
                    );
                }
            }
            // Any other alert on a share or on days must be added above.
            None => assert!(
                !expr.contains(":ratio") && !expr.contains(":days"),
                "{name} compares a share or days at a level this module does not know: {expr}"
            ),
        }
    }
    for (name, ..) in &expected {
        assert!(
            alerts.iter().any(|a| a["alert"].as_str() == Some(name)),
            "{name} is not in the rules"
        );
    }
}

/// The colour steps of every dashboard threshold, by what the panel or field shows.
fn expected_steps(kind: &str) -> Vec<(&'static str, Option<f64>)> {
    const BASE: &str = "green";
    const WARNING: &str = "#EAB839";
    const CRITICAL: &str = "red";
    match kind {
        "plan" => vec![
            (BASE, None),
            (WARNING, Some(WARNING_RATIO)),
            (CRITICAL, Some(LIMIT_RATIO)),
        ],
        "quota" => vec![
            (BASE, None),
            (WARNING, Some(WARNING_RATIO)),
            (CRITICAL, Some(QUOTA_CRITICAL_RATIO)),
        ],
        // A month-end forecast past the limit: the forecast alerts are warnings.
        "forecast" => vec![(BASE, None), (WARNING, Some(LIMIT_RATIO))],
        "deadline" => vec![
            (CRITICAL, None),
            (WARNING, Some(DEADLINE_CRITICAL_DAYS)),
            (BASE, Some(DEADLINE_WARNING_DAYS)),
        ],
        // A count of things already at an alert's level: coloured from one.
        "count" => vec![("green", None), ("red", Some(1.0))],
        "count-warning" => vec![("green", None), ("orange", Some(1.0))],
        "count-cell" => vec![("transparent", None), ("orange", Some(1.0))],
        other => panic!("unknown kind {other}"),
    }
}

/// `(dashboard, panel title, override field or "", kind)` of every threshold with more
/// than one step in the dashboards.
const DASHBOARD_THRESHOLDS: &[(&str, &str, &str, &str)] = &[
    (
        "pipefy-api-usage.json",
        "Organizations at 90 % of their API quota",
        "",
        "count",
    ),
    (
        "pipefy-api-usage.json",
        "Calls by unassigned tokens",
        "",
        "count-warning",
    ),
    (
        "pipefy-api-usage.json",
        "Failing usage-stats collectors",
        "",
        "count",
    ),
    (
        "pipefy-api-usage.json",
        "API quota use (top $k organizations)",
        "",
        "quota",
    ),
    (
        "pipefy-api-usage.json",
        "Calls used vs quota (top $k by calls)",
        "Quota use",
        "quota",
    ),
    (
        "pipefy-api-usage.json",
        "API quota use and month-end forecast (top $k)",
        "",
        "quota",
    ),
    // No alert watches integration tasks; their colours mean what they mean elsewhere.
    (
        "pipefy-api-usage.json",
        "Integrations (top $k by tasks used)",
        "Tasks used %",
        "quota",
    ),
    ("pipefy-exporter.json", "Failing collectors", "", "count"),
    (
        "pipefy-organization.json",
        "Highest plan-limit usage",
        "",
        "plan",
    ),
    ("pipefy-organization.json", "AI credits used %", "", "quota"),
    (
        "pipefy-organization.json",
        "Unassigned tokens",
        "",
        "count-warning",
    ),
    (
        "pipefy-organization.json",
        "Days to deadline",
        "",
        "deadline",
    ),
    (
        "pipefy-organization.json",
        "Plan-limit usage per resource",
        "",
        "plan",
    ),
    (
        "pipefy-organization.json",
        "Current usage per resource",
        "Usage",
        "plan",
    ),
    (
        "pipefy-organization.json",
        "Forecast vs limit",
        "",
        "forecast",
    ),
    (
        "pipefy-overview.json",
        "Days to token-attribution deadline",
        "",
        "deadline",
    ),
    (
        "pipefy-overview.json",
        "Unassigned tokens",
        "",
        "count-warning",
    ),
    (
        "pipefy-overview.json",
        "Resources at their limit",
        "",
        "count",
    ),
    (
        "pipefy-overview.json",
        "Resources at 80 % or more",
        "",
        "count-warning",
    ),
    ("pipefy-overview.json", "Failing collectors", "", "count"),
    (
        "pipefy-overview.json",
        "Organizations (top $k by highest usage)",
        "Pipes %",
        "plan",
    ),
    (
        "pipefy-overview.json",
        "Organizations (top $k by highest usage)",
        "Users %",
        "plan",
    ),
    (
        "pipefy-overview.json",
        "Organizations (top $k by highest usage)",
        "Cards (month) %",
        "plan",
    ),
    (
        "pipefy-overview.json",
        "Organizations (top $k by highest usage)",
        "Records %",
        "plan",
    ),
    (
        "pipefy-overview.json",
        "Organizations (top $k by highest usage)",
        "Interfaces %",
        "plan",
    ),
    (
        "pipefy-overview.json",
        "Organizations (top $k by highest usage)",
        "Highest usage",
        "plan",
    ),
    (
        "pipefy-overview.json",
        "Organizations (top $k by highest usage)",
        "AI credits %",
        "quota",
    ),
    // Grafana cannot colour one field by another (the deadline): any unassigned token.
    (
        "pipefy-overview.json",
        "Organizations (top $k by highest usage)",
        "Unassigned tokens",
        "count-cell",
    ),
    (
        "pipefy-overview.json",
        "Closest to a limit (top $k)",
        "",
        "plan",
    ),
    (
        "pipefy-overview.json",
        "AI credits used this month (top $k)",
        "",
        "quota",
    ),
    (
        "pipefy-overview.json",
        "Highest usage (top $k organizations)",
        "",
        "plan",
    ),
];

/// The exporter's own health, with levels of its own (no Pipefy figure).
const EXPORTER_HEALTH: &[(&str, &str)] = &[
    ("pipefy-exporter.json", "Targets up"),
    ("pipefy-exporter.json", "Pipefy API error ratio"),
];

fn steps_of(thresholds: &serde_json::Value) -> Vec<(String, Option<f64>)> {
    thresholds["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["color"].as_str().unwrap().to_owned(), s["value"].as_f64()))
        .collect()
}

/// Every colour step of the dashboards is one of these levels, and every query that
/// counts the shares at a level compares at one of them.
#[test]
fn the_dashboards_colour_and_count_at_these_levels() {
    let mut seen = Vec::new();
    for file in [
        "pipefy-api-usage.json",
        "pipefy-exporter.json",
        "pipefy-organization.json",
        "pipefy-overview.json",
    ] {
        let dashboard: serde_json::Value =
            serde_json::from_str(&repo_file(&format!("dashboards/{file}"))).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap();
            let config = &panel["fieldConfig"];
            let mut thresholds = vec![("", &config["defaults"]["thresholds"])];
            for o in config["overrides"].as_array().into_iter().flatten() {
                for property in o["properties"].as_array().unwrap() {
                    if property["id"] == "thresholds" {
                        thresholds.push((
                            o["matcher"]["options"].as_str().unwrap(),
                            &property["value"],
                        ));
                    }
                }
            }
            for (field, t) in thresholds {
                let steps = if t.is_null() { vec![] } else { steps_of(t) };
                if steps.len() < 2 || EXPORTER_HEALTH.contains(&(file, title)) {
                    continue;
                }
                let Some((.., kind)) = DASHBOARD_THRESHOLDS
                    .iter()
                    .find(|(f, p, o, _)| (*f, *p, *o) == (file, title, field))
                else {
                    panic!("{file} {title:?} {field:?}: thresholds {steps:?} of no known kind");
                };
                let expected: Vec<(String, Option<f64>)> = expected_steps(kind)
                    .into_iter()
                    .map(|(c, v)| (c.to_owned(), v))
                    .collect();
                assert_eq!(steps, expected, "{file} {title:?} {field:?} ({kind})");
                seen.push((file, title.to_owned(), field.to_owned()));
            }
            // A count of shares at a level compares at one of the levels, and its title
            // says which.
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default();
                for (metric, levels) in [
                    (
                        "pipefy:subscription_usage:ratio",
                        &[WARNING_RATIO, LIMIT_RATIO][..],
                    ),
                    (
                        "pipefy:ai_credits_usage:ratio",
                        &[WARNING_RATIO, QUOTA_CRITICAL_RATIO],
                    ),
                    (
                        "pipefy:api_calls_usage:ratio",
                        &[WARNING_RATIO, QUOTA_CRITICAL_RATIO],
                    ),
                ] {
                    for (at, _) in expr.match_indices(metric) {
                        let rest = &expr[at..];
                        let rest = &rest[..rest[1..].find("pipefy").map_or(rest.len(), |i| i + 1)];
                        let Some(i) = rest.find(">=") else { continue };
                        let value: String = rest[i + 2..]
                            .trim_start()
                            .chars()
                            .take_while(|c| c.is_ascii_digit() || *c == '.')
                            .collect();
                        let value: f64 = value.parse().unwrap();
                        assert!(
                            levels.contains(&value),
                            "{file} {title:?}: {metric} >= {value}"
                        );
                        if value < LIMIT_RATIO {
                            assert!(
                                title.contains(&pct(value)),
                                "{file} {title:?} counts at {value}"
                            );
                        }
                    }
                }
            }
        }
    }
    let expected: Vec<_> = DASHBOARD_THRESHOLDS
        .iter()
        .map(|(f, p, o, _)| (*f, p.to_string(), o.to_string()))
        .collect();
    assert_eq!(seen, expected, "a listed threshold is gone or moved");
}
