//! Which organizations an account fetches in a refresh, and what is known of them:
//! the listed ones, or those discovery finds (`organizations`, one request), after the
//! account is admitted (not backing off), authenticated and its queries checked.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Deserialize;

use super::accounts::AccountClient;
use super::Refresher;
use crate::pipefy::backoff::{Admission, Why};
use crate::pipefy::model::{self, Organization};
use crate::pipefy::query::{self, RootField};
use crate::pipefy::{ApiError, PipefyClient};
use crate::shard::Shard;
use crate::snapshot::{OrgMeta, Snapshot};

/// Operation names of the requests that belong to no collector.
pub(crate) mod operation {
    pub(crate) const ORGANIZATIONS: &str = "PipefyOrganizations";
    pub(crate) const ORGANIZATION_INFO: &str = "PipefyOrganizationInfo";
}

/// What the requests that belong to no collector are called in log lines.
pub(super) mod step {
    pub(crate) const DISCOVERY: &str = "discovery";
    pub(crate) const IDENTITY: &str = "identity";
}

/// Every organization the credential can see.
const DISCOVERY: &str = "organizations { id uuid name planName }";
/// One organization's identity, for the uuid the usage statistics need.
pub(super) const IDENTITY: &str = "organization(id: $id) { id uuid name planName }";

/// Which organizations a refresh asks about.
#[derive(Clone, Copy, Debug)]
pub(super) enum Scope<'a> {
    /// Every organization of every account: a regular refresh.
    All,
    /// Only organizations the snapshot does not have yet, of these accounts: what a
    /// reload added, fetched at once rather than one interval later, without paying
    /// again for what is already known.
    Newcomers { accounts: &'a HashSet<String> },
}

impl Scope<'_> {
    pub(super) fn asks(&self, account: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Newcomers { accounts } => accounts.contains(account),
        }
    }

    pub(super) fn wants(&self, id: &str, previous: &Snapshot) -> bool {
        match self {
            Scope::All => true,
            Scope::Newcomers { .. } => !previous.orgs.contains_key(id),
        }
    }
}

/// What an account can do this refresh.
pub(super) enum AccountPlan {
    /// Fetch these organizations (with what discovery already told of them).
    Fetch {
        ids: Vec<String>,
        metas: HashMap<String, OrgMeta>,
    },
    /// Nothing can be fetched (authentication or discovery failed, or the account is
    /// backing off: `skipped`): these organizations fail every due collector, which
    /// keeps their values until stale_after.
    Fail {
        ids: Vec<String>,
        error: String,
        skipped: bool,
    },
}

impl AccountPlan {
    pub(super) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        match self {
            AccountPlan::Fetch { ids, .. } | AccountPlan::Fail { ids, .. } => {
                ids.retain(|id| keep(id))
            }
        }
    }
}

impl Refresher {
    /// Admits the account (or not, while it backs off), authenticates it (a broken
    /// credential then costs one token request per refresh, not one per batch), checks
    /// its queries when a check is due, and finds the organizations to ask about.
    pub(super) async fn plan_account(
        &self,
        ac: &AccountClient,
        previous: &Snapshot,
    ) -> (AccountPlan, Option<Duration>) {
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
        if let Admission::Wait { remaining, why } = self.admit(ac) {
            // A secret rotated on disk is worth one try at once rather than at the end
            // of a wait of up to backoff_max: Kubernetes updates mounted secrets in place.
            if why == Why::CredentialRejected && ac.client.secret_rotated() {
                tracing::info!(
                    account,
                    "the secret file changed during the credential backoff; trying it now"
                );
            } else {
                return (backing_off(fallback(), remaining, why), None);
            }
        }
        if let Err(error) = ac.client.authenticate().await {
            tracing::warn!(account, %error, "cannot authenticate to Pipefy; last good values are kept until stale_after");
            let plan = AccountPlan::Fail {
                ids: fallback(),
                error: error.to_string(),
                skipped: false,
            };
            return (plan, error.retry_after());
        }
        self.check_queries(ac).await;
        let Some(ids) = &ac.account.organizations else {
            return self.discover(ac, previous, fallback).await;
        };
        let plan = AccountPlan::Fetch {
            ids: ids.clone(),
            metas: HashMap::new(),
        };
        (plan, None)
    }

    /// The organizations of an account that lists none: every one its credential can
    /// see (those of this shard), or, if discovery fails, the ones found before, failed.
    async fn discover(
        &self,
        ac: &AccountClient,
        previous: &Snapshot,
        fallback: impl Fn() -> Vec<String>,
    ) -> (AccountPlan, Option<Duration>) {
        let account = ac.account.name.as_str();
        match self.organizations(&ac.client).await {
            Ok(found) => {
                announce_discovered(account, found.len(), previous, self.config.shard);
                let plan = AccountPlan::Fetch {
                    ids: found.iter().map(|m| m.id.clone()).collect(),
                    metas: found.into_iter().map(|m| (m.id.clone(), m)).collect(),
                };
                (plan, None)
            }
            Err(error) => {
                tracing::warn!(account, collector = step::DISCOVERY, %error, "organization discovery failed; keeping the organizations found before");
                let plan = AccountPlan::Fail {
                    ids: fallback(),
                    error: format!("discovery failed: {error}"),
                    skipped: false,
                };
                (plan, error.retry_after())
            }
        }
    }

    /// The `organizations` request: every organization the credential can see, with
    /// its identity, those of this shard only.
    async fn organizations(&self, client: &PipefyClient) -> Result<Vec<OrgMeta>, ApiError> {
        #[derive(Deserialize)]
        struct Data {
            a0: Vec<Organization>,
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::Transport("shutting down".into()))?;
        let document = query::document(
            operation::ORGANIZATIONS,
            &[RootField::new("all", DISCOVERY)],
        );
        let response = client
            .execute(
                operation::ORGANIZATIONS,
                &document.text,
                &document.variables,
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
        // Every shard discovers (one request each) and keeps the organizations it owns:
        // the others' are never asked about, so they cost this shard nothing more.
        let shard = self.config.shard;
        Ok(data
            .a0
            .iter()
            .filter(|org| shard.owns(&org.id))
            .map(Organization::meta)
            .collect())
    }
}

/// Says how many organizations discovery found for an account that lists none, the
/// first time and whenever the number changes (not every refresh): `organizations: []`
/// reads like "none" but means "every one the credential can see".
fn announce_discovered(account: &str, found: usize, previous: &Snapshot, shard: Shard) {
    let before = previous
        .orgs
        .values()
        .filter(|o| o.account == account)
        .count();
    if found != before || previous.cycles == 0 {
        let of_shard = if shard.is_sharded() {
            " (those of this shard)"
        } else {
            ""
        };
        tracing::info!(
            account,
            organizations = found,
            "watching all {found} organizations the credential can see{of_shard}"
        );
    }
}

/// What an account backing off does this refresh: nothing, its organizations fail.
fn backing_off(ids: Vec<String>, remaining: Duration, why: Why) -> AccountPlan {
    AccountPlan::Fail {
        ids,
        error: format!(
            "not asked: {}; next try in {}s",
            why.as_str(),
            remaining.as_secs_f64().ceil()
        ),
        skipped: true,
    }
}
