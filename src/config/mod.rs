//! Configuration: raw serde structs (unknown keys rejected) validated once into
//! [`Config`]. Every error names the file and the key path, e.g.
//! `config file /etc/pipefy.yml: line 3: key pipefy.auth.token_file: cannot read ...`.
//!
//! Secrets are read here, from files or the environment, and nowhere else; they are
//! wrapped in [`Secret`] whose `Debug` never prints the value.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use crate::collectors::Schedule;
use crate::collectors::{self, Collector};
pub(crate) use crate::pipefy::Credential;
pub(crate) use crate::secret::Secret;
use crate::shard::Shard;
use crate::yaml::File;

/// Environment variable that overrides `pipefy.auth.token_file`.
pub const ENV_TOKEN: &str = "PIPEFY_TOKEN";
/// Environment variable that overrides `pipefy.auth.service_account.client_secret_file`.
pub const ENV_CLIENT_SECRET: &str = "PIPEFY_CLIENT_SECRET";

pub(crate) const DEFAULT_ENDPOINT: &str = "https://api.pipefy.com/graphql";
/// Tries of a request that failed unbilled (5xx, no connection): a blip passes, an
/// outage is not hammered.
const DEFAULT_MAX_TRIES: u32 = 3;
/// Short: a retry waits up to 250 ms, then 500 ms, so that a blip costs a refresh
/// under a second or two, well within any sensible `stale_after`.
const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(250);
/// First wait after a refused credential or an opened circuit; it doubles from there.
const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(30);
/// However long the backoff, an account is asked at least once an hour.
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(3600);
/// Pipefy's schema changes rarely, and each introspection is a billed request: once a
/// day per account, on top of the checks at start and on reload.
const DEFAULT_SCHEMA_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// An error in the configuration file: which file, which key, what was expected.
pub(crate) type ConfigError = crate::yaml::FileError;
/// How errors name this file.
const KIND: &str = "config file";

/// One credential and the organizations it watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub credential: Credential,
    /// `None`: every organization the credential can see (`organizations` query).
    pub organizations: Option<Vec<String>>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub endpoint: String,
    pub timeout: Duration,
    /// How requests are sized against Pipefy's complexity limit, and what a rejection
    /// for size looks like (`max_orgs_per_request` included, as `max_fields`).
    pub(crate) request_limits: crate::pipefy::batch::RequestLimits,
    pub max_concurrent_requests: usize,
    /// Tries of one request in all when it fails in a way Pipefy does not bill (5xx, no
    /// connection).
    pub max_tries: u32,
    /// Base of the random wait between those tries.
    pub retry_delay: Duration,
    /// First wait of an account whose credential is refused or whose circuit opened.
    pub backoff_base: Duration,
    /// Longest such wait, and longest `Retry-After` honoured.
    pub backoff_max: Duration,
    /// How each account checks its collectors' queries against Pipefy's schema.
    pub(crate) schema_check: SchemaCheck,
    pub accounts: Vec<Account>,
    /// The part of the organizations this process fetches (`--shard`, `--total-shards`);
    /// listed organizations are already filtered by [`Config::sharded`], discovered ones
    /// are filtered by the refresh.
    pub shard: Shard,
    /// The enabled collectors, in scheduling order (see [`Config::schedules`]).
    pub(crate) collectors: Vec<Arc<dyn Collector>>,
}

/// `pipefy.schema_check_interval` and `pipefy.introspection`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SchemaCheck {
    /// A check period: introspection at most once per account in it, and a document
    /// Pipefy rejected is not sent again before it ends.
    pub(crate) interval: Duration,
    /// Whether to introspect; without it, documents are sent and rejections learnt.
    pub(crate) introspection: bool,
}

impl Default for SchemaCheck {
    fn default() -> Self {
        SchemaCheck {
            interval: DEFAULT_SCHEMA_CHECK_INTERVAL,
            introspection: true,
        }
    }
}

impl Config {
    /// Reads and validates a config file, taking secrets overrides from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = File::new(KIND, path).read()?;
        Config::from_yaml(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses and validates YAML text. `path` names the file in messages, and relative
    /// `token_file` and `client_secret_file` paths are taken from its directory. `env`
    /// looks up overrides.
    pub fn from_yaml(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = File::new(KIND, path).with_text(text);
        let raw: RawConfig = file.parse()?;
        Validator { file, env }.validate(raw)
    }

    #[cfg(feature = "demo")]
    /// The configuration `--demo` runs with: the simulator at `endpoint`, no credential,
    /// discovery of every organization, every collector every 15 s (with the breakdown by
    /// operation, to show what monitoring costs), and a deadline `deadline_in` from `now`
    /// so the deadline panels and alerts have something to show.
    pub(crate) fn demo(endpoint: String, now_unix: i64, deadline_in: Duration) -> Config {
        let deadline_day = (now_unix + deadline_in.as_secs() as i64).div_euclid(86_400);
        let (y, m, d) = timefmt::civil_from_days(deadline_day);
        let yaml = format!(
            "api_usage: {{by_operation: true}}\ntoken_attribution: {{deadline: {y:04}-{m:02}-{d:02}}}\n"
        );
        let defaults = collectors::Defaults {
            refresh_interval: Some(Duration::from_secs(15)),
            stale_after: Some(Duration::from_secs(60)),
        };
        let collectors = crate::yaml::parse_yaml::<collectors::RawCollectors>(&yaml)
            .ok()
            .and_then(|raw| raw.build(&defaults).ok())
            .unwrap_or_default();
        Config {
            endpoint,
            timeout: Duration::from_secs(10),
            request_limits: crate::pipefy::batch::RequestLimits::default(),
            max_concurrent_requests: 4,
            max_tries: DEFAULT_MAX_TRIES,
            retry_delay: DEFAULT_RETRY_DELAY,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            schema_check: SchemaCheck::default(),
            accounts: vec![Account {
                name: "demo".into(),
                credential: Credential::Anonymous,
                organizations: None,
            }],
            shard: Shard::ALL,
            collectors,
        }
    }

    /// This configuration for one shard: each account keeps the listed organizations
    /// the shard owns, and an account whose listed organizations all belong to other
    /// shards is left out (it would authenticate for nothing). Accounts that discover
    /// their organizations stay: every shard discovers, and keeps its own.
    pub fn sharded(mut self, shard: Shard) -> Config {
        self.accounts
            .retain_mut(|account| match &mut account.organizations {
                Some(ids) => {
                    ids.retain(|id| shard.owns(id));
                    !ids.is_empty()
                }
                None => true,
            });
        self.shard = shard;
        self
    }

    /// `(name, schedule)` of each enabled collector, in the order they run.
    pub fn schedules(&self) -> Vec<(&'static str, Schedule)> {
        self.collectors
            .iter()
            .map(|c| (c.name(), *c.schedule()))
            .collect()
    }

    /// Warnings worth a log line at start-up: collectors whose interval makes them
    /// expensive, with what they cost a day.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let listed: usize = self
            .accounts
            .iter()
            .map(|a| a.organizations.as_ref().map_or(0, Vec::len))
            .sum();
        collectors::cost::warnings(&self.collectors, listed.max(1), &self.request_limits)
    }
}

mod raw;
mod validate;

pub(crate) use raw::de_date;
use raw::RawConfig;
use validate::Validator;

#[cfg(test)]
mod tests;
