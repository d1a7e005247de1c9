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

use std::collections::{HashMap, HashSet};
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

/// The operations a configuration makes requests for, token requests included.
pub fn operations(config: &Config) -> Vec<&'static str> {
    let collectors = &config.collectors;
    let mut ops = Vec::new();
    if config.accounts.iter().any(|a| a.organizations.is_none()) {
        ops.push(operation::ORGANIZATIONS);
    }
    if collectors.subscription_limits {
        ops.push(operation::SUBSCRIPTION_LIMITS);
    } else if collectors.ai_credits {
        ops.push(operation::ORGANIZATION_INFO);
    }
    if collectors.ai_credits {
        ops.push(operation::AI_CREDITS);
    }
    if collectors.token_attribution.is_some() {
        ops.push(operation::TOKEN_ATTRIBUTION);
    }
    if config.accounts.iter().any(|a| {
        matches!(
            a.credential,
            crate::config::Credential::ServiceAccount { .. }
        )
    }) {
        ops.push(crate::pipefy::auth::OAUTH_OPERATION);
    }
    ops
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
type BuildBatch = fn(&[&str]) -> Batch;

/// What an account can do this cycle.
enum Plan {
    /// Fetch these organizations (with what discovery already told of them).
    Fetch {
        ids: Vec<String>,
        metas: HashMap<String, OrgMeta>,
        retry_after: Option<Duration>,
    },
    /// Nothing can be fetched (authentication or discovery failed): these
    /// organizations fail every collector, which keeps their values until stale_after.
    Fail {
        ids: Vec<String>,
        error: String,
        retry_after: Option<Duration>,
    },
}

/// When the next cycle starts: one interval after this one started, or later when
/// Pipefy sent a longer `Retry-After`. The wait is capped at `stale_after`: by then the
/// values are gone anyway, and an absurd header must not switch the exporter off.
fn next_start(
    started: Instant,
    now: Instant,
    interval: Duration,
    retry_after: Option<Duration>,
    stale_after: Duration,
) -> Instant {
    let regular = started.checked_add(interval).unwrap_or(now);
    match retry_after.map(|r| r.min(stale_after)) {
        Some(backoff) => regular.max(now.checked_add(backoff).unwrap_or(regular)),
        None => regular,
    }
}

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
            if result == RefreshResult::Success {
                tracing::debug!(
                    organizations = snapshot.orgs.len(),
                    duration_seconds = elapsed.as_secs_f64(),
                    "refresh finished"
                );
            } else {
                tracing::warn!(
                    result = result.as_str(),
                    organizations = snapshot.orgs.len(),
                    collectors_ok = succeeded,
                    collectors_failed = failed,
                    duration_seconds = elapsed.as_secs_f64(),
                    "refresh finished with failures; last good values are kept until stale_after"
                );
            }
            previous = snapshot;

            let next = next_start(
                started,
                Instant::now(),
                self.config.refresh_interval,
                outcome.retry_after,
                self.config.stale_after,
            );
            if let Some(backoff) = outcome
                .retry_after
                .filter(|_| next > started + self.config.refresh_interval)
            {
                tracing::warn!(
                    retry_after_seconds = backoff.as_secs(),
                    next_in_seconds = next.saturating_duration_since(Instant::now()).as_secs(),
                    "Pipefy is throttling; postponing the next refresh"
                );
            }
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// One cycle over every account: first each account authenticates and finds its
    /// organizations (concurrently), then each organization is assigned to the first
    /// account in the file that has it, so that an organization two accounts can see
    /// is fetched (and paid for) once; then the accounts fetch concurrently.
    pub async fn cycle(&self, previous: &Snapshot) -> CycleOutcome {
        let plans = join_all(self.accounts.iter().map(|ac| self.plan(ac, previous))).await;
        let mut outcome = CycleOutcome::default();
        let mut claimed: HashSet<String> = HashSet::new();
        // Accounts that can fetch claim first; a failing account keeps only the
        // organizations nobody else fetches.
        for plan in &plans {
            if let Plan::Fetch { ids, .. } = plan {
                ids.iter().for_each(|id| {
                    claimed.insert(id.clone());
                });
            }
        }
        let mut fetches = Vec::new();
        let mut owned: HashSet<String> = HashSet::new();
        for (ac, plan) in self.accounts.iter().zip(plans) {
            match plan {
                Plan::Fetch {
                    mut ids,
                    metas,
                    retry_after,
                } => {
                    outcome.retry_after = outcome.retry_after.max(retry_after);
                    ids.retain(|id| owned.insert(id.clone()));
                    fetches.push(self.collect(ac, ids, metas, previous));
                }
                Plan::Fail {
                    ids,
                    error,
                    retry_after,
                } => {
                    outcome.account_failures += 1;
                    outcome.retry_after = outcome.retry_after.max(retry_after);
                    let collectors = &self.config.collectors;
                    outcome.results.extend(
                        ids.into_iter()
                            .filter(|id| !claimed.contains(id) && owned.insert(id.clone()))
                            .map(|id| OrgResult {
                                id,
                                account: ac.account.name.clone(),
                                meta: None,
                                limits: collectors.subscription_limits.then(|| Err(error.clone())),
                                ai_credits: collectors.ai_credits.then(|| Err(error.clone())),
                                tokens: collectors
                                    .token_attribution
                                    .as_ref()
                                    .map(|_| Err(error.clone())),
                            }),
                    );
                }
            }
        }
        for fetched in join_all(fetches).await {
            outcome.retry_after = outcome.retry_after.max(fetched.retry_after);
            outcome.results.extend(fetched.results);
        }
        outcome
    }

    /// Authenticates (a broken credential then costs one token request per cycle, not
    /// one per batch) and finds the organizations to ask about.
    async fn plan(&self, ac: &AccountClient, previous: &Snapshot) -> Plan {
        let account = ac.account.name.as_str();
        // What to report as failed when nothing can be fetched: the configured
        // organizations, or the ones discovered before.
        let fallback = || match &ac.account.organizations {
            Some(ids) => ids.clone(),
            None => previous
                .orgs
                .values()
                .filter(|o| o.account == account)
                .map(|o| o.meta.id.clone())
                .collect(),
        };
        if let Err(error) = ac.client.authenticate().await {
            tracing::warn!(account, %error, "cannot authenticate to Pipefy; last good values are kept until stale_after");
            return Plan::Fail {
                ids: fallback(),
                error: error.to_string(),
                retry_after: error.retry_after(),
            };
        }
        match &ac.account.organizations {
            Some(ids) => Plan::Fetch {
                ids: ids.clone(),
                metas: HashMap::new(),
                retry_after: None,
            },
            None => match self.discover(&ac.client).await {
                Ok(found) => Plan::Fetch {
                    ids: found.iter().map(|m| m.id.clone()).collect(),
                    metas: found.into_iter().map(|m| (m.id.clone(), m)).collect(),
                    retry_after: None,
                },
                Err(error) => {
                    tracing::warn!(account, %error, "organization discovery failed; keeping the organizations found before");
                    Plan::Fail {
                        ids: fallback(),
                        error: format!("discovery failed: {error}"),
                        retry_after: error.retry_after(),
                    }
                }
            },
        }
    }

    /// Fetches every enabled collector for `ids` with one account's client.
    async fn collect(
        &self,
        ac: &AccountClient,
        ids: Vec<String>,
        mut metas: HashMap<String, OrgMeta>,
        previous: &Snapshot,
    ) -> CycleOutcome {
        let collectors = &self.config.collectors;
        let mut outcome = CycleOutcome::default();
        let account = ac.account.name.as_str();
        let known_uuid = |id: &str, metas: &HashMap<String, OrgMeta>| -> Option<String> {
            metas
                .get(id)
                .and_then(|m| m.uuid.clone())
                .or_else(|| previous.orgs.get(id).and_then(|o| o.meta.uuid.clone()))
        };

        // Stage 1: limits and identity. With limits disabled, identity is asked only
        // for the organizations whose uuid (needed for AI credits) is still unknown.
        let mut limits = HashMap::new();
        let mut stage1_errors: HashMap<String, String> = HashMap::new();
        let (operation, build, stage1_ids): (&'static str, BuildBatch, Vec<String>) =
            if collectors.subscription_limits {
                (
                    operation::SUBSCRIPTION_LIMITS,
                    queries::subscription_limits,
                    ids.clone(),
                )
            } else if collectors.ai_credits {
                let unknown = ids
                    .iter()
                    .filter(|id| known_uuid(id, &metas).is_none())
                    .cloned()
                    .collect();
                (
                    operation::ORGANIZATION_INFO,
                    queries::organization_info,
                    unknown,
                )
            } else {
                (
                    operation::ORGANIZATION_INFO,
                    queries::organization_info,
                    Vec::new(),
                )
            };
        if !stage1_ids.is_empty() {
            let (orgs, retry) = self
                .batches::<Organization>(&ac.client, operation, &stage1_ids, build)
                .await;
            outcome.retry_after = outcome.retry_after.max(retry);
            for (id, result) in orgs {
                let result = match result {
                    Ok(Some(org)) => {
                        metas.insert(id.clone(), org.meta());
                        Ok(org.limits())
                    }
                    Ok(None) => Err("organization not returned (null)".to_owned()),
                    Err(error) => Err(error),
                };
                if let Err(error) = &result {
                    stage1_errors.insert(id.clone(), error.clone());
                }
                limits.insert(id, result);
            }
        }

        // Stage 2: AI credits (by uuid) and tokens (by id), concurrently.
        let uuids: Vec<(String, String)> = ids
            .iter()
            .filter_map(|id| known_uuid(id, &metas).map(|u| (u, id.clone())))
            .collect();
        let uuid_list: Vec<String> = uuids.iter().map(|(u, _)| u.clone()).collect();
        let id_of_uuid: HashMap<String, String> = uuids.into_iter().collect();
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
        let mut ai_by_id: Option<Outcomes<AiCreditUsageStats>> = ai.map(|(by_uuid, retry)| {
            outcome.retry_after = outcome.retry_after.max(retry);
            by_uuid
                .into_iter()
                .filter_map(|(uuid, r)| id_of_uuid.get(&uuid).map(|id| (id.clone(), r)))
                .collect()
        });
        let mut tokens_by_id: Option<Outcomes<OrganizationTokens>> = tokens.map(|(t, retry)| {
            outcome.retry_after = outcome.retry_after.max(retry);
            t
        });

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
            outcome.results.push(OrgResult {
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
            });
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
                model::truncate(&error.message)
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
                    retry_after = retry_after.max(error.retry_after());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_start_honours_retry_after_within_stale_after() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let stale = Duration::from_secs(900);
        // No throttling: one interval after the start.
        assert_eq!(
            next_start(t0, t0 + Duration::from_secs(5), minute, None, stale),
            t0 + minute
        );
        // A short Retry-After changes nothing.
        assert_eq!(
            next_start(
                t0,
                t0 + Duration::from_secs(5),
                minute,
                Some(Duration::from_secs(10)),
                stale
            ),
            t0 + minute
        );
        // A longer one postpones, counted from now.
        let now = t0 + Duration::from_secs(5);
        assert_eq!(
            next_start(t0, now, minute, Some(Duration::from_secs(120)), stale),
            now + Duration::from_secs(120)
        );
        // An absurd one is capped at stale_after instead of overflowing.
        assert_eq!(
            next_start(t0, now, minute, Some(Duration::from_secs(u64::MAX)), stale),
            now + stale
        );
    }
}
