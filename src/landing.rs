//! The landing page (`/`): one row per organization, worst first, each used / limit figure
//! with its percentage and a colour band, so that trouble shows at a glance.
//!
//! Pure: [`page`] turns a snapshot into HTML, with no I/O and no clock of its own, so it
//! is tested on hand-made snapshots. The HTML is self-contained (inline CSS, no script,
//! no external asset): the exporter may run where the browser reaches nothing else, and
//! a page that computes nothing shows the same thing in every browser. Every string that
//! comes from Pipefy or the configuration is escaped; secrets never reach a snapshot.
//!
//! The columns come from the collectors: each says what it shows of an organization
//! ([`Collector::cells`]), and the page lays the cells out, bands them by the alerts'
//! levels and sorts the rows, whatever collector they come from. A column is shown in
//! the order of the collectors, a collector's own columns before those it only fills in
//! for another (the plan's AI-credit limit, shown when the `ai_credits` collector is off).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use std::collections::HashSet;
use std::sync::Arc;

use timefmt::rfc3339;

use crate::collectors::{Cell, CellValue, Collector};
use crate::exposition::ExpositionInfo;
use crate::snapshot::{OrgSnapshot, Snapshot};
use crate::thresholds::{self, Kind, Level};

mod reason;

/// How close a used / limit figure is to its limit, by the levels of the alerts
/// (`thresholds`): the cell's CSS class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Band {
    /// No figure (collector failed past stale_after, disabled, or Pipefy sent none).
    NoData,
    /// The limit is `+Inf`.
    Unlimited,
    /// The limit is 0 or less: no share to speak of, and, as in the rules' ratios, no
    /// alert (a resource a plan does not include).
    NoShare,
    /// Below the warning level.
    Ok,
    /// A warning alert's level, below the critical one.
    Warn,
    /// A critical alert's level: a plan limit reached, or most of a monthly quota.
    Critical,
}

impl Band {
    pub(crate) fn class(self) -> &'static str {
        match self {
            Band::NoData => "no-data",
            Band::Unlimited => "unlimited",
            Band::NoShare => "no-share",
            Band::Ok => "ok",
            Band::Warn => "warn",
            Band::Critical => "critical",
        }
    }

    fn of(level: Level) -> Band {
        match level {
            Level::Ok => Band::Ok,
            Level::Warning => Band::Warn,
            Level::Critical => Band::Critical,
        }
    }

    /// How much trouble the band means, for sorting: 0 none, 1 warning, 2 critical.
    fn trouble(self) -> u8 {
        match self {
            Band::Critical => 2,
            Band::Warn => 1,
            Band::NoData | Band::Unlimited | Band::NoShare | Band::Ok => 0,
        }
    }
}

/// The band of `used` out of `limit` for a figure of `kind`.
pub(crate) fn band(used: f64, limit: f64, kind: Kind) -> Band {
    if used.is_nan() || limit.is_nan() {
        Band::NoData
    } else if limit == f64::INFINITY {
        Band::Unlimited
    } else if limit <= 0.0 {
        Band::NoShare
    } else {
        Band::of(thresholds::ratio_level(used / limit, kind))
    }
}

/// The band of a cell.
pub(crate) fn cell_band(value: &CellValue) -> Band {
    match *value {
        CellValue::NoData => Band::NoData,
        CellValue::Share { used, limit, kind } => band(used, limit, kind),
        CellValue::Count { level, .. } => Band::of(level),
    }
}

/// `used / limit` as a whole percentage, rounded down so that "100 %" never shows below
/// the limit (99.6 % is "99 %"); `None` when the limit is unlimited or not positive.
pub(crate) fn percent(used: f64, limit: f64) -> Option<String> {
    (limit > 0.0 && limit.is_finite() && used.is_finite())
        .then(|| format!("{} %", (used * 100.0 / limit).floor()))
}

/// A number as people read it: thousands separated by commas, at most two decimals.
pub(crate) fn number(value: f64) -> String {
    if !value.is_finite() {
        return if value.is_nan() { "NaN" } else { "∞" }.to_owned();
    }
    let rounded = (value * 100.0).round() / 100.0;
    let text = format!("{:.2}", rounded.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, "00"));
    let mut out = String::with_capacity(text.len() + text.len() / 3 + 1);
    if rounded < 0.0 {
        out.push('-');
    }
    for (i, digit) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    let frac = frac.trim_end_matches('0');
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// An age as people read it: the two largest units (`45s`, `4m 10s`, `2h 5m`, `3d 4h`).
pub(crate) fn age(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .take(2)
        .filter(|(n, _)| *n > 0 || first == 3)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How an organization's refreshes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Every collector's last refresh succeeded; the data is `age` old (its oldest
    /// collector's last success).
    Ok { age: Duration },
    /// A collector failed, and some values are still kept: `age` since the last success
    /// of the failing collectors (the oldest of them), `None` if one never succeeded.
    Stale { age: Option<Duration> },
    /// Collectors failed and no value is left to show.
    Failing { age: Option<Duration> },
    /// No collector has run for it yet.
    Waiting,
}

impl Status {
    pub(crate) fn of(org: &OrgSnapshot, now: SystemTime) -> Status {
        let since = |t: SystemTime| now.duration_since(t).unwrap_or(Duration::ZERO);
        if org.collectors.is_empty() {
            return Status::Waiting;
        }
        let failed: Vec<_> = org.collectors.values().filter(|s| !s.up).collect();
        if failed.is_empty() {
            let oldest = org.collectors.values().filter_map(|s| s.last_success).min();
            return Status::Ok {
                age: oldest.map(since).unwrap_or(Duration::ZERO),
            };
        }
        // The age of the oldest failing data: None as soon as one never succeeded.
        let age = failed
            .iter()
            .map(|s| s.last_success)
            .collect::<Option<Vec<_>>>()
            .and_then(|t| t.into_iter().min())
            .map(since);
        if org.collectors.values().any(|s| s.is_fresh(now)) {
            Status::Stale { age }
        } else {
            Status::Failing { age }
        }
    }

    fn class(self) -> &'static str {
        match self {
            Status::Ok { .. } => "ok",
            Status::Stale { .. } => "stale",
            Status::Failing { .. } => "failing",
            Status::Waiting => "no-data",
        }
    }

    /// The status word and, under it, how old the data is.
    fn text(self) -> (&'static str, String) {
        let ago = |age: Option<Duration>| match age {
            Some(a) => format!("updated {} ago", self::age(a)),
            None => "never updated".to_owned(),
        };
        match self {
            Status::Ok { age } => ("ok", ago(Some(age))),
            Status::Stale { age } => ("stale", ago(age)),
            Status::Failing { age } => ("failing", ago(age)),
            Status::Waiting => ("waiting", "first refresh pending".to_owned()),
        }
    }

    /// How much trouble the status means, for sorting, on [`Band::trouble`]'s scale:
    /// failing weighs as much as a limit reached, stale as a warning.
    fn trouble(self) -> u8 {
        match self {
            Status::Failing { .. } => 2,
            Status::Stale { .. } | Status::Waiting => 1,
            Status::Ok { .. } => 0,
        }
    }
}

/// One organization's line, extracted from the snapshot.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    pub id: String,
    pub name: String,
    pub status: Status,
    pub error: Option<String>,
    /// In the order of [`Table::columns`]; `None` where no collector filled the column.
    pub cells: Vec<Option<CellValue>>,
}

impl Row {
    /// `(trouble, highest share of a limit)`: what [`sort_worst_first`] orders by.
    pub(crate) fn severity(&self) -> (u8, f64) {
        let cells = self.cells.iter().flatten();
        let trouble = cells
            .clone()
            .map(|c| cell_band(c).trouble())
            .fold(self.status.trouble(), u8::max);
        let highest = cells
            .filter_map(|c| match *c {
                CellValue::Share { used, limit, .. } if limit > 0.0 && limit.is_finite() => {
                    Some(used / limit)
                }
                _ => None,
            })
            .fold(0.0, f64::max);
        (trouble, highest)
    }
}

/// Worst first: most trouble (a limit reached or failing, then a warning or stale), then
/// the highest share of any limit, then by name and id so that the order is stable.
pub(crate) fn sort_worst_first(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        let (ta, ra) = a.severity();
        let (tb, rb) = b.severity();
        tb.cmp(&ta)
            .then(rb.total_cmp(&ra))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// Every organization's row, worst first, with the columns the collectors fill.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

impl Table {
    pub(crate) fn of(
        snapshot: &Snapshot,
        collectors: &[Arc<dyn Collector>],
        now: SystemTime,
    ) -> Table {
        // Each organization's cells, with the collector's place in the registry.
        let cells: Vec<(&OrgSnapshot, Vec<(usize, Cell)>)> = snapshot
            .orgs
            .values()
            .map(|org| {
                let of_org = collectors
                    .iter()
                    .enumerate()
                    .flat_map(|(i, c)| c.cells(org, now).into_iter().map(move |cell| (i, cell)));
                (org, of_org.collect())
            })
            .collect();
        // A cell standing in for another collector's column is left out where that
        // collector is enabled: it fills the column as its own.
        let owned: HashSet<String> = cells
            .iter()
            .flat_map(|(_, c)| c)
            .filter(|(_, c)| c.own)
            .map(|(_, c)| c.column.to_string())
            .collect();
        let shown = |cell: &Cell| cell.own || !owned.contains(&*cell.column);
        let columns = columns(cells.iter().flat_map(|(_, c)| c).filter(|(_, c)| shown(c)));
        let mut rows: Vec<Row> = cells
            .iter()
            .map(|(org, cells)| {
                let mut row = vec![None; columns.len()];
                for (_, cell) in cells.iter().filter(|(_, c)| shown(c)) {
                    if let Some(at) = columns.iter().position(|c| *c == cell.column) {
                        row[at] = Some(cell.value);
                    }
                }
                Row {
                    id: org.meta.id.clone(),
                    name: org.meta.name.clone(),
                    status: Status::of(org, now),
                    error: failure(org),
                    cells: row,
                }
            })
            .collect();
        sort_worst_first(&mut rows);
        Table { columns, rows }
    }
}

/// The columns of `cells` (each with its collector's place in the registry): in that
/// order, a collector's own columns first, each in the order it first appears.
fn columns<'c>(cells: impl Iterator<Item = &'c (usize, Cell)>) -> Vec<String> {
    let mut placed: Vec<((usize, bool, usize), &str)> = Vec::new();
    for (seen, (collector, cell)) in cells.enumerate() {
        if !placed.iter().any(|(_, name)| *name == cell.column) {
            placed.push(((*collector, !cell.own, seen), &cell.column));
        }
    }
    placed.sort_by_key(|(key, _)| *key);
    placed
        .into_iter()
        .map(|(_, name)| name.to_owned())
        .collect()
}

/// The last error of the first failing collector, named, and how many others fail.
fn failure(org: &OrgSnapshot) -> Option<String> {
    let mut failing = (&org.collectors)
        .into_iter()
        .filter_map(|(name, s)| s.last_error.as_deref().map(|e| (name, e)));
    let (name, error) = failing.next()?;
    let more = match failing.count() {
        0 => String::new(),
        1 => " (and 1 more collector)".to_owned(),
        n => format!(" (and {n} more collectors)"),
    };
    Some(format!("{name}: {error}{more}"))
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
:root{color-scheme:light}\
body{font:14px/1.4 system-ui,-apple-system,\"Segoe UI\",sans-serif;margin:1.5em;color:#1f2328}\
h1{font-size:1.5em;margin:0 0 .3em}\
header p,header ul{margin:.2em 0}\
nav a{margin-right:1em}\
.queries{border-left:4px solid #cf222e;padding:.2em .8em;margin:.6em 0}\
.queries h2{font-size:1.1em;margin:.2em 0}\
details{margin:.5em 0;color:#57606a}\
table{border-collapse:collapse;width:100%;margin-top:1em}\
th,td{padding:4px 8px;border-bottom:1px solid #d0d7de;text-align:right;vertical-align:top;white-space:nowrap}\
th{background:#f6f8fa;font-weight:600}\
th.org,td.org{text-align:left;white-space:normal;overflow-wrap:anywhere;min-width:10em}\
td small{display:block;color:#57606a;font-size:.85em}\
td.ok{color:#1a7f37}\
td.warn{background:#fff8c5;color:#7d4e00}\
td.critical{background:#ffebe9;color:#a40e26;font-weight:600}\
td.unlimited,td.no-share{color:#57606a}\
td.no-data{color:#8c959f;font-style:italic}\
th.status,td.status{text-align:left}\
td.status.ok{color:#1a7f37}td.status.stale{background:#fff8c5;color:#7d4e00}\
td.status.failing{background:#ffebe9;color:#a40e26;font-weight:600}\
.legend span{padding:0 .4em;margin-right:.5em}\
.legend .warn{background:#fff8c5;color:#7d4e00}.legend .critical{background:#ffebe9;color:#a40e26}\
td.status small.reason{white-space:normal;overflow-wrap:anywhere;max-width:24em}\
@media (max-width:1100px){\
table,tbody,tr{display:block}thead{display:none}\
tr{display:flex;flex-wrap:wrap;border-bottom:2px solid #d0d7de;padding:4px 0}\
td{border:0;text-align:left}\
td.org{flex:1 0 100%;font-weight:600}\
td[data-label]::before{content:attr(data-label);display:block;font-size:.8em;color:#57606a}}";

/// The landing page: version, links, the collectors' schedules, and one row per
/// organization, worst first.
pub(crate) fn page(
    snapshot: &Snapshot,
    info: &ExpositionInfo,
    invalid_queries: &[InvalidQuery],
    telemetry_path: &str,
    now: SystemTime,
) -> String {
    let table = Table::of(snapshot, &info.collectors, now);
    let mut html = String::with_capacity(4096 + 1024 * table.rows.len());
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Pipefy Exporter</title><style>{STYLE}</style></head><body><header>\
         <h1>Pipefy Exporter</h1><p>Version {version} (revision {revision})</p>\
         <nav><a href=\"{path}\">Metrics</a><a href=\"/-/healthy\">Health</a><a href=\"/-/ready\">Readiness</a></nav>",
        version = escape_html(info.version),
        revision = escape_html(info.revision),
        path = escape_html(telemetry_path),
    );
    for line in info.collectors.iter().filter_map(|c| c.headline(now)) {
        let _ = write!(html, "<p>{}</p>", escape_html(&line));
    }
    write_invalid_queries(&mut html, invalid_queries);
    match snapshot.last_cycle {
        None => html.push_str("<p>Waiting for the first refresh.</p>"),
        Some(t) => {
            let _ = write!(html, "<p>Last refresh: {}</p>", rfc3339(t));
        }
    }
    html.push_str(
        "<details><summary>Values come from background refreshes, not from the scrape; \
         after a failure they are kept, marked stale, for a while.</summary><ul>",
    );
    for collector in &info.collectors {
        let _ = write!(
            html,
            "<li>{}: {}</li>",
            collector.name(),
            collector.schedule().describe()
        );
    }
    html.push_str("</ul></details>");
    html.push_str(&legend());
    html.push_str("</header>");
    html.push_str(
        "<table><thead><tr><th class=\"org\">Organization</th><th class=\"status\">Status</th>",
    );
    for column in &table.columns {
        let _ = write!(html, "<th>{}</th>", escape_html(column));
    }
    html.push_str("</tr></thead><tbody>");
    for row in &table.rows {
        write_row(&mut html, &table.columns, row);
    }
    html.push_str("</tbody></table></body></html>\n");
    html
}

/// A collector whose query is not sent for an account: `(account, collector, why)`, as
/// `pipefy_exporter_query_valid` 0 shows it.
pub(crate) type InvalidQuery = (String, &'static str, String);

/// Why a collector's query is not sent, where the page is read first: its organizations
/// only say "failing", and the reason is one for all of them.
fn write_invalid_queries(html: &mut String, invalid: &[InvalidQuery]) {
    if invalid.is_empty() {
        return;
    }
    html.push_str(
        "<section class=\"queries\"><h2>Queries not sent</h2><p>Pipefy's schema does not have what \
         these queries ask for, or Pipefy rejected them: they cost nothing until the next schema \
         check (<code>pipefy.schema_check_interval</code>) or a reload. \
         <code>--check.pipefy</code> says more.</p><ul>",
    );
    for (account, collector, why) in invalid {
        let _ = write!(
            html,
            "<li data-collector=\"{collector}\"><strong>{collector}</strong> (account {account}): {why}</li>",
            collector = escape_html(collector),
            account = escape_html(account),
            why = escape_html(why),
        );
    }
    html.push_str("</ul></section>");
}

/// What the colours mean, in the numbers of [`thresholds`]: the alerts' levels.
fn legend() -> String {
    let pct = |ratio: f64| format!("{:.0} %", ratio * 100.0);
    format!(
        "<p class=\"legend\">Colours follow the alerts: <span class=\"ok\">below {warning}</span>\
         <span class=\"warn\">warning: {warning} of a limit, unassigned tokens under \
         {warn_days} days before the deadline</span><span class=\"critical\">critical: a plan \
         limit reached, {quota} of the AI credits or API calls, unassigned tokens under \
         {days} days</span> Organizations in trouble first.</p>",
        warning = pct(thresholds::WARNING_RATIO),
        quota = pct(thresholds::QUOTA_CRITICAL_RATIO),
        days = thresholds::DEADLINE_CRITICAL_DAYS,
        warn_days = thresholds::DEADLINE_WARNING_DAYS,
    )
}

fn write_row(html: &mut String, columns: &[String], row: &Row) {
    let (word, detail) = row.status.text();
    let why = reason::of(row);
    let _ = write!(
        html,
        "<tr data-org=\"{id}\"><td class=\"org\">{name}<small>{id}</small></td>\
         <td class=\"status {class}\" data-label=\"status\" title=\"{title}\">{word}<small>{detail}</small>{shown}</td>",
        id = escape_html(&row.id),
        name = escape_html(&row.name),
        class = row.status.class(),
        title = why.as_ref().map(|w| escape_html(&w.full)).unwrap_or_default(),
        shown = why.as_ref().map(reason::Reason::html).unwrap_or_default(),
    );
    for (column, cell) in columns.iter().zip(&row.cells) {
        html.push_str(&cell_html(
            column,
            cell.as_ref().unwrap_or(&CellValue::NoData),
        ));
    }
    html.push_str("</tr>");
}

/// One cell: `<td class="BAND" data-label="COLUMN">…</td>`, `used / limit` with its
/// percentage, or a count, or "no data". `data-label` names the column where the table
/// collapses into cards on narrow screens.
pub(crate) fn cell_html(column: &str, value: &CellValue) -> String {
    let label = escape_html(column);
    let class = cell_band(value).class();
    match *value {
        CellValue::NoData => format!("<td class=\"{class}\" data-label=\"{label}\">no data</td>"),
        CellValue::Count { count, .. } => {
            format!("<td class=\"{class}\" data-label=\"{label}\">{count}</td>")
        }
        CellValue::Share { used, limit, kind } => {
            let limit_text = match band(used, limit, kind) {
                Band::Unlimited => "unlimited".to_owned(),
                _ => number(limit),
            };
            let percent = percent(used, limit)
                .map(|p| format!("<small>{p}</small>"))
                .unwrap_or_default();
            format!(
                "<td class=\"{class}\" data-label=\"{label}\">{} / {limit_text}{percent}</td>",
                number(used),
            )
        }
    }
}

#[cfg(test)]
mod tests;
