//! The demo's organizations against these levels: two hours of the demo, tick by tick,
//! fire exactly the alerts the README promises, each organization staying in its band.
//! Here rather than in the simulator's crate because the levels are the exporter's.

use std::collections::BTreeMap;

use pipefy_sim::{Resource, SimData, SimOrg, Simulator};

use super::{LIMIT_RATIO, QUOTA_CRITICAL_RATIO, WARNING_RATIO};

/// What the alerting rules of `deploy/prometheus/rules.yml` compute from one state of
/// the simulator, per alert: the `(organization, resource)` pairs whose condition holds,
/// at the levels of `thresholds` (which the rules are held to). Instant conditions only;
/// `for:` delays and forecasts need a time series.
fn alert_conditions(d: &SimData) -> BTreeMap<&'static str, Vec<(String, String)>> {
    let mut firing: BTreeMap<&'static str, Vec<(String, String)>> = BTreeMap::new();
    let mut fire = |alert: &'static str, org: &SimOrg, resource: &str| {
        firing
            .entry(alert)
            .or_default()
            .push((org.id.clone(), resource.to_string()));
    };
    for org in d.orgs.values() {
        // pipefy:subscription_usage:ratio{resource!="ai_credits"}: limits > 0 and finite.
        for l in &org.limits {
            let Some(limit) = l.limit.filter(|&l| l > 0) else {
                continue;
            };
            if l.resource == Resource::AiCredits {
                continue;
            }
            let ratio = f64::from(l.used) / f64::from(limit);
            let resource = format!("{:?}", l.resource).to_lowercase();
            if ratio >= WARNING_RATIO {
                fire("PipefyResourceUsageHigh", org, &resource);
            }
            if ratio >= LIMIT_RATIO {
                fire("PipefyResourceLimitReached", org, &resource);
            }
        }
        // pipefy:ai_credits_usage:ratio: a limit of 0 is an uncapped plan.
        if let Some(ai) = org.ai.as_ref().filter(|ai| ai.limit > 0.0) {
            let ratio = ai.usage / ai.limit;
            if ratio >= WARNING_RATIO {
                fire("PipefyAICreditsUsageHigh", org, "ai_credits");
            }
            if ratio >= QUOTA_CRITICAL_RATIO {
                fire("PipefyAICreditsUsageCritical", org, "ai_credits");
            }
        }
        // pipefy:api_calls_usage:ratio.
        if let Some(limit) = org.api.limit.filter(|&l| l > 0.0) {
            let ratio = org.api.total() / limit;
            if ratio >= WARNING_RATIO {
                fire("PipefyAPIQuotaUsageHigh", org, "api_calls");
            }
            if ratio >= QUOTA_CRITICAL_RATIO {
                fire("PipefyAPIQuotaNearlyExhausted", org, "api_calls");
            }
        }
    }
    firing
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(o, r)| (o.to_string(), r.to_string()))
        .collect()
}

fn limit_ratio(org: &SimOrg, resource: Resource) -> f64 {
    let l = org.limits.iter().find(|l| l.resource == resource).unwrap();
    f64::from(l.used) / f64::from(l.limit.unwrap())
}

/// Two hours of the demo (480 ticks of 15 s), tick by tick: every organization stays in
/// its band, and the alerts the README promises are exactly the ones whose conditions
/// hold, from the first tick to the last.
#[test]
fn demo_usage_stays_in_its_bands_and_fires_the_promised_alerts() {
    // The demo's simulator, ticked as `--demo` ticks it, its data read after each tick.
    let sim = Simulator::demo();
    let data = || sim.update(|d| d.clone());
    let mut d = data();
    let start = d.clone();
    let mut previous = d.clone();
    let mut seen_cards = std::collections::BTreeSet::new();
    for step in 1..=480 {
        sim.tick();
        d = data();
        let alerts = alert_conditions(&d);
        // Pendant sits at its pipes and users limits, over 90 % of its cards and of
        // its API quota, over 80 % of its AI credits.
        assert_eq!(
            alerts["PipefyAPIQuotaUsageHigh"],
            pairs(&[("4242", "api_calls")]),
            "tick {step}"
        );
        assert_eq!(
            alerts["PipefyResourceLimitReached"],
            pairs(&[("4242", "pipes"), ("4242", "users")]),
            "tick {step}"
        );
        assert_eq!(
            alerts["PipefyResourceUsageHigh"],
            pairs(&[("4242", "pipes"), ("4242", "users"), ("4242", "cards")]),
            "tick {step}"
        );
        assert_eq!(
            alerts["PipefyAPIQuotaNearlyExhausted"],
            pairs(&[("4242", "api_calls")]),
            "tick {step}"
        );
        assert_eq!(
            alerts["PipefyAICreditsUsageHigh"],
            pairs(&[("4242", "ai_credits")]),
            "tick {step}"
        );
        // Pendant's AI credits reach 90 % (45 of 50) at tick 16, four minutes in.
        let critical = alerts.get("PipefyAICreditsUsageCritical").cloned();
        let expected = (step >= 16).then(|| pairs(&[("4242", "ai_credits")]));
        assert_eq!(critical, expected, "tick {step}");

        for org in d.orgs.values() {
            let ai = org.ai.as_ref().unwrap();
            let before = previous.orgs[&org.id].ai.as_ref().unwrap();
            // Month to date: AI credits never fall, and the plan limit's figure follows.
            assert!(ai.usage >= before.usage, "org {} tick {step}", org.id);
            assert_eq!(ai.usage, ai.ai_automation.usage + ai.assistants.usage);
            let plan = org
                .limits
                .iter()
                .find(|l| l.resource == Resource::AiCredits);
            assert_eq!(plan.map(|l| f64::from(l.used)), Some(ai.usage));
            // Without the add-on, use past the limit is blocked.
            if !ai.has_addon && ai.limit > 0.0 {
                assert!(ai.usage <= ai.limit, "org {} tick {step}", org.id);
            }
        }

        // Vandeley, comfortably inside its plan: every figure that moves stays under
        // 60 % of its limit.
        let v = &d.orgs["2"];
        seen_cards.insert(v.limits[2].used);
        assert!(limit_ratio(v, Resource::Cards) <= 0.4, "tick {step}");
        assert!(limit_ratio(v, Resource::Records) < 0.6, "tick {step}");
        assert_eq!(v.ai.as_ref().unwrap().usage, 25.0, "tick {step}");
        assert!(v.api.total() / v.api.limit.unwrap() < 0.6, "tick {step}");
        let tasks = &v.integrations;
        assert!(tasks.tasks_used / tasks.tasks_limit.unwrap() < 0.6);

        // Pendant: near its limits, never over those that do not alert.
        let p = &d.orgs["4242"];
        let cards = limit_ratio(p, Resource::Cards);
        assert!((0.91..=0.99).contains(&cards), "{cards} at tick {step}");
        let api = p.api.total() / p.api.limit.unwrap();
        assert!((0.915..=0.939).contains(&api), "{api} at tick {step}");
        let tasks = &p.integrations;
        assert!(tasks.tasks_used < tasks.tasks_limit.unwrap(), "tick {step}");
        assert!(
            limit_ratio(p, Resource::Records) < WARNING_RATIO,
            "tick {step}"
        );

        // Jobs, tasks and calls are counted, so they stay whole as they move.
        for org in d.orgs.values() {
            let counts = [
                org.automation_jobs,
                org.integrations.tasks_used,
                org.api.total(),
            ];
            assert_eq!(
                counts.map(f64::fract),
                [0.0; 3],
                "org {} tick {step}",
                org.id
            );
        }

        // Kramerica: AI credits capped at 1,200 (uncapped plan), records far from 100,000.
        let k = &d.orgs["300"];
        assert!(k.ai.as_ref().unwrap().usage <= 1200.0);
        assert!(limit_ratio(k, Resource::Records) < 0.6, "tick {step}");
        previous = d.clone();
    }
    // It moved: Vandeley's cards took every value from 12 to 20.
    assert_eq!(
        seen_cards.into_iter().collect::<Vec<_>>(),
        (12..=20).collect::<Vec<_>>()
    );
    // 480 ticks are 30 whole periods: the oscillating figures are back where they started.
    let figures = |d: &SimData| -> Vec<(f64, f64, f64, i32, i32)> {
        d.orgs
            .values()
            .map(|o| {
                (
                    o.api.total(),
                    o.automation_jobs,
                    o.integrations.tasks_used,
                    o.limits[2].used,
                    o.limits[3].used,
                )
            })
            .collect()
    };
    assert_eq!(figures(&d), figures(&start));
    let ai: Vec<f64> = d
        .orgs
        .values()
        .map(|o| o.ai.as_ref().unwrap().usage)
        .collect();
    assert_eq!(ai, [25.0, 1200.0, 50.0]);
}
