//! What a collector shows of an organization on the landing page: cells of its row,
//! which the page lays out in columns and bands by the alerts' levels, whatever
//! collector they come from.

use std::borrow::Cow;

use crate::thresholds::{Kind, Level};

/// One cell of an organization's row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cell {
    /// The column: `pipes`, `AI credits`, `unassigned tokens`.
    pub(crate) column: Cow<'static, str>,
    /// Whether the column is this collector's own. A cell that is not (the plan's
    /// AI-credit limit, which the `ai_credits` collector shows as its own) fills its
    /// column only where no enabled collector fills it as its own.
    pub(crate) own: bool,
    pub(crate) value: CellValue,
}

/// What a cell shows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum CellValue {
    /// Nothing fresh for the organization (the collector failed past stale_after, or
    /// Pipefy sent nothing).
    NoData,
    /// Used out of a limit (`+Inf`: unlimited), banded by the levels of the alerts on
    /// a figure of that kind.
    Share { used: f64, limit: f64, kind: Kind },
    /// A count, at the level of the alert on it.
    Count { count: usize, level: Level },
}

impl Cell {
    /// A cell of this collector's own column.
    pub(crate) fn own(column: impl Into<Cow<'static, str>>, value: CellValue) -> Cell {
        Cell {
            column: column.into(),
            own: true,
            value,
        }
    }

    /// A used / limit cell of this collector's own column, "no data" without a figure.
    pub(crate) fn share(column: &'static str, figure: Option<(f64, f64)>, kind: Kind) -> Cell {
        let value = figure.map_or(CellValue::NoData, |(used, limit)| CellValue::Share {
            used,
            limit,
            kind,
        });
        Cell::own(column, value)
    }
}
