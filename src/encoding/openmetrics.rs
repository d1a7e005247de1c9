//! OpenMetrics 1.0.0 text, written by `prometheus-client`: this crate's families go
//! through its [`Collector`] trait (a [`Sink`] over its `DescriptorEncoder`), the
//! exporter's own metrics are its metric types in a [`Registry`] (see `self_metrics`).
//! prometheus-client writes HELP as given, so [`OpenMetricsSink`] escapes it as the
//! format requires (`\`, newline and `"`); label values it escapes itself.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{Buffer, Family, Kind, Samples, Sink};

/// What ends an OpenMetrics body: without it, a scraper knows the body was cut short.
pub(crate) const EOF: &str = "# EOF\n";

/// Writes the families `families` writes, as one prometheus-client [`Collector`] in a
/// registry of its own, into `buffer` (without `# EOF`).
pub(crate) fn write(buffer: &mut Buffer, families: impl Fn(&mut dyn Sink) + Send + Sync + 'static) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(families)));
    write_registry(buffer, &registry);
}

/// Writes `registry` into `buffer` (without `# EOF`).
pub(crate) fn write_registry(buffer: &mut Buffer, registry: &Registry) {
    // A Buffer never refuses text: an error is the encoder's own (a metric it cannot
    // write, which none of this crate's is), and ends the registry's families there,
    // perhaps within a line; the scraper, missing `# EOF` or reading a broken line,
    // refuses the body rather than store part of it.
    if let Err(error) = prometheus_client::encoding::text::encode_registry(buffer, registry) {
        tracing::error!(%error, "prometheus-client could not encode a metric family");
    }
}

/// HELP as OpenMetrics escapes it, without the full stop prometheus-client's
/// `Registry::register` adds to every HELP (ours already end in one).
pub(crate) fn registry_help(help: &str) -> String {
    escape_help(help.strip_suffix('.').unwrap_or(help))
}

fn escape_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len() + 8);
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A function writing families, as a prometheus-client [`Collector`].
struct Families<F>(F);

impl<F> fmt::Debug for Families<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Families")
    }
}

impl<F: Fn(&mut dyn Sink) + Send + Sync + 'static> Collector for Families<F> {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        let mut sink = OpenMetricsSink {
            encoder,
            error: None,
        };
        (self.0)(&mut sink);
        sink.error.map_or(Ok(()), Err)
    }
}

/// A [`Sink`] over prometheus-client's descriptor encoder.
struct OpenMetricsSink<'a> {
    encoder: DescriptorEncoder<'a>,
    /// The first error; nothing more is written after one.
    error: Option<fmt::Error>,
}

impl Sink for OpenMetricsSink<'_> {
    fn family(&mut self, family: &Family, samples: &mut dyn FnMut(&mut dyn Samples)) {
        if self.error.is_some() {
            return;
        }
        let help = escape_help(family.help);
        let mut writer = OpenMetricsFamily {
            encoder: Some(&mut self.encoder),
            metric: None,
            name: family.name,
            help: &help,
            unit: family.unit.as_ref(),
            kind: family.kind,
            error: None,
        };
        samples(&mut writer);
        self.error = writer.error;
    }
}

/// The samples of one family; its descriptor goes out with the first, so that a family
/// with no series writes nothing.
struct OpenMetricsFamily<'s, 'a> {
    /// Until the first sample.
    encoder: Option<&'s mut DescriptorEncoder<'a>>,
    /// From the first sample.
    metric: Option<MetricEncoder<'s>>,
    name: &'s str,
    help: &'s str,
    unit: Option<&'s Unit>,
    kind: Kind,
    error: Option<fmt::Error>,
}

impl OpenMetricsFamily<'_, '_> {
    fn write(&mut self, labels: &[(&str, &str)], value: f64) -> fmt::Result {
        if let Some(encoder) = self.encoder.take() {
            let kind = match self.kind {
                Kind::Gauge => MetricType::Gauge,
                Kind::Counter => MetricType::Counter,
                Kind::Info => MetricType::Info,
            };
            let metric = encoder.encode_descriptor(self.name, self.help, self.unit, kind)?;
            self.metric = Some(metric);
        }
        let Some(metric) = self.metric.as_mut() else {
            return Err(fmt::Error);
        };
        match (self.kind, labels.is_empty()) {
            // An info family's facts are its labels; its value is 1.
            (Kind::Info, _) => metric.encode_info(&labels),
            // Without labels, `name value` rather than `name{} value`.
            (Kind::Gauge, true) => metric.encode_gauge(&value),
            (Kind::Gauge, false) => metric.encode_family(&labels)?.encode_gauge(&value),
            (Kind::Counter, true) => metric.encode_counter::<NoLabelSet, _, f64>(&value, None),
            (Kind::Counter, false) => metric
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, f64>(&value, None),
        }
    }
}

impl Samples for OpenMetricsFamily<'_, '_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        if self.error.is_none() {
            self.error = self.write(labels, value).err();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openmetrics(families: impl Fn(&mut dyn Sink) + Send + Sync + 'static) -> String {
        let mut buffer = Buffer::new();
        write(&mut buffer, families);
        buffer.into_string()
    }

    #[test]
    fn families_in_openmetrics() {
        let out = openmetrics(|sink| {
            let limit = Family::gauge(
                "pipefy_subscription_limit",
                "Plan \"limit\".\nSecond \\ line.",
            );
            sink.family(&limit, &mut |s| {
                s.sample(
                    &[
                        ("organization_name", "A \"q\" \\ n\nx"),
                        ("resource", "pipes"),
                    ],
                    f64::INFINITY,
                );
                s.sample(&[], 5.0);
                s.sample(&[], 0.25);
            });
            let cpu = Family::counter("process_cpu", "CPU time.").in_unit(Unit::Seconds);
            sink.family(&cpu, &mut |s| s.sample(&[], 1.5));
            let requests = Family::counter("requests", "Requests.");
            sink.family(&requests, &mut |s| s.sample(&[("status", "200")], 3.0));
            let build = Family::info("pipefy_exporter_build", "Build.");
            sink.family(&build, &mut |s| s.sample(&[("version", "1.2.3")], 1.0));
            let deadline = Family::gauge("deadline_timestamp", "When.").in_unit(Unit::Seconds);
            sink.family(&deadline, &mut |s| s.sample(&[], 1_767_571_200.0));
            sink.family(&Family::gauge("nothing", "No series."), &mut |_| {});
        });
        assert_eq!(
            out,
            "# HELP pipefy_subscription_limit Plan \\\"limit\\\".\\nSecond \\\\ line.\n\
             # TYPE pipefy_subscription_limit gauge\n\
             pipefy_subscription_limit{organization_name=\"A \\\"q\\\" \\\\ n\\nx\",resource=\"pipes\"} inf\n\
             pipefy_subscription_limit 5.0\n\
             pipefy_subscription_limit 0.25\n\
             # HELP process_cpu_seconds CPU time.\n\
             # TYPE process_cpu_seconds counter\n\
             # UNIT process_cpu_seconds seconds\n\
             process_cpu_seconds_total 1.5\n\
             # HELP requests Requests.\n\
             # TYPE requests counter\n\
             requests_total{status=\"200\"} 3.0\n\
             # HELP pipefy_exporter_build Build.\n\
             # TYPE pipefy_exporter_build info\n\
             pipefy_exporter_build_info{version=\"1.2.3\"} 1\n\
             # HELP deadline_timestamp_seconds When.\n\
             # TYPE deadline_timestamp_seconds gauge\n\
             # UNIT deadline_timestamp_seconds seconds\n\
             deadline_timestamp_seconds 1767571200.0\n"
        );
    }

    #[test]
    fn registry_help_drops_the_full_stop_the_registry_adds_back() {
        assert_eq!(
            registry_help("Requests (\"error\": none)."),
            "Requests (\\\"error\\\": none)"
        );
        assert_eq!(registry_help("No stop"), "No stop");
    }
}
