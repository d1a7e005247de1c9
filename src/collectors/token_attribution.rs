//! Personal access tokens per organization and whether each names a billing
//! organization, plus the countdown to the date Pipefy assigns one automatically.
//!
//! **Assumption**: Pipefy's public schema documents no field that lists tokens (see
//! `../shared/pipefy-api.md`), so the query is the operator's to replace: a whole root
//! field (`query`, any root field and arguments, `$id` or `$uuid` for the organization)
//! and where its answer holds the token list and each token's id, name and billing
//! organization id (`paths`). The default is the guess
//! `organization(id: $id) { id personalAccessTokens { id name billingOrganization { id } } }`.
//! The schema check validates it like every other query; without a schema, one of its
//! root fields goes alone first, so that a wrong guess costs one failed request.

use std::time::{Duration, SystemTime};

use apollo_compiler::ast;
use serde::Deserialize;
use serde_json::Value;
use timefmt::unix_seconds;

use super::family::org_family;
use super::spec::settings;
use super::{combined, BuildError, Cell, CellValue, Collector, Decoded, Meta, Spec, Target};
use crate::encoding::{Family, Sink, Unit};
use crate::pipefy::query::RootField;
use crate::pipefy::Answers;
use crate::snapshot::{OrgSnapshot, Snapshot};
use crate::thresholds;

pub(crate) const SPEC: Spec = Spec {
    name: "token_attribution",
    operation: "PipefyTokenAttribution",
    default_interval: Duration::from_secs(60 * 60),
};
/// The default token selection inside `organization(id:)` (the shorthand `selection`).
pub(crate) const DEFAULT_TOKEN_SELECTION: &str =
    "personalAccessTokens { id name billingOrganization { id } }";
/// The variables a query may use, both `ID!`: the organization's id and uuid.
const VARIABLES: [&str; 2] = ["id", "uuid"];

settings! {
    #[serde(deserialize_with = "crate::config::de_date")]
    deadline: Option<i64>,
    /// Shorthand: the selection inside `organization(id: $id) { id ... }`.
    selection: Option<String>,
    query: Option<String>,
    paths: Option<RawPaths>,
}

/// Where the answer holds the tokens, as dot-separated response names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
struct RawPaths {
    #[serde(default)]
    tokens: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    billing_organization_id: Option<String>,
}

/// Where the answer of the token query holds what is counted.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Paths {
    /// From the root field's answer to the list of tokens; empty: the answer is the list.
    tokens: Vec<String>,
    /// From one token to its id, its name and its billing organization's id.
    id: Vec<String>,
    name: Vec<String>,
    billing_organization_id: Vec<String>,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            tokens: path("personalAccessTokens"),
            id: path("id"),
            name: path("name"),
            billing_organization_id: path("billingOrganization.id"),
        }
    }
}

/// `a.b.c` as `["a", "b", "c"]`; "" as no step at all.
fn path(text: &str) -> Vec<String> {
    text.split('.')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn build(meta: Meta, raw: Raw) -> Result<TokenAttribution, BuildError> {
    let shorthand = raw.selection.is_some();
    let (field, paths) = match (raw.selection, raw.query) {
        (Some(_), Some(_)) => {
            return Err((
                "selection".into(),
                "set `query` or its shorthand `selection`, not both".into(),
            ))
        }
        (Some(selection), None) => {
            if raw.paths.is_some() {
                return Err((
                    "paths".into(),
                    "goes with `query`; `selection` keeps the default paths".into(),
                ));
            }
            check_selection(&selection)?;
            let field = format!("organization(id: $id) {{ id {selection} }}");
            (field, Paths::default())
        }
        (None, query) => {
            let field = query.unwrap_or_else(|| {
                format!("organization(id: $id) {{ id {DEFAULT_TOKEN_SELECTION} }}")
            });
            (field, paths_of(raw.paths.unwrap_or_default()))
        }
    };
    let field = one_line(&field);
    check_query(&field, &paths).map_err(|(key, message)| {
        // The shorthand's mistakes are the shorthand's key.
        (if shorthand { "selection".into() } else { key }, message)
    })?;
    Ok(TokenAttribution {
        meta,
        deadline: raw.deadline,
        needs_uuid: uses(&field, "uuid"),
        field,
        paths,
    })
}

fn paths_of(raw: RawPaths) -> Paths {
    let default = Paths::default();
    let or = |given: Option<String>, default: Vec<String>| given.map_or(default, |p| path(&p));
    Paths {
        tokens: or(raw.tokens, default.tokens),
        id: or(raw.id, default.id),
        name: or(raw.name, default.name),
        billing_organization_id: or(raw.billing_organization_id, default.billing_organization_id),
    }
}

/// The text on one line: requests are one line, where a line break means nothing.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `text` uses the variable `$name` (and not only a longer one).
fn uses(text: &str, name: &str) -> bool {
    variables(text).any(|v| v == name)
}

/// The names of the `$variables` in `text`.
fn variables(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices('$').map(move |(at, _)| {
        let rest = &text[at + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        &rest[..end]
    })
}

/// The shorthand's rules: fields, aliases and braces only.
fn check_selection(selection: &str) -> Result<(), BuildError> {
    if selection.trim().is_empty() || !balanced_braces(selection) {
        return Err((
            "selection".into(),
            "must be a non-empty GraphQL selection with balanced braces".into(),
        ));
    }
    if let Some(bad) = selection
        .chars()
        .find(|c| matches!(c, '#' | '$' | '"' | '(' | '.'))
    {
        return Err((
            "selection".into(),
            format!("must contain only fields, aliases and braces, not {bad:?}"),
        ));
    }
    Ok(())
}

fn balanced_braces(text: &str) -> bool {
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// One root field that parses, uses no variable but `$id` and `$uuid` (at least one:
/// tokens are counted per organization), nests no deeper than Pipefy allows, and
/// selects every path.
fn check_query(field: &str, paths: &Paths) -> Result<(), BuildError> {
    let key = "query";
    let err = |message: String| Err((key.to_owned(), message));
    if field.trim().is_empty() {
        return err(
            "must be one root field with its selection, e.g. organization(id: $id) { ... }".into(),
        );
    }
    // A comment would hide the rest of the one-line request; fragments would need type
    // names, which Pipefy does not document.
    if field.contains('#') || field.contains("...") {
        return err("must not contain comments (#) or fragments (...)".into());
    }
    if let Some(other) = variables(field).find(|v| !VARIABLES.contains(v)) {
        return err(format!(
            "uses ${other}: only $id (the organization's id) and $uuid (its uuid) are given"
        ));
    }
    if !VARIABLES.iter().any(|v| uses(field, v)) {
        return err("must use $id or $uuid: tokens are counted per organization".into());
    }
    let document = format!("query Q($id: ID!, $uuid: ID!) {{ a0: {field} }}");
    let parsed = match ast::Document::parse(document, "token_attribution.query") {
        Ok(parsed) => parsed,
        Err(with_errors) => {
            let first = with_errors
                .errors
                .iter()
                .next()
                .map(|d| d.error.to_string())
                .unwrap_or_default();
            return err(format!("is not a GraphQL field: {first}"));
        }
    };
    let Some(root) = root_field(&parsed) else {
        return err("must be exactly one root field with its selection".into());
    };
    let depth = crate::pipefy::complexity::estimate(field, 1).depth;
    if depth > crate::pipefy::complexity::MAX_DEPTH {
        return err(format!(
            "nests {depth} levels deep; Pipefy refuses queries deeper than {}",
            crate::pipefy::complexity::MAX_DEPTH
        ));
    }
    let Some(token) = selected(&root.selection_set, &paths.tokens) else {
        return Err((
            "paths.tokens".into(),
            format!("{:?} is not selected by the query", paths.tokens.join(".")),
        ));
    };
    for (name, steps) in [
        ("id", &paths.id),
        ("name", &paths.name),
        ("billing_organization_id", &paths.billing_organization_id),
    ] {
        if steps.is_empty() || selected(token, steps).is_none() {
            return Err((
                format!("paths.{name}"),
                format!(
                    "{:?} is not selected inside each token of the query",
                    steps.join(".")
                ),
            ));
        }
    }
    Ok(())
}

/// The only root field of a parsed `query Q { a0: ... }`, or `None` if not exactly one.
fn root_field(document: &ast::Document) -> Option<&ast::Field> {
    let mut fields = document.definitions.iter().flat_map(|d| match d {
        ast::Definition::OperationDefinition(op) => op.selection_set.iter().collect(),
        _ => Vec::new(),
    });
    let only = fields.next()?;
    if fields.next().is_some() {
        return None;
    }
    match only {
        ast::Selection::Field(field) => Some(field),
        _ => None,
    }
}

/// The selection below `steps` (response names, an alias where there is one).
fn selected<'s>(selection: &'s [ast::Selection], steps: &[String]) -> Option<&'s [ast::Selection]> {
    let Some((first, rest)) = steps.split_first() else {
        return Some(selection);
    };
    let field = selection.iter().find_map(|s| match s {
        ast::Selection::Field(f) if f.alias.as_ref().unwrap_or(&f.name).as_str() == first => {
            Some(f)
        }
        _ => None,
    })?;
    selected(&field.selection_set, rest)
}

#[derive(Debug)]
pub(crate) struct TokenAttribution {
    meta: Meta,
    /// Unix time (seconds, UTC midnight) of the automatic assignment, if configured.
    deadline: Option<i64>,
    /// The root field asked per organization, on one line.
    field: String,
    /// Whether it takes the organization's uuid.
    needs_uuid: bool,
    paths: Paths,
}

/// A personal access token and whether it names a billing organization.
#[derive(Clone, Debug, PartialEq)]
struct Token {
    id: String,
    name: String,
    assigned: bool,
}

/// This collector's slice of an organization.
type Tokens = Vec<Token>;

/// The fresh tokens of an organization (`None` when unknown, unlike "no tokens").
fn of(org: &OrgSnapshot, now: SystemTime) -> Option<&[Token]> {
    org.fresh::<Tokens>(SPEC.name, now).map(Vec::as_slice)
}

/// The value at `steps` below `value`; `None` where a step is missing or null.
fn at<'v>(value: &'v Value, steps: &[String]) -> Option<&'v Value> {
    steps
        .iter()
        .try_fold(value, |v, step| v.get(step))
        .filter(|v| !v.is_null())
}

/// The tokens of one organization's answer, one entry per token id (a token listed
/// twice would export a duplicate series).
fn tokens(answer: &Value, paths: &Paths) -> Result<Tokens, String> {
    let shape = |what: &str| format!("unexpected response shape: {what}");
    let list = match at(answer, &paths.tokens) {
        Some(Value::Array(list)) => list,
        Some(_) => return Err(shape(&format!("{} is not a list", paths.tokens.join(".")))),
        None => return Err(shape(&format!("no {}", paths.tokens.join(".")))),
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let id = match at(item, &paths.id) {
            Some(Value::String(s)) => s.clone(),
            // GraphQL `ID`s are strings, but some servers send numbers.
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(shape(&format!("a token without {}", paths.id.join(".")))),
        };
        if !seen.insert(id.clone()) {
            continue;
        }
        let name = match at(item, &paths.name) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        out.push(Token {
            id,
            name,
            assigned: at(item, &paths.billing_organization_id).is_some(),
        });
    }
    Ok(out)
}

impl Collector for TokenAttribution {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn needs_uuid(&self) -> bool {
        self.needs_uuid
    }
    fn needs_usage_stats(&self) -> bool {
        false
    }
    /// Pipefy documents no field listing tokens: the selection is a guess.
    fn assumed(&self) -> bool {
        true
    }

    fn fields(&self, orgs: &[Target]) -> Vec<RootField> {
        combined::per_org("", orgs, &self.field, None)
    }

    fn decode(&self, orgs: &[Target], answers: &Answers) -> Vec<Decoded> {
        combined::per_org_answers::<Value>("", orgs, answers)
            .map(|(org, answer)| {
                Decoded::new(&org.id, answer.and_then(|a| tokens(&a, &self.paths)))
            })
            .collect()
    }

    fn encode(&self, snapshot: &Snapshot, now: SystemTime, sink: &mut dyn Sink) {
        org_family(
            sink,
            snapshot,
            Family::gauge(
                "pipefy_tokens",
                "Personal access tokens by billing attribution (assigned: names a billing organization).",
            ),
            |org, emit| {
                if let Some(tokens) = of(org, now) {
                    let assigned = tokens.iter().filter(|t| t.assigned).count();
                    emit(&[("billing", "assigned")], assigned as f64);
                    emit(&[("billing", "unassigned")], (tokens.len() - assigned) as f64);
                }
            },
        );
        org_family(
            sink,
            snapshot,
            Family::info(
                "pipefy_token_unassigned",
                "1 for each personal access token that has no billing organization yet.",
            ),
            |org, emit| {
                for t in of(org, now).unwrap_or_default() {
                    if !t.assigned {
                        emit(&[("token_id", &t.id), ("token_name", &t.name)], 1.0);
                    }
                }
            },
        );
        if let Some(deadline) = self.deadline {
            let family = Family::gauge(
                "pipefy_token_attribution_deadline_timestamp",
                "Configured date (Unix time, UTC midnight) on which Pipefy assigns a billing organization to tokens that still have none.",
            )
            .in_unit(Unit::Seconds);
            sink.family(&family, &mut |s| s.sample(&[], deadline as f64));
        }
    }

    fn encode_live(&self, now: SystemTime, sink: &mut dyn Sink) {
        if let Some(deadline) = self.deadline {
            // Seconds, not days: Prometheus base units (promtool check metrics rejects a
            // `_days` name). The rules file records the days.
            let family = Family::gauge(
                "pipefy_token_attribution_deadline_remaining",
                "Time left until the token-attribution deadline, computed at scrape time; negative once passed.",
            )
            .in_unit(Unit::Seconds);
            let remaining = deadline as f64 - unix_seconds(now);
            sink.family(&family, &mut |s| s.sample(&[], remaining));
        }
    }

    fn headline(&self, now: SystemTime) -> Option<String> {
        let deadline = self.deadline?;
        let (y, m, d) = timefmt::civil_from_days(deadline.div_euclid(86_400));
        let days = self.days_left(now)?;
        Some(format!(
            "Token billing-attribution deadline: {y:04}-{m:02}-{d:02} ({days:.1} days left)"
        ))
    }

    /// The unassigned tokens, highlighted by the same rule as the deadline alerts (none
    /// without a deadline: no alert fires then either).
    fn cells(&self, org: &OrgSnapshot, now: SystemTime) -> Vec<Cell> {
        let value = match of(org, now) {
            None => CellValue::NoData,
            Some(tokens) => {
                let count = tokens.iter().filter(|t| !t.assigned).count();
                let level = self.days_left(now).map_or(thresholds::Level::Ok, |days| {
                    thresholds::deadline_level(count, days)
                });
                CellValue::Count { count, level }
            }
        };
        vec![Cell::own("unassigned tokens", value)]
    }
}

impl TokenAttribution {
    /// Days left before the configured deadline (negative once passed).
    fn days_left(&self, now: SystemTime) -> Option<f64> {
        Some((self.deadline? as f64 - unix_seconds(now)) / 86_400.0)
    }
}

#[cfg(test)]
mod tests;
