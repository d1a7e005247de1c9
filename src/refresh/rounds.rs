//! What one account asks in a refresh, and how the answers become outcomes.
//!
//! The due collectors are asked in as few requests as possible: one round for everything
//! that needs no uuid or whose uuid is known (the steady state: every due collector
//! shares the same requests), and a second round only for the usage statistics of
//! organizations whose uuid the first round told. Which questions go in which round is
//! planned by a pure function, [`plan_rounds`]; each round is sent in windows of at most
//! [`ORGS_PER_FETCH`] organizations.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::accounts::AccountClient;
use super::discovery::{operation, step, IDENTITY};
use super::{RefreshOutcome, Refresher};
use crate::collectors::{failed, Collector, Decoded, Target};
use crate::pipefy::batch::Part;
use crate::pipefy::model::Organization;
use crate::pipefy::query::RootField;
use crate::pipefy::{Answers, PartVerdict};
use crate::snapshot::{OrgEntry, OrgMeta, Snapshot};

/// How many organizations one planned fetch covers. A fetch holds its root fields and
/// its answers until they are decoded, so this bounds a refresh's working memory
/// whatever the number of organizations (BENCHMARKS.md: at 10,000 organizations, all
/// at once was 40 MB more at the peak). Large enough that the requests it splits
/// between fetches are few: each fetch packs its own, so at most one request per
/// fetch goes out less than full (10,000 organizations: 5 fetches instead of 1).
pub(crate) const ORGS_PER_FETCH: usize = 2_000;

/// What a question is about: a collector's data, or the identity (uuid, name, plan)
/// of organizations nothing has told yet.
#[derive(Clone, Copy)]
pub(super) enum Topic<'a> {
    Collector(&'a dyn Collector),
    Identity,
}

/// One topic's question about some organizations.
pub(super) struct Question<'a> {
    topic: Topic<'a>,
    /// Shared by the questions of a round rather than copied for each.
    orgs: Arc<[Target]>,
}

/// The questions of one account's refresh.
pub(super) struct Rounds<'a> {
    /// The first round: the collectors that address organizations by id, about all of
    /// them; the others about those whose uuid is known; and identity, about the others,
    /// when no collector of the first round tells it.
    pub(super) first: Vec<Question<'a>>,
    /// The collectors that address organizations by uuid: asked again, in a second
    /// round, about the organizations of `unknown` the first round told the uuid of.
    pub(super) by_uuid: Vec<&'a dyn Collector>,
    /// The organizations whose uuid was unknown before the first round.
    pub(super) unknown: Arc<[Target]>,
}

/// Plans the rounds of a refresh of `due` for `all` the organizations of an account
/// (with their uuids where known). Pure.
pub(super) fn plan_rounds<'a>(due: &[&'a dyn Collector], all: Arc<[Target]>) -> Rounds<'a> {
    let (known, unknown): (Vec<Target>, Vec<Target>) =
        all.iter().cloned().partition(|t| t.uuid.is_some());
    let (known, unknown): (Arc<[Target]>, Arc<[Target]>) = (known.into(), unknown.into());
    let (by_id, by_uuid): (Vec<&dyn Collector>, Vec<&dyn Collector>) =
        due.iter().partition(|c| !c.needs_uuid());
    let mut first: Vec<Question> = by_id
        .iter()
        .map(|c| Question::about(Topic::Collector(*c), all.clone()))
        .collect();
    let identity_told = by_id.iter().any(|c| c.tells_identity());
    if !by_uuid.is_empty() && !unknown.is_empty() && !identity_told {
        first.push(Question::about(Topic::Identity, unknown.clone()));
    }
    if !known.is_empty() {
        first.extend(
            by_uuid
                .iter()
                .map(|c| Question::about(Topic::Collector(*c), known.clone())),
        );
    }
    Rounds {
        first,
        by_uuid,
        unknown,
    }
}

impl Refresher {
    /// Runs the `due` collectors for the organizations `ids` of one account (`metas`:
    /// what discovery told of them), in the rounds [`plan_rounds`] plans. A collector
    /// whose query the schema check found invalid, or Pipefy rejected, is not asked: its
    /// organizations fail, keeping their values until stale_after.
    pub(super) async fn fetch_account(
        &self,
        ac: &AccountClient,
        ids: Vec<String>,
        mut metas: HashMap<String, OrgMeta>,
        previous: &Snapshot,
        due: &[&dyn Collector],
    ) -> RefreshOutcome {
        let mut outcome = RefreshOutcome::default();
        // One outcome per organization and due collector: allocated once, not doubled
        // as it grows (tens of thousands of them at 10,000 organizations).
        outcome.outcomes.reserve_exact(ids.len() * due.len());
        // Identity known before this refresh: discovery's, else the last snapshot's.
        for id in &ids {
            if !metas.contains_key(id) {
                if let Some(org) = previous.orgs.get(id).filter(|o| o.meta.uuid.is_some()) {
                    metas.insert(id.clone(), org.meta.clone());
                }
            }
        }
        let mut sent: Vec<&dyn Collector> = Vec::with_capacity(due.len());
        for collector in due {
            match self.held_back(ac, *collector) {
                Some(why) => outcome
                    .outcomes
                    .extend(ids.iter().map(|id| failed(id, *collector, why.clone()))),
                None => sent.push(*collector),
            }
        }
        let rounds = plan_rounds(&sent, targets(ids.iter(), &metas).into());
        let (answers, retry_after) = self.ask(ac, &rounds.first).await;
        outcome.retry_after = retry_after;
        let identity_errors = first_round(answers, &mut metas, &mut outcome);
        if !rounds.by_uuid.is_empty() {
            self.second_round(ac, &rounds, &metas, &identity_errors, &mut outcome)
                .await;
        }
        let account = ac.account.name.as_str();
        outcome.orgs = ids
            .into_iter()
            .map(|id| OrgEntry {
                meta: metas.remove(&id),
                account: account.to_owned(),
                id,
            })
            .collect();
        outcome
    }

    /// The usage statistics of the organizations whose uuid the first round told; those
    /// whose uuid is still unknown fail them, with why.
    async fn second_round(
        &self,
        ac: &AccountClient,
        rounds: &Rounds<'_>,
        metas: &HashMap<String, OrgMeta>,
        identity_errors: &HashMap<String, String>,
        outcome: &mut RefreshOutcome,
    ) {
        let learned: Arc<[Target]> = targets(rounds.unknown.iter().map(|t| &t.id), metas)
            .into_iter()
            .filter(|t| t.uuid.is_some())
            .collect();
        if !learned.is_empty() {
            let questions: Vec<Question> = rounds
                .by_uuid
                .iter()
                .map(|c| Question::about(Topic::Collector(*c), learned.clone()))
                .collect();
            let (answers, retry_after) = self.ask(ac, &questions).await;
            outcome.retry_after = outcome.retry_after.max(retry_after);
            for (topic, decoded) in answers {
                if let Topic::Collector(collector) = topic {
                    let outcomes = decoded.into_iter().map(|d| d.into_outcome(collector));
                    outcome.outcomes.extend(outcomes);
                }
            }
        }
        // No uuid, so they could not be asked.
        let asked: HashSet<&str> = learned.iter().map(|t| t.id.as_str()).collect();
        for t in rounds
            .unknown
            .iter()
            .filter(|t| !asked.contains(t.id.as_str()))
        {
            let why = identity_errors
                .get(&t.id)
                .map(String::as_str)
                .unwrap_or("not returned");
            outcome
                .outcomes
                .extend(rounds.by_uuid.iter().map(|collector| {
                    failed(
                        &t.id,
                        *collector,
                        format!("organization uuid unknown: {why}"),
                    )
                }));
        }
    }

    /// Asks every question's root fields in planned fetches (the client shares requests
    /// between them), [`ORGS_PER_FETCH`] organizations at a time, and decodes each
    /// question's answers. Once Pipefy throttles, the client holds back the requests of
    /// the later fetches as it does those of the same fetch: a short `Retry-After` is
    /// waited out and they are sent; during a long one they fail unsent, so they cost
    /// nothing. A collector Pipefy rejects in one window is not sent in the next.
    async fn ask<'a>(
        &self,
        ac: &AccountClient,
        questions: &[Question<'a>],
    ) -> (Vec<(Topic<'a>, Vec<Decoded>)>, Option<Duration>) {
        let mut decoded: Vec<(Topic<'a>, Vec<Decoded>)> = questions
            .iter()
            .map(|q| (q.topic, Vec::with_capacity(q.orgs.len())))
            .collect();
        let mut retry_after = None;
        for window in windows(questions, ORGS_PER_FETCH) {
            let mut live = Vec::with_capacity(window.len());
            for (i, question) in window.iter().enumerate() {
                match self.not_sent(ac, question.topic) {
                    Some(why) => decoded[i].1.extend(
                        question
                            .orgs
                            .iter()
                            .map(|t| Decoded::new::<()>(&t.id, Err(why.clone()))),
                    ),
                    None => live.push(i),
                }
            }
            let parts: Vec<Part> = live
                .iter()
                .map(|&i| window[i].part(self.probe(ac, window[i].topic)))
                .collect();
            let fetched = ac.client.fetch(&parts, &self.permits).await;
            retry_after = retry_after.max(fetched.retry_after);
            drop(parts);
            let verdicts: Vec<(&'static str, &PartVerdict)> = live
                .iter()
                .zip(&fetched.verdicts)
                .filter_map(|(&i, verdict)| match window[i].topic {
                    Topic::Collector(c) => Some((c.name(), verdict)),
                    Topic::Identity => None,
                })
                .collect();
            self.learn(ac, &verdicts);
            // Each question's answers are dropped once decoded, not kept until all are.
            for (&i, answers) in live.iter().zip(fetched.answers) {
                decoded[i].1.extend(window[i].decode(&answers));
            }
        }
        (decoded, retry_after)
    }

    /// Why a question is not sent, if its collector's query is held back.
    fn not_sent(&self, ac: &AccountClient, topic: Topic<'_>) -> Option<String> {
        match topic {
            Topic::Collector(c) => self.held_back(ac, c),
            Topic::Identity => None,
        }
    }

    /// Whether a question goes first with one root field alone ([`Part::probe`]).
    fn probe(&self, ac: &AccountClient, topic: Topic<'_>) -> bool {
        match topic {
            Topic::Collector(c) => self.probe_first(ac, c),
            Topic::Identity => false,
        }
    }
}

/// The outcomes of the first round's collectors, and the identity it told: into
/// `metas`, and why it could not be told, by organization.
fn first_round(
    answers: Vec<(Topic<'_>, Vec<Decoded>)>,
    metas: &mut HashMap<String, OrgMeta>,
    outcome: &mut RefreshOutcome,
) -> HashMap<String, String> {
    let mut identity_errors: HashMap<String, String> = HashMap::new();
    for (topic, decoded) in answers {
        let tells_identity = match topic {
            Topic::Identity => true,
            Topic::Collector(c) => c.tells_identity(),
        };
        for mut d in decoded {
            match (d.meta.take(), &d.result) {
                (Some(meta), _) => {
                    metas.insert(d.org_id.clone(), *meta);
                }
                // Its `organization(id:)` failed: asking again for identity alone would
                // fail the same way. (A failing token query says nothing about
                // identity, so it does not count here.)
                (None, Err(error)) if tells_identity => {
                    identity_errors.insert(d.org_id.clone(), error.clone());
                }
                _ => {}
            }
            if let Topic::Collector(collector) = topic {
                outcome.outcomes.push(d.into_outcome(collector));
            }
        }
    }
    identity_errors
}

/// `ids` with their uuids where `metas` know them.
fn targets<'s>(
    ids: impl Iterator<Item = &'s String>,
    metas: &HashMap<String, OrgMeta>,
) -> Vec<Target> {
    ids.map(|id| Target {
        id: id.clone(),
        uuid: metas.get(id).and_then(|m| m.uuid.clone()),
    })
    .collect()
}

impl<'a> Question<'a> {
    fn about(topic: Topic<'a>, orgs: Arc<[Target]>) -> Self {
        Question { topic, orgs }
    }

    /// Its root fields; with `probe`, one goes alone first (see [`Part::probe`]).
    fn part(&self, probe: bool) -> Part {
        match self.topic {
            Topic::Collector(c) => Part {
                operation: c.operation(),
                label: c.name(),
                probe,
                fields: c.fields(&self.orgs),
            },
            Topic::Identity => Part {
                operation: operation::ORGANIZATION_INFO,
                label: step::IDENTITY,
                probe: false,
                fields: {
                    let text: Arc<str> = Arc::from(IDENTITY);
                    self.orgs
                        .iter()
                        .map(|o| {
                            RootField::new(&o.id, text.clone()).var(
                                "id",
                                "ID!",
                                serde_json::json!(o.id),
                            )
                        })
                        .collect()
                },
            },
        }
    }

    /// One outcome per organization; identity's carry the meta when it was told.
    fn decode(&self, answers: &Answers) -> Vec<Decoded> {
        match self.topic {
            Topic::Collector(c) => c.decode(&self.orgs, answers),
            Topic::Identity => self
                .orgs
                .iter()
                .map(
                    |o| match crate::collectors::answer::<Organization>(answers, &o.id) {
                        Ok(org) => Decoded {
                            meta: Some(Box::new(org.meta())),
                            ..Decoded::new(&o.id, Ok(()))
                        },
                        Err(error) => Decoded::new::<()>(&o.id, Err(error)),
                    },
                )
                .collect(),
        }
    }
}

/// `questions` cut into windows of at most `size` organizations, each question keeping
/// its own organizations of the window, in order. One organization is in one window for
/// every question, so that the fields that different questions make for it can still
/// share a request.
fn windows<'a>(questions: &[Question<'a>], size: usize) -> Vec<Vec<Question<'a>>> {
    let mut window_of: HashMap<&str, usize> = HashMap::new();
    for target in questions.iter().flat_map(|q| q.orgs.iter()) {
        let next = window_of.len() / size.max(1);
        window_of.entry(target.id.as_str()).or_insert(next);
    }
    let count = window_of.values().max().map_or(0, |last| last + 1);
    if count == 1 {
        // Everything in one window: the questions as they are, their organizations
        // shared.
        let whole = questions
            .iter()
            .map(|q| Question::about(q.topic, q.orgs.clone()));
        return vec![whole.collect()];
    }
    (0..count)
        .map(|w| {
            questions
                .iter()
                .map(|q| {
                    let orgs = q
                        .orgs
                        .iter()
                        .filter(|t| window_of.get(t.id.as_str()) == Some(&w))
                        .cloned()
                        .collect();
                    Question::about(q.topic, orgs)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests;
