//! [`PipefyClient::fetch`]: every part's root fields in the fewest requests Pipefy's
//! limits allow, and what to do with each answer.
//!
//! What a request can come back as, and what follows:
//! - answered: each alias's answer (or its own error) is filed for the parts that share
//!   it;
//! - refused as too large (a path-less error that reads like complexity or time, or an
//!   HTTP 408): sent again in halves, down to one root field; the size that went through
//!   is remembered for later fetches;
//! - refused as a whole for another reason (an unknown name: errors, no `data`, no
//!   `path`; billed): if one part's document can be at fault, that part is rejected
//!   ([`PartVerdict::Rejected`]) and its other fields are not sent; if several can, each
//!   is sent alone with one root field (a *probe*) while their other fields wait, so that
//!   the rejected document is found without sending it again in every request;
//! - failed (HTTP, transport): its fields fail.
//!
//! A part marked [`Part::probe`] (a query resting on an undocumented name, never
//! validated or answered) is probed before the rest of its fields are sent: if Pipefy
//! rejects it, that costs one request, not one per request it would have shared.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Semaphore;

use super::backoff::Class;
use super::batch::{self, Bin, Part};
use super::model::{self, GraphQlResponse};
use super::query::Document;
use super::{lock, Answer, Answers, ApiError, PipefyClient};

/// What Pipefy made of one part's document in a fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum PartVerdict {
    /// No request carrying it got an answer either way.
    #[default]
    Unknown,
    /// A request carrying it was answered.
    Accepted,
    /// Its document was refused as a whole (billed): Pipefy's words.
    Rejected(String),
}

/// What a batched fetch returned.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// One per part asked, in order.
    pub answers: Vec<Answers>,
    /// One per part asked, in order.
    pub verdicts: Vec<PartVerdict>,
    /// The longest `Retry-After` Pipefy sent, if it throttled a request.
    pub retry_after: Option<std::time::Duration>,
}

/// What became of a bin handed to the sender.
enum Sent {
    /// Not sent: a part of it became suspect while it waited for its turn.
    Held,
    Response(Document, Result<GraphQlResponse, ApiError>),
}

/// What the concurrent sends of one fetch share: read-only but for the suspects.
struct Shared<'a> {
    client: &'a PipefyClient,
    permits: &'a Semaphore,
    /// Parts whose documents a refusal put in doubt: requests carrying them wait (are
    /// held) until a probe clears them or finds them rejected.
    suspects: Mutex<HashSet<usize>>,
}

impl Shared<'_> {
    async fn send(&self, bin: Bin) -> (Bin, Sent) {
        let Ok(_permit) = self.permits.acquire().await else {
            let error = Err(ApiError::Transport("shutting down".into()));
            return (bin.clone(), Sent::Response(bin.document(), error));
        };
        if !bin.probe {
            let suspects = lock(&self.suspects);
            if bin.parts().iter().any(|p| suspects.contains(p)) {
                return (bin, Sent::Held);
            }
        }
        // The text is made once the request may go: thousands of them at once would be
        // most of a refresh's memory.
        let document = bin.document();
        let response = self
            .client
            .execute(bin.operation, &document.text, &document.variables)
            .await;
        (bin, Sent::Response(document, response))
    }
}

/// The fetch's own bookkeeping, changed as answers come in.
struct Round<'a> {
    client: &'a PipefyClient,
    parts: &'a [Part],
    fetched: Fetched,
    /// Fields not sent yet, by part (indices into the part's fields).
    held: Vec<BTreeSet<usize>>,
    /// Each part's field index by key, built on the first refusal.
    keys: Option<Vec<HashMap<&'a str, usize>>>,
    /// Requests refused as too large: the shapes they held, and the largest piece that
    /// went through.
    too_large: Vec<(Vec<Arc<str>>, u64)>,
}

impl PipefyClient {
    /// Asks for every part's root fields in the fewest requests Pipefy's limits allow
    /// ([`batch::plan`]: shared `organization(id:)` aliases, requests packed to the
    /// complexity budget across parts), at most as many in flight as `permits` allows (a
    /// process-wide budget), and returns one [`Answers`] and one [`PartVerdict`] per
    /// part, in order. See the module comment for what each answer leads to. Every
    /// request, refused ones included, is billed and counted in the request metrics.
    pub(crate) async fn fetch(&self, parts: &[Part], permits: &Semaphore) -> Fetched {
        let shared = Shared {
            client: self,
            permits,
            suspects: Mutex::new(HashSet::new()),
        };
        let mut round = Round::new(self, parts);
        let mut pending = round.start(&shared);
        while !pending.is_empty() {
            // Each answer is handled as soon as it arrives, and its JSON tree dropped:
            // with thousands of organizations, holding every response of a round until
            // the last came in was most of a refresh's memory.
            let mut sends: FuturesUnordered<_> =
                pending.drain(..).map(|bin| shared.send(bin)).collect();
            while let Some((bin, sent)) = sends.next().await {
                pending.extend(round.handle(&shared, bin, sent));
            }
            if pending.is_empty() {
                pending = round.release(&shared);
            }
        }
        round.finish()
    }
}

impl<'a> Round<'a> {
    fn new(client: &'a PipefyClient, parts: &'a [Part]) -> Self {
        Round {
            client,
            parts,
            fetched: Fetched {
                answers: vec![Answers::new(); parts.len()],
                verdicts: vec![PartVerdict::Unknown; parts.len()],
                retry_after: None,
            },
            held: vec![BTreeSet::new(); parts.len()],
            keys: None,
            too_large: Vec::new(),
        }
    }

    /// The first requests: every field of the parts that need no probe, and a probe of
    /// each part that does, whose other fields wait for it.
    fn start(&mut self, shared: &Shared<'_>) -> Vec<Bin> {
        let parts = self.parts;
        let mut bins = self.plan(&|p, _| !parts[p].probe);
        for (p, part) in parts.iter().enumerate() {
            if part.probe && !part.fields.is_empty() {
                lock(&shared.suspects).insert(p);
                self.held[p].extend(1..part.fields.len());
                bins.push(self.probe(p, 0));
            }
        }
        bins
    }

    fn plan(&self, take: &dyn Fn(usize, usize) -> bool) -> Vec<Bin> {
        let learned = lock(&self.client.learned);
        batch::plan(self.parts, take, &self.client.settings.limits, &learned)
    }

    /// One request with field `field` of part `p` alone.
    fn probe(&self, p: usize, field: usize) -> Bin {
        let mut bins = self.plan(&|q, f| q == p && f == field);
        let mut bin = bins.pop().unwrap_or_else(|| Bin::empty(self.parts));
        bin.probe = true;
        bin
    }

    fn handle(&mut self, shared: &Shared<'_>, bin: Bin, sent: Sent) -> Vec<Bin> {
        let (document, response) = match sent {
            Sent::Held => {
                self.hold(&bin, None);
                return Vec::new();
            }
            Sent::Response(document, response) => (document, response),
        };
        let limits = &self.client.settings.limits;
        let verdict = match &response {
            Ok(response) => batch::reception(response, &limits.too_large),
            // 408 Request Timeout: billed, and about the time the query took.
            Err(ApiError::Status(408)) => {
                batch::Reception::TooLarge(ApiError::Status(408).to_string())
            }
            Err(_) => batch::Reception::Answered,
        };
        match (verdict, response) {
            (batch::Reception::TooLarge(why), _) => self.too_large(bin, &why),
            (batch::Reception::Refused(why), _) => self.refused(shared, bin, &why),
            (batch::Reception::Answered, Ok(response)) => {
                self.answered(shared, &bin, &document, &response);
                Vec::new()
            }
            (batch::Reception::Answered, Err(error)) => {
                self.failed(shared, &bin, &error);
                Vec::new()
            }
        }
    }

    /// The collectors of `bin`, for log lines.
    fn labels(&self, bin: &Bin) -> String {
        let mut labels: Vec<&str> = bin.parts().iter().map(|&i| self.parts[i].label).collect();
        labels.sort_unstable();
        labels.join(",")
    }

    fn too_large(&mut self, bin: Bin, why: &str) -> Vec<Bin> {
        let account = &self.client.account;
        if bin.fields.len() <= 1 {
            tracing::warn!(%account, operation = bin.operation, collectors = %self.labels(&bin), estimated_complexity = bin.cost, error = %why, "Pipefy rejected a single root field as too large");
            self.fail(&bin, why);
            return Vec::new();
        }
        tracing::warn!(%account, operation = bin.operation, collectors = %self.labels(&bin), fields = bin.fields.len(), estimated_complexity = bin.cost, error = %why, "Pipefy rejected a request as too large; sending it again in halves");
        let origin = bin.origin.unwrap_or_else(|| {
            self.too_large
                .push((bin.fields.iter().map(|f| f.text.clone()).collect(), 0));
            self.too_large.len() - 1
        });
        let (first, second) = bin.halves(self.parts, origin);
        vec![first, second]
    }

    /// A request refused as a whole: find whose document is at fault.
    fn refused(&mut self, shared: &Shared<'_>, bin: Bin, why: &str) -> Vec<Bin> {
        let account = &self.client.account;
        // Parts Pipefy answered in this fetch are not at fault.
        let unsure: Vec<usize> = bin
            .parts()
            .into_iter()
            .filter(|&p| self.fetched.verdicts[p] != PartVerdict::Accepted)
            .collect();
        match unsure.as_slice() {
            [culprit] => {
                let culprit = *culprit;
                tracing::debug!(%account, operation = bin.operation, collector = self.parts[culprit].label, error = %why, "Pipefy refused a request as a whole: this collector's document is rejected");
                self.fetched.verdicts[culprit] = PartVerdict::Rejected(model::truncate(why));
                lock(&shared.suspects).remove(&culprit);
                // The others' fields go again, without it.
                self.hold(&bin, Some(culprit));
                self.fail_part(&bin, culprit, why);
                Vec::new()
            }
            [] => {
                tracing::warn!(%account, operation = bin.operation, collectors = %self.labels(&bin), error = %why, "Pipefy refused a request as a whole, though it answered each of its collectors' documents");
                self.fail(&bin, why);
                Vec::new()
            }
            several => {
                tracing::warn!(%account, operation = bin.operation, collectors = %self.labels(&bin), error = %why, "Pipefy refused a request as a whole; sending each collector's document alone to find which it rejects");
                let probes: Vec<(usize, usize)> = several
                    .iter()
                    .filter_map(|&p| Some((p, self.first_field_of(&bin, p)?)))
                    .collect();
                lock(&shared.suspects).extend(several.iter().copied());
                self.hold(&bin, None);
                probes
                    .into_iter()
                    .map(|(p, field)| {
                        self.held[p].remove(&field);
                        self.probe(p, field)
                    })
                    .collect()
            }
        }
    }

    /// The index, in part `p`'s fields, of its first field in `bin`.
    fn first_field_of(&mut self, bin: &Bin, p: usize) -> Option<usize> {
        let key = bin
            .fields
            .iter()
            .flat_map(|f| &f.owners)
            .find(|o| o.part == p)?
            .key
            .as_str();
        self.field_index(p, key)
    }

    fn field_index(&mut self, p: usize, key: &str) -> Option<usize> {
        let parts = self.parts;
        let keys = self.keys.get_or_insert_with(|| {
            parts
                .iter()
                .map(|part| {
                    part.fields
                        .iter()
                        .enumerate()
                        .map(|(i, f)| (f.key.as_str(), i))
                        .collect()
                })
                .collect()
        });
        keys[p].get(key).copied()
    }

    /// Puts `bin`'s fields back to be sent later, but those of `except`.
    fn hold(&mut self, bin: &Bin, except: Option<usize>) {
        for owner in bin.fields.iter().flat_map(|f| &f.owners) {
            if Some(owner.part) == except {
                continue;
            }
            if let Some(index) = self.field_index(owner.part, &owner.key) {
                self.held[owner.part].insert(index);
            }
        }
    }

    fn answered(
        &mut self,
        shared: &Shared<'_>,
        bin: &Bin,
        document: &Document,
        response: &GraphQlResponse,
    ) {
        if bin.probe {
            let mut suspects = lock(&shared.suspects);
            for p in bin.parts() {
                suspects.remove(&p);
            }
        }
        for p in bin.parts() {
            if self.fetched.verdicts[p] == PartVerdict::Unknown {
                self.fetched.verdicts[p] = PartVerdict::Accepted;
            }
        }
        if let Some(origin) = bin.origin {
            let worked = &mut self.too_large[origin].1;
            *worked = (*worked).max(bin.cost);
        }
        for ((alias, _), field) in document.aliases.iter().zip(&bin.fields) {
            let shared_alias = field.owners.len() > 1;
            for owner in &field.owners {
                let names = shared_alias.then_some(&owner.names[..]);
                let result =
                    model::alias_outcome(response, alias, names).map(|v| v.map(Answer::from));
                if let Err(error) = &result {
                    tracing::warn!(account = %self.client.account, collector = self.parts[owner.part].label, operation = bin.operation, field = %owner.key, %error, "Pipefy returned an error for one field");
                }
                self.fetched.answers[owner.part].insert(owner.key.clone(), result);
            }
        }
    }

    fn failed(&mut self, shared: &Shared<'_>, bin: &Bin, error: &ApiError) {
        if bin.probe {
            // Nothing learnt: its other fields go, and fail or not on their own.
            let mut suspects = lock(&shared.suspects);
            for p in bin.parts() {
                suspects.remove(&p);
            }
        }
        let account = &self.client.account;
        let first_field = bin
            .fields
            .first()
            .and_then(|f| f.owners.first())
            .map(|o| o.key.as_str())
            .unwrap_or("");
        let collectors = self.labels(bin);
        if error.class() == Class::Rejected {
            // The scheduler says it once per change of state (backoff).
            tracing::debug!(%account, %collectors, operation = bin.operation, fields = bin.fields.len(), first_field, %error, "Pipefy refused the credential");
        } else if let ApiError::Deferred { .. } = error {
            // Not sent: the 429 that asked for the wait was logged, and the scheduler
            // logs the postponed refresh.
            tracing::debug!(%account, %collectors, operation = bin.operation, fields = bin.fields.len(), first_field, %error, "Pipefy request held back");
        } else {
            tracing::warn!(%account, %collectors, operation = bin.operation, fields = bin.fields.len(), first_field, %error, "Pipefy request failed");
        }
        self.fetched.retry_after = self.fetched.retry_after.max(error.retry_after());
        self.fail(bin, &error.to_string());
    }

    /// Once nothing is in flight: the held fields, planned again without the parts
    /// found rejected (whose fields fail unsent).
    fn release(&mut self, shared: &Shared<'_>) -> Vec<Bin> {
        lock(&shared.suspects).clear();
        if self.held.iter().all(BTreeSet::is_empty) {
            return Vec::new();
        }
        let held = std::mem::replace(&mut self.held, vec![BTreeSet::new(); self.parts.len()]);
        for (p, fields) in held.iter().enumerate() {
            if let PartVerdict::Rejected(why) = &self.fetched.verdicts[p] {
                let message = format!("not sent: Pipefy rejected this collector's query ({why})");
                for &f in fields {
                    let key = self.parts[p].fields[f].key.clone();
                    self.fetched.answers[p].insert(key, Err(message.clone()));
                }
            }
        }
        let verdicts = &self.fetched.verdicts;
        self.plan(&|p, f| held[p].contains(&f) && !matches!(verdicts[p], PartVerdict::Rejected(_)))
    }

    /// Fails every owner of every field of `bin` with `message`.
    fn fail(&mut self, bin: &Bin, message: &str) {
        for owner in bin.fields.iter().flat_map(|f| &f.owners) {
            self.fetched.answers[owner.part].insert(owner.key.clone(), Err(message.to_owned()));
        }
    }

    /// Fails part `p`'s fields of `bin` with `message`.
    fn fail_part(&mut self, bin: &Bin, p: usize, message: &str) {
        for owner in bin.fields.iter().flat_map(|f| &f.owners) {
            if owner.part == p {
                self.fetched.answers[p].insert(owner.key.clone(), Err(message.to_owned()));
            }
        }
    }

    fn finish(self) -> Fetched {
        let mut learned = lock(&self.client.learned);
        let limits = &self.client.settings.limits;
        for (texts, worked) in self.too_large.into_iter().filter(|(_, w)| *w > 0) {
            learned.remember(&texts, worked, limits.max_complexity);
            tracing::info!(account = %self.client.account, fields = texts.len(), worked_complexity = worked, "remembered: requests of this shape are cut to what Pipefy accepted");
        }
        self.fetched
    }
}
