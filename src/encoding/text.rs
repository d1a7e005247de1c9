//! A writer for the Prometheus text exposition format 0.0.4, and a histogram.
//!
//! Why not `prometheus-client`'s encoder: it writes OpenMetrics only, spells `+Inf`
//! as `inf` (this exporter's unlimited-plan gauges are `+Inf`), and names counter
//! families without `_total`, which `promtool check metrics` (the classic-format
//! linter every Prometheus user has) reports as "no help text". The format is small
//! enough to write exactly; see `tests` below and the promtool integration test.

use std::fmt::Write;

pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetricType {
    Gauge,
    Counter,
    Histogram,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
            MetricType::Counter => "counter",
            MetricType::Histogram => "histogram",
        }
    }
}

/// Appends metric families to a string. Callers write all samples of one family
/// right after its [`Encoder::family`] call, as the format requires.
pub(crate) struct Encoder<'a> {
    out: &'a mut String,
    /// Where `out` is drained, a line boundary at a time, once it holds [`SPILL_AT`]
    /// bytes; none to keep everything in `out`.
    spill: Option<&'a mut dyn FnMut(&str)>,
}

/// How much [`Encoder::streaming`] buffers before it hands text on: large enough that
/// a compressor gets whole blocks, small enough not to matter next to a body of tens of
/// megabytes.
const SPILL_AT: usize = 64 * 1024;

impl<'a> Encoder<'a> {
    /// Writes everything into `out`.
    pub(crate) fn new(out: &'a mut String) -> Self {
        Encoder { out, spill: None }
    }

    /// Writes into `buffer` and hands what it holds to `spill` whenever it grows past a
    /// few tens of kilobytes, so that a body of any size goes through a buffer of that
    /// size; call [`Encoder::flush`] at the end for the rest.
    pub(crate) fn streaming(buffer: &'a mut String, spill: &'a mut dyn FnMut(&str)) -> Self {
        Encoder {
            out: buffer,
            spill: Some(spill),
        }
    }

    /// Hands what is buffered to the spill, if there is one.
    pub(crate) fn flush(&mut self) {
        if let Some(spill) = self.spill.as_mut() {
            if !self.out.is_empty() {
                spill(self.out);
                self.out.clear();
            }
        }
    }

    /// Called after each whole line: spills once the buffer is full.
    fn line_done(&mut self) {
        if self.out.len() >= SPILL_AT {
            self.flush();
        }
    }

    /// Writes the `# HELP` and `# TYPE` lines of a family.
    pub(crate) fn family(&mut self, name: &str, help: &str, kind: MetricType) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_into(self.out, help, false);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
        self.line_done();
    }

    /// Writes one sample line.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_into(self.out, value, true);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(self.out, value);
        self.out.push('\n');
        self.line_done();
    }

    /// Writes the `_bucket`, `_sum` and `_count` samples of a histogram.
    pub(crate) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (bound, count) in h.bounds.iter().zip(&h.counts) {
            cumulative += count;
            let mut le = String::new();
            push_value(&mut le, *bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative as f64);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, h.count as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }
}

/// Label values escape `\`, `"` and newline; HELP text escapes `\` and newline.
fn escape_into(out: &mut String, text: &str, label_value: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if label_value => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Go's `strconv.ParseFloat` reads all of these; `+Inf` is the spelling the format
/// documents. Integers print without a fraction, others with Rust's shortest
/// round-trip representation.
fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{value}");
    }
}

/// A fixed-bucket histogram. Not atomic: its owner keeps it behind a lock.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Histogram {
    bounds: Vec<f64>,
    /// Observations per bucket (not cumulative); one per bound.
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    pub(crate) fn new(bounds: &[f64]) -> Self {
        Histogram {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    pub(crate) fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_families_labels_and_special_values() {
        let mut out = String::new();
        let mut enc = Encoder::new(&mut out);
        enc.family(
            "pipefy_subscription_limit",
            "Plan limit.\nSecond \\ line",
            MetricType::Gauge,
        );
        enc.sample(
            "pipefy_subscription_limit",
            &[
                ("organization_name", "A \"quoted\" \\ name\nnext"),
                ("resource", "pipes"),
            ],
            f64::INFINITY,
        );
        enc.sample("pipefy_subscription_limit", &[], 5.0);
        enc.sample("pipefy_subscription_limit", &[], 0.25);
        enc.sample("pipefy_subscription_limit", &[], f64::NEG_INFINITY);
        enc.sample("pipefy_subscription_limit", &[], f64::NAN);
        assert_eq!(
            out,
            "# HELP pipefy_subscription_limit Plan limit.\\nSecond \\\\ line\n\
             # TYPE pipefy_subscription_limit gauge\n\
             pipefy_subscription_limit{organization_name=\"A \\\"quoted\\\" \\\\ name\\nnext\",resource=\"pipes\"} +Inf\n\
             pipefy_subscription_limit 5\n\
             pipefy_subscription_limit 0.25\n\
             pipefy_subscription_limit -Inf\n\
             pipefy_subscription_limit NaN\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.5, 0.7, 3.0] {
            h.observe(v);
        }
        let mut out = String::new();
        Encoder::new(&mut out).histogram("d_seconds", &[("operation", "x")], &h);
        assert_eq!(
            out,
            "d_seconds_bucket{operation=\"x\",le=\"0.1\"} 1\n\
             d_seconds_bucket{operation=\"x\",le=\"1\"} 3\n\
             d_seconds_bucket{operation=\"x\",le=\"+Inf\"} 4\n\
             d_seconds_sum{operation=\"x\"} 4.25\n\
             d_seconds_count{operation=\"x\"} 4\n"
        );
    }
}
