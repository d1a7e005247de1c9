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
#[graphql(name = "SubscriptionResource")]
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
}

#[derive(Clone, Debug)]
pub struct SimToken {
    pub id: String,
    pub name: String,
    /// Id of the organization billed for this token's calls; `None` = not yet assigned.
    pub billing_organization: Option<String>,
}

impl SimData {
    /// Builds a data set from a list of organizations, keyed by their ids.
    pub fn from_orgs(orgs: impl IntoIterator<Item = SimOrg>) -> SimData {
        SimData {
            orgs: orgs.into_iter().map(|o| (o.id.clone(), o)).collect(),
            denied: BTreeSet::new(),
        }
    }

    /// `n` look-alike organizations for scale tests (batching, complexity budgets):
    /// ids `"1000"`, `"1001"`, …, names `"Org 1000"`, …, unique uuids, the six documented
    /// limits, AI credits, and two tokens each, the first unassigned and the second billed
    /// to the organization itself.
    pub fn generated(n: usize) -> SimData {
        SimData::from_orgs((0..n).map(|i| {
            let num = 1000 + i;
            // Vary the numbers a little with the index so that a mix-up between orgs in
            // a batched answer shows up as a wrong value, not as an identical one.
            let k = (i % 10) as i32;
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
                    usage: f64::from(20 + k),
                    limit: 200.0,
                    has_addon: false,
                    free_limit: 20.0,
                    free_usage: 20.0,
                }),
                tokens: vec![
                    token(&format!("t-{num}-1"), "Unassigned token", None),
                    token(&format!("t-{num}-2"), "Assigned token", Some(&id)),
                ],
                id,
            }
        }))
    }

    /// One step of fake activity so that demo graphs move: cards and records are
    /// created and AI credits are spent. Limits never change.
    pub(super) fn tick(&mut self) {
        for org in self.orgs.values_mut() {
            for l in &mut org.limits {
                match l.resource {
                    Resource::Cards => l.used = l.used.saturating_add(1),
                    Resource::Records => l.used = l.used.saturating_add(3),
                    _ => {}
                }
            }
            if let Some(ai) = &mut org.ai {
                ai.usage += 0.5;
            }
        }
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

/// The demo data set. Its values are asserted by tests: change them only together.
///
/// Three organizations cover the interesting cases: one comfortably inside its plan
/// with unassigned tokens (`2`), one with unlimited resources, an uncapped AI plan and
/// every token assigned (`300`), and one at or near its limits (`4242`).
pub fn demo_data() -> SimData {
    use Resource::*;
    SimData::from_orgs([
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
            }),
            tokens: vec![
                token("t-201", "Zapier integration", None),
                token("t-202", "Nightly ETL", None),
                token("t-203", "Reporting", Some("2")),
            ],
        },
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
            }),
            tokens: vec![token("t-301", "ERP sync", Some("300"))],
        },
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
            }),
            tokens: vec![
                token("t-4201", "Legacy import script", None),
                token("t-4202", "Café \"Monk's\" bot", Some("4242")),
            ],
        },
    ])
}
