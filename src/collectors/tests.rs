//! Properties every registered collector must have, checked over the whole registry so
//! that a new collector gets them for free.

use std::time::SystemTime;

use super::*;
use crate::pipefy::model::arbitrary::Rng;
use crate::snapshot::{merge, OrgEntry, Outcome};
use crate::yaml::parse_yaml;

/// Every collector, with every option that changes what it sends switched on.
fn all() -> Vec<Arc<dyn Collector>> {
    let raw: RawCollectors =
        parse_yaml("api_usage: {by_operation: true}\nai_credits: {source: per_organization}\n")
            .expect("valid");
    let mut all = raw.build(&Context::default()).expect("valid");
    all.extend(
        RawCollectors::default()
            .build(&Context::default())
            .expect("valid"),
    );
    all
}

fn targets() -> Vec<Target> {
    (0..3)
        .map(|i| Target {
            id: (2 + i).to_string(),
            uuid: Some(format!("u{}", 2 + i)),
        })
        .collect()
}

#[test]
fn the_registry_lists_every_collector_once() {
    let names: Vec<&str> = RawCollectors::default()
        .build(&Context::default())
        .unwrap()
        .iter()
        .map(|c| c.name())
        .collect();
    assert_eq!(names, NAMES);
}

#[test]
fn every_root_field_is_keyed_uniquely() {
    for collector in all() {
        let fields = collector.fields(&targets());
        let mut keys: Vec<&str> = fields.iter().map(|f| f.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), fields.len(), "{}", collector.name());
    }
}

#[test]
fn arbitrary_answers_never_panic_and_give_one_outcome_per_organization() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let orgs = targets();
    for collector in all() {
        let keys: Vec<String> = collector.fields(&orgs).into_iter().map(|f| f.key).collect();
        for _ in 0..2_000 {
            let answers: crate::pipefy::Answers = keys
                .iter()
                .map(|k| {
                    let answer = match rng.below(4) {
                        0 => Err("boom".to_owned()),
                        1 => Ok(None),
                        _ => Ok(Some(rng.value(4))),
                    };
                    (k.clone(), answer)
                })
                .collect();
            let decoded = collector.decode(&orgs, &answers);
            let ids: Vec<&str> = decoded.iter().map(|d| d.org_id.as_str()).collect();
            assert_eq!(ids, ["2", "3", "4"], "{}", collector.name());
            // Whatever was decoded must render without panicking.
            let outcomes = decoded
                .into_iter()
                .map(|d| Outcome {
                    org_id: d.org_id,
                    collector: collector.name(),
                    stale_after: collector.schedule().stale_after,
                    result: d.result,
                })
                .collect();
            let entries = orgs
                .iter()
                .map(|o| OrgEntry {
                    id: o.id.clone(),
                    ..OrgEntry::default()
                })
                .collect();
            let now = SystemTime::now();
            let snapshot = merge(&Default::default(), entries, outcomes, now);
            let mut out = String::new();
            collector.encode(&snapshot, now, &mut Encoder::new(&mut out));
        }
    }
}
