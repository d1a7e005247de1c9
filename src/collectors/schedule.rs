//! The settings every collector shares: whether it runs, how often, how long its values
//! stay exported after a failure, and which usage-statistics period it reads.

use std::time::Duration;

use serde::Deserialize;

use crate::duration::format_duration;

/// Values are kept this long after a failure unless `stale_after` says otherwise.
const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(15 * 60);
/// Staleness never comes sooner than this many intervals: one missed refresh must not
/// blank a series.
const MIN_INTERVALS_BEFORE_STALE: u32 = 3;

/// What the top level of the config file says about every collector.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Defaults {
    /// `refresh_interval`: the interval of every collector that sets none of its own.
    pub refresh_interval: Option<Duration>,
    /// `stale_after`, raised per collector to at least three of its intervals.
    pub stale_after: Option<Duration>,
}

/// When a collector runs and how long its values outlive a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub stale_after: Duration,
}

impl Schedule {
    /// `interval` as configured for the collector, else `refresh_interval`, else the
    /// collector's own default.
    pub(crate) fn resolve(
        interval: Option<Duration>,
        default: Duration,
        defaults: &Defaults,
    ) -> Result<Schedule, super::BuildError> {
        let interval = interval.or(defaults.refresh_interval).unwrap_or(default);
        if interval.is_zero() {
            return Err(("interval".into(), "must be greater than 0".into()));
        }
        let floor = interval.saturating_mul(MIN_INTERVALS_BEFORE_STALE);
        let stale_after = defaults
            .stale_after
            .unwrap_or(DEFAULT_STALE_AFTER)
            .max(floor);
        Ok(Schedule {
            interval,
            stale_after,
        })
    }

    /// Paid calls per day at this interval, for `requests` per refresh.
    pub(crate) fn calls_per_day(&self, requests: usize) -> u64 {
        let per_day = 86_400_000 / self.interval.as_millis().max(1);
        (per_day as u64).saturating_mul(requests as u64)
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "every {}, stale after {}",
            format_duration(self.interval),
            format_duration(self.stale_after)
        )
    }
}

/// The window the usage-statistics queries read (`period: PeriodFilter!`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Period {
    #[default]
    CurrentMonth,
    LastMonth,
    Last3Months,
}

impl Period {
    /// Pipefy's spelling of each value, which is also the config file's.
    const ALL: &'static [(&'static str, Period)] = &[
        ("current_month", Period::CurrentMonth),
        ("last_month", Period::LastMonth),
        ("last_3_months", Period::Last3Months),
    ];

    /// Pipefy's spelling of the enum value.
    pub(crate) fn as_str(self) -> &'static str {
        Period::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("current_month", |(name, _)| name)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::yaml::one_of(d, Period::ALL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn own_interval_then_refresh_interval_then_default() {
        let defaults = Defaults::default();
        assert_eq!(
            Schedule::resolve(None, 15 * MINUTE, &defaults)
                .unwrap()
                .interval,
            15 * MINUTE
        );
        let defaults = Defaults {
            refresh_interval: Some(2 * MINUTE),
            stale_after: None,
        };
        assert_eq!(
            Schedule::resolve(None, 15 * MINUTE, &defaults)
                .unwrap()
                .interval,
            2 * MINUTE
        );
        assert_eq!(
            Schedule::resolve(Some(60 * MINUTE), 15 * MINUTE, &defaults)
                .unwrap()
                .interval,
            60 * MINUTE
        );
    }

    #[test]
    fn stale_after_is_at_least_three_intervals() {
        let defaults = Defaults {
            refresh_interval: None,
            stale_after: Some(10 * MINUTE),
        };
        let hourly = Schedule::resolve(Some(60 * MINUTE), MINUTE, &defaults).unwrap();
        assert_eq!(hourly.stale_after, 180 * MINUTE);
        let quick = Schedule::resolve(Some(MINUTE), MINUTE, &defaults).unwrap();
        assert_eq!(quick.stale_after, 10 * MINUTE);
        let default = Schedule::resolve(Some(MINUTE), MINUTE, &Defaults::default()).unwrap();
        assert_eq!(default.stale_after, 15 * MINUTE);
    }

    #[test]
    fn calls_per_day() {
        let s = Schedule::resolve(
            Some(30 * Duration::from_secs(1)),
            MINUTE,
            &Defaults::default(),
        )
        .unwrap();
        assert_eq!(s.calls_per_day(3), 2880 * 3);
    }
}
