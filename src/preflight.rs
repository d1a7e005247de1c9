//! `--check.pipefy`: a pre-flight in the style of `promtool check config`, with the
//! configured credentials and against the configured Pipefy. Per account: authenticate,
//! introspect Pipefy's schema and validate every enabled collector's documents against
//! it, then check that each organization can be read and, where a usage-statistics
//! collector is enabled, that the credential has the *Usage Stats* permission there.
//!
//! One line per account × collector and per organization, in the user's terms; the
//! billed requests it spent (two per account: the schema check and one request for the
//! organizations); success only when everything enabled will work. When token
//! attribution's query does not validate, the schema's fields that may list tokens are
//! printed, so that an admin can find the real one.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::json;

use crate::collectors;
use crate::config::{Account, Config};
use crate::pipefy::auth::OAUTH_OPERATION;
use crate::pipefy::model::{alias_outcome, de_id};
use crate::pipefy::query::{self, RootField};
use crate::pipefy::schema::{Introspection, Schema};
use crate::pipefy::PipefyClient;
use crate::self_metrics::SelfMetrics;

/// The operation name of the organizations request.
const OPERATION: &str = "PipefyPreflight";
/// Organizations listed one per line up to this many; above, only the failing ones.
const LIST_ALL_UP_TO: usize = 50;

/// What the pre-flight found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// What to print, one line each.
    pub(crate) text: String,
    /// Things that will not work.
    pub(crate) problems: usize,
}

/// Runs the pre-flight for every account of `config`.
pub(crate) async fn check(config: &Config, file: &str) -> Report {
    let mut report = Report::default();
    let _ = writeln!(report.text, "Checking {} with {file}", config.endpoint);
    for account in &config.accounts {
        check_account(config, account, &mut report).await;
    }
    let _ = if report.problems == 0 {
        writeln!(
            report.text,
            "SUCCESS: every enabled collector and organization will work"
        )
    } else {
        writeln!(
            report.text,
            "FAILED: {} problem(s); the exporter would run, but not export all that is configured",
            report.problems
        )
    };
    report
}

async fn check_account(config: &Config, account: &Account, report: &mut Report) {
    let name = &account.name;
    let metrics = Arc::new(SelfMetrics::default());
    let client = match PipefyClient::new(
        &config.endpoint,
        name,
        &account.credential,
        crate::refresh::settings(config),
        metrics.clone(),
    ) {
        Ok(client) => client,
        Err(error) => {
            report.fail(format!("account {name}: FAILED: {error:#}"));
            return;
        }
    };
    if let Err(error) = client.authenticate().await {
        report.fail(format!(
            "account {name}: FAILED: cannot authenticate: {error}"
        ));
        return;
    }
    report.line(format!("account {name}: authenticated"));
    let schema = introspect(config, &client, report, name).await;
    if let Some(schema) = &schema {
        check_collectors(config, schema, report);
    }
    check_organizations(config, account, &client, schema.as_ref(), report).await;
    let mut billed: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (operation, status, count) in metrics.requests() {
        // The token endpoint is not Pipefy's GraphQL API.
        if crate::pipefy::billed(&status) && operation != OAUTH_OPERATION && count > 0 {
            *billed.entry(operation).or_default() += count;
        }
    }
    let total: u64 = billed.values().sum();
    let each: Vec<String> = billed.iter().map(|(op, n)| format!("{op} {n}")).collect();
    report.line(format!(
        "account {name}: billed requests: {total} ({})",
        each.join(", ")
    ));
}

/// Pipefy's schema, or `None` with every collector reported unchecked.
async fn introspect(
    config: &Config,
    client: &PipefyClient,
    report: &mut Report,
    name: &str,
) -> Option<Schema> {
    let why = if !config.schema_check.introspection {
        "pipefy.introspection is false".to_owned()
    } else {
        match client.introspect().await {
            Introspection::Schema(schema) => {
                report.line(format!(
                    "account {name}: schema introspected: {} types",
                    schema.type_count()
                ));
                return Some(schema);
            }
            Introspection::Refused(why) => format!("Pipefy refused introspection: {why}"),
            Introspection::Failed(error) => format!("introspection failed: {error}"),
        }
    };
    for collector in &config.collectors {
        report.fail(format!(
            "  collector {}: NOT CHECKED: {why}",
            collector.name()
        ));
    }
    None
}

fn check_collectors(config: &Config, schema: &Schema, report: &mut Report) {
    for collector in &config.collectors {
        let problems: Vec<_> = collectors::documents(collector.as_ref())
            .iter()
            .flat_map(|document| schema.check(document))
            .collect();
        let Some(first) = problems.first() else {
            report.line(format!("  collector {}: OK", collector.name()));
            continue;
        };
        let at = first
            .coordinate
            .as_deref()
            .map(|c| format!("{c}: "))
            .unwrap_or_default();
        report.fail(format!(
            "  collector {}: FAILED: {at}{}",
            collector.name(),
            first.message
        ));
        if collector.name() == collectors::TOKEN_ATTRIBUTION.name {
            let candidates = schema.token_candidates();
            if candidates.is_empty() {
                report.line(
                    "  no field of Pipefy's schema has `token` or `billing` in its name: disable collectors.token_attribution"
                        .to_owned(),
                );
            } else {
                report.line("  fields of Pipefy's schema that may list tokens (point collectors.token_attribution.query and paths at the right one):".to_owned());
                for candidate in candidates {
                    report.line(format!("    {candidate}"));
                }
            }
        }
    }
}

/// One organization as the organizations request answers it.
#[derive(serde::Deserialize)]
struct Found {
    #[serde(deserialize_with = "de_id")]
    id: String,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(serde::Deserialize)]
struct Allowed {
    #[serde(default)]
    uuid: Option<String>,
}

async fn check_organizations(
    config: &Config,
    account: &Account,
    client: &PipefyClient,
    schema: Option<&Schema>,
    report: &mut Report,
) {
    let name = &account.name;
    let usage: Vec<&str> = config
        .collectors
        .iter()
        .filter(|c| c.needs_usage_stats())
        .map(|c| c.name())
        .collect();
    let document = organizations_request(account, !usage.is_empty());
    // Even this request is checked first: a wrong name would be billed for nothing.
    if let Some(problem) = schema.and_then(|s| s.check(&document.text).into_iter().next()) {
        report.fail(format!(
            "account {name}: organizations NOT CHECKED: {problem}"
        ));
        return;
    }
    let (found, allowed) = match ask_organizations(client, &document, !usage.is_empty()).await {
        Ok(answers) => answers,
        Err(why) => {
            report.fail(format!("account {name}: organizations NOT CHECKED: {why}"));
            return;
        }
    };
    let ids: Vec<String> = match &account.organizations {
        Some(ids) => ids.clone(),
        None => {
            let ids: Vec<String> = found
                .iter()
                .filter(|o| config.shard.owns(&o.id))
                .map(|o| o.id.clone())
                .collect();
            let of_shard = if config.shard.total() > 1 {
                format!(" in shard {}", config.shard)
            } else {
                String::new()
            };
            report.line(format!(
                "account {name}: {} organization(s) the credential can see{of_shard}",
                ids.len(),
            ));
            ids
        }
    };
    let verdicts = verdicts(&ids, &found, allowed.as_deref(), &usage);
    let many = verdicts.len() > LIST_ALL_UP_TO;
    for (label, verdict) in verdicts {
        match verdict {
            Ok(()) if !many => report.line(format!("  {label}: OK")),
            Ok(()) => {}
            Err(why) => report.fail(format!("  {label}: FAILED: {why}")),
        }
    }
}

/// The one request that tells which organizations the credential can read (the listed
/// ones, or all), and, with `usage_stats`, where it has the *Usage Stats* permission.
fn organizations_request(account: &Account, usage_stats: bool) -> query::Document {
    let mut fields = vec![match &account.organizations {
        Some(ids) => RootField::new("orgs", "organizations(ids: $ids) { id uuid name }").var(
            "ids",
            "[ID]",
            json!(ids),
        ),
        None => RootField::new("orgs", "organizations { id uuid name }"),
    }];
    if usage_stats {
        fields.push(RootField::new(
            "usage",
            "myUsageStatsOrganizations { uuid name }",
        ));
    }
    query::document(OPERATION, &fields)
}

/// The organizations the credential can read, and the uuids of those where it has the
/// *Usage Stats* permission (when asked); or why they are not known.
async fn ask_organizations(
    client: &PipefyClient,
    document: &query::Document,
    usage_stats: bool,
) -> Result<(Vec<Found>, Option<Vec<String>>), String> {
    let response = client
        .execute(OPERATION, &document.text, &document.variables)
        .await
        .map_err(|e| e.to_string())?;
    let answer = |alias: &str| -> Result<serde_json::Value, String> {
        match alias_outcome(&response, alias, None)? {
            Some(value) => Ok(value.clone()),
            None => Ok(serde_json::Value::Array(Vec::new())),
        }
    };
    let unexpected = |e: serde_json::Error| format!("unexpected answer: {e}");
    let found: Vec<Found> = serde_json::from_value(answer("a0")?).map_err(unexpected)?;
    let allowed = if usage_stats {
        let list: Vec<Allowed> = serde_json::from_value(answer("a1")?).map_err(unexpected)?;
        Some(list.into_iter().filter_map(|a| a.uuid).collect())
    } else {
        None
    };
    Ok((found, allowed))
}

/// Each organization of `ids` named, and whether it will work: readable (in `found`),
/// and with the Usage Stats permission where `allowed` tells it, which the collectors of
/// `usage` need.
fn verdicts(
    ids: &[String],
    found: &[Found],
    allowed: Option<&[String]>,
    usage: &[&str],
) -> Vec<(String, Result<(), String>)> {
    ids.iter()
        .map(|id| {
            let org = found.iter().find(|o| &o.id == id);
            let label = match org.and_then(|o| o.name.as_deref()) {
                Some(org_name) => format!("organization {id} ({org_name})"),
                None => format!("organization {id}"),
            };
            let verdict = match (org, allowed) {
                (None, _) => Err(
                    "not readable with this credential (no access, or no such organization)"
                        .to_owned(),
                ),
                (Some(org), Some(allowed))
                    if !org.uuid.as_ref().is_some_and(|u| allowed.contains(u)) =>
                {
                    Err(format!(
                        "no Usage Stats permission here, which {} need",
                        usage.join(", ")
                    ))
                }
                _ => Ok(()),
            };
            (label, verdict)
        })
        .collect()
}

impl Report {
    fn line(&mut self, line: String) {
        self.text.push_str(&line);
        self.text.push('\n');
    }

    fn fail(&mut self, line: String) {
        self.problems += 1;
        self.line(line);
    }
}
