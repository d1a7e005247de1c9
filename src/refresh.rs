//! The background refresh loop: one cycle at a time, on its own schedule, never on a
//! scrape. A cycle asks Pipefy for every organization of every account, in batches of
//! `max_orgs_per_request` aliases with at most `max_concurrent_requests` in flight,
//! merges the outcome into the last snapshot and publishes it.
//!
//! Request plan per account and cycle (N organizations, B per batch):
//! - discovery (`organizations`), 1 request, only when no organizations are listed;
//! - stage 1: subscription limits + identity, ⌈N/B⌉ requests (or identity only when
//!   limits are disabled and AI credits need uuids not yet known);
//! - stage 2, concurrently: AI credits (keyed by uuid) and tokens, ⌈N/B⌉ each.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use serde::Deserialize;
use tokio::sync::{watch, Semaphore};

use crate::config::{Account, Config};
use crate::metrics::{RefreshResult, SelfMetrics};
use crate::pipefy::model::{self, AiCreditUsageStats, Organization, OrganizationTokens};
use crate::pipefy::queries::{self, Batch};
use crate::pipefy::{ApiError, PipefyClient};
use crate::snapshot::{merge, OrgMeta, OrgResult, Snapshot};

/// `operation` label values of `pipefy_api_requests_total`.
pub mod operation {
    pub const ORGANIZATIONS: &str = "organizations";
    pub const SUBSCRIPTION_LIMITS: &str = "subscription_limits";
    pub const ORGANIZATION_INFO: &str = "organization_info";
    pub const AI_CREDITS: &str = "ai_credits";
    pub const TOKEN_ATTRIBUTION: &str = "token_attribution";
}

struct AccountClient {
    account: Account,
    client: PipefyClient,
}

/// Owns the clients and the schedule; publishes snapshots through a watch channel.
pub struct Refresher {
    config: Arc<Config>,
    accounts: Vec<AccountClient>,
    metrics: Arc<SelfMetrics>,
    publish: watch::Sender<Arc<Snapshot>>,
    /// Shared by all accounts: `max_concurrent_requests` is a process-wide budget.
    permits: Semaphore,
}

/// What one cycle produced.
#[derive(Debug, Default)]
pub struct CycleOutcome {
    pub results: Vec<OrgResult>,
    /// Failures that concern no single organization (discovery), counted as failed.
    pub account_failures: usize,
    /// The longest `Retry-After` Pipefy asked for, if it throttled us.
    pub retry_after: Option<Duration>,
}

type Outcomes<T> = HashMap<String, Result<Option<T>, String>>;

impl Refresher {
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<SelfMetrics>,
        publish: watch::Sender<Arc<Snapshot>>,
    ) -> anyhow::Result<Self> {
        let accounts = config
            .accounts
            .iter()
            .map(|account| {
                let client = PipefyClient::new(
                    &config.endpoint,
                    &account.credential,
                    config.timeout,
                    metrics.clone(),
                )?;
                Ok(AccountClient {
                    account: account.clone(),
                    client,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Refresher {
            permits: Semaphore::new(config.max_concurrent_requests),
            config,
            accounts,
            metrics,
            publish,
        })
    }

    /// Runs cycles until `shutdown` resolves. The first cycle starts at once; the next
    /// starts `refresh_interval` after the previous one started (at once if it took
    /// longer), or later if Pipefy asked us to back off.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut previous = self.publish.borrow().clone();
        loop {
            let started = Instant::now();
            let outcome = tokio::select! {
                outcome = self.cycle(&previous) => outcome,
                () = &mut shutdown => return,
            };
            let (succeeded, failed) = outcome
                .results
                .iter()
                .map(OrgResult::tally)
                .fold((0, outcome.account_failures), |(s, f), (ok, err)| {
                    (s + ok, f + err)
                });
            let result = RefreshResult::from_tally(succeeded, failed);
            let snapshot = Arc::new(merge(
                &previous,
                outcome.results,
                SystemTime::now(),
                self.config.stale_after,
            ));
            self.publish.send_replace(snapshot.clone());
            let elapsed = started.elapsed();
            self.metrics.observe_refresh(elapsed, result);
            let level_fields = (
                snapshot.orgs.len(),
                succeeded,
                failed,
                elapsed.as_secs_f64(),
            );
            match result {
                RefreshResult::Success => tracing::debug!(
                    organizations = level_fields.0,
                    duration_seconds = level_fields.3,
                    "refresh finished"
                ),
                _ => tracing::warn!(
                    result = result.as_str(),
                    organizations = level_fields.0,
                    collectors_ok = level_fields.1,
                    collectors_failed = level_fields.2,
                    duration_seconds = level_fields.3,
                    "refresh finished with failures; last good values are kept until stale_after"
                ),
            }
            previous = snapshot;

            let mut next = started + self.config.refresh_interval;
            if let Some(backoff) = outcome.retry_after {
                if Instant::now() + backoff > next {
                    tracing::warn!(
                        retry_after_seconds = backoff.as_secs(),
                        "Pipefy is throttling; postponing the next refresh"
                    );
                    next = Instant::now() + backoff;
                }
            }
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// One cycle over every account. Accounts run concurrently; an organization seen by
    /// two discovering accounts is kept once, for the first account in the file.
    pub async fn cycle(&self, previous: &Snapshot) -> CycleOutcome {
        let outcomes = join_all(
            self.accounts
                .iter()
                .map(|a| self.account_cycle(a, previous)),
        )
        .await;
        let mut merged = CycleOutcome::default();
        let mut seen = std::collections::HashSet::new();
        for outcome in outcomes {
            merged.account_failures += outcome.account_failures;
            merged.retry_after = merged.retry_after.max(outcome.retry_after);
            merged.results.extend(
                outcome
                    .results
                    .into_iter()
                    .filter(|r| seen.insert(r.id.clone())),
            );
        }
        merged
    }

    async fn account_cycle(&self, ac: &AccountClient, previous: &Snapshot) -> CycleOutcome {
        let collectors = &self.config.collectors;
        let mut outcome = CycleOutcome::default();
        let account = ac.account.name.as_str();

        // Who to ask about, and what is already known of them.
        let mut metas: HashMap<String, OrgMeta> = HashMap::new();
        let ids: Vec<String> = match &ac.account.organizations {
            Some(ids) => ids.clone(),
            None => match self.discover(&ac.client).await {
                Ok(found) => {
                    let ids = found.iter().map(|m| m.id.clone()).collect();
                    metas.extend(found.into_iter().map(|m| (m.id.clone(), m)));
                    ids
                }
                Err(error) => {
                    tracing::warn!(account, %error, "organization discovery failed; keeping the organizations found before");
                    outcome.account_failures += 1;
                    outcome.retry_after = retry_after_of(&error);
                    let message = format!("discovery failed: {error}");
                    // Every collector of every known organization fails this cycle,
                    // which keeps their values until stale_after.
                    outcome.results = previous
                        .orgs
                        .values()
                        .filter(|o| o.account == account)
                        .map(|o| OrgResult {
                            id: o.meta.id.clone(),
                            account: account.to_owned(),
                            meta: None,
                            limits: collectors.subscription_limits.then(|| Err(message.clone())),
                            ai_credits: collectors.ai_credits.then(|| Err(message.clone())),
                            tokens: collectors
                                .token_attribution
                                .as_ref()
                                .map(|_| Err(message.clone())),
                        })
                        .collect();
                    return outcome;
                }
            },
        };
        let known_uuid = |id: &str, metas: &HashMap<String, OrgMeta>| -> Option<String> {
            metas
                .get(id)
                .and_then(|m| m.uuid.clone())
                .or_else(|| previous.orgs.get(id).and_then(|o| o.meta.uuid.clone()))
        };

        // Stage 1: limits and identity.
        let mut limits = HashMap::new();
        let mut stage1_errors: HashMap<String, String> = HashMap::new();
        let identity_needed =
            collectors.ai_credits && ids.iter().any(|id| known_uuid(id, &metas).is_none());
        if collectors.subscription_limits || identity_needed {
            let (operation, build): (&'static str, fn(&[&str]) -> Batch) =
                if collectors.subscription_limits {
                    (operation::SUBSCRIPTION_LIMITS, queries::subscription_limits)
                } else {
                    (operation::ORGANIZATION_INFO, queries::organization_info)
                };
            let (orgs, retry) = self
                .batches::<Organization>(&ac.client, operation, &ids, build)
                .await;
            outcome.retry_after = outcome.retry_after.max(retry);
            for (id, result) in orgs {
                match result {
                    Ok(Some(org)) => {
                        metas.insert(id.clone(), org.meta());
                        limits.insert(id, Ok(org.limits()));
                    }
                    Ok(None) => {
                        let error = "organization not returned (null)".to_owned();
                        stage1_errors.insert(id.clone(), error.clone());
                        limits.insert(id, Err(error));
                    }
                    Err(error) => {
                        stage1_errors.insert(id.clone(), error.clone());
                        limits.insert(id, Err(error));
                    }
                }
            }
        }

        // Stage 2: AI credits (by uuid) and tokens (by id), concurrently.
        let uuids: HashMap<String, String> = ids
            .iter()
            .filter_map(|id| known_uuid(id, &metas).map(|u| (u, id.clone())))
            .collect();
        let uuid_list: Vec<String> = ids.iter().filter_map(|id| known_uuid(id, &metas)).collect();
        let ai_future = async {
            if collectors.ai_credits {
                Some(
                    self.batches::<AiCreditUsageStats>(
                        &ac.client,
                        operation::AI_CREDITS,
                        &uuid_list,
                        queries::ai_credits,
                    )
                    .await,
                )
            } else {
                None
            }
        };
        let token_future = async {
            match &collectors.token_attribution {
                Some(t) => Some(
                    self.batches::<OrganizationTokens>(
                        &ac.client,
                        operation::TOKEN_ATTRIBUTION,
                        &ids,
                        |ids| queries::token_attribution(ids, &t.selection),
                    )
                    .await,
                ),
                None => None,
            }
        };
        let (ai, tokens) = tokio::join!(ai_future, token_future);
        let ai_by_id: Option<Outcomes<AiCreditUsageStats>> = ai.map(|(by_uuid, retry)| {
            outcome.retry_after = outcome.retry_after.max(retry);
            by_uuid
                .into_iter()
                .filter_map(|(uuid, r)| uuids.get(&uuid).map(|id| (id.clone(), r)))
                .collect()
        });
        let mut tokens_by_id: Option<Outcomes<OrganizationTokens>> = tokens.map(|(t, retry)| {
            outcome.retry_after = outcome.retry_after.max(retry);
            t
        });

        let mut ai_by_id = ai_by_id;
        for id in ids {
            let ai_credits = ai_by_id.as_mut().map(|by_id| match by_id.remove(&id) {
                Some(Ok(stats)) => Ok(stats.map(|s| s.to_snapshot())),
                Some(Err(e)) => Err(e),
                // No uuid, so it could not be asked.
                None => Err(format!(
                    "organization uuid unknown: {}",
                    stage1_errors
                        .get(&id)
                        .map(String::as_str)
                        .unwrap_or("not returned")
                )),
            });
            let tokens = tokens_by_id.as_mut().map(|by_id| match by_id.remove(&id) {
                Some(Ok(Some(t))) => Ok(t.to_snapshot()),
                Some(Ok(None)) => Err("organization not returned (null)".to_owned()),
                Some(Err(e)) => Err(e),
                None => Err("missing from the response".to_owned()),
            });
            let result = OrgResult {
                meta: metas.remove(&id),
                account: account.to_owned(),
                limits: if collectors.subscription_limits {
                    limits.remove(&id)
                } else {
                    None
                },
                ai_credits,
                tokens,
                id,
            };
            outcome.results.push(result);
        }
        outcome
    }

    async fn discover(&self, client: &PipefyClient) -> Result<Vec<OrgMeta>, ApiError> {
        #[derive(Deserialize)]
        struct Data {
            organizations: Vec<Organization>,
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::Transport("shutting down".into()))?;
        let response = client
            .execute(
                operation::ORGANIZATIONS,
                queries::ORGANIZATIONS,
                &serde_json::json!({}),
            )
            .await?;
        if let Some(error) = response.errors.first() {
            return Err(ApiError::Decode(format!(
                "organizations query failed: {}",
                error.message
            )));
        }
        let data = serde_json::Value::Object(response.data.unwrap_or_default());
        let data: Data = serde_json::from_value(data)
            .map_err(|e| ApiError::Decode(format!("unexpected organizations response: {e}")))?;
        Ok(data.organizations.iter().map(Organization::meta).collect())
    }

    /// Runs `keys` in batches, at most `max_concurrent_requests` at once across the
    /// process, and returns one outcome per key. A failed request fails its batch only.
    async fn batches<T: for<'de> Deserialize<'de>>(
        &self,
        client: &PipefyClient,
        operation: &'static str,
        keys: &[String],
        build: impl Fn(&[&str]) -> Batch,
    ) -> (Outcomes<T>, Option<Duration>) {
        let requests = keys.chunks(self.config.max_orgs_per_request).map(|chunk| {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let batch = build(&refs);
            async move {
                let response = match self.permits.acquire().await {
                    Ok(_permit) => {
                        client
                            .execute(operation, &batch.text, &batch.variables)
                            .await
                    }
                    Err(_) => Err(ApiError::Transport("shutting down".into())),
                };
                (batch, response)
            }
        });
        let mut outcomes = HashMap::with_capacity(keys.len());
        let mut retry_after = None;
        for (batch, response) in join_all(requests).await {
            match response {
                Ok(response) => {
                    for (key, result) in model::split::<T>(&response, &batch.aliases) {
                        if let Err(error) = &result {
                            // `key` is the organization id, or its uuid for AI credits.
                            tracing::warn!(operation, organization = %key, %error, "Pipefy returned an error for one organization");
                        }
                        outcomes.insert(key, result);
                    }
                }
                Err(error) => {
                    tracing::warn!(operation, organizations = batch.aliases.len(), %error, "Pipefy request failed");
                    retry_after = retry_after.max(retry_after_of(&error));
                    let message = error.to_string();
                    outcomes.extend(
                        batch
                            .aliases
                            .into_iter()
                            .map(|(_, key)| (key, Err(message.clone()))),
                    );
                }
            }
        }
        (outcomes, retry_after)
    }
}

fn retry_after_of(error: &ApiError) -> Option<Duration> {
    match error {
        ApiError::RateLimited { retry_after } => *retry_after,
        _ => None,
    }
}
