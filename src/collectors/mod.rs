//! One file per collector, the way node_exporter's `collector/` directory is laid out.
//! A collector file holds only what is its own: its [`Spec`] and settings, the GraphQL
//! root fields it asks Pipefy for, the decoding of the answers into its slice of the
//! snapshot, the metric families it renders from that slice, and what it shows on the
//! landing page ([`Cell`]s). What every collector shares is declared once: `spec.rs`
//! (name, operation, default interval, `enabled` and `interval`), `schedule.rs` (when it
//! runs), `combined.rs` (how the usage statistics are asked), `family.rs` (how
//! per-organization families are written), `summary.rs` (landing-page cells).
//!
//! The scheduler ([`crate::refresh`]) drives any collector through [`Collector`]; the
//! config parser reaches them through [`RawCollectors`]. Both come from the one
//! `registry!` line at the bottom of this file, which also declares their modules, so
//! adding a collector is its own file plus one name there (ARCHITECTURE.md, "Adding a
//! collector").

mod combined;
pub(crate) mod cost;
mod family;
mod schedule;
mod spec;
mod summary;

// The collectors' own modules are declared by `registry!` below.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;

use crate::encoding::Sink;
use crate::pipefy::query::RootField;
use crate::pipefy::Answers;
use crate::snapshot::{OrgMeta, OrgSnapshot, Outcome, Slice, Snapshot};

pub(crate) use combined::answer;
pub(crate) use family::org_family;
pub(crate) use schedule::Schedule;
pub(crate) use schedule::{Defaults, Period};
use spec::{join_key, Toggle};
pub(crate) use spec::{BuildError, Meta, Spec};
pub(crate) use summary::{Cell, CellValue};
pub(crate) use token_attribution::SPEC as TOKEN_ATTRIBUTION;

/// An organization a collector is asked about. Collectors that address organizations
/// by uuid (the usage-statistics queries) are only given organizations whose uuid is
/// known: the scheduler learns it first, and fails the others itself.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Target {
    pub id: String,
    pub uuid: Option<String>,
}

impl Target {
    /// The uuid, or "" for a collector that does not need one.
    pub(crate) fn uuid(&self) -> &str {
        self.uuid.as_deref().unwrap_or("")
    }
}

/// One organization's outcome of one collector.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub org_id: String,
    /// Identity learned from the answer, for collectors whose answers carry it. Boxed:
    /// most answers carry none, and a refresh holds one of these per organization and
    /// collector.
    pub meta: Option<Box<OrgMeta>>,
    pub result: Result<Slice, String>,
}

impl Decoded {
    pub(crate) fn new<T: Any + Send + Sync>(org_id: &str, result: Result<T, String>) -> Self {
        Decoded {
            org_id: org_id.to_owned(),
            meta: None,
            result: result.map(Slice::new),
        }
    }

    /// What the snapshot keeps of it, as `collector`'s outcome.
    pub(crate) fn into_outcome(self, collector: &dyn Collector) -> Outcome {
        Outcome {
            org_id: self.org_id,
            collector: collector.name(),
            stale_after: collector.schedule().stale_after,
            result: self.result,
        }
    }
}

/// `collector`'s outcome for an organization it could not ask about.
pub(crate) fn failed(org_id: &str, collector: &dyn Collector, error: String) -> Outcome {
    Decoded::new::<()>(org_id, Err(error)).into_outcome(collector)
}

/// A thing the exporter refreshes on its own schedule and renders when it publishes.
pub(crate) trait Collector: Send + Sync + Debug {
    fn meta(&self) -> &Meta;
    fn name(&self) -> &'static str {
        self.meta().name
    }
    fn operation(&self) -> &'static str {
        self.meta().operation
    }
    fn schedule(&self) -> &Schedule {
        &self.meta().schedule
    }
    /// Whether its answers tell each organization's identity (so that its failure means
    /// `organization(id:)` fails for that organization).
    fn tells_identity(&self) -> bool {
        false
    }
    /// Whether it addresses organizations by uuid.
    fn needs_uuid(&self) -> bool {
        true
    }
    /// Whether it reads Pipefy's *Usage Stats*, which takes that permission in each
    /// organization (the usage-statistics collectors).
    fn needs_usage_stats(&self) -> bool {
        true
    }
    /// Whether its query rests on a name or type Pipefy does not document (see
    /// "Assumptions" in docs/configuration.md). Unless the schema check has validated
    /// it, one of its root fields goes alone first and the rest once Pipefy has answered
    /// it: a wrong name fails a whole request.
    fn assumed(&self) -> bool {
        false
    }
    /// The root fields to ask for these organizations (all with a uuid when
    /// [`Collector::needs_uuid`]).
    fn fields(&self, orgs: &[Target]) -> Vec<RootField>;
    /// One outcome per organization of `orgs`, from the answers to [`Collector::fields`].
    fn decode(&self, orgs: &[Target], answers: &Answers) -> Vec<Decoded>;
    /// Writes its metric families from the snapshot, with the values still fresh at
    /// `now`. Called when a snapshot is published, not on every scrape: reads only.
    fn encode(&self, snapshot: &Snapshot, now: SystemTime, sink: &mut dyn Sink);
    /// Writes the families whose value depends on the scrape time alone (a countdown),
    /// not on the snapshot. Called on every scrape: a few series at most, never one per
    /// organization. Most collectors have none.
    fn encode_live(&self, _now: SystemTime, _sink: &mut dyn Sink) {}
    /// A line for the top of the landing page (a deadline), if it has one.
    fn headline(&self, _now: SystemTime) -> Option<String> {
        None
    }
    /// Its cells of an organization's row on the landing page, from the values still
    /// fresh at `now`. Most collectors have none.
    fn cells(&self, _org: &OrgSnapshot, _now: SystemTime) -> Vec<Cell> {
        Vec::new()
    }
}

/// The GraphQL documents `collector` sends, one per distinct root field, made for a
/// sample organization: what the schema check validates (variables are typed, so their
/// values do not matter).
pub(crate) fn documents(collector: &dyn Collector) -> Vec<String> {
    let sample = [Target {
        id: "1".into(),
        uuid: Some("00000000-0000-0000-0000-000000000001".into()),
    }];
    let mut seen = std::collections::HashSet::new();
    collector
        .fields(&sample)
        .into_iter()
        .filter(|field| seen.insert(field.text.clone()))
        .map(|field| crate::pipefy::query::document(collector.operation(), &[field]).text)
        .collect()
}

macro_rules! registry {
    ($($name:ident),* $(,)?) => {
        $( mod $name; )*

        /// `collectors:` exactly as written in the config file.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct RawCollectors {
            $( #[serde(default)] $name: Option<Toggle<$name::Raw>>, )*
        }

        /// Every collector name, in the order they are scheduled and rendered.
        #[cfg(test)]
        pub(crate) const NAMES: &[&str] = &[$(stringify!($name)),*];

        impl RawCollectors {
            /// The enabled collectors, validated. The error's key is relative to
            /// `collectors`, e.g. `api_usage.interval`.
            pub(crate) fn build(self, defaults: &Defaults) -> Result<Vec<Arc<dyn Collector>>, BuildError> {
                let mut enabled: Vec<Arc<dyn Collector>> = Vec::new();
                $(
                    if let Some(raw) = self.$name.unwrap_or_default().table() {
                        let key = |(key, message): BuildError| {
                            (join_key(stringify!($name), &key), message)
                        };
                        let spec = &$name::SPEC;
                        if let Some(meta) = Meta::resolve(spec, raw.enabled, raw.interval, defaults).map_err(key)? {
                            enabled.push(Arc::new($name::build(meta, raw).map_err(key)?));
                        }
                    }
                )*
                Ok(enabled)
            }
        }
    };
}

// Subscription limits first: its answers carry each organization's identity (uuid,
// name), which the usage-statistics collectors after it need.
registry!(
    subscription_limits,
    ai_credits,
    api_usage,
    automation_jobs,
    integrations,
    token_attribution,
);

/// Every collector, with every option that changes what it sends switched on: what the
/// robustness tests and the fuzz targets run.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn every_variant() -> Vec<Arc<dyn Collector>> {
    let yaml = "api_usage: {by_operation: true}\nai_credits: {source: per_organization}\n";
    let mut all = crate::yaml::parse_yaml::<RawCollectors>(yaml)
        .ok()
        .and_then(|raw| raw.build(&Defaults::default()).ok())
        .unwrap_or_default();
    all.extend(
        RawCollectors::default()
            .build(&Defaults::default())
            .unwrap_or_default(),
    );
    all
}

/// Decodes `answers` for `orgs`, merges the outcome into an empty snapshot and renders it,
/// as one refresh and one scrape would. Returns the organization ids decoded, in order.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn decode_and_render(
    collector: &dyn Collector,
    orgs: &[Target],
    answers: &Answers,
) -> Vec<String> {
    use crate::snapshot::{merge, OrgEntry};
    let decoded = collector.decode(orgs, answers);
    let ids = decoded.iter().map(|d| d.org_id.clone()).collect();
    let outcomes = decoded
        .into_iter()
        .map(|d| d.into_outcome(collector))
        .collect();
    let entries = orgs
        .iter()
        .map(|o| OrgEntry {
            id: o.id.clone(),
            ..OrgEntry::default()
        })
        .collect();
    let now = SystemTime::now();
    let snapshot = merge(&Snapshot::default(), entries, outcomes, now);
    let mut out = crate::encoding::Buffer::new();
    let mut sink = crate::encoding::TextSink::new(&mut out);
    collector.encode(&snapshot, now, &mut sink);
    collector.encode_live(now, &mut sink);
    ids
}

#[cfg(test)]
mod tests;
