//! The two exposition formats a scrape can ask for, and one way to write a family into
//! either. A leaf: it imports nothing of the crate, so that the collectors, the
//! exporter's own metrics and the process metrics can all write their families through
//! it while `exposition` assembles the body from them.
//!
//! A family is described once ([`Family`]: a name without its suffixes, a unit, a kind)
//! and written through a [`Sink`]: [`TextSink`] writes the Prometheus text format 0.0.4
//! by hand, [`openmetrics`] hands the same calls to `prometheus-client`'s OpenMetrics
//! encoder. The name each format shows follows from the description: a counter's
//! samples end in `_total` in both, an info family's in `_info`; OpenMetrics also names
//! the family without `_total`/`_info`, types `info` as such and declares the unit.

pub(crate) mod openmetrics;
mod text;

use std::fmt;

pub(crate) use prometheus_client::registry::Unit;
pub(crate) use text::{from_openmetrics, TextSink};

/// A format of the `/metrics` body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text format 0.0.4: what `curl` and older scrapers get.
    Text,
    /// OpenMetrics 1.0.0 text: what Prometheus asks for first.
    OpenMetrics,
}

/// How many formats there are, for per-format arrays.
pub(crate) const FORMATS: usize = Format::ALL.len();

impl Format {
    pub const ALL: [Format; 2] = [Format::Text, Format::OpenMetrics];

    /// The `Content-Type` of a body in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// A small index, for per-format arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Format::Text => 0,
            Format::OpenMetrics => 1,
        }
    }
}

/// What kind of metric a family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Gauge,
    /// Samples named `<name>_total`.
    Counter,
    /// Samples named `<name>_info`, always 1, the facts in their labels; a gauge in the
    /// text format, which has no info type.
    Info,
}

/// How a family is described: its name without unit or type suffix, so that each format
/// can spell it.
#[derive(Clone, Debug)]
pub(crate) struct Family<'a> {
    /// `pipefy_exporter_collector_interval` for `..._interval_seconds`; `process_cpu`
    /// for the counter `process_cpu_seconds_total`; `pipefy_organization` for the info
    /// family `pipefy_organization_info`.
    pub(crate) name: &'a str,
    /// One line of plain text; each format escapes it as it requires.
    pub(crate) help: &'a str,
    pub(crate) unit: Option<Unit>,
    pub(crate) kind: Kind,
}

impl<'a> Family<'a> {
    pub(crate) const fn gauge(name: &'a str, help: &'a str) -> Self {
        Family {
            name,
            help,
            unit: None,
            kind: Kind::Gauge,
        }
    }

    pub(crate) const fn counter(name: &'a str, help: &'a str) -> Self {
        Family {
            name,
            help,
            unit: None,
            kind: Kind::Counter,
        }
    }

    pub(crate) const fn info(name: &'a str, help: &'a str) -> Self {
        Family {
            name,
            help,
            unit: None,
            kind: Kind::Info,
        }
    }

    /// The same family, its name ending in `unit` (Prometheus base units: seconds, bytes).
    pub(crate) fn in_unit(mut self, unit: Unit) -> Self {
        self.unit = Some(unit);
        self
    }

    /// The same family with another HELP text.
    pub(crate) fn with_help<'b>(&self, help: &'b str) -> Family<'b>
    where
        'a: 'b,
    {
        Family {
            name: self.name,
            help,
            unit: self.unit.clone(),
            kind: self.kind,
        }
    }

    /// The family's name with its unit (prometheus-client builds the same for OpenMetrics).
    fn name_with_unit(&self) -> String {
        match &self.unit {
            Some(unit) => format!("{}_{}", self.name, unit.as_str()),
            None => self.name.to_owned(),
        }
    }

    /// The name of its samples, in both formats: `_total` after a counter's, `_info`
    /// after an info family's.
    pub(crate) fn sample_name(&self) -> String {
        let mut name = self.name_with_unit();
        match self.kind {
            Kind::Gauge => {}
            Kind::Counter => name.push_str("_total"),
            Kind::Info => name.push_str("_info"),
        }
        name
    }
}

/// Where families are written: the text format or OpenMetrics.
pub(crate) trait Sink {
    /// Writes `family` with the samples `samples` gives; a family given no sample is not
    /// written at all (no HELP or TYPE line for a family with no series).
    fn family(&mut self, family: &Family, samples: &mut dyn FnMut(&mut dyn Samples));
}

/// The samples of one family, given to [`Sink::family`]'s closure.
pub(crate) trait Samples {
    /// One sample; `labels` in the order they are shown. An info family's value is 1,
    /// whatever is passed.
    fn sample(&mut self, labels: &[(&str, &str)], value: f64);
}

/// A text buffer that hands what it holds on to `spill` whenever it grows past a few
/// tens of kilobytes, so that a body of any size goes through a buffer of that size;
/// without a spill it keeps everything. Both formats write into one.
pub(crate) struct Buffer<'a> {
    out: String,
    spill: Option<&'a mut dyn FnMut(&str)>,
}

/// How much a spilling [`Buffer`] holds before it hands text on: large enough that a
/// compressor gets whole blocks, small enough not to matter next to a body of tens of
/// megabytes.
const SPILL_AT: usize = 64 * 1024;

impl<'a> Buffer<'a> {
    /// Keeps everything: [`Buffer::into_string`] gives it.
    pub(crate) fn new() -> Self {
        Buffer {
            out: String::new(),
            spill: None,
        }
    }

    /// Hands text to `spill` as it fills; call [`Buffer::flush`] at the end for the rest.
    pub(crate) fn spilling(spill: &'a mut dyn FnMut(&str)) -> Self {
        Buffer {
            out: String::with_capacity(SPILL_AT + 4096),
            spill: Some(spill),
        }
    }

    pub(crate) fn push_str(&mut self, text: &str) {
        self.out.push_str(text);
    }

    pub(crate) fn push(&mut self, c: char) {
        self.out.push(c);
    }

    /// Spills once the buffer is full; called after each line (or piece) written.
    pub(crate) fn written(&mut self) {
        if self.out.len() >= SPILL_AT {
            self.flush();
        }
    }

    /// Hands what is buffered to the spill, if there is one.
    pub(crate) fn flush(&mut self) {
        if let Some(spill) = self.spill.as_mut() {
            if !self.out.is_empty() {
                spill(&self.out);
                self.out.clear();
            }
        }
    }

    /// What was written (and not spilled).
    pub(crate) fn into_string(self) -> String {
        self.out
    }
}

/// prometheus-client writes through `fmt::Write`.
impl fmt::Write for Buffer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.push_str(s);
        self.written();
        Ok(())
    }
}

/// Writes `write`'s families in `format` into `buffer`: the hand-written text encoder,
/// or prometheus-client's OpenMetrics one (without `# EOF`: the body's last part adds it).
pub(crate) fn write(
    format: Format,
    buffer: &mut Buffer,
    write: impl Fn(&mut dyn Sink) + Send + Sync + 'static,
) {
    match format {
        Format::Text => write(&mut TextSink::new(buffer)),
        Format::OpenMetrics => openmetrics::write(buffer, write),
    }
}
