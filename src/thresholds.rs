//! The warning and critical levels, in one place. The landing page colours its figures
//! by them; the alerting rules (`deploy/prometheus/rules.yml`) and the Grafana
//! dashboards' thresholds use the same numbers, and the tests of this module read both
//! files and fail when either drifts. So yellow on the page or a dashboard means a
//! warning alert fires (or will, after its `for:`), and red means a critical one does.
//!
//! One set for every used / limit figure: a warning from 80 %, for plan resources, AI
//! credits and API calls alike. The critical level depends on what runs out:
//! - a monthly quota spent by automations and integrations (AI credits, API calls) can
//!   go from 90 % to 100 % within hours, so 90 % is already critical;
//! - a plan limit (pipes, users, cards, records, interfaces) grows by people's actions
//!   and blocks only at 100 %: the limit reached is the critical level.

/// From this share of any limit a figure is a warning (`PipefyResourceUsageHigh`,
/// `PipefyAICreditsUsageHigh`, `PipefyAPIQuotaUsageHigh`).
pub(crate) const WARNING_RATIO: f64 = 0.8;
/// From this share of a monthly quota (AI credits, API calls) it is critical
/// (`PipefyAICreditsUsageCritical`, `PipefyAPIQuotaNearlyExhausted`).
pub(crate) const QUOTA_CRITICAL_RATIO: f64 = 0.9;
/// A plan limit reached (`PipefyResourceLimitReached`); a forecast past it is a warning
/// (`PipefyAICreditsForecastExhausted`, `PipefyAPIQuotaExhaustionForecast`).
pub(crate) const LIMIT_RATIO: f64 = 1.0;
/// Unassigned personal access tokens are a warning when the token-attribution deadline
/// is fewer days away than this (`PipefyUnassignedTokensDeadlineSoon`)...
pub(crate) const DEADLINE_WARNING_DAYS: f64 = 14.0;
/// ...and critical under this, or once it has passed
/// (`PipefyUnassignedTokensDeadlineImminent`).
pub(crate) const DEADLINE_CRITICAL_DAYS: f64 = 3.0;

/// What a figure measures, which sets its critical level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A plan limit: critical when reached.
    PlanLimit,
    /// A monthly quota spent by machines: critical from [`QUOTA_CRITICAL_RATIO`].
    Quota,
}

impl Kind {
    pub(crate) fn critical_ratio(self) -> f64 {
        match self {
            Kind::PlanLimit => LIMIT_RATIO,
            Kind::Quota => QUOTA_CRITICAL_RATIO,
        }
    }
}

/// How bad a figure is, as the alerts see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Ok,
    Warning,
    Critical,
}

/// The level of `ratio` (used / limit) for a figure of `kind`, as the ratio alerts
/// compare it (`>=`).
pub(crate) fn ratio_level(ratio: f64, kind: Kind) -> Level {
    if ratio >= kind.critical_ratio() {
        Level::Critical
    } else if ratio >= WARNING_RATIO {
        Level::Warning
    } else {
        Level::Ok
    }
}

/// The level of an organization's unassigned tokens `days_left` before the deadline, as
/// the token alerts decide it: tokens left unassigned (`> 0`) and the deadline closer
/// than the level (`<`).
pub(crate) fn deadline_level(unassigned: usize, days_left: f64) -> Level {
    if unassigned == 0 {
        Level::Ok
    } else if days_left < DEADLINE_CRITICAL_DAYS {
        Level::Critical
    } else if days_left < DEADLINE_WARNING_DAYS {
        Level::Warning
    } else {
        Level::Ok
    }
}

#[cfg(test)]
mod demo_alerts;
#[cfg(test)]
mod tests;
