//! Properties every registered collector must have, checked over the whole registry so
//! that a new collector gets them for free.

use super::*;
use crate::pipefy::model::arbitrary::Rng;

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
        .build(&Defaults::default())
        .unwrap()
        .iter()
        .map(|c| c.name())
        .collect();
    assert_eq!(names, NAMES);
}

#[test]
fn every_root_field_is_keyed_uniquely() {
    for collector in every_variant() {
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
    for collector in every_variant() {
        let keys: Vec<String> = collector.fields(&orgs).into_iter().map(|f| f.key).collect();
        for _ in 0..2_000 {
            let answers: crate::pipefy::Answers = keys
                .iter()
                .map(|k| {
                    let answer = match rng.below(4) {
                        0 => Err("boom".to_owned()),
                        1 => Ok(None),
                        _ => Ok(Some(rng.value(4).into())),
                    };
                    (k.clone(), answer)
                })
                .collect();
            // Whatever was decoded must render without panicking.
            let ids = decode_and_render(collector.as_ref(), &orgs, &answers);
            assert_eq!(ids, ["2", "3", "4"], "{}", collector.name());
        }
    }
}
