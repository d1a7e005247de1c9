//! What every collector shares, declared once: its [`Spec`] (name, operation name,
//! default interval), the `enabled` and `interval` keys that every collector's table in
//! the config file has ([`settings!`] adds them to the collector's own keys), how
//! `collectors.<name>:` reads as `true`, `false` or a table ([`Toggle`]), and the
//! [`Meta`] a configured collector carries.

use std::time::Duration;

use serde::Deserialize;

use super::schedule::{Defaults, Schedule};

/// What makes a collector itself, whatever its settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    /// Its key under `collectors:` and its `collector` label value.
    pub(crate) name: &'static str,
    /// The GraphQL operation name of its requests (what Pipefy reports in
    /// `apiUsageStats(dimension: operation_name)`, and the `operation` label of
    /// `pipefy_exporter_api_requests_total`).
    pub(crate) operation: &'static str,
    /// How often it runs unless the configuration says otherwise.
    pub(crate) default_interval: Duration,
}

/// What every configured collector is: its spec's names and its schedule.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub(crate) name: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) schedule: Schedule,
}

impl Meta {
    /// `None` when `enabled: false`; else the collector's schedule from `interval`, or
    /// `refresh_interval`, or its default.
    pub(crate) fn resolve(
        spec: &Spec,
        enabled: Option<bool>,
        interval: Option<Duration>,
        defaults: &Defaults,
    ) -> Result<Option<Meta>, BuildError> {
        if enabled == Some(false) {
            return Ok(None);
        }
        Ok(Some(Meta {
            name: spec.name,
            operation: spec.operation,
            schedule: Schedule::resolve(interval, spec.default_interval, defaults)?,
        }))
    }
}

/// A configuration error inside `collectors.<name>`: the key below it and the message.
pub(crate) type BuildError = (String, String);

/// A collector's table in the config file, `collectors.<name>`: `enabled` and
/// `interval`, which every collector has, then its own keys (each with `#[serde(default)]`
/// and whatever attributes it is given). Unknown keys are refused.
macro_rules! settings {
    ($($(#[$attr:meta])* $field:ident: $ty:ty),* $(,)?) => {
        /// This collector's table in the config file.
        #[derive(Debug, Default, ::serde::Deserialize)]
        #[serde(deny_unknown_fields, expecting = "a table of settings")]
        pub(crate) struct Raw {
            #[serde(default)]
            pub(super) enabled: Option<bool>,
            #[serde(default, deserialize_with = "crate::duration::de_duration")]
            pub(super) interval: Option<::std::time::Duration>,
            $( #[serde(default)] $(#[$attr])* $field: $ty, )*
        }
    };
}
pub(crate) use settings;

/// Either `name: true|false` or `name: {keys...}` in the config file. Written by hand
/// rather than as an untagged enum so that a wrong key inside the table is reported as
/// such (with its line), not as "data did not match any variant".
#[derive(Debug)]
pub(crate) enum Toggle<T> {
    Switch(bool),
    Table(T),
}

impl<T: Default> Default for Toggle<T> {
    fn default() -> Self {
        Toggle::Table(T::default())
    }
}

impl<T: Default> Toggle<T> {
    /// The table, `None` for `false`: `true` is the default table.
    pub(crate) fn table(self) -> Option<T> {
        match self {
            Toggle::Switch(false) => None,
            Toggle::Switch(true) => Some(T::default()),
            Toggle::Table(table) => Some(table),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = Toggle<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false, or a table of settings")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Toggle::Switch(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Toggle::Table)
            }
        }
        d.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

/// `name.key`, or `name` alone for an error about the table itself.
pub(crate) fn join_key(name: &str, key: &str) -> String {
    if key.is_empty() {
        name.to_owned()
    } else {
        format!("{name}.{key}")
    }
}
