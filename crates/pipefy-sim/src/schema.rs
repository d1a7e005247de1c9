//! The GraphQL schema of the fake Pipefy: a subset of Pipefy's, served by async-graphql.
//!
//! A real GraphQL engine (rather than canned JSON) is the point of the simulator: the
//! exporter's aliases, variables, fragments and per-alias error handling are only tested
//! for real if the server parses, validates and executes queries like Pipefy does.
//!
//! Resolvers take a snapshot of the data under the simulator's lock and build plain
//! output values from it, so the lock is never held while async-graphql walks the
//! selection set.

use std::collections::BTreeSet;

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, ErrorExtensions, Object, Schema, SimpleObject, ID,
};

use super::data::{Resource, SimData, SimOrg};
use super::usage::{
    self, AiCreditUsageStatsCombined, ApiUsageStats, ApiUsageStatsCombined,
    AutomationsUsageCombined, AutomationsUsageDetails, DailyApiUsage, GroupedApiDimension,
    IntegrationsUsageStats, UsageStatsAiCreditDetails, UsageStatsOrganization,
};
use super::window::{self, DateRange, PeriodFilter, Window};
use super::Simulator;

/// Pipefy's documented limits: 50,000 complexity points and depth 15 per query.
const MAX_COMPLEXITY: usize = 50_000;
const MAX_DEPTH: usize = 15;
/// Pipefy's documented bound on `organizationUuids` of the combined usage-statistics
/// fields.
pub(super) const MAX_COMBINED_UUIDS: usize = 25;

pub(super) type SimSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

/// Builds the schema. It holds no data: the [`Simulator`] is handed to every request as
/// request data, so the schema (owned by the simulator) never points back at it.
pub(super) fn build_schema() -> SimSchema {
    Schema::build(QueryRoot, EmptyMutation, EmptySubscription)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_depth(MAX_DEPTH)
        .finish()
}

#[derive(SimpleObject)]
pub(super) struct Organization {
    id: ID,
    uuid: ID,
    name: String,
    plan_name: Option<String>,
    active_subscription: Option<ActiveSubscription>,
    /// Only in [`SimSchema::Guessed`](super::SimSchema::Guessed).
    #[graphql(visible = "super::variants::guessed")]
    personal_access_tokens: Vec<PersonalAccessToken>,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_ActiveSubscription_k3d")]
pub(super) struct ActiveSubscription {
    limits: Vec<SubscriptionLimit>,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_SubscriptionLimit_w8p")]
pub(super) struct SubscriptionLimit {
    resource: Resource,
    /// null = unlimited.
    limit: Option<i32>,
    used: i32,
}

/// Not documented by Pipefy at all (see "Token attribution" in the API notes): the
/// exporter's default query reaches it only through field names, never a type name.
#[derive(SimpleObject)]
#[graphql(
    name = "Sim_PersonalAccessToken_h5t",
    visible = "super::variants::guessed"
)]
pub(super) struct PersonalAccessToken {
    id: ID,
    name: String,
    /// null = not yet assigned to a billing organization.
    billing_organization: Option<BillingOrganization>,
}

#[derive(Clone, SimpleObject)]
#[graphql(
    name = "Sim_BillingOrganization_b9c",
    visible = "super::variants::lists_tokens"
)]
pub(super) struct BillingOrganization {
    id: ID,
    /// null when the billed organization is not in the simulator's data.
    name: Option<String>,
}

/// One token and the organization billed for it, as
/// [`SimSchema::Relocated`](super::SimSchema::Relocated) lists them.
#[derive(SimpleObject)]
#[graphql(
    name = "Sim_TokenAssignment_r4m",
    visible = "super::variants::relocated"
)]
pub(super) struct TokenAssignment {
    token: AssignedToken,
    billing_organization: Option<BillingOrganization>,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_AssignedToken_v7d", visible = "super::variants::relocated")]
pub(super) struct AssignedToken {
    id: ID,
    name: String,
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

fn invalid_argument(message: String) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "INVALID_ARGUMENT"))
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

/// Resolves a root field that may fail on its own: counts it, then runs `answer`, whose
/// `Ok(None)` is a plain null and whose `Err` is a null plus an error at the field's
/// path (its alias), so that the other aliases of the request still answer.
fn resolve<T>(
    ctx: &Context<'_>,
    field: &str,
    answer: impl FnOnce(&Simulator) -> async_graphql::Result<Option<T>>,
) -> async_graphql::Result<Option<T>> {
    let sim = simulator(ctx)?;
    sim.count_root_field(field);
    Ok(answer(sim).unwrap_or_else(|err| null_with_error(ctx, err)))
}

/// The window a usage-statistics field asked for (see [`Window::asked`]).
fn asked_window(
    period: Option<PeriodFilter>,
    filter_date: Option<DateRange>,
) -> async_graphql::Result<Window> {
    Window::asked(period, filter_date, window::today()).map_err(invalid_argument)
}

/// Whether the credential has the *Usage Stats* permission in this organization. An
/// organization it may not read at all has none either.
fn usage_stats_allowed(data: &SimData, org: &SimOrg) -> bool {
    !data.denied.contains(&org.id) && !data.usage_stats_denied.contains(&org.id)
}

fn org_by_uuid<'d>(data: &'d SimData, uuid: &str) -> Option<&'d SimOrg> {
    data.orgs.values().find(|o| o.uuid == uuid)
}

/// Answers a per-organization usage-statistics field: `build` runs on the organization
/// with this uuid, under the lock, with the current `updatedAt`; an unknown uuid or a
/// missing permission is an error on the field.
fn per_organization<T>(
    sim: &Simulator,
    uuid: &ID,
    build: impl FnOnce(&SimOrg, &str) -> Option<T>,
) -> async_graphql::Result<Option<T>> {
    sim.record_asked(true, [uuid.as_str()]);
    sim.read(|data, updated_at| {
        let org = org_by_uuid(data, uuid).ok_or_else(not_found)?;
        if !usage_stats_allowed(data, org) {
            return Err(permission_denied());
        }
        Ok(build(org, updated_at))
    })
}

/// Answers a combined usage-statistics field: `build` runs on the organizations among
/// `uuids` whose statistics the credential may read (each once, in the asked order),
/// with `partial` set when any uuid was dropped, as Pipefy does.
///
/// Pipefy takes 1 to 25 uuids; anything else fails the field. The largest count asked
/// is recorded first, so that tests can assert an exporter never sends a 26th.
fn combined<T>(
    sim: &Simulator,
    uuids: &[ID],
    build: impl FnOnce(&[&SimOrg], bool, &str) -> T,
) -> async_graphql::Result<Option<T>> {
    sim.record_combined_uuids(uuids.len());
    sim.record_asked(true, uuids.iter().map(|uuid| uuid.as_str()));
    if !(1..=MAX_COMBINED_UUIDS).contains(&uuids.len()) {
        return Err(invalid_argument(format!(
            "organizationUuids must hold 1 to {MAX_COMBINED_UUIDS} uuids, got {}",
            uuids.len()
        )));
    }
    Ok(Some(sim.read(|data, updated_at| {
        let mut seen = BTreeSet::new();
        let distinct: Vec<&str> = uuids
            .iter()
            .map(|uuid| uuid.as_str())
            .filter(|uuid| seen.insert(*uuid))
            .collect();
        let orgs: Vec<&SimOrg> = distinct
            .iter()
            .filter_map(|uuid| org_by_uuid(data, uuid))
            .filter(|org| usage_stats_allowed(data, org))
            .collect();
        build(&orgs, orgs.len() < distinct.len(), updated_at)
    })))
}

pub(super) struct QueryRoot;

/// Pipefy does not document its root type's name either.
#[Object(name = "Sim_Query_z0q")]
impl QueryRoot {
    /// One organization by numeric id; null plus an error (with the alias as `path`)
    /// when it is denied or unknown.
    async fn organization(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<Organization>> {
        resolve(ctx, "organization", |sim| {
            sim.record_asked(false, [id.as_str()]);
            sim.read(|data, _| {
                if data.denied.contains(id.as_str()) {
                    return Err(permission_denied());
                }
                match data.orgs.get(id.as_str()) {
                    Some(org) => Ok(Some(Organization::snapshot(org, data))),
                    None => Err(not_found()),
                }
            })
        })
    }

    /// The tokens of an organization with their billing organization: the made-up
    /// "real field" of [`SimSchema::Relocated`](super::SimSchema::Relocated), hidden
    /// otherwise.
    #[graphql(visible = "super::variants::relocated")]
    async fn token_billing_assignments(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
    ) -> async_graphql::Result<Option<Vec<TokenAssignment>>> {
        resolve(ctx, "tokenBillingAssignments", |sim| {
            sim.record_asked(false, [organization_id.as_str()]);
            sim.read(|data, _| {
                if data.denied.contains(organization_id.as_str()) {
                    return Err(permission_denied());
                }
                let org = data
                    .orgs
                    .get(organization_id.as_str())
                    .ok_or_else(not_found)?;
                let tokens = Organization::snapshot(org, data).personal_access_tokens;
                Ok(Some(
                    tokens
                        .into_iter()
                        .map(|t| TokenAssignment {
                            token: AssignedToken {
                                id: t.id,
                                name: t.name,
                            },
                            billing_organization: t.billing_organization,
                        })
                        .collect(),
                ))
            })
        })
    }

    /// Every organization the credential may read, in id order; with `ids`, only
    /// those of them (unknown ids are silently absent).
    async fn organizations(
        &self,
        ctx: &Context<'_>,
        ids: Option<Vec<Option<ID>>>,
    ) -> async_graphql::Result<Vec<Organization>> {
        let sim = simulator(ctx)?;
        sim.count_root_field("organizations");
        if let Some(ids) = &ids {
            sim.record_asked(false, ids.iter().flatten().map(|id| id.as_str()));
        }
        let wanted = |org: &SimOrg| {
            ids.as_ref()
                .is_none_or(|ids| ids.iter().flatten().any(|id| id.as_str() == org.id))
        };
        Ok(sim.read(|data, _| {
            data.orgs
                .values()
                .filter(|o| !data.denied.contains(&o.id) && wanted(o))
                .map(|o| Organization::snapshot(o, data))
                .collect()
        }))
    }

    /// Organizations where the credential has the *Usage Stats* permission, sorted by
    /// name (an empty list is a valid answer).
    async fn my_usage_stats_organizations(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<UsageStatsOrganization>> {
        let sim = simulator(ctx)?;
        sim.count_root_field("myUsageStatsOrganizations");
        Ok(sim.read(|data, _| {
            let mut orgs: Vec<&SimOrg> = data
                .orgs
                .values()
                .filter(|o| usage_stats_allowed(data, o))
                .collect();
            orgs.sort_by(|a, b| a.name.cmp(&b.name));
            orgs.into_iter()
                .map(usage::usage_stats_organization)
                .collect()
        }))
    }

    /// API calls billed to an organization, with its quota: the total, or grouped by
    /// token or operation name. Every period answers the same numbers: the simulator
    /// keeps no history.
    async fn api_usage_stats(
        &self,
        ctx: &Context<'_>,
        organization_uuid: ID,
        period: Option<PeriodFilter>,
        filter_date: Option<DateRange>,
        dimension: Option<GroupedApiDimension>,
    ) -> async_graphql::Result<Option<ApiUsageStats>> {
        resolve(ctx, "apiUsageStats", |sim| {
            let window = asked_window(period, filter_date)?;
            per_organization(sim, &organization_uuid, |org, _| {
                Some(usage::api_usage_stats(
                    org,
                    dimension.map(Into::into),
                    &window,
                ))
            })
        })
    }

    /// An organization's API calls per day of the window.
    async fn api_usage_stats_daily(
        &self,
        ctx: &Context<'_>,
        organization_uuid: ID,
        period: Option<PeriodFilter>,
        filter_date: Option<DateRange>,
    ) -> async_graphql::Result<Option<DailyApiUsage>> {
        resolve(ctx, "apiUsageStatsDaily", |sim| {
            let window = asked_window(period, filter_date)?;
            per_organization(sim, &organization_uuid, |org, _| {
                Some(usage::api_usage_daily(org, &window))
            })
        })
    }

    /// API calls of up to 25 organizations in one field.
    async fn api_usage_stats_combined(
        &self,
        ctx: &Context<'_>,
        organization_uuids: Vec<ID>,
        period: Option<PeriodFilter>,
        filter_date: Option<DateRange>,
    ) -> async_graphql::Result<Option<ApiUsageStatsCombined>> {
        resolve(ctx, "apiUsageStatsCombined", |sim| {
            let window = asked_window(period, filter_date)?;
            combined(sim, &organization_uuids, |orgs, partial, _| {
                usage::api_usage_combined(orgs, partial, &window)
            })
        })
    }

    /// AI-credit usage of an organization, looked up by *uuid* like Pipefy does; null
    /// without an error for an organization without AI credits.
    async fn ai_credit_usage_stats(
        &self,
        ctx: &Context<'_>,
        organization_uuid: ID,
        period: Option<PeriodFilter>,
        filter_date: Option<DateRange>,
    ) -> async_graphql::Result<Option<UsageStatsAiCreditDetails>> {
        resolve(ctx, "aiCreditUsageStats", |sim| {
            let window = asked_window(period, filter_date)?;
            per_organization(sim, &organization_uuid, |org, updated_at| {
                usage::ai_credit_usage_stats(org, &window, updated_at)
            })
        })
    }

    /// AI credits of up to 25 organizations in one field.
    async fn ai_credit_usage_stats_combined(
        &self,
        ctx: &Context<'_>,
        organization_uuids: Vec<ID>,
        period: Option<PeriodFilter>,
        filter_date: Option<DateRange>,
    ) -> async_graphql::Result<Option<AiCreditUsageStatsCombined>> {
        resolve(ctx, "aiCreditUsageStatsCombined", |sim| {
            let window = asked_window(period, filter_date)?;
            combined(sim, &organization_uuids, |orgs, partial, _| {
                usage::ai_credit_combined(orgs, partial, &window)
            })
        })
    }

    /// Automation jobs of an organization.
    async fn automations_usage_details(
        &self,
        ctx: &Context<'_>,
        organization_uuid: ID,
        period: Option<PeriodFilter>,
        filter_date: Option<DateRange>,
    ) -> async_graphql::Result<Option<AutomationsUsageDetails>> {
        resolve(ctx, "automationsUsageDetails", |sim| {
            // Checked like every other window, though this answer does not echo it.
            asked_window(period, filter_date)?;
            per_organization(sim, &organization_uuid, |org, _| {
                Some(usage::automations_usage(org))
            })
        })
    }

    /// Automation jobs of up to 25 organizations in one field.
    async fn automations_usage_details_combined(
        &self,
        ctx: &Context<'_>,
        organization_uuids: Vec<ID>,
        period: Option<PeriodFilter>,
        filter_date: Option<DateRange>,
    ) -> async_graphql::Result<Option<AutomationsUsageCombined>> {
        resolve(ctx, "automationsUsageDetailsCombined", |sim| {
            let window = asked_window(period, filter_date)?;
            combined(sim, &organization_uuids, |orgs, partial, updated_at| {
                usage::automations_combined(orgs, partial, &window, updated_at)
            })
        })
    }

    /// Integration tasks and active flows of an organization.
    async fn integrations_usage_stats(
        &self,
        ctx: &Context<'_>,
        organization_uuid: ID,
        period: Option<PeriodFilter>,
        filter_date: Option<DateRange>,
    ) -> async_graphql::Result<Option<IntegrationsUsageStats>> {
        resolve(ctx, "integrationsUsageStats", |sim| {
            let window = asked_window(period, filter_date)?;
            per_organization(sim, &organization_uuid, |org, _| {
                Some(usage::integrations_usage(org, &window))
            })
        })
    }
}
