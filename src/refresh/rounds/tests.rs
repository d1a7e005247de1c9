//! The rounds a refresh plans, and the windows it sends them in.

use super::*;

fn targets(ids: &[u32], uuid: bool) -> Arc<[Target]> {
    ids.iter()
        .map(|id| Target {
            id: id.to_string(),
            uuid: uuid.then(|| format!("u{id}")),
        })
        .collect()
}

fn ids(question: &Question) -> Vec<String> {
    question.orgs.iter().map(|t| t.id.clone()).collect()
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// The collectors by name, every option on.
fn collectors() -> Vec<Arc<dyn Collector>> {
    crate::collectors::every_variant()
}

fn by_name<'a>(all: &'a [Arc<dyn Collector>], name: &str) -> &'a dyn Collector {
    all.iter()
        .find(|c| c.name() == name)
        .map(|c| c.as_ref())
        .unwrap()
}

/// `(topic, organization ids)` of each question, collectors by name.
fn shape(questions: &[Question]) -> Vec<(String, Vec<String>)> {
    questions
        .iter()
        .map(|q| {
            let topic = match q.topic {
                Topic::Collector(c) => c.name().to_owned(),
                Topic::Identity => "identity".to_owned(),
            };
            (topic, ids(q))
        })
        .collect()
}

#[test]
fn windows_keep_an_organization_in_one_window_for_every_question() {
    let all = collectors();
    // Every organization, then a subset in another order (identity of those whose uuid
    // is unknown), then organizations only the second question has.
    let questions = [
        Question::about(
            Topic::Collector(all[0].as_ref()),
            targets(&[1, 2, 3, 4, 5], false),
        ),
        Question::about(Topic::Identity, targets(&[5, 2, 6, 7], false)),
    ];
    let windows = windows(&questions, 2);
    let got: Vec<(Vec<String>, Vec<String>)> =
        windows.iter().map(|w| (ids(&w[0]), ids(&w[1]))).collect();
    assert_eq!(
        got,
        [
            (strings(&["1", "2"]), strings(&["2"])),
            (strings(&["3", "4"]), strings(&[])),
            (strings(&["5"]), strings(&["5", "6"])),
            (strings(&[]), strings(&["7"])),
        ]
    );
    assert!(super::windows(&[], 2).is_empty());
    // One window: the questions' organizations are shared, not copied.
    let whole = super::windows(&questions, 2_000);
    assert_eq!(whole.len(), 1);
    assert!(Arc::ptr_eq(&whole[0][0].orgs, &questions[0].orgs));
    assert!(Arc::ptr_eq(&whole[0][1].orgs, &questions[1].orgs));
}

#[test]
fn with_the_limits_due_identity_comes_from_them_and_uuids_from_the_first_round() {
    let all = collectors();
    let due = [
        by_name(&all, "subscription_limits"),
        by_name(&all, "ai_credits"),
        by_name(&all, "token_attribution"),
    ];
    // 1 and 2 with a uuid known from the last refresh, 3 new.
    let mut orgs: Vec<Target> = targets(&[1, 2], true).to_vec();
    orgs.extend(targets(&[3], false).iter().cloned());
    let rounds = plan_rounds(&due, orgs.into());
    assert_eq!(
        shape(&rounds.first),
        [
            ("subscription_limits".into(), strings(&["1", "2", "3"])),
            ("token_attribution".into(), strings(&["1", "2", "3"])),
            ("ai_credits".into(), strings(&["1", "2"])),
        ]
    );
    let by_uuid: Vec<&str> = rounds.by_uuid.iter().map(|c| c.name()).collect();
    assert_eq!(by_uuid, ["ai_credits"]);
    assert_eq!(
        rounds
            .unknown
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["3"]
    );
}

#[test]
fn without_the_limits_identity_is_asked_for_unknown_uuids_only() {
    let all = collectors();
    let due = [by_name(&all, "api_usage"), by_name(&all, "integrations")];
    let mut orgs: Vec<Target> = targets(&[1], true).to_vec();
    orgs.extend(targets(&[2, 3], false).iter().cloned());
    let rounds = plan_rounds(&due, orgs.into());
    assert_eq!(
        shape(&rounds.first),
        [
            ("identity".into(), strings(&["2", "3"])),
            ("api_usage".into(), strings(&["1"])),
            ("integrations".into(), strings(&["1"])),
        ]
    );
    // Every uuid known (the steady state): one round, no identity.
    let rounds = plan_rounds(&due, targets(&[1, 2], true));
    assert_eq!(
        shape(&rounds.first),
        [
            ("api_usage".into(), strings(&["1", "2"])),
            ("integrations".into(), strings(&["1", "2"])),
        ]
    );
    assert!(rounds.unknown.is_empty());
    // No usage statistics due: no identity either, whatever is unknown.
    let limits = [by_name(&all, "subscription_limits")];
    let rounds = plan_rounds(&limits, targets(&[1, 2], false));
    assert_eq!(
        shape(&rounds.first),
        [("subscription_limits".into(), strings(&["1", "2"]))]
    );
    assert!(rounds.by_uuid.is_empty());
}
