//! API calls billed to each organization in the period, and its quota: the totals from
//! `apiUsageStatsCombined` (25 organizations per root field), and with `by_token` (on by
//! default) or `by_operation` (off) the complete breakdown from one
//! `apiUsageStats(dimension:)` root field per organization. The combined form's
//! `topItems` lists only the top consumers, which is why it is not used for breakdowns.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::json;

use super::family::org_family;
use super::spec::settings;
use super::{combined, BuildError, Cell, Collector, Decoded, Meta, Period, Spec, Target};
use crate::encoding::{Family, Sink};
use crate::pipefy::query::RootField;
use crate::pipefy::Answers;
use crate::snapshot::{OrgSnapshot, Snapshot};
use crate::thresholds::Kind;

pub(crate) const SPEC: Spec = Spec {
    name: "api_usage",
    operation: "PipefyApiUsage",
    default_interval: Duration::from_secs(15 * 60),
};
const TOTALS: &str = "apiUsageStatsCombined(organizationUuids: $uuids, period: $period) { byOrganization { organizationUuid organizationName usage limit } partial }";
const BREAKDOWN: &str = "apiUsageStats(organizationUuid: $uuid, period: $period, dimension: $dimension) { data { dimension metric } limit }";
/// How Pipefy labels calls it cannot attribute (unnamed operations).
const NOT_SPECIFIED: &str = "Not specified";

settings! {
    period: Period,
    by_token: Option<bool>,
    by_operation: Option<bool>,
}

pub(crate) fn build(meta: Meta, raw: Raw) -> Result<ApiUsage, BuildError> {
    let mut dimensions = Vec::new();
    if raw.by_token.unwrap_or(true) {
        dimensions.push(Dimension::Token);
    }
    if raw.by_operation.unwrap_or(false) {
        dimensions.push(Dimension::OperationName);
    }
    Ok(ApiUsage {
        meta,
        period: raw.period,
        dimensions,
    })
}

/// Pipefy's `GroupedAPIDimension`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dimension {
    Token,
    OperationName,
}

impl Dimension {
    fn value(self) -> &'static str {
        match self {
            Dimension::Token => "token",
            Dimension::OperationName => "operation_name",
        }
    }
    /// The key prefix of its per-organization fields.
    fn prefix(self) -> &'static str {
        match self {
            Dimension::Token => "token:",
            Dimension::OperationName => "operation:",
        }
    }
}

#[derive(Debug)]
pub(crate) struct ApiUsage {
    meta: Meta,
    period: Period,
    dimensions: Vec<Dimension>,
}

/// This collector's slice of an organization.
#[derive(Clone, Debug, Default, PartialEq)]
struct Calls {
    used: f64,
    /// `+Inf` when the organization has no quota.
    limit: f64,
    /// Calls per token name (with `by_token`), names as Pipefy gives them, in name
    /// order and each once. A sorted list rather than a map: a B-tree node holds eleven
    /// entries, for the two or three of an organization in every snapshot.
    by_token: Vec<(String, f64)>,
    /// Calls per GraphQL operation name (with `by_operation`), likewise.
    by_operation: Vec<(String, f64)>,
}

/// The fresh API usage of an organization.
fn of(org: &OrgSnapshot, now: SystemTime) -> Option<&Calls> {
    org.fresh::<Calls>(SPEC.name, now)
}

/// An item of the combined answer's `byOrganization`.
#[derive(Deserialize)]
struct Total {
    usage: f64,
    limit: Option<f64>,
}

/// `apiUsageStats` with a dimension: `data` is a list of `MetricItem`.
#[derive(Deserialize)]
struct Breakdown {
    data: Vec<MetricItem>,
}

#[derive(Deserialize)]
struct MetricItem {
    dimension: Option<String>,
    metric: f64,
}

/// Sums per name: two tokens may share a name, and one series per label set is a must.
fn grouped(items: Vec<MetricItem>) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = items
        .into_iter()
        .map(|item| {
            let name = item.dimension.unwrap_or_else(|| NOT_SPECIFIED.to_owned());
            (name, item.metric)
        })
        .collect();
    // Stable: a value listed twice is summed in Pipefy's order.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 += later.1;
        }
        same
    });
    out.shrink_to_fit();
    out
}

impl Collector for ApiUsage {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn fields(&self, orgs: &[Target]) -> Vec<RootField> {
        let mut fields = combined::fields("total", TOTALS, self.period, orgs);
        for dimension in &self.dimensions {
            fields.extend(
                combined::per_org(dimension.prefix(), orgs, BREAKDOWN, Some(self.period))
                    .into_iter()
                    .map(|f| f.var("dimension", "GroupedAPIDimension", json!(dimension.value()))),
            );
        }
        fields
    }

    fn decode(&self, orgs: &[Target], answers: &Answers) -> Vec<Decoded> {
        let totals = combined::by_organization::<Total>("total", orgs, answers);
        orgs.iter()
            .zip(totals)
            .map(|(org, (_, total))| {
                let calls = combined::required(total).and_then(|total| {
                    let mut calls = Calls {
                        used: total.usage,
                        limit: total.limit.unwrap_or(f64::INFINITY),
                        ..Calls::default()
                    };
                    for dimension in &self.dimensions {
                        let key = format!("{}{}", dimension.prefix(), org.id);
                        let breakdown: Breakdown = combined::answer(answers, &key)
                            .map_err(|e| format!("{} breakdown: {e}", dimension.value()))?;
                        let grouped = grouped(breakdown.data);
                        match dimension {
                            Dimension::Token => calls.by_token = grouped,
                            Dimension::OperationName => calls.by_operation = grouped,
                        }
                    }
                    Ok(calls)
                });
                Decoded::new(&org.id, calls)
            })
            .collect()
    }

    fn encode(&self, snapshot: &Snapshot, now: SystemTime, sink: &mut dyn Sink) {
        org_family(
            sink,
            snapshot,
            Family::gauge(
                "pipefy_api_calls_used",
                "API calls billed to the organization in the period (this month by default).",
            ),
            |org, emit| {
                if let Some(calls) = of(org, now) {
                    emit(&[], calls.used);
                }
            },
        );
        org_family(
            sink,
            snapshot,
            Family::gauge(
                "pipefy_api_calls_limit",
                "API-call quota of the organization in the period; +Inf when it has none.",
            ),
            |org, emit| {
                if let Some(calls) = of(org, now) {
                    emit(&[], calls.limit);
                }
            },
        );
        type Breakdown = fn(&Calls) -> &[(String, f64)];
        let breakdowns: [(&str, &str, &str, Breakdown); 2] = [
            (
                "pipefy_api_calls_used_by_token",
                "token_name",
                "API calls billed to the organization in the period, by token (personal access token or service account name).",
                |c| &c.by_token,
            ),
            (
                "pipefy_api_calls_used_by_operation",
                "operation_name",
                "API calls billed to the organization in the period, by GraphQL operation name (\"Not specified\": unnamed).",
                |c| &c.by_operation,
            ),
        ];
        for (name, label, help, breakdown) in breakdowns {
            org_family(sink, snapshot, Family::gauge(name, help), |org, emit| {
                for (value, calls) in of(org, now).map(breakdown).into_iter().flatten() {
                    emit(&[(label, value)], *calls);
                }
            });
        }
    }

    fn cells(&self, org: &OrgSnapshot, now: SystemTime) -> Vec<Cell> {
        let figure = of(org, now).map(|c| (c.used, c.limit));
        vec![Cell::share("API calls", figure, Kind::Quota)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: &str) -> Target {
        Target {
            id: id.into(),
            uuid: Some(format!("u{id}")),
        }
    }

    #[test]
    fn totals_and_breakdowns_make_one_value_per_organization() {
        let meta = Meta::resolve(&SPEC, None, None, &super::super::Defaults::default())
            .unwrap()
            .unwrap();
        let raw = Raw {
            by_operation: Some(true),
            ..Raw::default()
        };
        let collector = build(meta, raw).unwrap();
        let orgs = [target("2"), target("300")];
        let keys: Vec<String> = collector.fields(&orgs).into_iter().map(|f| f.key).collect();
        assert_eq!(
            keys,
            [
                "total0",
                "token:2",
                "token:300",
                "operation:2",
                "operation:300"
            ]
        );
        let mut answers = Answers::new();
        answers.insert(
            "total0".into(),
            Ok(Some(
                json!({"byOrganization": [
                {"organizationUuid": "u2", "organizationName": "V", "usage": 5200, "limit": 20000},
                {"organizationUuid": "u300", "organizationName": "K", "usage": 10.5, "limit": null}
            ], "partial": false})
                .into(),
            )),
        );
        answers.insert(
            "token:2".into(),
            Ok(Some(
                json!({"data": [
                {"dimension": "Nightly ETL", "metric": 4000},
                {"dimension": "Zapier", "metric": 1000},
                {"dimension": "Zapier", "metric": 200}
            ], "limit": 20000})
                .into(),
            )),
        );
        answers.insert(
            "operation:2".into(),
            Ok(Some(
                json!({"data": [{"dimension": null, "metric": 5200}]}).into(),
            )),
        );
        answers.insert("token:300".into(), Err("Permission denied".into()));
        answers.insert("operation:300".into(), Ok(Some(json!({"data": []}).into())));

        let decoded = collector.decode(&orgs, &answers);
        let calls = decoded[0].result.as_ref().unwrap().get::<Calls>().unwrap();
        assert_eq!(calls.used, 5200.0);
        assert_eq!(calls.limit, 20000.0);
        assert_eq!(
            calls.by_token,
            [("Nightly ETL".into(), 4000.0), ("Zapier".into(), 1200.0)]
        );
        assert_eq!(calls.by_operation, [("Not specified".into(), 5200.0)]);
        assert_eq!(
            decoded[1].result.as_ref().unwrap_err(),
            "token breakdown: Permission denied"
        );
    }

    #[test]
    fn a_breakdown_is_in_name_order_with_each_name_once() {
        let item = |dimension: Option<&str>, metric: f64| MetricItem {
            dimension: dimension.map(str::to_owned),
            metric,
        };
        let items = vec![
            item(Some("Zapier"), 1000.0),
            item(Some("Nightly ETL"), 4000.0),
            item(Some("Zapier"), 200.0),
            item(None, 5.0),
            item(Some("Zapier"), 0.5),
        ];
        assert_eq!(
            grouped(items),
            [
                ("Nightly ETL".to_owned(), 4000.0),
                ("Not specified".to_owned(), 5.0),
                ("Zapier".to_owned(), 1200.5),
            ]
        );
        assert!(grouped(Vec::new()).is_empty());
    }
}
