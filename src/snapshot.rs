//! What the exporter knows: the last good values per organization and collector,
//! and the pure rules that merge one refresh into it.
//!
//! Each collector owns its slice of an organization's snapshot: a value of a type the
//! collector defines in its own file (limits, AI credits, API calls, ...), stored here as
//! [`Slice`] and read back with [`OrgSnapshot::fresh`]. The snapshot therefore never
//! changes when a collector is added. Nothing here does I/O, so the stale-value rules
//! are unit-tested directly.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One collector's value for one organization, typed by the collector that made it.
#[derive(Clone)]
pub struct Slice(Arc<dyn Any + Send + Sync>);

impl Slice {
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Slice(Arc::new(value))
    }

    /// The value, if it is a `T` (it always is for the collector that stored it).
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Slice(..)")
    }
}

/// Identity of an organization. `uuid` and `name` may be unknown when the first
/// request for it already failed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrgMeta {
    pub id: String,
    pub uuid: Option<String>,
    pub name: String,
    pub plan: Option<String>,
}

/// What one collector knows about one organization.
#[derive(Clone, Debug)]
pub struct Series<T> {
    /// Whether the last refresh succeeded.
    pub up: bool,
    /// The last good value and when it was fetched.
    pub value: Option<T>,
    pub last_success: Option<SystemTime>,
    /// How long a value is exported after `last_success` (the collector's stale_after).
    pub stale_after: Duration,
    /// Why the last refresh failed, for the landing page and logs.
    pub last_error: Option<String>,
}

impl<T> Series<T> {
    fn new(stale_after: Duration) -> Self {
        Series {
            up: false,
            value: None,
            last_success: None,
            stale_after,
            last_error: None,
        }
    }

    /// The value if it is still young enough to export.
    pub fn fresh(&self, now: SystemTime) -> Option<&T> {
        self.is_fresh(now).then_some(self.value.as_ref()).flatten()
    }

    /// Whether the last success is recent enough for its value to be exported.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.last_success.is_some_and(|last| {
            now.duration_since(last).unwrap_or(Duration::ZERO) <= self.stale_after
        })
    }

    /// Applies one refresh: a success replaces the value, a failure keeps the last good
    /// one until it is older than `stale_after`.
    fn merge(self, outcome: Result<T, String>, now: SystemTime, stale_after: Duration) -> Self {
        match outcome {
            Ok(value) => Series {
                up: true,
                value: Some(value),
                last_success: Some(now),
                stale_after,
                last_error: None,
            },
            Err(error) => {
                let keep = Series {
                    stale_after,
                    ..self
                };
                let fresh = keep.is_fresh(now);
                Series {
                    up: false,
                    value: if fresh { keep.value } else { None },
                    last_error: Some(error),
                    ..keep
                }
            }
        }
    }
}

/// Everything known about one organization.
#[derive(Clone, Debug, Default)]
pub struct OrgSnapshot {
    pub meta: OrgMeta,
    /// Which account's credential watches it.
    pub account: String,
    /// One series per enabled collector that has run for it, by collector name.
    pub collectors: PerCollector,
}

/// One series per collector, by name, in name order. A short sorted list rather than
/// a map: there are six collectors at most, and a B-tree allocates a node for eleven,
/// twice the memory, for each of thousands of organizations in each snapshot.
#[derive(Clone, Debug, Default)]
pub struct PerCollector(Vec<(&'static str, Series<Slice>)>);

impl PerCollector {
    pub fn get(&self, collector: &str) -> Option<&Series<Slice>> {
        self.find(collector).ok().map(|i| &self.0[i].1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn values(&self) -> impl Iterator<Item = &Series<Slice>> {
        self.0.iter().map(|(_, series)| series)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, (&'static str, Series<Slice>)> {
        self.0.iter()
    }

    /// Keeps the series for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&'static str, &Series<Slice>) -> bool) {
        self.0.retain(|(name, series)| keep(name, series));
    }

    /// Sets the series of `collector`, replacing the one it had.
    pub fn insert(&mut self, collector: &'static str, series: Series<Slice>) {
        match self.find(collector) {
            Ok(i) => self.0[i].1 = series,
            Err(i) => self.0.insert(i, (collector, series)),
        }
    }

    /// Takes the series of `collector` out, if it has one.
    pub fn remove(&mut self, collector: &str) -> Option<Series<Slice>> {
        self.find(collector).ok().map(|i| self.0.remove(i).1)
    }

    fn find(&self, collector: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(name, _)| (*name).cmp(collector))
    }
}

impl<'a> IntoIterator for &'a PerCollector {
    type Item = &'a (&'static str, Series<Slice>);
    type IntoIter = std::slice::Iter<'a, (&'static str, Series<Slice>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<(&'static str, Series<Slice>)> for PerCollector {
    fn from_iter<I: IntoIterator<Item = (&'static str, Series<Slice>)>>(iter: I) -> Self {
        let mut all = PerCollector::default();
        for (collector, series) in iter {
            all.insert(collector, series);
        }
        all
    }
}

impl std::ops::Index<&str> for PerCollector {
    type Output = Series<Slice>;

    /// The series of `collector`; panics if it has none (for tests).
    fn index(&self, collector: &str) -> &Series<Slice> {
        self.get(collector)
            .unwrap_or_else(|| panic!("no series for collector {collector}"))
    }
}

impl OrgSnapshot {
    /// A collector's value, if it is fresh and of type `T`.
    pub fn fresh<T: Any>(&self, collector: &str, now: SystemTime) -> Option<&T> {
        self.collectors
            .get(collector)
            .and_then(|s| s.fresh(now))
            .and_then(Slice::get)
    }

    /// The first error of the last refresh of each collector, if any failed.
    pub fn last_error(&self) -> Option<&str> {
        self.collectors
            .values()
            .find_map(|s| s.last_error.as_deref())
    }
}

/// The latest state, published to the HTTP side after every refresh.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub orgs: BTreeMap<String, OrgSnapshot>,
    /// Refreshes finished since start; 0 means not ready.
    pub cycles: u64,
    pub last_cycle: Option<SystemTime>,
}

impl Snapshot {
    /// The organizations `watched` keeps, with only the series of `collectors`: what a
    /// reloaded configuration still exposes, before its first refresh. Everything kept
    /// keeps its values and ages.
    pub fn retain(&self, watched: impl Fn(&OrgSnapshot) -> bool, collectors: &[&str]) -> Snapshot {
        let orgs = self
            .orgs
            .iter()
            .filter(|(_, org)| watched(org))
            .map(|(id, org)| {
                let mut org = org.clone();
                org.collectors.retain(|name, _| collectors.contains(&name));
                (id.clone(), org)
            })
            .collect();
        Snapshot {
            orgs,
            cycles: self.cycles,
            last_cycle: self.last_cycle,
        }
    }

    /// When the first value that is fresh at `now` stops being fresh (its
    /// `last_success + stale_after`), if any is: what is exported from this snapshot
    /// stays the same until just after then.
    pub fn stale_at(&self, now: SystemTime) -> Option<SystemTime> {
        self.orgs
            .values()
            .flat_map(|org| org.collectors.values())
            .filter(|series| series.value.is_some() && series.is_fresh(now))
            .filter_map(|series| series.last_success?.checked_add(series.stale_after))
            .min()
    }
}

/// An organization taking part in a refresh, with what this refresh learned of its
/// identity (if anything).
#[derive(Clone, Debug, Default)]
pub struct OrgEntry {
    pub id: String,
    pub account: String,
    pub meta: Option<OrgMeta>,
}

/// One collector's outcome for one organization.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub org_id: String,
    pub collector: &'static str,
    pub stale_after: Duration,
    pub result: Result<Slice, String>,
}

/// Merges one refresh into the previous snapshot. `orgs` is every organization watched
/// now: the others (no longer configured or discovered) are dropped. Collectors that did
/// not run in this refresh keep their series untouched; the ones that ran keep their last
/// good value through a failure until `stale_after`.
pub fn merge(
    previous: &Snapshot,
    orgs: Vec<OrgEntry>,
    outcomes: Vec<Outcome>,
    now: SystemTime,
) -> Snapshot {
    let mut next: BTreeMap<String, OrgSnapshot> = orgs
        .into_iter()
        .map(|entry| {
            let prev = previous.orgs.get(&entry.id).cloned().unwrap_or_default();
            let meta = match entry.meta {
                Some(meta) => meta,
                // Keep the identity learned earlier so labels do not flap on failures.
                None if !prev.meta.id.is_empty() => prev.meta,
                None => OrgMeta {
                    id: entry.id.clone(),
                    ..OrgMeta::default()
                },
            };
            let org = OrgSnapshot {
                meta,
                account: entry.account,
                collectors: prev.collectors,
            };
            (entry.id, org)
        })
        .collect();
    for outcome in outcomes {
        let Some(org) = next.get_mut(&outcome.org_id) else {
            continue;
        };
        let series = org
            .collectors
            .remove(outcome.collector)
            .unwrap_or_else(|| Series::new(outcome.stale_after));
        org.collectors.insert(
            outcome.collector,
            series.merge(outcome.result, now, outcome.stale_after),
        );
    }
    Snapshot {
        orgs: next,
        cycles: previous.cycles + 1,
        last_cycle: Some(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const STALE: Duration = Duration::from_secs(900);

    fn entry(meta: Option<OrgMeta>) -> OrgEntry {
        OrgEntry {
            id: "2".into(),
            account: "default".into(),
            meta,
        }
    }

    fn outcome(collector: &'static str, result: Result<u32, &str>) -> Outcome {
        Outcome {
            org_id: "2".into(),
            collector,
            stale_after: STALE,
            result: result.map(Slice::new).map_err(str::to_owned),
        }
    }

    fn value(s: &Snapshot, collector: &str, now: SystemTime) -> Option<u32> {
        s.orgs["2"].fresh::<u32>(collector, now).copied()
    }

    #[test]
    fn failure_keeps_last_good_value_until_stale_after() {
        let meta = OrgMeta {
            id: "2".into(),
            uuid: Some("u".into()),
            name: "Vandeley Industries".into(),
            plan: None,
        };
        let s1 = merge(
            &Snapshot::default(),
            vec![entry(Some(meta))],
            vec![outcome("limits", Ok(3))],
            at(1000),
        );
        assert_eq!(s1.cycles, 1);

        let s2 = merge(
            &s1,
            vec![entry(None)],
            vec![outcome("limits", Err("boom"))],
            at(1300),
        );
        let org = &s2.orgs["2"];
        assert_eq!(
            org.meta.name, "Vandeley Industries",
            "identity survives the failure"
        );
        let series = &org.collectors["limits"];
        assert!(!series.up);
        assert_eq!(series.last_success, Some(at(1000)));
        assert_eq!(value(&s2, "limits", at(1300)), Some(3));
        assert_eq!(value(&s2, "limits", at(1901)), None, "stale at scrape time");
        assert_eq!(org.last_error(), Some("boom"));

        // A refresh after stale_after drops the value itself.
        let s3 = merge(
            &s2,
            vec![entry(None)],
            vec![outcome("limits", Err("boom"))],
            at(1901),
        );
        let series = &s3.orgs["2"].collectors["limits"];
        assert!(series.value.is_none());
        assert_eq!(series.last_success, Some(at(1000)));

        // Recovery replaces everything.
        let s4 = merge(
            &s3,
            vec![entry(None)],
            vec![outcome("limits", Ok(4))],
            at(2000),
        );
        assert!(s4.orgs["2"].collectors["limits"].up);
        assert_eq!(value(&s4, "limits", at(2000)), Some(4));
        assert_eq!(s4.cycles, 4);
    }

    #[test]
    fn collectors_that_did_not_run_keep_their_series() {
        let s1 = merge(
            &Snapshot::default(),
            vec![entry(None)],
            vec![outcome("limits", Ok(1)), outcome("tokens", Ok(7))],
            at(0),
        );
        // Only `limits` is due in the second refresh; `tokens` (a longer interval) is not.
        let s2 = merge(
            &s1,
            vec![entry(None)],
            vec![outcome("limits", Ok(2))],
            at(60),
        );
        assert_eq!(value(&s2, "limits", at(60)), Some(2));
        assert_eq!(value(&s2, "tokens", at(60)), Some(7));
        assert_eq!(
            s2.orgs["2"].collectors["tokens"].last_success,
            Some(at(0)),
            "not refreshed, so not re-stamped"
        );
    }

    #[test]
    fn stale_at_is_the_first_fresh_value_to_expire() {
        let s1 = merge(
            &Snapshot::default(),
            vec![entry(None)],
            vec![outcome("limits", Ok(1)), outcome("tokens", Ok(7))],
            at(0),
        );
        let s2 = merge(
            &s1,
            vec![entry(None)],
            vec![outcome("limits", Ok(2)), outcome("tokens", Err("boom"))],
            at(600),
        );
        // `tokens` keeps its value of t=0 until 900, `limits` its value of t=600 until 1500.
        assert_eq!(s2.stale_at(at(600)), Some(at(900)));
        assert_eq!(
            s2.stale_at(at(900)),
            Some(at(900)),
            "still fresh at 900 itself"
        );
        assert_eq!(value(&s2, "tokens", at(900)), Some(7));
        assert_eq!(s2.stale_at(at(901)), Some(at(1500)));
        assert_eq!(value(&s2, "tokens", at(901)), None);
        assert_eq!(s2.stale_at(at(1501)), None, "nothing left to expire");
        assert_eq!(Snapshot::default().stale_at(at(0)), None);
    }

    #[test]
    fn organizations_no_longer_listed_are_dropped() {
        let s1 = merge(
            &Snapshot::default(),
            vec![entry(None)],
            vec![outcome("limits", Ok(1))],
            at(0),
        );
        let s2 = merge(&s1, vec![], vec![outcome("limits", Ok(1))], at(10));
        assert!(
            s2.orgs.is_empty(),
            "an outcome for an unlisted org is ignored"
        );
    }

    #[test]
    fn a_value_of_another_type_is_not_returned() {
        let s = merge(
            &Snapshot::default(),
            vec![entry(None)],
            vec![outcome("limits", Ok(1))],
            at(0),
        );
        assert_eq!(s.orgs["2"].fresh::<String>("limits", at(0)), None);
    }
}
