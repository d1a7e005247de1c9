//! Logging to stderr in logfmt (the Prometheus exporters' default) or JSON, with the
//! level and format flags of node_exporter (`--log.level`, `--log.format`).

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

impl LogLevel {
    fn as_tracing(self) -> Level {
        match self {
            LogLevel::Debug => Level::DEBUG,
            LogLevel::Info => Level::INFO,
            LogLevel::Warn => Level::WARN,
            LogLevel::Error => Level::ERROR,
        }
    }
}

/// Installs the global subscriber. Dependencies' own debug chatter (hyper, reqwest)
/// is not shown: only this crate's events are logged.
pub fn init(level: LogLevel, format: LogFormat) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter = Targets::new().with_target("pipefy_exporter", level.as_tracing());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    // `try_init`: a second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Logfmt => registry.with(layer.event_format(Logfmt)).try_init(),
        LogFormat::Json => registry.with(layer.event_format(Json)).try_init(),
    };
}

/// `time=2026-11-23T16:38:34.123Z level=info source=pipefy_exporter::refresh msg="..." key=value`
pub(crate) struct Logfmt;

/// The same keys as [`Logfmt`], one JSON object per line, so that switching format
/// does not break a log pipeline: `{"time":"...","level":"info","source":"...","msg":"...",...}`.
pub(crate) struct Json;

/// The parts of an event both formats print.
struct Line {
    level: String,
    source: String,
    message: String,
    fields: Vec<(&'static str, serde_json::Value)>,
}

impl Line {
    fn of(event: &Event<'_>) -> Line {
        let meta = event.metadata();
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        Line {
            level: meta.level().as_str().to_ascii_lowercase(),
            source: meta.target().to_owned(),
            message: visitor.message.unwrap_or_default(),
            fields: visitor.fields,
        }
    }
}

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let line = Line::of(event);
        let mut out = format!(
            "time={} level={} source={} msg=",
            timefmt::rfc3339(std::time::SystemTime::now()),
            line.level,
            line.source
        );
        push_value(&mut out, &line.message);
        for (key, value) in &line.fields {
            out.push(' ');
            out.push_str(key);
            out.push('=');
            match value {
                serde_json::Value::String(text) => push_value(&mut out, text),
                other => push_value(&mut out, &other.to_string()),
            }
        }
        writeln!(writer, "{out}")
    }
}

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let line = Line::of(event);
        let mut object = serde_json::Map::new();
        object.insert(
            "time".into(),
            timefmt::rfc3339(std::time::SystemTime::now()).into(),
        );
        object.insert("level".into(), line.level.into());
        object.insert("source".into(), line.source.into());
        object.insert("msg".into(), line.message.into());
        for (key, value) in line.fields {
            object.insert(key.into(), value);
        }
        writeln!(writer, "{}", serde_json::Value::Object(object))
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    fields: Vec<(&'static str, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.fields.push((field.name(), value.into()));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name(), value.into()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name(), value.into()));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.push((field.name(), value.into()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name(), value.into()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_str(field, &value.to_string());
    }
}

/// Quotes a value when it has spaces, quotes, `=` or control characters.
fn push_value(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = fmt::Write::write_fmt(out, format_args!("\\u{{{:04x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_values_are_quoted_when_needed() {
        let quoted = |v: &str| {
            let mut s = String::new();
            push_value(&mut s, v);
            s
        };
        assert_eq!(quoted("plain"), "plain");
        assert_eq!(quoted(""), "\"\"");
        assert_eq!(quoted("two words"), "\"two words\"");
        assert_eq!(quoted("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(quoted("k=v"), "\"k=v\"");
    }
}
