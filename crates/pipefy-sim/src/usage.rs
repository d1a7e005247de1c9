//! GraphQL types of Pipefy's *Usage Stats* API, and how they are built from the data.
//!
//! Type names follow one rule: a name Pipefy documents is used as documented
//! (`UsageStatsAiCreditDetails`, `AiResource`, `FilterDate`, `MetricItem`,
//! `DailyAPIUsage`, `DailyAPIUsageItem`, `GroupedAPIDimension`, `APIUsageDimension`);
//! every other type gets a `Sim_<Name>_<3 characters>` name nobody would guess. A client
//! that types a fragment with a guessed name then fails validation here, as it would
//! against Pipefy, instead of passing against a simulator written from the same guess.
//!
//! The builders take organizations already checked for the *Usage Stats* permission
//! (see `schema.rs`) and copy what they need, so no lock is held while async-graphql
//! walks the selection set.

use async_graphql::{ComplexObject, Enum, SimpleObject, ID};

use super::data::{CallDimension, SimAiCredits, SimAiResource, SimOrg};
use super::window::{self, Window};

/// How many entries the combined forms' top lists (`topItems`, `topAgents`) hold.
const TOP_ENTRIES: usize = 10;

/// `apiUsageStats(dimension:)`.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(name = "GroupedAPIDimension")]
pub(super) enum GroupedApiDimension {
    #[graphql(name = "operation_name")]
    OperationName,
    #[graphql(name = "token")]
    Token,
}

/// `apiUsageStatsCombined { topItems(dimension:) }`. Pipefy documents no values for it
/// beyond those of [`GroupedApiDimension`], so it has the same two.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(name = "APIUsageDimension")]
pub(super) enum ApiUsageDimension {
    #[graphql(name = "operation_name")]
    OperationName,
    #[graphql(name = "token")]
    Token,
}

impl From<GroupedApiDimension> for CallDimension {
    fn from(d: GroupedApiDimension) -> Self {
        match d {
            GroupedApiDimension::OperationName => CallDimension::Operation,
            GroupedApiDimension::Token => CallDimension::Token,
        }
    }
}

impl From<ApiUsageDimension> for CallDimension {
    fn from(d: ApiUsageDimension) -> Self {
        match d {
            ApiUsageDimension::OperationName => CallDimension::Operation,
            ApiUsageDimension::Token => CallDimension::Token,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "FilterDate")]
pub(super) struct FilterDate {
    from: String,
    to: String,
}

impl From<&Window> for FilterDate {
    fn from(w: &Window) -> Self {
        FilterDate {
            from: w.from.clone(),
            to: w.to.clone(),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_UsageStatsOrganization_u6v")]
pub(super) struct UsageStatsOrganization {
    uuid: ID,
    name: String,
}

/// An entry of `myUsageStatsOrganizations`.
pub(super) fn usage_stats_organization(org: &SimOrg) -> UsageStatsOrganization {
    UsageStatsOrganization {
        uuid: ID(org.uuid.clone()),
        name: org.name.clone(),
    }
}

// ---- API calls ------------------------------------------------------------------

#[derive(SimpleObject)]
#[graphql(name = "MetricItem")]
pub(super) struct MetricItem {
    /// The token or operation name; null in the one item of an ungrouped answer.
    dimension: Option<String>,
    metric: f64,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_ApiUsageStats_q7x")]
pub(super) struct ApiUsageStats {
    data: Vec<MetricItem>,
    filter_date: FilterDate,
    /// The organization's quota; null when it has none.
    limit: Option<f64>,
}

/// `apiUsageStats`: without a dimension one item with the total, otherwise one per
/// token or operation name.
pub(super) fn api_usage_stats(
    org: &SimOrg,
    dimension: Option<CallDimension>,
    window: &Window,
) -> ApiUsageStats {
    let data = match dimension {
        None => vec![MetricItem {
            dimension: None,
            metric: org.api.total(),
        }],
        Some(dimension) => org
            .api
            .grouped(dimension)
            .into_iter()
            .map(|(name, metric)| MetricItem {
                dimension: Some(name),
                metric,
            })
            .collect(),
    };
    ApiUsageStats {
        data,
        filter_date: window.into(),
        limit: org.api.limit,
    }
}

#[derive(SimpleObject)]
#[graphql(name = "DailyAPIUsage")]
pub(super) struct DailyApiUsage {
    data: Vec<DailyApiUsageItem>,
}

#[derive(SimpleObject)]
#[graphql(name = "DailyAPIUsageItem")]
pub(super) struct DailyApiUsageItem {
    /// `yyyy-MM-dd`.
    date: String,
    metric: f64,
}

/// `apiUsageStatsDaily`: the organization's calls spread over the window's days.
pub(super) fn api_usage_daily(org: &SimOrg, window: &Window) -> DailyApiUsage {
    DailyApiUsage {
        data: split_by_day(org.api.total(), window)
            .into_iter()
            .map(|(day, metric)| DailyApiUsageItem {
                date: window::date(day),
                metric,
            })
            .collect(),
    }
}

/// Spreads `total` over the days of `window`: whole numbers, weekdays three times as
/// busy as weekends (API traffic is mostly business automation), and the remainder on
/// the last day so that the days add up to the total exactly, as Pipefy's daily and
/// period figures do.
pub(super) fn split_by_day(total: f64, window: &Window) -> Vec<(i64, f64)> {
    // 1970-01-01 was a Thursday: day numbers 2 and 3 modulo 7 are Saturday and Sunday.
    let weight = |day: i64| {
        if matches!(day.rem_euclid(7), 2 | 3) {
            1.0
        } else {
            3.0
        }
    };
    let days: Vec<i64> = window.days().collect();
    let all: f64 = days.iter().map(|&d| weight(d)).sum();
    let mut left = total;
    let mut split: Vec<(i64, f64)> = days
        .iter()
        .map(|&day| {
            let share = (total * weight(day) / all).floor();
            left -= share;
            (day, share)
        })
        .collect();
    if let Some(last) = split.last_mut() {
        last.1 += left;
    }
    split
}

/// The figures of one organization that `topItems` ranks.
struct OrgCalls {
    uuid: String,
    name: String,
    total: f64,
    by_token: Vec<(String, f64)>,
    by_operation: Vec<(String, f64)>,
}

impl OrgCalls {
    fn of(org: &SimOrg) -> OrgCalls {
        OrgCalls {
            uuid: org.uuid.clone(),
            name: org.name.clone(),
            total: org.api.total(),
            by_token: org.api.grouped(CallDimension::Token),
            by_operation: org.api.grouped(CallDimension::Operation),
        }
    }

    /// `(dimension, metric)` items of this organization: its total without a
    /// dimension, else one per token or operation name.
    fn items(&self, dimension: Option<CallDimension>) -> Vec<(Option<String>, f64)> {
        let grouped = match dimension {
            None => return vec![(None, self.total)],
            Some(CallDimension::Token) => &self.by_token,
            Some(CallDimension::Operation) => &self.by_operation,
        };
        grouped
            .iter()
            .map(|(name, metric)| (Some(name.clone()), *metric))
            .collect()
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_ApiUsageStatsCombined_c2j", complex)]
pub(super) struct ApiUsageStatsCombined {
    total: ApiUsageTotal,
    by_organization: Vec<ApiUsageByOrganization>,
    filter_date: FilterDate,
    partial: bool,
    /// What `topItems` ranks, copied out with the rest so that it can answer any
    /// dimension without going back to the data.
    #[graphql(skip)]
    calls: Vec<OrgCalls>,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_ApiUsageTotal_t8s")]
struct ApiUsageTotal {
    usage: f64,
    /// The sum of the quotas; null when any organization has none.
    limit: Option<f64>,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_ApiUsageByOrganization_o5g")]
struct ApiUsageByOrganization {
    organization_uuid: ID,
    organization_name: String,
    usage: f64,
    limit: Option<f64>,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_ApiUsageTopItem_i3z")]
struct ApiUsageTopItem {
    /// Null when `topItems` is asked without a dimension: the items are then whole
    /// organizations.
    dimension: Option<String>,
    metric: f64,
    organization_uuid: ID,
    organization_name: String,
}

#[ComplexObject]
impl ApiUsageStatsCombined {
    /// The largest consumers across the organizations: (organization, token or
    /// operation name) pairs with a dimension, whole organizations without one.
    async fn top_items(&self, dimension: Option<ApiUsageDimension>) -> Vec<ApiUsageTopItem> {
        let dimension = dimension.map(CallDimension::from);
        let items = self.calls.iter().flat_map(|org| {
            org.items(dimension)
                .into_iter()
                .map(|(dimension, metric)| ApiUsageTopItem {
                    dimension,
                    metric,
                    organization_uuid: ID(org.uuid.clone()),
                    organization_name: org.name.clone(),
                })
        });
        top(items, |i| i.metric)
    }
}

/// `apiUsageStatsCombined`.
pub(super) fn api_usage_combined(
    orgs: &[&SimOrg],
    partial: bool,
    window: &Window,
) -> ApiUsageStatsCombined {
    ApiUsageStatsCombined {
        total: ApiUsageTotal {
            usage: orgs.iter().map(|o| o.api.total()).sum(),
            // `Option: Sum` is None as soon as one quota is.
            limit: orgs.iter().map(|o| o.api.limit).sum(),
        },
        by_organization: orgs
            .iter()
            .map(|org| ApiUsageByOrganization {
                organization_uuid: ID(org.uuid.clone()),
                organization_name: org.name.clone(),
                usage: org.api.total(),
                limit: org.api.limit,
            })
            .collect(),
        filter_date: window.into(),
        partial,
        calls: orgs.iter().map(|org| OrgCalls::of(org)).collect(),
    }
}

// ---- AI credits -----------------------------------------------------------------

#[derive(SimpleObject)]
#[graphql(name = "AiResource")]
struct AiResource {
    enabled: bool,
    usage: f64,
}

impl From<&SimAiResource> for AiResource {
    fn from(r: &SimAiResource) -> Self {
        AiResource {
            enabled: r.enabled,
            usage: r.usage,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_FreeAiCredit_f4n")]
struct FreeAiCredit {
    limit: f64,
    usage: f64,
}

#[derive(SimpleObject)]
#[graphql(name = "UsageStatsAiCreditDetails")]
pub(super) struct UsageStatsAiCreditDetails {
    active: bool,
    usage: f64,
    /// 0 means an uncapped plan.
    limit: f64,
    has_addon: bool,
    updated_at: String,
    filter_date: FilterDate,
    ai_automation: AiResource,
    assistants: AiResource,
    free_ai_credit: Option<FreeAiCredit>,
}

/// `aiCreditUsageStats`: null (without an error) for an organization without AI
/// credits.
pub(super) fn ai_credit_usage_stats(
    org: &SimOrg,
    window: &Window,
    updated_at: &str,
) -> Option<UsageStatsAiCreditDetails> {
    let ai = org.ai.as_ref()?;
    Some(UsageStatsAiCreditDetails {
        active: ai.active,
        usage: ai.usage,
        limit: ai.limit,
        has_addon: ai.has_addon,
        updated_at: updated_at.to_string(),
        filter_date: window.into(),
        ai_automation: (&ai.ai_automation).into(),
        assistants: (&ai.assistants).into(),
        free_ai_credit: Some(FreeAiCredit {
            limit: ai.free_limit,
            usage: ai.free_usage,
        }),
    })
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_AiCreditUsageStatsCombined_a7e")]
pub(super) struct AiCreditUsageStatsCombined {
    total: AiCreditTotal,
    by_organization: Vec<AiCreditByOrganization>,
    top_agents: Vec<AiTopAgent>,
    filter_date: FilterDate,
    partial: bool,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_AiCreditTotal_m1x")]
struct AiCreditTotal {
    usage: f64,
    /// The sum of the plans' limits (an uncapped plan's 0 adds nothing).
    limit: f64,
    ai_automation_usage: f64,
    assistants_usage: f64,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_AiCreditByOrganization_y4q")]
struct AiCreditByOrganization {
    organization_uuid: ID,
    organization_name: String,
    usage: f64,
    limit: f64,
    has_addon: bool,
    ai_automation: AiResource,
    assistants: AiResource,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_AiTopAgent_g6w")]
struct AiTopAgent {
    agent_id: ID,
    agent_name: String,
    organization_uuid: ID,
    organization_name: String,
    credits_processed: f64,
}

/// `aiCreditUsageStatsCombined`. Organizations without AI credits are left out of
/// `byOrganization` without setting `partial`: that is the combined form of the null
/// `aiCreditUsageStats` answers for them, not a permission problem.
pub(super) fn ai_credit_combined(
    orgs: &[&SimOrg],
    partial: bool,
    window: &Window,
) -> AiCreditUsageStatsCombined {
    let with_ai: Vec<_> = orgs
        .iter()
        .filter_map(|org| org.ai.as_ref().map(|ai| (org, ai)))
        .collect();
    let sum = |f: fn(&SimAiCredits) -> f64| with_ai.iter().map(|(_, ai)| f(ai)).sum();
    // Each organization's AI automations are one fake agent, enough to exercise the
    // list's shape.
    let agents = with_ai
        .iter()
        .filter(|(_, ai)| ai.ai_automation.enabled && ai.ai_automation.usage > 0.0)
        .map(|(org, ai)| AiTopAgent {
            agent_id: ID(format!("sim-agent-{}", org.id)),
            agent_name: "Triage agent".to_string(),
            organization_uuid: ID(org.uuid.clone()),
            organization_name: org.name.clone(),
            credits_processed: ai.ai_automation.usage,
        });
    AiCreditUsageStatsCombined {
        total: AiCreditTotal {
            usage: sum(|ai| ai.usage),
            limit: sum(|ai| ai.limit),
            ai_automation_usage: sum(|ai| ai.ai_automation.usage),
            assistants_usage: sum(|ai| ai.assistants.usage),
        },
        by_organization: with_ai
            .iter()
            .map(|(org, ai)| AiCreditByOrganization {
                organization_uuid: ID(org.uuid.clone()),
                organization_name: org.name.clone(),
                usage: ai.usage,
                limit: ai.limit,
                has_addon: ai.has_addon,
                ai_automation: (&ai.ai_automation).into(),
                assistants: (&ai.assistants).into(),
            })
            .collect(),
        top_agents: top(agents, |a| a.credits_processed),
        filter_date: window.into(),
        partial,
    }
}

// ---- Automation jobs ------------------------------------------------------------

#[derive(SimpleObject)]
#[graphql(name = "Sim_AutomationsUsageDetails_s5b")]
pub(super) struct AutomationsUsageDetails {
    usage: f64,
}

/// `automationsUsageDetails`.
pub(super) fn automations_usage(org: &SimOrg) -> AutomationsUsageDetails {
    AutomationsUsageDetails {
        usage: org.automation_jobs,
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_AutomationsUsageCombined_j9r")]
pub(super) struct AutomationsUsageCombined {
    total: AutomationsTotal,
    by_organization: Vec<AutomationsByOrganization>,
    by_pipe: Vec<AutomationsByPipe>,
    filter_date: FilterDate,
    partial: bool,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_AutomationsTotal_e2v")]
struct AutomationsTotal {
    usage: f64,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_AutomationsByOrganization_n7k")]
struct AutomationsByOrganization {
    organization_uuid: ID,
    organization_name: String,
    usage: f64,
    last_updated_at: String,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_AutomationsByPipe_p3f")]
struct AutomationsByPipe {
    pipe: Pipe,
    organization_uuid: ID,
    organization_name: String,
    usage: f64,
    last_updated_at: String,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_Pipe_d8h")]
struct Pipe {
    uuid: ID,
    name: String,
}

/// Each organization's jobs come from two fake pipes, two thirds and one third, so
/// that `byPipe` adds up to `byOrganization` like Pipefy's figures.
fn jobs_by_pipe(org: &SimOrg, updated_at: &str) -> [AutomationsByPipe; 2] {
    let onboarding = (org.automation_jobs * 2.0 / 3.0).floor();
    let pipe = |n: u8, name: &str, usage: f64| AutomationsByPipe {
        pipe: Pipe {
            uuid: ID(format!("sim-pipe-{}-{n}", org.id)),
            name: name.to_string(),
        },
        organization_uuid: ID(org.uuid.clone()),
        organization_name: org.name.clone(),
        usage,
        last_updated_at: updated_at.to_string(),
    };
    [
        pipe(1, "Customer onboarding", onboarding),
        pipe(2, "Invoices", org.automation_jobs - onboarding),
    ]
}

/// `automationsUsageDetailsCombined`.
pub(super) fn automations_combined(
    orgs: &[&SimOrg],
    partial: bool,
    window: &Window,
    updated_at: &str,
) -> AutomationsUsageCombined {
    AutomationsUsageCombined {
        total: AutomationsTotal {
            usage: orgs.iter().map(|o| o.automation_jobs).sum(),
        },
        by_organization: orgs
            .iter()
            .map(|org| AutomationsByOrganization {
                organization_uuid: ID(org.uuid.clone()),
                organization_name: org.name.clone(),
                usage: org.automation_jobs,
                last_updated_at: updated_at.to_string(),
            })
            .collect(),
        by_pipe: orgs
            .iter()
            .filter(|org| org.automation_jobs > 0.0)
            .flat_map(|org| jobs_by_pipe(org, updated_at))
            .collect(),
        filter_date: window.into(),
        partial,
    }
}

// ---- Integrations ---------------------------------------------------------------

#[derive(SimpleObject)]
#[graphql(name = "Sim_IntegrationsUsageStats_l4y")]
pub(super) struct IntegrationsUsageStats {
    tasks_consumed: TasksConsumed,
    active_flows: i32,
    filter_date: FilterDate,
}

#[derive(SimpleObject)]
#[graphql(name = "Sim_TasksConsumed_v1c")]
struct TasksConsumed {
    usage: f64,
    /// Null when the organization has no task quota.
    limit: Option<f64>,
}

/// `integrationsUsageStats`.
pub(super) fn integrations_usage(org: &SimOrg, window: &Window) -> IntegrationsUsageStats {
    IntegrationsUsageStats {
        tasks_consumed: TasksConsumed {
            usage: org.integrations.tasks_used,
            limit: org.integrations.tasks_limit,
        },
        active_flows: org.integrations.active_flows,
        filter_date: window.into(),
    }
}

/// The [`TOP_ENTRIES`] largest items by `metric`, largest first (ties keep their order).
fn top<T>(items: impl Iterator<Item = T>, metric: impl Fn(&T) -> f64) -> Vec<T> {
    let mut items: Vec<T> = items.collect();
    items.sort_by(|a, b| metric(b).total_cmp(&metric(a)));
    items.truncate(TOP_ENTRIES);
    items
}
