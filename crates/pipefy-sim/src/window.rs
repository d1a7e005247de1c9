//! The time window of a usage-statistics query, asked as `period: PeriodFilter` or as
//! `filterDate: DateRange`, and echoed back as `filterDate { from to }`.
//!
//! The simulator keeps no history, so every window answers the same numbers; only the
//! echoed window and the days of `apiUsageStatsDaily` depend on it. Days are whole UTC
//! days counted from 1970-01-01, as in [`timefmt`].

use std::ops::RangeInclusive;
use std::time::SystemTime;

use async_graphql::{Enum, InputObject};
use timefmt::{civil_from_days, days_from_civil, parse_date, unix_seconds};

/// Pipefy's `PeriodFilter`. Its values are lower case, unlike most GraphQL enums, so
/// each one is named explicitly.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(name = "PeriodFilter")]
pub(super) enum PeriodFilter {
    #[graphql(name = "current_month")]
    CurrentMonth,
    #[graphql(name = "last_month")]
    LastMonth,
    #[graphql(name = "last_3_months")]
    Last3Months,
}

/// Pipefy's `DateRange` input: ISO 8601 dates (or date-times, of which only the date
/// counts), both ends included.
#[derive(InputObject, Clone, Debug)]
#[graphql(name = "DateRange")]
pub(super) struct DateRange {
    pub(super) from: String,
    pub(super) to: String,
}

/// A window of whole days, with the `from` / `to` texts an answer echoes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Window {
    pub(super) from: String,
    pub(super) to: String,
    first_day: i64,
    last_day: i64,
}

impl Window {
    /// The window a query asked for, given today's day number.
    ///
    /// Pipefy documents `period` and `filterDate` as alternatives, each required when
    /// used, so the schema declares both nullable and exactly one must be given: a
    /// query with neither (or both) is refused rather than answered with a guess.
    pub(super) fn asked(
        period: Option<PeriodFilter>,
        filter_date: Option<DateRange>,
        today: i64,
    ) -> Result<Window, String> {
        match (period, filter_date) {
            (Some(period), None) => Ok(Window::of_period(period, today)),
            (None, Some(range)) => Window::of_range(range, today),
            (None, None) => Err("Either period or filterDate is required".to_string()),
            (Some(_), Some(_)) => Err("Give either period or filterDate, not both".to_string()),
        }
    }

    /// `current_month`: the 1st of this month to today. `last_month`: the whole previous
    /// month. `last_3_months` (an assumption: Pipefy does not say whether the current
    /// month counts): the 1st of the month two months back to today, the same bound
    /// `filterDate` must stay within.
    pub(super) fn of_period(period: PeriodFilter, today: i64) -> Window {
        let (first_day, last_day) = match period {
            PeriodFilter::CurrentMonth => (first_of_month(today, 0), today),
            PeriodFilter::LastMonth => (first_of_month(today, 1), first_of_month(today, 0) - 1),
            PeriodFilter::Last3Months => (first_of_month(today, 2), today),
        };
        Window {
            from: date(first_day),
            to: date(last_day),
            first_day,
            last_day,
        }
    }

    /// A `filterDate`, echoed as given. Pipefy only serves the last three months, and
    /// has no figures for days to come.
    fn of_range(range: DateRange, today: i64) -> Result<Window, String> {
        let day = |text: &str| {
            parse_day(text).ok_or_else(|| format!("filterDate: {text:?} is not an ISO 8601 date"))
        };
        let (first_day, last_day) = (day(&range.from)?, day(&range.to)?);
        if first_day > last_day {
            return Err("filterDate: from is after to".to_string());
        }
        if first_day < first_of_month(today, 2) || last_day > today {
            return Err("filterDate must lie within the last 3 months".to_string());
        }
        Ok(Window {
            from: range.from,
            to: range.to,
            first_day,
            last_day,
        })
    }

    /// The days of the window, first to last.
    pub(super) fn days(&self) -> RangeInclusive<i64> {
        self.first_day..=self.last_day
    }
}

/// Today's day number, UTC.
pub(super) fn today() -> i64 {
    unix_seconds(SystemTime::now()) as i64 / 86_400
}

/// `yyyy-MM-dd` of a day number, the format of Pipefy's daily figures.
pub(super) fn date(day: i64) -> String {
    let (year, month, day) = civil_from_days(day);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The 1st of the month `months_back` months before the month of `day`.
fn first_of_month(day: i64, months_back: i64) -> i64 {
    let (year, month, _) = civil_from_days(day);
    let index = year * 12 + i64::from(month) - 1 - months_back;
    // `rem_euclid(12)` is in 0..12, so the month fits a u32.
    days_from_civil(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1)
}

/// The day of an ISO 8601 date (`2025-05-01`) or date-time (`2025-05-01T12:00:00Z`).
fn parse_day(text: &str) -> Option<i64> {
    let date = match text.split_once('T') {
        Some((date, _)) => date,
        None => text,
    };
    // `parse_date` trims and accepts a few sloppy forms; an API argument must be exact.
    if date.len() != 10 {
        return None;
    }
    parse_date(date).map(|secs| secs / 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-05-14, a Wednesday.
    fn may_14() -> i64 {
        days_from_civil(2025, 5, 14)
    }

    fn range(from: &str, to: &str) -> DateRange {
        DateRange {
            from: from.to_string(),
            to: to.to_string(),
        }
    }

    fn ends(w: &Window) -> (&str, &str) {
        (&w.from, &w.to)
    }

    #[test]
    fn periods_are_calendar_months() {
        let today = may_14();
        let w = Window::of_period(PeriodFilter::CurrentMonth, today);
        assert_eq!(ends(&w), ("2025-05-01", "2025-05-14"));
        assert_eq!(w.days().count(), 14);
        let w = Window::of_period(PeriodFilter::LastMonth, today);
        assert_eq!(ends(&w), ("2025-04-01", "2025-04-30"));
        let w = Window::of_period(PeriodFilter::Last3Months, today);
        assert_eq!(ends(&w), ("2025-03-01", "2025-05-14"));
        // Across a year boundary, and on the 1st of a month.
        let jan_1 = days_from_civil(2025, 1, 1);
        let w = Window::of_period(PeriodFilter::LastMonth, jan_1);
        assert_eq!(ends(&w), ("2024-12-01", "2024-12-31"));
        let w = Window::of_period(PeriodFilter::Last3Months, jan_1);
        assert_eq!(ends(&w), ("2024-11-01", "2025-01-01"));
        let w = Window::of_period(PeriodFilter::CurrentMonth, jan_1);
        assert_eq!(w.days().count(), 1);
    }

    #[test]
    fn filter_date_is_echoed_and_checked() {
        let today = may_14();
        let w = Window::asked(
            None,
            Some(range("2025-03-01", "2025-05-14T23:59:59Z")),
            today,
        )
        .expect("valid range");
        assert_eq!(ends(&w), ("2025-03-01", "2025-05-14T23:59:59Z"));
        assert_eq!(w.days().count(), 31 + 30 + 14);
        for (from, to) in [
            ("2025-02-28", "2025-03-10"),
            ("2025-05-10", "2025-05-15"),
            ("2025-05-10", "2025-05-09"),
            ("2025-5-1", "2025-05-09"),
            ("yesterday", "2025-05-09"),
        ] {
            assert!(
                Window::asked(None, Some(range(from, to)), today).is_err(),
                "{from}..{to}"
            );
        }
    }

    #[test]
    fn exactly_one_of_period_and_filter_date() {
        let today = may_14();
        assert!(Window::asked(None, None, today).is_err());
        let both = Window::asked(
            Some(PeriodFilter::CurrentMonth),
            Some(range("2025-05-01", "2025-05-02")),
            today,
        );
        assert!(both.is_err());
        assert_eq!(
            Window::asked(Some(PeriodFilter::LastMonth), None, today),
            Ok(Window::of_period(PeriodFilter::LastMonth, today))
        );
    }
}
