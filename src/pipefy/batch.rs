//! Request planning: the fewest requests Pipefy's limits allow for what a refresh asks.
//!
//! A refresh hands the client *parts*: one collector's (or the identity step's) root
//! fields for some organizations. Planning then
//! 1. merges fields of different parts that make the same root call with the same
//!    arguments (`organization(id: $id)` for subscription limits, token attribution and
//!    identity) into one alias selecting the union of their selections: one root field
//!    and one `id` fewer per organization than two aliases, and half the aliases;
//! 2. estimates each field's complexity the way Pipefy describes it ([`complexity`]),
//!    times what earlier rejections taught ([`Learned`]);
//! 3. packs all fields, whatever their collector, into as few requests as the
//!    complexity budget and `max_orgs_per_request` allow (first fit, largest first).
//!
//! What is planned is chosen field by field (`take`), so that the fetch can plan a probe
//! (one field of one part), or the fields a refusal held back, with the same rules.
//!
//! A request Pipefy rejects as too large is split in halves (see [`PipefyClient::fetch`]
//! (super::PipefyClient::fetch)), and the size that worked is remembered per field shape.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::complexity::{self, Estimate};
use super::model::GraphQlResponse;
use super::query::{self, Document, RootField};

/// The operation name of a request that carries several collectors' fields.
pub(crate) const SHARED_OPERATION: &str = "PipefyRefresh";

/// What a refresh asks of one account: one collector's root fields, or a step's.
#[derive(Clone, Debug)]
pub(crate) struct Part {
    /// Its own operation name: a request that carries only this part's fields has it.
    pub operation: &'static str,
    /// The collector or step, in log lines.
    pub label: &'static str,
    /// Whether one of its fields goes alone first, the rest once Pipefy has answered
    /// it: its query rests on a name Pipefy does not document, and neither a schema
    /// check nor an answer has shown it to exist. A wrong name fails a whole request,
    /// which must not take the other collectors down with it, nor cost one failed
    /// request per request it would have shared.
    pub probe: bool,
    pub fields: Vec<RootField>,
}

/// How requests are sized.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RequestLimits {
    /// Pipefy's documented complexity limit per request.
    pub max_complexity: u64,
    /// Root fields per request at most (`max_orgs_per_request`).
    pub max_fields: usize,
    /// What a list without `first:` multiplies by (an assumption).
    pub page_size: u64,
    /// Lower-case fragments of a path-less error message or `extensions.code` that mean
    /// "too complex or too slow" rather than "wrong" (an assumption).
    pub too_large: Vec<String>,
}

/// Root fields per request at most, and the default of `max_orgs_per_request`: requests
/// are sized by their estimated complexity first; this bounds the aliases (and the
/// time) of a request made of cheap fields.
pub(crate) const MAX_FIELDS: usize = 500;

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_complexity: complexity::MAX_COMPLEXITY,
            max_fields: MAX_FIELDS,
            page_size: 50,
            too_large: vec!["complexity".into(), "timeout".into(), "timed out".into()],
        }
    }
}

/// One part's share of a planned field.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Owner {
    pub part: usize,
    /// The part's key for the answer.
    pub key: String,
    /// The response names at the top of this part's selection: an error below the
    /// alias concerns this part only if its path goes through one of them. Shared by
    /// every field of the same text.
    pub names: Arc<[String]>,
}

/// One aliased root field of a request, with the parts that share it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Planned {
    pub text: Arc<str>,
    pub variables: Vec<query::Variable>,
    pub owners: Vec<Owner>,
    pub estimate: Estimate,
    /// The estimate times the learned factor of its shape.
    pub cost: u64,
}

/// One request to send.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bin {
    pub operation: &'static str,
    pub fields: Vec<Planned>,
    pub cost: u64,
    /// Index of the rejected request this one is a piece of, if any.
    pub origin: Option<usize>,
    /// A probe: one field of one part, sent even while that part is in doubt.
    pub probe: bool,
}

impl Bin {
    fn new(fields: Vec<Planned>, parts: &[Part], origin: Option<usize>) -> Bin {
        let operations: HashSet<&'static str> = fields
            .iter()
            .flat_map(|f| f.owners.iter().map(|o| parts[o.part].operation))
            .collect();
        let operation = match operations.iter().next() {
            Some(only) if operations.len() == 1 => only,
            _ => SHARED_OPERATION,
        };
        Bin {
            operation,
            cost: fields.iter().map(|f| f.cost).sum(),
            fields,
            origin,
            probe: false,
        }
    }

    /// A request with nothing in it.
    pub(crate) fn empty(parts: &[Part]) -> Bin {
        Bin::new(Vec::new(), parts, None)
    }

    /// The GraphQL document, each alias keyed by the field's index in the bin.
    pub(crate) fn document(&self) -> Document {
        let fields: Vec<RootField> = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| RootField {
                key: i.to_string(),
                text: f.text.clone(),
                variables: f.variables.clone(),
            })
            .collect();
        query::document(self.operation, &fields)
    }

    /// The two halves of a rejected request (by field count), tagged with `origin`.
    pub(crate) fn halves(mut self, parts: &[Part], origin: usize) -> (Bin, Bin) {
        let second = self.fields.split_off(self.fields.len() / 2);
        (
            Bin::new(self.fields, parts, Some(origin)),
            Bin::new(second, parts, Some(origin)),
        )
    }

    /// The parts with a field in this request.
    pub(crate) fn parts(&self) -> HashSet<usize> {
        self.fields
            .iter()
            .flat_map(|f| f.owners.iter().map(|o| o.part))
            .collect()
    }
}

/// What rejections taught: per field shape (its text), how much more than estimated it
/// weighs. A factor of 2 halves the fields of that shape a request carries.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    factors: HashMap<Arc<str>, f64>,
}

impl Learned {
    pub(crate) fn factor(&self, text: &str) -> f64 {
        self.factors.get(text).copied().unwrap_or(1.0)
    }

    /// A request made of `texts` was rejected, and its pieces went through up to `worked`
    /// (in cost units of the plan): from now on that much is a full request.
    pub(crate) fn remember(&mut self, texts: &[Arc<str>], worked: u64, max_complexity: u64) {
        let scale = max_complexity as f64 / worked.max(1) as f64;
        if scale <= 1.0 {
            return;
        }
        // Each shape once: a request holds many fields of the same shape.
        let shapes: HashSet<&Arc<str>> = texts.iter().collect();
        for text in shapes {
            let factor = self.factor(text) * scale;
            self.factors.insert(text.clone(), factor);
        }
    }
}

/// Plans the requests for the fields of `parts` that `take(part, field)` selects:
/// merged, estimated and packed.
pub(crate) fn plan(
    parts: &[Part],
    take: &dyn Fn(usize, usize) -> bool,
    limits: &RequestLimits,
    learned: &Learned,
) -> Vec<Bin> {
    let mut shapes = Shapes::new(limits.page_size);
    let mut fields: Vec<Planned> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        for (j, field) in part.fields.iter().enumerate() {
            if take(i, j) {
                fields.push(owned(i, field, &mut shapes));
            }
        }
    }
    let fields: Vec<Planned> = merge(fields, &mut shapes)
        .into_iter()
        .map(|mut f| {
            f.estimate = shapes.get(&f.text).estimate;
            // Rounded down, so that the size that worked still fits.
            let cost = f.estimate.complexity as f64 * learned.factor(&f.text);
            f.cost = (cost.floor() as u64).max(f.estimate.complexity);
            f
        })
        .collect();
    pack(fields, limits.max_complexity, limits.max_fields.max(1))
        .into_iter()
        .map(|fields| Bin::new(fields, parts, None))
        .collect()
}

/// Every field of every part.
pub(crate) fn everything(_part: usize, _field: usize) -> bool {
    true
}

/// What planning works out once per field text rather than once per organization:
/// each collector's fields share one text (only their variables differ), so with
/// thousands of organizations a handful of texts are parsed, estimated and merged, and
/// the results are shared (see BENCHMARKS.md for what copying them cost).
struct Shapes {
    page_size: u64,
    by_text: HashMap<Arc<str>, Shape>,
    /// [`union`] of two texts, by the texts.
    unions: HashMap<TextPair, Option<Arc<str>>>,
}

/// Two field texts, left and right.
type TextPair = (Arc<str>, Arc<str>);

#[derive(Clone)]
struct Shape {
    /// The root call without its selection (`organization(id: $id)`), for merging;
    /// `None` when the text has no selection to merge.
    head: Option<Arc<str>>,
    /// The response names at the top of the selection.
    names: Arc<[String]>,
    estimate: Estimate,
}

impl Shapes {
    fn new(page_size: u64) -> Self {
        Shapes {
            page_size,
            by_text: HashMap::new(),
            unions: HashMap::new(),
        }
    }

    fn get(&mut self, text: &Arc<str>) -> &Shape {
        let page_size = self.page_size;
        self.by_text.entry(text.clone()).or_insert_with(|| {
            let split = split_selection(text);
            Shape {
                head: split.as_ref().map(|(head, _)| Arc::from(*head)),
                names: split
                    .map(|(_, items)| items.into_iter().map(|(name, _)| name).collect())
                    .unwrap_or_default(),
                estimate: complexity::estimate(text, page_size),
            }
        })
    }

    fn union(&mut self, left: &Arc<str>, right: &Arc<str>) -> Option<Arc<str>> {
        self.unions
            .entry((left.clone(), right.clone()))
            .or_insert_with(|| union(left, right).map(Arc::from))
            .clone()
    }
}

fn owned(part: usize, field: &RootField, shapes: &mut Shapes) -> Planned {
    Planned {
        text: field.text.clone(),
        variables: field.variables.clone(),
        owners: vec![Owner {
            part,
            key: field.key.clone(),
            names: shapes.get(&field.text).names.clone(),
        }],
        estimate: Estimate::default(),
        cost: 0,
    }
}

/// Merges fields with the same root call and the same variable values into one field
/// selecting the union of their selections. Fields whose selections would give one
/// response name two meanings stay apart.
fn merge(fields: Vec<Planned>, shapes: &mut Shapes) -> Vec<Planned> {
    let mut out: Vec<Planned> = Vec::with_capacity(fields.len());
    let mut index: HashMap<(Arc<str>, String), Vec<usize>> = HashMap::new();
    for field in fields {
        let Some(head) = shapes.get(&field.text).head.clone() else {
            out.push(field);
            continue;
        };
        let vars = serde_json::to_string(
            &field
                .variables
                .iter()
                .map(|v| (v.name, v.ty, &v.value))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        let candidates = index.entry((head, vars)).or_default();
        let merged = candidates
            .iter()
            .any(|&at| match shapes.union(&out[at].text, &field.text) {
                Some(text) => {
                    out[at].text = text;
                    out[at].owners.extend(field.owners.iter().cloned());
                    true
                }
                None => false,
            });
        if !merged {
            candidates.push(out.len());
            out.push(field);
        }
    }
    out
}

/// `head { a b }` ∪ `head { b c }` = `head { a b c }`; `None` when a response name
/// would mean two different things.
fn union(left: &str, right: &str) -> Option<String> {
    let (head, mut items) = split_selection(left)?;
    let (_, more) = split_selection(right)?;
    for (name, text) in more {
        match items.iter().find(|(n, _)| *n == name) {
            Some((_, known)) if normalize(known) == normalize(&text) => {}
            Some(_) => return None,
            None => items.push((name, text)),
        }
    }
    let body: Vec<&str> = items.iter().map(|(_, t)| t.as_str()).collect();
    Some(format!("{head} {{ {} }}", body.join(" ")))
}

fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `head { items }` as the head and the top-level items `(response name, text)`.
fn split_selection(text: &str) -> Option<(&str, Vec<(String, String)>)> {
    let open = text.find('{')?;
    let close = text.rfind('}')?;
    let head = text[..open].trim_end();
    let body = &text[open + 1..close];
    let bytes = body.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < bytes.len() && (bytes[*i].is_ascii_whitespace() || bytes[*i] == b',') {
            *i += 1;
        }
    };
    let name = |i: &mut usize| {
        let start = *i;
        while *i < bytes.len() && (bytes[*i].is_ascii_alphanumeric() || bytes[*i] == b'_') {
            *i += 1;
        }
        start..*i
    };
    let balanced = |i: &mut usize, open: u8, close: u8| -> Option<()> {
        let mut depth = 0usize;
        while *i < bytes.len() {
            if bytes[*i] == open {
                depth += 1;
            } else if bytes[*i] == close {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    *i += 1;
                    return Some(());
                }
            }
            *i += 1;
        }
        None
    };
    loop {
        skip_space(&mut i);
        if i >= bytes.len() {
            break;
        }
        let start = i;
        let first = name(&mut i);
        if first.is_empty() {
            return None;
        }
        let response = body[first].to_owned();
        skip_space(&mut i);
        if bytes.get(i) == Some(&b':') {
            i += 1;
            skip_space(&mut i);
            if name(&mut i).is_empty() {
                return None;
            }
            skip_space(&mut i);
        }
        if bytes.get(i) == Some(&b'(') {
            balanced(&mut i, b'(', b')')?;
            skip_space(&mut i);
        }
        if bytes.get(i) == Some(&b'{') {
            balanced(&mut i, b'{', b'}')?;
        }
        items.push((response, body[start..i].trim().to_owned()));
    }
    Some((head, items))
}

/// First fit, largest first: each field goes into the first request with room for its
/// cost and one more alias. A field costlier than the budget goes alone.
fn pack(mut fields: Vec<Planned>, budget: u64, max_fields: usize) -> Vec<Vec<Planned>> {
    fields.sort_by_key(|f| std::cmp::Reverse(f.cost));
    let mut bins: Vec<(u64, Vec<Planned>)> = Vec::new();
    for field in fields {
        let fits = bins.iter_mut().find(|(cost, bin)| {
            bin.len() < max_fields && cost.saturating_add(field.cost) <= budget
        });
        match fits {
            Some((cost, bin)) => {
                *cost += field.cost;
                bin.push(field);
            }
            None => bins.push((field.cost, vec![field])),
        }
    }
    bins.into_iter().map(|(_, bin)| bin).collect()
}

/// How Pipefy took a request that got an answer.
#[derive(Debug, PartialEq)]
pub(crate) enum Reception {
    /// Data came back (some aliases may have their own errors).
    Answered,
    /// Refused as a whole for its size or its time: worth splitting.
    TooLarge(String),
    /// Refused as a whole for another reason (a validation error: an unknown name).
    Refused(String),
}

/// A request refused as a whole has errors without a `path` and no data; it is too
/// large when one of them mentions one of `markers` (in its message or its
/// `extensions.code`).
pub(crate) fn reception(response: &GraphQlResponse, markers: &[String]) -> Reception {
    let has_data = response
        .data
        .as_ref()
        .is_some_and(|d| d.values().any(|v| !v.is_null()));
    let global: Vec<_> = response
        .errors
        .iter()
        .filter(|e| e.path.as_ref().is_none_or(|p| p.is_empty()))
        .collect();
    if has_data || global.is_empty() {
        return Reception::Answered;
    }
    let message = super::model::truncate(
        &global
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    );
    let marked = global.iter().any(|e| {
        let code = e
            .extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let text = format!("{} {}", e.message, code).to_lowercase();
        markers
            .iter()
            .any(|m| !m.is_empty() && text.contains(m.as_str()))
    });
    if marked {
        Reception::TooLarge(message)
    } else {
        Reception::Refused(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: &str = "organization(id: $id) { id uuid name planName activeSubscription { limits { resource limit used } } }";
    const TOKENS: &str =
        "organization(id: $id) { id personalAccessTokens { id name billingOrganization { id } } }";
    const IDENTITY: &str = "organization(id: $id) { id uuid name planName }";
    const INTEGRATIONS: &str = "integrationsUsageStats(organizationUuid: $uuid, period: $period) { tasksConsumed { usage limit } activeFlows }";

    fn part(operation: &'static str, text: &str, ids: std::ops::Range<usize>) -> Part {
        let var = if text.contains("$uuid") { "uuid" } else { "id" };
        Part {
            operation,
            label: operation,
            probe: false,
            fields: ids
                .map(|i| RootField::new(i.to_string(), text).var(var, "ID!", json!(i.to_string())))
                .collect(),
        }
    }

    #[test]
    fn the_same_organization_call_is_asked_once_with_the_union_of_selections() {
        let parts = [
            part("RequestLimits", LIMITS, 0..3),
            part("Tokens", TOKENS, 0..3),
            part("Identity", IDENTITY, 2..4),
        ];
        let bins = plan(
            &parts,
            &everything,
            &RequestLimits::default(),
            &Learned::default(),
        );
        assert_eq!(bins.len(), 1);
        let bin = &bins[0];
        assert_eq!(bin.operation, SHARED_OPERATION);
        assert_eq!(bin.fields.len(), 4, "organizations 0, 1, 2 and 3");
        let org2 = bin
            .fields
            .iter()
            .find(|f| f.variables[0].value == json!("2"))
            .unwrap();
        assert_eq!(
            &*org2.text,
            "organization(id: $id) { id uuid name planName activeSubscription { limits { resource limit used } } personalAccessTokens { id name billingOrganization { id } } }"
        );
        // 1 + 4 + 152 (limits) + 201 (tokens): 2 less than two aliases.
        assert_eq!(org2.estimate.complexity, 358);
        let owners: Vec<(usize, &str)> = org2
            .owners
            .iter()
            .map(|o| (o.part, o.key.as_str()))
            .collect();
        assert_eq!(owners, vec![(0, "2"), (1, "2"), (2, "2")]);
        assert_eq!(&org2.owners[1].names[..], ["id", "personalAccessTokens"]);
    }

    #[test]
    fn what_is_planned_is_chosen_field_by_field() {
        let parts = [
            part("RequestLimits", LIMITS, 0..3),
            part("Tokens", TOKENS, 0..3),
        ];
        // One token field alone (a probe): its own operation, nothing merged into it.
        let bins = plan(
            &parts,
            &|p, f| p == 1 && f == 2,
            &RequestLimits::default(),
            &Learned::default(),
        );
        assert_eq!(bins.len(), 1);
        assert_eq!(bins[0].operation, "Tokens");
        assert_eq!(&*bins[0].fields[0].text, TOKENS);
        assert_eq!(bins[0].fields[0].variables[0].value, json!("2"));
        // The limits fields and the two other token fields: organizations 0 and 1 share
        // one alias each, organization 2 asks for limits only.
        let bins = plan(
            &parts,
            &|p, f| p == 0 || f < 2,
            &RequestLimits::default(),
            &Learned::default(),
        );
        let owners: Vec<usize> = bins[0].fields.iter().map(|f| f.owners.len()).collect();
        assert_eq!(owners, vec![2, 2, 1]);
    }

    #[test]
    fn requests_fill_up_to_the_complexity_budget_across_collectors() {
        // 300 limits fields (157 each) and 300 integrations fields (5 each): 48,600 in
        // all, under one budget of 50,000.
        let parts = [
            part("RequestLimits", LIMITS, 0..300),
            part("Integrations", INTEGRATIONS, 0..300),
        ];
        let bins = plan(
            &parts,
            &everything,
            &RequestLimits {
                max_fields: 1000,
                ..RequestLimits::default()
            },
            &Learned::default(),
        );
        assert_eq!(bins.len(), 1);
        assert_eq!(bins[0].cost, 300 * 157 + 300 * 5);
        // A budget of 20,000: ⌈48,600 / 20,000⌉ = 3, and no request over it.
        let small = RequestLimits {
            max_complexity: 20_000,
            max_fields: 1000,
            ..RequestLimits::default()
        };
        let bins = plan(&parts, &everything, &small, &Learned::default());
        assert_eq!(bins.len(), 3);
        assert!(bins.iter().all(|b| b.cost <= 20_000));
        // The cap on aliases holds too.
        let capped = RequestLimits {
            max_fields: 250,
            ..RequestLimits::default()
        };
        let sizes: Vec<usize> = plan(&parts, &everything, &capped, &Learned::default())
            .iter()
            .map(|b| b.fields.len())
            .collect();
        assert_eq!(sizes, vec![250, 250, 100]);
    }

    #[test]
    fn a_remembered_rejection_halves_the_next_plan() {
        let parts = [part("RequestLimits", LIMITS, 0..300)];
        let limits = RequestLimits {
            max_fields: 1000,
            ..RequestLimits::default()
        };
        let mut learned = Learned::default();
        let bins = plan(&parts, &everything, &limits, &learned);
        let sizes: Vec<usize> = bins.iter().map(|b| b.fields.len()).collect();
        // 300 × 157 = 47,100: one request.
        assert_eq!(sizes, vec![300]);
        // Rejected; its halves (150 fields, 23,550) went through.
        let rejected = vec![Arc::<str>::from(LIMITS); 300];
        learned.remember(&rejected, 150 * 157, limits.max_complexity);
        let sizes: Vec<usize> = plan(&parts, &everything, &limits, &learned)
            .iter()
            .map(|b| b.fields.len())
            .collect();
        assert_eq!(sizes, vec![150, 150]);
    }

    #[test]
    fn conflicting_selections_stay_apart() {
        let a = part("A", "organization(id: $id) { id name }", 0..1);
        let b = part("B", "organization(id: $id) { id name: planName }", 0..1);
        let bins = plan(
            &[a, b],
            &everything,
            &RequestLimits::default(),
            &Learned::default(),
        );
        assert_eq!(bins[0].fields.len(), 2);
    }

    #[test]
    fn a_pathless_complexity_error_is_too_large_an_unknown_field_is_refused() {
        let markers = RequestLimits::default().too_large;
        let response = |v| serde_json::from_value::<GraphQlResponse>(v).unwrap();
        assert_eq!(
            reception(
                &response(
                    json!({"errors": [{"message": "Query has complexity of 61000, which exceeds max complexity of 50000"}]})
                ),
                &markers
            ),
            Reception::TooLarge(
                "Query has complexity of 61000, which exceeds max complexity of 50000".into()
            )
        );
        assert_eq!(
            reception(
                &response(
                    json!({"data": null, "errors": [{"message": "x", "extensions": {"code": "TIMEOUT"}}]})
                ),
                &markers
            ),
            Reception::TooLarge("x".into())
        );
        assert_eq!(
            reception(
                &response(
                    json!({"errors": [{"message": "Field 'apiTokens' doesn't exist on type 'Organization'"}]})
                ),
                &markers
            ),
            Reception::Refused("Field 'apiTokens' doesn't exist on type 'Organization'".into())
        );
        // Data next to errors: answered, the errors belong to their aliases.
        assert_eq!(
            reception(
                &response(
                    json!({"data": {"a0": {"id": "2"}, "a1": null}, "errors": [{"message": "Permission denied", "path": ["a1"]}]})
                ),
                &markers
            ),
            Reception::Answered
        );
        assert_eq!(
            reception(&response(json!({"data": {}})), &markers),
            Reception::Answered
        );
    }
}
