//! The GraphQL schema of the fake Pipefy: a subset of Pipefy's, served by async-graphql.
//!
//! A real GraphQL engine (rather than canned JSON) is the point of the simulator: the
//! exporter's aliases, variables, fragments and per-alias error handling are only tested
//! for real if the server parses, validates and executes queries like Pipefy does.
//!
//! Resolvers take a snapshot of the data under the simulator's lock and build plain
//! output values from it, so the lock is never held while async-graphql walks the
//! selection set.

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, Enum, ErrorExtensions, Object, Schema, SimpleObject,
    ID,
};

use super::data::{Resource, SimData, SimOrg};
use super::Simulator;

/// Pipefy's documented limits: 50,000 complexity points and depth 15 per query.
const MAX_COMPLEXITY: usize = 50_000;
const MAX_DEPTH: usize = 15;

pub(super) type SimSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

/// Builds the schema. It holds no data: the [`Simulator`] is handed to every request as
/// request data, so the schema (owned by the simulator) never points back at it.
pub(super) fn build_schema() -> SimSchema {
    Schema::build(QueryRoot, EmptyMutation, EmptySubscription)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_depth(MAX_DEPTH)
        .finish()
}

/// Period of `aiCreditUsageStats`. Pipefy spells these values in lower case, unlike
/// most GraphQL enums, so each one is named explicitly.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AiCreditUsagePeriod {
    #[graphql(name = "current_month")]
    CurrentMonth,
    #[graphql(name = "last_month")]
    LastMonth,
    #[graphql(name = "last_3_months")]
    Last3Months,
}

#[derive(SimpleObject)]
pub(super) struct Organization {
    id: ID,
    uuid: ID,
    name: String,
    plan_name: Option<String>,
    active_subscription: Option<ActiveSubscription>,
    personal_access_tokens: Vec<PersonalAccessToken>,
}

#[derive(SimpleObject)]
pub(super) struct ActiveSubscription {
    limits: Vec<SubscriptionLimit>,
}

#[derive(SimpleObject)]
pub(super) struct SubscriptionLimit {
    resource: Resource,
    /// null = unlimited.
    limit: Option<i32>,
    used: i32,
}

#[derive(SimpleObject)]
pub(super) struct PersonalAccessToken {
    id: ID,
    name: String,
    /// null = not yet assigned to a billing organization.
    billing_organization: Option<BillingOrganization>,
}

#[derive(SimpleObject)]
pub(super) struct BillingOrganization {
    id: ID,
    /// null when the billed organization is not in the simulator's data.
    name: Option<String>,
}

#[derive(SimpleObject)]
pub(super) struct AiCreditUsageStats {
    active: bool,
    usage: f64,
    limit: f64,
    has_addon: bool,
    updated_at: String,
    free_ai_credit: Option<FreeAiCredit>,
}

#[derive(SimpleObject)]
pub(super) struct FreeAiCredit {
    limit: f64,
    usage: f64,
}

impl Organization {
    /// Copies one organization out of the data. Billing organization names are looked
    /// up here, while the whole data set is at hand.
    fn snapshot(org: &SimOrg, data: &SimData) -> Organization {
        Organization {
            id: ID(org.id.clone()),
            uuid: ID(org.uuid.clone()),
            name: org.name.clone(),
            plan_name: org.plan.clone(),
            active_subscription: (!org.limits.is_empty()).then(|| ActiveSubscription {
                limits: org
                    .limits
                    .iter()
                    .map(|l| SubscriptionLimit {
                        resource: l.resource,
                        limit: l.limit,
                        used: l.used,
                    })
                    .collect(),
            }),
            personal_access_tokens: org
                .tokens
                .iter()
                .map(|t| PersonalAccessToken {
                    id: ID(t.id.clone()),
                    name: t.name.clone(),
                    billing_organization: t.billing_organization.as_ref().map(|billed| {
                        BillingOrganization {
                            id: ID(billed.clone()),
                            name: data.orgs.get(billed).map(|o| o.name.clone()),
                        }
                    }),
                })
                .collect(),
        }
    }
}

/// The error Pipefy gives for an organization the credential may not read. A GraphQL
/// error (not an HTTP one) so that async-graphql attaches the alias path to it and the
/// other aliases of the request still get their data.
fn permission_denied() -> async_graphql::Error {
    async_graphql::Error::new("Permission denied")
        .extend_with(|_, e| e.set("code", "PERMISSION_DENIED"))
}

fn not_found() -> async_graphql::Error {
    async_graphql::Error::new("Organization not found")
        .extend_with(|_, e| e.set("code", "RESOURCE_NOT_FOUND"))
}

/// Reports `err` for the current field and resolves the field to null.
///
/// Returning `Err` from a resolver would be simpler, but async-graphql 7 then leaves the
/// field out of `data` altogether (and makes `data` null when every field failed),
/// whereas GraphQL servers like Pipefy's answer `"alias": null` next to the error. The
/// exporter must cope with the real shape, so the simulator produces it.
fn null_with_error<T>(ctx: &Context<'_>, err: async_graphql::Error) -> Option<T> {
    // `item.pos` is the field's position in the query, for the error's `locations`.
    ctx.add_error(ctx.set_error_path(err.into_server_error(ctx.item.pos)));
    None
}

fn simulator<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Simulator> {
    ctx.data::<Simulator>()
}

pub(super) struct QueryRoot;

#[Object]
impl QueryRoot {
    /// One organization by numeric id; null plus an error (with the alias as `path`)
    /// when it is denied or unknown.
    async fn organization(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<Organization>> {
        let sim = simulator(ctx)?;
        sim.count_root_field("organization");
        let found = sim.read(|data, _| {
            if data.denied.contains(id.as_str()) {
                return Err(permission_denied());
            }
            match data.orgs.get(id.as_str()) {
                Some(org) => Ok(Organization::snapshot(org, data)),
                None => Err(not_found()),
            }
        });
        Ok(found.map_or_else(|err| null_with_error(ctx, err), Some))
    }

    /// Every organization the credential may read, in id order.
    async fn organizations(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Organization>> {
        let sim = simulator(ctx)?;
        sim.count_root_field("organizations");
        Ok(sim.read(|data, _| {
            data.orgs
                .values()
                .filter(|o| !data.denied.contains(&o.id))
                .map(|o| Organization::snapshot(o, data))
                .collect()
        }))
    }

    /// AI-credit usage of an organization, looked up by *uuid* like Pipefy does. Every
    /// period answers the same numbers: the simulator keeps no history.
    async fn ai_credit_usage_stats(
        &self,
        ctx: &Context<'_>,
        organization_uuid: ID,
        #[graphql(name = "period")] _period: AiCreditUsagePeriod,
    ) -> async_graphql::Result<Option<AiCreditUsageStats>> {
        let sim = simulator(ctx)?;
        sim.count_root_field("aiCreditUsageStats");
        let found = sim.read(|data, updated_at| {
            let org = data
                .orgs
                .values()
                .find(|o| o.uuid == organization_uuid.as_str())
                .ok_or_else(not_found)?;
            if data.denied.contains(&org.id) {
                return Err(permission_denied());
            }
            Ok(org.ai.as_ref().map(|ai| AiCreditUsageStats {
                active: ai.active,
                usage: ai.usage,
                limit: ai.limit,
                has_addon: ai.has_addon,
                updated_at: updated_at.to_string(),
                free_ai_credit: Some(FreeAiCredit {
                    limit: ai.free_limit,
                    usage: ai.free_usage,
                }),
            }))
        });
        Ok(found.unwrap_or_else(|err| null_with_error(ctx, err)))
    }
}
