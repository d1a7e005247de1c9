//! The Prometheus text format 0.0.4, written by hand: [`TextSink`] for the families this
//! crate describes, [`from_openmetrics`] for those prometheus-client encodes (the
//! exporter's own metrics), which writes OpenMetrics only.
//!
//! Why by hand: prometheus-client 0.25 has no 0.0.4 writer, and the format is small
//! enough to write exactly (see `tests` below and the promtool integration test). Its
//! cost is measured against the OpenMetrics encoder in BENCHMARKS.md.

use std::fmt::Write;

use super::{Buffer, Family, Kind, Samples, Sink};

/// Writes families in the text format into a [`Buffer`].
pub(crate) struct TextSink<'b, 'a> {
    out: &'b mut Buffer<'a>,
}

impl<'b, 'a> TextSink<'b, 'a> {
    pub(crate) fn new(out: &'b mut Buffer<'a>) -> Self {
        TextSink { out }
    }
}

impl Sink for TextSink<'_, '_> {
    fn family(&mut self, family: &Family, samples: &mut dyn FnMut(&mut dyn Samples)) {
        let mut writer = TextFamily {
            out: self.out,
            name: family.sample_name(),
            header: Some(family),
            info: family.kind == Kind::Info,
        };
        samples(&mut writer);
    }
}

/// The samples of one family; its HELP and TYPE go out with the first.
struct TextFamily<'f, 'b, 'a> {
    out: &'b mut Buffer<'a>,
    /// The name of the family and of its samples (the text format has one name for both).
    name: String,
    /// Until the first sample.
    header: Option<&'f Family<'f>>,
    info: bool,
}

impl Samples for TextFamily<'_, '_, '_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        if let Some(family) = self.header.take() {
            let kind = match family.kind {
                Kind::Gauge | Kind::Info => "gauge",
                Kind::Counter => "counter",
            };
            self.out.push_str("# HELP ");
            self.out.push_str(&self.name);
            self.out.push(' ');
            escape_into(self.out, family.help, false);
            self.out.push_str("\n# TYPE ");
            self.out.push_str(&self.name);
            self.out.push(' ');
            self.out.push_str(kind);
            self.out.push('\n');
        }
        self.out.push_str(&self.name);
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
        push_value(self.out, if self.info { 1.0 } else { value });
        self.out.push('\n');
        self.out.written();
    }
}

/// Label values escape `\`, `"` and newline; HELP text escapes `\` and newline.
fn escape_into(out: &mut Buffer, text: &str, label_value: bool) {
    let special = |c: char| c == '\\' || c == '\n' || (label_value && c == '"');
    if !text.contains(special) {
        out.push_str(text);
        return;
    }
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
fn push_value(out: &mut Buffer, value: f64) {
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

/// The text format of an OpenMetrics text (prometheus-client's, which writes counters,
/// gauges, histograms and info): counter families named with `_total` and info families
/// with `_info` (as gauges), `# UNIT`, counters' `_created` samples, exemplars and
/// `# EOF` dropped, HELP unescaped where the formats differ (`\"`), values spelled as
/// the text format documents (`+Inf`, not `inf`), timestamps in milliseconds, bucket
/// bounds as before ([`bounds_as_before`]). Label sets are otherwise copied as they
/// are: both formats escape them alike. A line it cannot read is left out rather than
/// passed on half-converted; a type it does not know is `untyped`.
pub(crate) fn from_openmetrics(openmetrics: &str, out: &mut String) {
    // The HELP line comes before TYPE in OpenMetrics, and its name changes with the type.
    let mut help: Option<(&str, String)> = None;
    let mut counter = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, text)) = rest.split_once(' ') {
                help = Some((name, unescape_help(text)));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let Some((name, kind)) = rest.split_once(' ') else {
                continue;
            };
            let (renamed, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some((_, text)) = help.take().filter(|(of, _)| *of == name) {
                let _ = writeln!(out, "# HELP {renamed} {text}");
            }
            let _ = writeln!(out, "# TYPE {renamed} {kind}");
            counter = (kind == "counter").then(|| name.to_owned());
        } else if line.starts_with('#') {
            // # UNIT, # EOF: nothing in the text format.
        } else if let Some(sample) = Sample::parse(line) {
            let created = counter
                .as_deref()
                .is_some_and(|c| sample.name.strip_suffix("_created") == Some(c));
            if !created {
                sample.write_text(out);
            }
        }
    }
}

/// OpenMetrics escapes `\`, newline and `"` in HELP; the text format only the first two.
fn unescape_help(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('"') => out.push('"'),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// One OpenMetrics sample line, split.
struct Sample<'a> {
    name: &'a str,
    /// `{...}` as written, or empty.
    labels: &'a str,
    value: &'a str,
    /// Seconds, if the line has one.
    timestamp: Option<&'a str>,
}

impl<'a> Sample<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let name_end = line.find(['{', ' '])?;
        let (name, rest) = line.split_at(name_end);
        let (labels, rest) = if rest.starts_with('{') {
            let end = label_set_end(rest)?;
            rest.split_at(end)
        } else {
            ("", rest)
        };
        // Value, then an optional timestamp, then an optional exemplar after " # ".
        let rest = rest.split(" # ").next()?;
        let mut fields = rest.split_whitespace();
        let value = fields.next()?;
        Some(Sample {
            name,
            labels,
            value,
            timestamp: fields.next(),
        })
    }

    fn write_text(&self, out: &mut String) {
        let value = match self.value.to_ascii_lowercase().as_str() {
            "inf" | "+inf" | "infinity" | "+infinity" => "+Inf",
            "-inf" | "-infinity" => "-Inf",
            "nan" => "NaN",
            _ => self.value,
        };
        let _ = write!(
            out,
            "{}{} {value}",
            self.name,
            bounds_as_before(self.labels)
        );
        if let Some(millis) = self
            .timestamp
            .and_then(|t| t.parse::<f64>().ok())
            .map(|seconds| (seconds * 1000.0).round())
        {
            let _ = write!(out, " {millis}");
        }
        out.push('\n');
    }
}

/// A label set with its bucket bounds (`le`) and quantiles spelled as this exporter's
/// text format always spelled them, `le="1"` where prometheus-client writes `le="1.0"`:
/// Prometheus 2 does not normalize them, and a new spelling would start new series.
fn bounds_as_before(labels: &str) -> std::borrow::Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut rest = labels.char_indices().peekable();
    // At each label's start (after `{` or `,`): its name up to `=`, then its quoted value.
    while let Some((i, c)) = rest.next() {
        if c != '{' && c != ',' {
            continue;
        }
        let name_start = i + 1;
        let Some(eq) = labels[name_start..].find('=').map(|e| e + name_start) else {
            break;
        };
        let value_start = eq + 2;
        let Some(value_end) = labels.get(value_start..).and_then(quoted_end) else {
            break;
        };
        let value = &labels[value_start..value_start + value_end];
        let name = &labels[name_start..eq];
        let whole = value.strip_suffix(".0").filter(|w| {
            let digits = w.strip_prefix('-').unwrap_or(w);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        });
        if let (true, Some(whole)) = (name == "le" || name == "quantile", whole) {
            out.push_str(&labels[copied..value_start]);
            out.push_str(whole);
            copied = value_start + value.len();
        }
        // Past the value, whatever it holds.
        while rest
            .next_if(|(j, _)| *j < value_start + value_end + 1)
            .is_some()
        {}
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(labels);
    }
    out.push_str(&labels[copied..]);
    std::borrow::Cow::Owned(out)
}

/// The length of a label value up to its closing quote (escapes respected).
fn quoted_end(value: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The byte just after the label set that opens `text` (`{`), quotes and escapes
/// respected; `None` if it does not close.
fn label_set_end(text: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '}') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::Unit;

    fn text(write: impl FnOnce(&mut TextSink)) -> String {
        let mut buffer = Buffer::new();
        write(&mut TextSink::new(&mut buffer));
        buffer.into_string()
    }

    #[test]
    fn encodes_families_labels_and_special_values() {
        let out = text(|sink| {
            let limit = Family::gauge(
                "pipefy_subscription_limit",
                "Plan limit.\nSecond \\ \"line\"",
            );
            sink.family(&limit, &mut |s| {
                s.sample(
                    &[
                        ("organization_name", "A \"quoted\" \\ name\nnext"),
                        ("resource", "pipes"),
                    ],
                    f64::INFINITY,
                );
                s.sample(&[], 5.0);
                s.sample(&[], 0.25);
                s.sample(&[], f64::NEG_INFINITY);
                s.sample(&[], f64::NAN);
            });
        });
        assert_eq!(
            out,
            "# HELP pipefy_subscription_limit Plan limit.\\nSecond \\\\ \"line\"\n\
             # TYPE pipefy_subscription_limit gauge\n\
             pipefy_subscription_limit{organization_name=\"A \\\"quoted\\\" \\\\ name\\nnext\",resource=\"pipes\"} +Inf\n\
             pipefy_subscription_limit 5\n\
             pipefy_subscription_limit 0.25\n\
             pipefy_subscription_limit -Inf\n\
             pipefy_subscription_limit NaN\n"
        );
    }

    #[test]
    fn names_follow_kind_and_unit_and_empty_families_are_left_out() {
        let out = text(|sink| {
            let cpu = Family::counter("process_cpu", "CPU.").in_unit(Unit::Seconds);
            sink.family(&cpu, &mut |s| s.sample(&[], 1.5));
            let info = Family::info("pipefy_exporter_build", "Build.");
            sink.family(&info, &mut |s| s.sample(&[("version", "1")], 7.0));
            sink.family(&Family::gauge("nothing", "No series."), &mut |_| {});
        });
        assert_eq!(
            out,
            "# HELP process_cpu_seconds_total CPU.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 1.5\n\
             # HELP pipefy_exporter_build_info Build.\n\
             # TYPE pipefy_exporter_build_info gauge\n\
             pipefy_exporter_build_info{version=\"1\"} 1\n"
        );
    }

    #[test]
    fn a_spilling_buffer_hands_on_everything_in_order() {
        let mut spilled = String::new();
        let mut spill = |s: &str| spilled.push_str(s);
        let mut buffer = Buffer::spilling(&mut spill);
        let family = Family::gauge("m", "M.");
        TextSink::new(&mut buffer).family(&family, &mut |s| {
            for i in 0..20_000 {
                s.sample(&[("i", &i.to_string())], f64::from(i));
            }
        });
        buffer.flush();
        assert!(buffer.into_string().is_empty());
        assert_eq!(spilled.lines().count(), 20_002);
        assert!(spilled.ends_with("m{i=\"19999\"} 19999\n"));
    }

    #[test]
    fn openmetrics_becomes_the_text_format() {
        let openmetrics = "# HELP requests Requests (\\\"error\\\": none) \\\\ \\n.\n\
            # TYPE requests counter\n\
            requests_total{op=\"a}b\\\"c\",status=\"200\"} 3\n\
            requests_created{op=\"x\"} 1700000000.5\n\
            # HELP duration_seconds Duration.\n\
            # TYPE duration_seconds histogram\n\
            # UNIT duration_seconds seconds\n\
            duration_seconds_sum{op=\"x\"} 0.5\n\
            duration_seconds_count{op=\"x\"} 1\n\
            duration_seconds_bucket{le=\"0.1\",op=\"x\"} 0 # {trace=\"1\"} 0.05\n\
            duration_seconds_bucket{le=\"1.0\",op=\"x,le=\\\"2.0\"} 1\n\
            duration_seconds_bucket{op=\"x\",le=\"33.0\"} 1\n\
            duration_seconds_bucket{le=\"+Inf\",op=\"x\"} 1\n\
            # HELP build Build.\n\
            # TYPE build info\n\
            build_info{version=\"1\"} 1\n\
            # TYPE limit gauge\n\
            limit inf\n\
            limit{a=\"b\"} -inf 12.5\n\
            limit NaN\n\
            broken{a=\"unterminated 1\n\
            # EOF\n";
        let mut out = String::new();
        from_openmetrics(openmetrics, &mut out);
        assert_eq!(
            out,
            "# HELP requests_total Requests (\"error\": none) \\\\ \\n.\n\
             # TYPE requests_total counter\n\
             requests_total{op=\"a}b\\\"c\",status=\"200\"} 3\n\
             # HELP duration_seconds Duration.\n\
             # TYPE duration_seconds histogram\n\
             duration_seconds_sum{op=\"x\"} 0.5\n\
             duration_seconds_count{op=\"x\"} 1\n\
             duration_seconds_bucket{le=\"0.1\",op=\"x\"} 0\n\
             duration_seconds_bucket{le=\"1\",op=\"x,le=\\\"2.0\"} 1\n\
             duration_seconds_bucket{op=\"x\",le=\"33\"} 1\n\
             duration_seconds_bucket{le=\"+Inf\",op=\"x\"} 1\n\
             # HELP build_info Build.\n\
             # TYPE build_info gauge\n\
             build_info{version=\"1\"} 1\n\
             # TYPE limit gauge\n\
             limit +Inf\n\
             limit{a=\"b\"} -Inf 12500\n\
             limit NaN\n"
        );
    }
}
