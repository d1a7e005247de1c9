//! The simulator's data model and its canned data sets.
//!
//! These are plain Rust values, not GraphQL types: tests and the demo mutate them through
//! [`Simulator::update`](super::Simulator::update), and the GraphQL layer (`schema.rs`)
//! only reads snapshots of them. Keeping the two apart means a test can set up any state
//! (an over-quota resource, an org without AI credits, a token with no billing
//! organization) without going through GraphQL.

use std::collections::{BTreeMap, BTreeSet};

/// A billable resource of a subscription, as Pipefy's `SubscriptionResource` enum.
///
/// async-graphql renames the variants to SCREAMING_SNAKE_CASE (`AiCredits` →
/// `AI_CREDITS`), which is exactly how Pipefy spells them on the wire.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
// Pipefy does not document this enum's name (only its values): an unguessable name makes
// a fragment or variable typed with a guessed name fail here as it would in production.
#[graphql(name = "Sim_SubscriptionResource_r2m")]
pub enum Resource {
    Pipes,
    Users,
    Cards,
    Records,
    Interfaces,
    AiCredits,
    /// Not one of the documented values: it stands for "a value Pipefy added later", so
    /// tests can check that the exporter copes with enum values it does not know.
    Automations,
}

/// Everything the fake Pipefy knows: the organizations and which of them the caller may
/// not see.
#[derive(Clone, Debug, Default)]
pub struct SimData {
    /// Organizations by their numeric id (as a string, like Pipefy's `ID`).
    pub orgs: BTreeMap<String, SimOrg>,
    /// Organization ids the credential is not allowed to read. They answer "Permission
    /// denied" and are left out of `organizations`.
    pub denied: BTreeSet<String>,
    /// Organization ids where the credential lacks the *Usage Stats* permission: it can
    /// read the organization, but its usage-statistics fields answer "Permission denied"
    /// and the combined forms leave it out (with `partial: true`). Pipefy grants that
    /// permission per organization, so an exporter meets this mix in practice.
    pub usage_stats_denied: BTreeSet<String>,
    /// `(organization id, token name)` billed for every `/graphql` request Pipefy would
    /// bill (answered 2xx, 3xx, 404, 408 or 422; not 401, 403 or 5xx): one call is added
    /// to that organization's [`SimApiUsage::calls`] under that token name and the
    /// request's operation name (`"Not specified"` when unnamed). With it the demo shows
    /// what monitoring itself costs. `None`: nothing is billed.
    pub bill_requests_to: Option<(String, String)>,
    /// How each organization's usage moves on [`SimData::tick`], by organization id;
    /// organizations without an entry move by [`Motion::default`].
    pub(crate) motion: BTreeMap<String, Motion>,
}

/// How one organization's usage moves on each tick: the figures below rise by their
/// step for [`TICK_HALF_PERIOD`] ticks and fall back for as many, so each stays within a
/// band around its starting value however long the demo runs, and AI credits only grow,
/// up to a cap. Deterministic: the same ticks give the same figures.
///
/// With `phase` p ≤ H (H = [`TICK_HALF_PERIOD`]), the wave starts p ticks in: a figure
/// starting at v with step c stays within `v + c × [-p, H - p]`, so the canned value can
/// sit inside its band, and organizations do not move in step.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Motion {
    pub phase: u64,
    /// Per tick: cards created this month, database records.
    pub cards: i32,
    pub records: i32,
    /// Per tick, for each (token, operation) entry of the API calls, except those of the
    /// token [`SimData::bill_requests_to`] names, which count real requests.
    pub api_calls: f64,
    pub automation_jobs: f64,
    pub integration_tasks: f64,
    /// One AI credit every this many ticks (0: AI credits do not move), up to
    /// `ai_credits_up_to`. AI credits are a month-to-date total that Prometheus reads with
    /// `rate()`, where any fall is a counter reset: they never fall here.
    pub ai_credit_every: u64,
    pub ai_credits_up_to: f64,
}

impl Default for Motion {
    /// Every figure moves a little, AI credits stay.
    fn default() -> Self {
        Motion {
            phase: 0,
            cards: 1,
            records: 3,
            api_calls: 10.0,
            automation_jobs: 2.0,
            integration_tasks: 1.0,
            ai_credit_every: 0,
            ai_credits_up_to: 0.0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimOrg {
    pub id: String,
    pub uuid: String,
    pub name: String,
    pub plan: Option<String>,
    /// Subscription limits. An empty list makes `activeSubscription` null, like an
    /// organization without an active subscription.
    pub limits: Vec<SimLimit>,
    /// `None` makes `aiCreditUsageStats` answer null (without an error) for this org.
    pub ai: Option<SimAiCredits>,
    pub tokens: Vec<SimToken>,
    /// API calls billed to the organization this period (`apiUsageStats`).
    pub api: SimApiUsage,
    /// Automation jobs run this period (`automationsUsageDetails`). Fractional values
    /// exist in Pipefy's answers, so this is a float like `usage` there.
    pub automation_jobs: f64,
    pub integrations: SimIntegrations,
}

/// API calls billed to an organization, itemized the way `apiUsageStats` groups them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimApiUsage {
    /// The organization's quota; `None` = no quota (`limit: null`).
    pub limit: Option<f64>,
    /// The total is the sum of `count`; `dimension: token` and `dimension:
    /// operation_name` are sums grouped by `token` and `operation`.
    pub calls: Vec<SimApiCall>,
}

/// Calls made with one token (or service account) name and one GraphQL operation name.
#[derive(Clone, Debug, PartialEq)]
pub struct SimApiCall {
    /// Token or service-account name, as Pipefy reports it under `dimension: token`.
    pub token: String,
    /// GraphQL operation name; unnamed operations are `"Not specified"`, as in Pipefy
    /// (an empty string is reported that way too).
    pub operation: String,
    pub count: f64,
}

/// Integration (connector) usage: `integrationsUsageStats`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimIntegrations {
    pub tasks_used: f64,
    /// `None` = no task quota (`limit: null`).
    pub tasks_limit: Option<f64>,
    pub active_flows: i32,
}

#[derive(Clone, Debug)]
pub struct SimLimit {
    pub resource: Resource,
    /// `None` = unlimited.
    pub limit: Option<i32>,
    pub used: i32,
}

#[derive(Clone, Debug)]
pub struct SimAiCredits {
    pub active: bool,
    pub usage: f64,
    /// 0 means an uncapped plan.
    pub limit: f64,
    pub has_addon: bool,
    pub free_limit: f64,
    pub free_usage: f64,
    /// Credits spent by AI agents and automations. In the canned data sets
    /// `usage == ai_automation.usage + assistants.usage`, as on Pipefy's *Usage Stats* page.
    pub ai_automation: SimAiResource,
    /// Credits spent by AI assistants.
    pub assistants: SimAiResource,
}

/// One AI feature of an organization (Pipefy's `AiResource`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimAiResource {
    pub enabled: bool,
    pub usage: f64,
}

#[derive(Clone, Debug)]
pub struct SimToken {
    pub id: String,
    pub name: String,
    /// Id of the organization billed for this token's calls; `None` = not yet assigned.
    pub billing_organization: Option<String>,
}

/// The operation name Pipefy reports for calls made by unnamed GraphQL operations.
pub(super) const NOT_SPECIFIED: &str = "Not specified";

/// What `apiUsageStats` can group calls by (`GroupedAPIDimension`, and
/// `APIUsageDimension` for `topItems`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CallDimension {
    Token,
    Operation,
}

impl SimApiCall {
    fn key(&self, dimension: CallDimension) -> &str {
        match dimension {
            CallDimension::Token => &self.token,
            CallDimension::Operation if self.operation.is_empty() => NOT_SPECIFIED,
            CallDimension::Operation => &self.operation,
        }
    }
}

impl SimApiUsage {
    /// Every call billed to the organization: what `apiUsageStats` answers without a
    /// dimension.
    pub fn total(&self) -> f64 {
        self.calls.iter().map(|c| c.count).sum()
    }

    /// Calls summed by token or operation name, largest first (ties by name, so answers
    /// are stable).
    pub(super) fn grouped(&self, dimension: CallDimension) -> Vec<(String, f64)> {
        let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
        for call in &self.calls {
            *sums.entry(call.key(dimension)).or_default() += call.count;
        }
        let mut grouped: Vec<(String, f64)> =
            sums.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        // Stable sort: equal sums keep the name order of the BTreeMap.
        grouped.sort_by(|a, b| b.1.total_cmp(&a.1));
        grouped
    }

    /// Adds one call made with `token` by `operation`.
    fn record(&mut self, token: &str, operation: &str) {
        let existing = self
            .calls
            .iter_mut()
            .find(|c| c.token == token && c.operation == operation);
        match existing {
            Some(call) => call.count += 1.0,
            None => self.calls.push(api_call(token, operation, 1.0)),
        }
    }
}

/// Ticks per half period of the oscillation [`SimData::tick`] applies to usage: usage
/// rises for this many ticks, then falls back for as many. Eight ticks (two minutes at
/// the demo's 15 s tick) make the graphs visibly move.
const TICK_HALF_PERIOD: u64 = 8;

/// `+1.0` while usage rises, `-1.0` while it falls; `step` counts ticks from 1.
fn tick_direction(step: u64) -> f64 {
    if (step.saturating_sub(1) / TICK_HALF_PERIOD) % 2 == 0 {
        1.0
    } else {
        -1.0
    }
}

/// `value + delta`, never below zero (a test may start an entry at a small value in
/// the middle of a falling half period).
fn moved(value: f64, delta: f64) -> f64 {
    (value + delta).max(0.0)
}

impl SimData {
    /// Builds a data set from a list of organizations, keyed by their ids.
    pub fn from_orgs(orgs: impl IntoIterator<Item = SimOrg>) -> SimData {
        SimData {
            orgs: orgs.into_iter().map(|o| (o.id.clone(), o)).collect(),
            ..SimData::default()
        }
    }

    /// `n` look-alike organizations for scale tests (batching, complexity budgets):
    /// ids `"1000"`, `"1001"`, …, names `"Org 1000"`, …, unique uuids, the six documented
    /// limits, AI credits split between both features, two tokens each (the first
    /// unassigned, the second billed to the organization itself) that both made API
    /// calls under a quota, automation jobs and integration tasks.
    pub fn generated(n: usize) -> SimData {
        SimData::from_orgs((0..n).map(|i| {
            let num = 1000 + i;
            // Vary the numbers a little with the index so that a mix-up between orgs in
            // a batched answer shows up as a wrong value, not as an identical one.
            let k = (i % 10) as i32;
            let kf = f64::from(k);
            let id = num.to_string();
            SimOrg {
                uuid: format!("00000000-0000-4000-8000-{num:012}"),
                name: format!("Org {num}"),
                plan: Some("Business".to_string()),
                limits: vec![
                    limit(Resource::Pipes, Some(10), 1 + k),
                    limit(Resource::Users, Some(50), 10 + k),
                    limit(Resource::Cards, Some(1000), 100 + k),
                    limit(Resource::Records, Some(5000), 500 + k),
                    limit(Resource::Interfaces, Some(5), k % 5),
                    limit(Resource::AiCredits, Some(200), 20 + k),
                ],
                ai: Some(SimAiCredits {
                    active: true,
                    usage: 20.0 + kf,
                    limit: 200.0,
                    has_addon: false,
                    free_limit: 20.0,
                    free_usage: 20.0,
                    ai_automation: ai_resource(true, 15.0 + kf),
                    assistants: ai_resource(true, 5.0),
                }),
                tokens: vec![
                    token(&format!("t-{num}-1"), "Unassigned token", None),
                    token(&format!("t-{num}-2"), "Assigned token", Some(&id)),
                ],
                api: SimApiUsage {
                    limit: Some(20_000.0),
                    calls: vec![
                        api_call("Unassigned token", "SyncCards", 1000.0 + 100.0 * kf),
                        api_call("Assigned token", NOT_SPECIFIED, 50.0 + kf),
                    ],
                },
                automation_jobs: 500.0 + 10.0 * kf,
                integrations: SimIntegrations {
                    tasks_used: 100.0 + kf,
                    tasks_limit: Some(1000.0),
                    active_flows: 1 + k % 3,
                },
                id,
            }
        }))
    }

    /// Adds one call to [`SimData::bill_requests_to`], if set, under `operation`.
    pub(super) fn bill(&mut self, operation: &str) {
        let Some((org_id, token)) = &self.bill_requests_to else {
            return;
        };
        if let Some(org) = self.orgs.get_mut(org_id) {
            org.api.record(token, operation);
        }
    }

    /// Tick number `step` (from 1) of fake activity so that demo graphs move: each
    /// organization's cards, records, API calls, automation jobs and integration tasks
    /// oscillate within a band, and its AI credits grow up to a cap, as its [`Motion`]
    /// says. Limits never change, so an organization inside its plan stays inside it.
    ///
    /// The AI credits move on one feature and on the total alike, and the AI_CREDITS
    /// subscription `used` with them, so that figures that agree keep agreeing. The calls
    /// billed to [`SimData::bill_requests_to`] are left alone: they show what the
    /// exporter's own requests cost, and must stay exact.
    pub(super) fn tick(&mut self, step: u64) {
        let SimData {
            orgs,
            bill_requests_to,
            motion,
            ..
        } = self;
        for org in orgs.values_mut() {
            let billing_token = match bill_requests_to {
                Some((org_id, token)) if *org_id == org.id => Some(token.as_str()),
                _ => None,
            };
            let motion = motion.get(&org.id).cloned().unwrap_or_default();
            org.tick_usage(step, &motion, billing_token);
        }
    }
}

impl SimOrg {
    /// Moves this organization's usage one tick (`step`, from 1) as `motion` says.
    fn tick_usage(&mut self, step: u64, motion: &Motion, billing_token: Option<&str>) {
        let direction = tick_direction(step + motion.phase);
        let sign = direction as i32;
        for l in &mut self.limits {
            match l.resource {
                Resource::Cards => l.used = (l.used + sign * motion.cards).max(0),
                Resource::Records => l.used = (l.used + sign * motion.records).max(0),
                _ => {}
            }
        }
        for call in &mut self.api.calls {
            if Some(call.token.as_str()) != billing_token {
                call.count = moved(call.count, direction * motion.api_calls);
            }
        }
        self.automation_jobs = moved(self.automation_jobs, direction * motion.automation_jobs);
        let tasks = &mut self.integrations.tasks_used;
        *tasks = moved(*tasks, direction * motion.integration_tasks);
        let due = motion.ai_credit_every > 0 && step % motion.ai_credit_every == 0;
        let spent = match self.ai.as_mut() {
            Some(ai) if due && ai.usage + 1.0 <= motion.ai_credits_up_to => ai.spend(1.0),
            _ => 0.0,
        };
        if let Some(l) = self
            .limits
            .iter_mut()
            .find(|l| l.resource == Resource::AiCredits)
        {
            // `spent` is a whole credit or nothing.
            l.used = l.used.saturating_add(spent as i32);
        }
    }
}

impl SimAiCredits {
    /// Spends `delta` credits on the first enabled feature and on the total, and returns
    /// what the total moved by (nothing when no feature is enabled, since nothing can
    /// spend credits then).
    fn spend(&mut self, delta: f64) -> f64 {
        let feature = if self.ai_automation.enabled {
            &mut self.ai_automation
        } else if self.assistants.enabled {
            &mut self.assistants
        } else {
            return 0.0;
        };
        // Both move by the same amount, so their difference (zero in canned data) holds.
        feature.usage += delta;
        self.usage += delta;
        delta
    }
}

fn limit(resource: Resource, limit: Option<i32>, used: i32) -> SimLimit {
    SimLimit {
        resource,
        limit,
        used,
    }
}

fn token(id: &str, name: &str, billing_organization: Option<&str>) -> SimToken {
    SimToken {
        id: id.to_string(),
        name: name.to_string(),
        billing_organization: billing_organization.map(str::to_string),
    }
}

fn api_call(token: &str, operation: &str, count: f64) -> SimApiCall {
    SimApiCall {
        token: token.to_string(),
        operation: operation.to_string(),
        count,
    }
}

fn ai_resource(enabled: bool, usage: f64) -> SimAiResource {
    SimAiResource { enabled, usage }
}

/// The demo data set. Its values are asserted by tests: change them only together.
///
/// Three organizations cover the interesting cases:
/// - `2`, comfortably inside its plan, with unassigned tokens, one of which ("Nightly
///   ETL") makes thousands of API calls; the simulator bills its own `/graphql`
///   requests here, under the service-account name "pipefy-exporter";
/// - `300`, with unlimited resources, an uncapped AI plan, no API or integration quota
///   and every token assigned;
/// - `4242`, at or near its limits, including 93 % of its API quota, with a fractional
///   number of automation jobs.
///
/// Token names in `api.calls` are the names in `tokens`, so that a PromQL join on
/// `token_name` between calls per token and unassigned tokens finds them.
pub fn demo_data() -> SimData {
    let mut data = SimData::from_orgs([vandeley(), kramerica(), pendant()]);
    data.bill_requests_to = Some(("2".to_string(), "pipefy-exporter".to_string()));
    data.motion = BTreeMap::from([
        // Inside its plan, and staying there: cards 12–20 of 50, records 45–69 of 500,
        // API calls 8,130–8,450 of 50,000 (plus the exporter's own), integration tasks
        // 1,150–1,158 of 5,000; AI credits stay at 25 of 100, since at the demo's pace
        // any growth would forecast past the limit by the end of the month.
        ("2".to_string(), Motion::default()),
        // Unlimited or far from its limits; AI credits grow from 900 to 1,200 (uncapped).
        (
            "300".to_string(),
            Motion {
                phase: 3,
                ai_credit_every: 1,
                ai_credits_up_to: 1200.0,
                ..Motion::default()
            },
        ),
        // Near its limits all along: cards 91–99 of 100, API calls 9,150–9,390 of
        // 10,000, integration tasks 475–483 of 500; pipes and users stay at their
        // limits. AI credits grow one every minute from 41 to its limit of 50 and stay
        // there: without the add-on, Pipefy blocks use past the limit.
        (
            "4242".to_string(),
            Motion {
                phase: 5,
                ai_credit_every: 4,
                ai_credits_up_to: 50.0,
                ..Motion::default()
            },
        ),
    ]);
    data
}

/// `2`, Vandeley Industries: comfortably inside its plan.
fn vandeley() -> SimOrg {
    use Resource::*;
    SimOrg {
        id: "2".to_string(),
        uuid: "1f1c6d2e-0002-4a00-9000-000000000002".to_string(),
        name: "Vandeley Industries".to_string(),
        plan: Some("Business".to_string()),
        limits: vec![
            limit(Pipes, Some(5), 3),
            limit(Users, Some(10), 7),
            limit(Cards, Some(50), 12),
            limit(Records, Some(500), 45),
            limit(Interfaces, Some(2), 1),
            limit(AiCredits, Some(100), 25),
        ],
        ai: Some(SimAiCredits {
            active: true,
            usage: 25.0,
            limit: 100.0,
            has_addon: false,
            free_limit: 20.0,
            free_usage: 20.0,
            ai_automation: ai_resource(true, 18.0),
            assistants: ai_resource(true, 7.0),
        }),
        tokens: vec![
            token("t-201", "Zapier integration", None),
            token("t-202", "Nightly ETL", None),
            token("t-203", "Reporting", Some("2")),
        ],
        api: SimApiUsage {
            limit: Some(50_000.0),
            calls: vec![
                api_call("Nightly ETL", "ExportCards", 4200.0),
                api_call("Nightly ETL", NOT_SPECIFIED, 1830.0),
                api_call("Zapier integration", "CreateCard", 1480.0),
                api_call("Reporting", "PipeReport", 620.0),
            ],
        },
        automation_jobs: 3420.0,
        integrations: SimIntegrations {
            tasks_used: 1150.0,
            tasks_limit: Some(5000.0),
            active_flows: 5,
        },
    }
}

/// `300`, Kramerica Industries: unlimited or far from its limits, an uncapped AI plan.
fn kramerica() -> SimOrg {
    use Resource::*;
    SimOrg {
        id: "300".to_string(),
        uuid: "1f1c6d2e-0300-4a00-9000-000000000300".to_string(),
        name: "Kramerica Industries".to_string(),
        plan: Some("Enterprise".to_string()),
        limits: vec![
            limit(Pipes, None, 40),
            limit(Users, Some(250), 180),
            limit(Cards, None, 3200),
            limit(Records, Some(100_000), 52_000),
            limit(Interfaces, Some(20), 4),
            limit(AiCredits, None, 900),
        ],
        ai: Some(SimAiCredits {
            active: true,
            usage: 900.0,
            limit: 0.0,
            has_addon: true,
            free_limit: 50.0,
            free_usage: 50.0,
            ai_automation: ai_resource(true, 640.0),
            assistants: ai_resource(true, 260.0),
        }),
        tokens: vec![token("t-301", "ERP sync", Some("300"))],
        api: SimApiUsage {
            limit: None,
            calls: vec![
                api_call("ERP sync", "SyncOrders", 18_250.0),
                api_call("ERP sync", NOT_SPECIFIED, 2310.0),
            ],
        },
        automation_jobs: 15_880.0,
        integrations: SimIntegrations {
            tasks_used: 4210.0,
            tasks_limit: None,
            active_flows: 12,
        },
    }
}

/// `4242`, Pendant Publishing: at or near its limits.
fn pendant() -> SimOrg {
    use Resource::*;
    SimOrg {
        id: "4242".to_string(),
        uuid: "1f1c6d2e-4242-4a00-9000-000000004242".to_string(),
        name: "Pendant Publishing".to_string(),
        plan: Some("Starter".to_string()),
        limits: vec![
            limit(Pipes, Some(3), 3),
            limit(Users, Some(5), 5),
            limit(Cards, Some(100), 96),
            limit(Records, Some(200), 120),
            limit(Interfaces, Some(1), 0),
            limit(AiCredits, Some(50), 41),
        ],
        ai: Some(SimAiCredits {
            active: true,
            usage: 41.0,
            limit: 50.0,
            has_addon: false,
            free_limit: 10.0,
            free_usage: 10.0,
            ai_automation: ai_resource(true, 41.0),
            assistants: ai_resource(false, 0.0),
        }),
        tokens: vec![
            token("t-4201", "Legacy import script", None),
            token("t-4202", "Café \"Monk's\" bot", Some("4242")),
        ],
        api: SimApiUsage {
            limit: Some(10_000.0),
            calls: vec![
                api_call("Legacy import script", "ImportCards", 6100.0),
                api_call("Café \"Monk's\" bot", "CreateComment", 2900.0),
                api_call("Legacy import script", NOT_SPECIFIED, 300.0),
            ],
        },
        automation_jobs: 1234.0,
        integrations: SimIntegrations {
            tasks_used: 480.0,
            tasks_limit: Some(500.0),
            active_flows: 2,
        },
    }
}
