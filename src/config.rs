//! Configuration: raw serde structs (unknown keys rejected) validated once into
//! [`Config`]. Every error names the file and the key path, e.g.
//! `config file /etc/pipefy.yml: key pipefy.auth.token_file: cannot read ...`.
//!
//! Secrets are read here, from files or the environment, and nowhere else; they are
//! wrapped in [`Secret`] whose `Debug` never prints the value.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

pub use crate::collectors::Schedule;
use crate::collectors::{self, Collector, Context, RawCollectors, Target};
use crate::duration::de_duration;
pub use crate::duration::{format_duration, parse_duration};
pub use crate::secret::Secret;
use crate::yaml::File;

/// Environment variable that overrides `pipefy.auth.token_file`.
pub const ENV_TOKEN: &str = "PIPEFY_TOKEN";
/// Environment variable that overrides `pipefy.auth.service_account.client_secret_file`.
pub const ENV_CLIENT_SECRET: &str = "PIPEFY_CLIENT_SECRET";

pub const DEFAULT_ENDPOINT: &str = "https://api.pipefy.com/graphql";
pub use crate::collectors::DEFAULT_TOKEN_SELECTION;
/// Below this, a collector's interval gets a warning with what it costs a day.
const CHEAP_INTERVAL: Duration = Duration::from_secs(60);
/// Upper bound for `max_orgs_per_request`, and its default: requests are sized by
/// their estimated complexity first; this bounds the aliases (and the time) of a request
/// made of cheap fields.
const MAX_ORGS_PER_REQUEST: usize = 500;
/// Tries of a request that failed unbilled (5xx, no connection): a blip passes, an
/// outage is not hammered.
const DEFAULT_MAX_TRIES: u32 = 3;
/// Short: a retry waits up to 250 ms, then 500 ms, so that a blip costs a refresh
/// under a second or two, well within any sensible `stale_after`.
const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(250);
/// First wait after a refused credential or an opened circuit; it doubles from there.
const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(30);
/// The bound: an account is asked at least once an hour whatever happens.
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// An error in the configuration file: which file, which key, what was expected.
pub type ConfigError = crate::yaml::FileError;
/// How errors name this file.
const KIND: &str = "config file";

/// How one account authenticates to Pipefy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// No `Authorization` header at all: only for `--demo` against the simulator.
    Anonymous,
    /// A personal access token (static bearer).
    Token(Secret),
    /// OAuth2 client credentials; the access token is fetched and renewed by the client.
    ServiceAccount {
        client_id: String,
        client_secret: Secret,
        token_endpoint: String,
    },
}

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
    /// Aliased root fields per request at most: one organization each, or up to 25 for
    /// the combined usage-statistics forms.
    pub max_orgs_per_request: usize,
    /// How requests are sized against Pipefy's complexity limit, and what a rejection
    /// for size looks like (`max_orgs_per_request` included, as `max_fields`).
    pub(crate) request_limits: crate::pipefy::batch::Limits,
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
    pub accounts: Vec<Account>,
    /// The enabled collectors, in scheduling order (see [`Config::schedules`]).
    pub(crate) collectors: Vec<Arc<dyn Collector>>,
}

impl Config {
    /// Reads and validates a config file, taking secrets overrides from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = File { kind: KIND, path }.read()?;
        Config::from_yaml(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses and validates YAML text. `path` is only used in messages (and to resolve
    /// nothing: secret file paths are taken as written). `env` looks up overrides.
    pub fn from_yaml(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = File { kind: KIND, path };
        let raw: RawConfig = file.parse(text)?;
        Validator { file, env }.validate(raw)
    }

    #[cfg(feature = "demo")]
    /// The configuration `--demo` runs with: the simulator at `endpoint`, no credential,
    /// discovery of every organization, every collector every 15 s (with the breakdown by
    /// operation, to show what monitoring costs), and a deadline `deadline_in` from `now`
    /// so the deadline panels and alerts have something to show.
    pub(crate) fn demo(endpoint: String, now_unix: i64, deadline_in: Duration) -> Config {
        let deadline_day = (now_unix + deadline_in.as_secs() as i64).div_euclid(86_400);
        let (y, m, d) = crate::timefmt::civil_from_days(deadline_day);
        let yaml = format!(
            "api_usage: {{by_operation: true}}\ntoken_attribution: {{deadline: {y:04}-{m:02}-{d:02}}}\n"
        );
        let ctx = Context {
            refresh_interval: Some(Duration::from_secs(15)),
            stale_after: Some(Duration::from_secs(60)),
        };
        let collectors = crate::yaml::parse_yaml::<RawCollectors>(&yaml)
            .ok()
            .and_then(|raw| raw.build(&ctx).ok())
            .unwrap_or_default();
        Config {
            endpoint,
            timeout: Duration::from_secs(10),
            max_orgs_per_request: MAX_ORGS_PER_REQUEST,
            request_limits: crate::pipefy::batch::Limits::default(),
            max_concurrent_requests: 4,
            max_tries: DEFAULT_MAX_TRIES,
            retry_delay: DEFAULT_RETRY_DELAY,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            accounts: vec![Account {
                name: "demo".into(),
                credential: Credential::Anonymous,
                organizations: None,
            }],
            collectors,
        }
    }

    /// The configured collector of type `T`, if enabled.
    pub(crate) fn collector<T: Collector + std::any::Any>(&self) -> Option<&T> {
        collectors::find(&self.collectors)
    }

    /// `(name, schedule)` of each enabled collector, in the order they run.
    pub fn schedules(&self) -> Vec<(&'static str, Schedule)> {
        self.collectors
            .iter()
            .map(|c| (c.name(), *c.schedule()))
            .collect()
    }

    /// The configured token-attribution deadline (Unix seconds, UTC midnight), if any.
    pub fn token_attribution_deadline(&self) -> Option<i64> {
        self.collector::<collectors::TokenAttribution>()?.deadline
    }

    /// Requests one refresh of `collector` alone costs for `organizations`, as planned.
    pub(crate) fn requests_per_refresh(
        &self,
        collector: &dyn Collector,
        organizations: usize,
    ) -> usize {
        use crate::pipefy::batch;
        let targets: Vec<Target> = (0..organizations)
            .map(|i| Target {
                id: i.to_string(),
                uuid: Some(i.to_string()),
            })
            .collect();
        let part = batch::Part {
            operation: collector.operation(),
            label: collector.name(),
            assumed: false,
            fields: collector.fields(&targets),
        };
        batch::plan(
            &[part],
            &[false],
            &self.request_limits,
            &batch::Learned::default(),
        )
        .len()
    }

    /// Warnings worth a log line at start-up: collectors whose interval makes them
    /// expensive, with what they cost a day.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let listed: usize = self
            .accounts
            .iter()
            .map(|a| a.organizations.as_ref().map_or(0, Vec::len))
            .sum();
        let organizations = listed.max(1);
        self.collectors
            .iter()
            .filter(|c| c.schedule().interval < CHEAP_INTERVAL)
            .map(|c| {
                let requests = self.requests_per_refresh(c.as_ref(), organizations);
                format!(
                    "collectors.{}.interval is {}: {} paid Pipefy calls a day for {} organization(s), more with more organizations",
                    c.name(),
                    format_duration(c.schedule().interval),
                    c.schedule().calls_per_day(requests),
                    organizations
                )
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------
// Raw shapes, exactly as written in the file.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    pipefy: RawPipefy,
    #[serde(default, deserialize_with = "de_duration")]
    refresh_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    stale_after: Option<Duration>,
    #[serde(default, deserialize_with = "de_org_ids")]
    organizations: Option<Vec<String>>,
    accounts: Option<Vec<RawAccount>>,
    #[serde(default)]
    collectors: RawCollectors,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPipefy {
    endpoint: Option<String>,
    auth: Option<RawAuth>,
    #[serde(default, deserialize_with = "de_duration")]
    timeout: Option<Duration>,
    max_orgs_per_request: Option<usize>,
    max_complexity: Option<u64>,
    list_page_size: Option<u64>,
    too_large_errors: Option<Vec<String>>,
    max_concurrent_requests: Option<usize>,
    max_tries: Option<u32>,
    #[serde(default, deserialize_with = "de_duration")]
    retry_delay: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    backoff_base: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    backoff_max: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    token_file: Option<PathBuf>,
    service_account: Option<RawServiceAccount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceAccount {
    client_id: String,
    client_secret_file: Option<PathBuf>,
    token_endpoint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    name: String,
    auth: RawAuth,
    #[serde(default, deserialize_with = "de_org_ids")]
    organizations: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------
// Validation.

struct Validator<'a> {
    file: File<'a>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Validator<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        self.file.err(key, message)
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let endpoint = raw
            .pipefy
            .endpoint
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        self.check_url("pipefy.endpoint", &endpoint)?;

        let timeout = raw.pipefy.timeout.unwrap_or(Duration::from_secs(30));
        if timeout.is_zero() {
            return Err(self.err("pipefy.timeout", "must be greater than 0"));
        }
        let max_orgs_per_request = raw
            .pipefy
            .max_orgs_per_request
            .unwrap_or(MAX_ORGS_PER_REQUEST);
        if !(1..=MAX_ORGS_PER_REQUEST).contains(&max_orgs_per_request) {
            return Err(self.err(
                "pipefy.max_orgs_per_request",
                format!("must be between 1 and {MAX_ORGS_PER_REQUEST}, got {max_orgs_per_request}"),
            ));
        }
        let request_limits = self.request_limits(
            raw.pipefy.max_complexity,
            raw.pipefy.list_page_size,
            raw.pipefy.too_large_errors,
            max_orgs_per_request,
        )?;
        let max_concurrent_requests = raw.pipefy.max_concurrent_requests.unwrap_or(4);
        if !(1..=64).contains(&max_concurrent_requests) {
            return Err(self.err(
                "pipefy.max_concurrent_requests",
                format!("must be between 1 and 64, got {max_concurrent_requests}"),
            ));
        }

        let max_tries = raw.pipefy.max_tries.unwrap_or(DEFAULT_MAX_TRIES);
        if !(1..=10).contains(&max_tries) {
            return Err(self.err(
                "pipefy.max_tries",
                format!("must be between 1 and 10, got {max_tries}"),
            ));
        }
        let retry_delay = raw.pipefy.retry_delay.unwrap_or(DEFAULT_RETRY_DELAY);
        if retry_delay > Duration::from_secs(60) {
            return Err(self.err("pipefy.retry_delay", "must be at most 1m"));
        }
        let backoff_base = raw.pipefy.backoff_base.unwrap_or(DEFAULT_BACKOFF_BASE);
        if backoff_base.is_zero() {
            return Err(self.err("pipefy.backoff_base", "must be greater than 0"));
        }
        let backoff_max = raw.pipefy.backoff_max.unwrap_or(DEFAULT_BACKOFF_MAX);
        if backoff_max < backoff_base {
            return Err(self.err("pipefy.backoff_max", "must be at least pipefy.backoff_base"));
        }

        if raw.refresh_interval.is_some_and(|d| d.is_zero()) {
            return Err(self.err("refresh_interval", "must be greater than 0"));
        }
        if raw.stale_after.is_some_and(|d| d.is_zero()) {
            return Err(self.err("stale_after", "must be greater than 0"));
        }
        let ctx = Context {
            refresh_interval: raw.refresh_interval,
            stale_after: raw.stale_after,
        };
        let collectors = raw
            .collectors
            .build(&ctx)
            .map_err(|(key, message)| self.err(format!("collectors.{key}"), message))?;
        if collectors.is_empty() {
            return Err(self.err(
                "collectors",
                "every collector is disabled: nothing to export",
            ));
        }

        let accounts = match raw.accounts {
            Some(accounts) => {
                if raw.pipefy.auth.is_some() {
                    return Err(self.err(
                        "pipefy.auth",
                        "not allowed together with `accounts`: give each account its own `auth`",
                    ));
                }
                if raw.organizations.is_some() {
                    return Err(self.err(
                        "organizations",
                        "not allowed together with `accounts`: give each account its own `organizations`",
                    ));
                }
                self.accounts(accounts)?
            }
            None => {
                let credential = self.credential("pipefy.auth", raw.pipefy.auth, true)?;
                vec![Account {
                    name: "default".into(),
                    credential,
                    organizations: non_empty(raw.organizations),
                }]
            }
        };

        Ok(Config {
            endpoint,
            timeout,
            max_orgs_per_request,
            request_limits,
            max_concurrent_requests,
            max_tries,
            retry_delay,
            backoff_base,
            backoff_max,
            accounts,
            collectors,
        })
    }

    /// `pipefy.max_complexity` (Pipefy's documented 50,000), and the two assumptions
    /// Pipefy's documentation leaves open: the page size of a list without `first:`,
    /// and the words of a rejection for size or time.
    fn request_limits(
        &self,
        max_complexity: Option<u64>,
        page_size: Option<u64>,
        too_large: Option<Vec<String>>,
        max_fields: usize,
    ) -> Result<crate::pipefy::batch::Limits, ConfigError> {
        let default = crate::pipefy::batch::Limits::default();
        let max_complexity = max_complexity.unwrap_or(default.max_complexity);
        if !(1..=1_000_000).contains(&max_complexity) {
            return Err(self.err(
                "pipefy.max_complexity",
                format!("must be between 1 and 1000000, got {max_complexity}"),
            ));
        }
        let page_size = page_size.unwrap_or(default.page_size);
        if !(1..=1000).contains(&page_size) {
            return Err(self.err(
                "pipefy.list_page_size",
                format!("must be between 1 and 1000, got {page_size}"),
            ));
        }
        let too_large = match too_large {
            None => default.too_large,
            Some(words) if words.iter().any(|w| w.trim().is_empty()) => {
                return Err(self.err("pipefy.too_large_errors", "must not hold an empty string"));
            }
            Some(words) => words.iter().map(|w| w.trim().to_lowercase()).collect(),
        };
        Ok(crate::pipefy::batch::Limits {
            max_complexity,
            max_fields,
            page_size,
            too_large,
        })
    }

    fn accounts(&self, raw: Vec<RawAccount>) -> Result<Vec<Account>, ConfigError> {
        if raw.is_empty() {
            return Err(self.err("accounts", "must list at least one account"));
        }
        let mut names = BTreeSet::new();
        let mut claimed: BTreeSet<String> = BTreeSet::new();
        let mut accounts = Vec::with_capacity(raw.len());
        for (i, account) in raw.into_iter().enumerate() {
            let key = format!("accounts[{i}]");
            if account.name.trim().is_empty() {
                return Err(self.err(format!("{key}.name"), "must not be empty"));
            }
            if !names.insert(account.name.clone()) {
                return Err(self.err(
                    format!("{key}.name"),
                    format!("duplicate account name {:?}", account.name),
                ));
            }
            let organizations = non_empty(account.organizations);
            for id in organizations.iter().flatten() {
                // The same organization twice would export duplicate series.
                if !claimed.insert(id.clone()) {
                    return Err(self.err(
                        format!("{key}.organizations"),
                        format!("organization {id} is already listed by another account"),
                    ));
                }
            }
            // Environment overrides are for the single top-level credential only: with
            // several accounts they would be ambiguous.
            let credential = self.credential(&format!("{key}.auth"), Some(account.auth), false)?;
            accounts.push(Account {
                name: account.name,
                credential,
                organizations,
            });
        }
        Ok(accounts)
    }

    fn credential(
        &self,
        key: &str,
        raw: Option<RawAuth>,
        env_overrides: bool,
    ) -> Result<Credential, ConfigError> {
        let env = |name: &str| {
            if env_overrides {
                (self.env)(name).filter(|v| !v.trim().is_empty())
            } else {
                None
            }
        };
        let raw = match raw {
            Some(raw) => raw,
            // No `auth` block: a token in the environment is enough.
            None => match env(ENV_TOKEN) {
                Some(token) => return Ok(Credential::Token(Secret::new(token.trim()))),
                None => {
                    return Err(self.err(
                        key,
                        format!("required: set `token_file` or `service_account` (or the {ENV_TOKEN} environment variable)"),
                    ))
                }
            },
        };
        match (raw.token_file, raw.service_account) {
            (Some(_), Some(_)) => Err(self.err(
                key,
                "set exactly one of `token_file` and `service_account`, not both",
            )),
            (None, None) => match env(ENV_TOKEN) {
                Some(token) => Ok(Credential::Token(Secret::new(token.trim()))),
                None => Err(self.err(key, "set exactly one of `token_file` and `service_account`")),
            },
            (Some(file), None) => {
                let token = match env(ENV_TOKEN) {
                    Some(token) => token,
                    None => self.read_secret(&format!("{key}.token_file"), &file)?,
                };
                Ok(Credential::Token(Secret::new(token.trim())))
            }
            (None, Some(sa)) => {
                let sa_key = format!("{key}.service_account");
                if sa.client_id.trim().is_empty() {
                    return Err(self.err(format!("{sa_key}.client_id"), "must not be empty"));
                }
                self.check_url(&format!("{sa_key}.token_endpoint"), &sa.token_endpoint)?;
                let secret = match (env(ENV_CLIENT_SECRET), sa.client_secret_file) {
                    (Some(secret), _) => secret,
                    (None, Some(file)) => {
                        self.read_secret(&format!("{sa_key}.client_secret_file"), &file)?
                    }
                    (None, None) => {
                        return Err(self.err(
                            format!("{sa_key}.client_secret_file"),
                            format!("required (or the {ENV_CLIENT_SECRET} environment variable)"),
                        ))
                    }
                };
                Ok(Credential::ServiceAccount {
                    client_id: sa.client_id,
                    client_secret: Secret::new(secret.trim()),
                    token_endpoint: sa.token_endpoint,
                })
            }
        }
    }

    fn read_secret(&self, key: &str, file: &Path) -> Result<String, ConfigError> {
        let value = std::fs::read_to_string(file)
            .map_err(|e| self.err(key, format!("cannot read {}: {e}", file.display())))?;
        if value.trim().is_empty() {
            return Err(self.err(key, format!("{} is empty", file.display())));
        }
        Ok(value.trim().to_owned())
    }

    fn check_url(&self, key: &str, url: &str) -> Result<(), ConfigError> {
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                // Credentials in a URL would end up in logs and errors.
                if !u.username().is_empty() || u.password().is_some() {
                    return Err(self.err(key, "must not contain user information"));
                }
                Ok(())
            }
            Ok(_) => Err(self.err(key, format!("must be an http(s) URL, got {url:?}"))),
            Err(e) => Err(self.err(key, format!("invalid URL {url:?}: {e}"))),
        }
    }
}

fn non_empty(ids: Option<Vec<String>>) -> Option<Vec<String>> {
    ids.filter(|ids| !ids.is_empty()).map(|ids| {
        // Keep the order of the file, drop repeats.
        let mut seen = BTreeSet::new();
        ids.into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect()
    })
}

// ---------------------------------------------------------------------------------
// Field parsers, used through serde so that errors carry the key path.

pub(crate) fn de_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let text = String::deserialize(d)?;
    crate::timefmt::parse_date(&text)
        .map(Some)
        .ok_or_else(|| de::Error::custom(format!("invalid date {text:?}: expected YYYY-MM-DD")))
}

/// Organization ids are numbers in Pipefy URLs; YAML users write them quoted or not.
fn de_org_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    let ids = Option::<Vec<Id>>::deserialize(d)?;
    ids.map(|ids| {
        ids.into_iter()
            .map(|id| {
                let id = match id {
                    Id::Text(t) => t.trim().to_owned(),
                    Id::Number(n) => n.to_string(),
                };
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                    Err(de::Error::custom(format!(
                        "invalid organization id {id:?}: expected the number from the organization's URL"
                    )))
                } else {
                    Ok(id)
                }
            })
            .collect()
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::TokenAttribution;

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        parse_env(yaml, &[])
    }

    fn parse_env(yaml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_yaml(yaml, Path::new("test.yml"), &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    fn message(result: Result<Config, ConfigError>) -> String {
        result.expect_err("expected an error").to_string()
    }

    #[test]
    fn defaults_with_a_token_from_the_environment() {
        let config = parse_env("organizations: [2, \"300\"]", &[(ENV_TOKEN, "pat-123\n")]).unwrap();
        assert_eq!(config.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.max_orgs_per_request, 500);
        assert_eq!(config.request_limits.max_complexity, 50_000);
        assert_eq!(config.request_limits.page_size, 50);
        assert_eq!(config.max_concurrent_requests, 4);
        assert_eq!(config.max_tries, 3);
        assert_eq!(config.retry_delay, Duration::from_millis(250));
        assert_eq!(config.backoff_base, Duration::from_secs(30));
        assert_eq!(config.backoff_max, Duration::from_secs(3600));
        assert_eq!(config.accounts.len(), 1);
        assert_eq!(
            config.accounts[0].credential,
            Credential::Token(Secret::new("pat-123"))
        );
        assert_eq!(
            config.accounts[0].organizations,
            Some(vec!["2".to_string(), "300".to_string()])
        );
        let tokens = config.collector::<TokenAttribution>().unwrap();
        assert_eq!(tokens.deadline, None);
    }

    #[test]
    fn retry_and_backoff_settings_are_validated_by_key() {
        let env = &[(ENV_TOKEN, "t")];
        let config = parse_env(
            "pipefy: {max_tries: 1, retry_delay: 0s, backoff_base: 200ms, backoff_max: 2s}",
            env,
        )
        .unwrap();
        assert_eq!(config.max_tries, 1);
        assert_eq!(config.retry_delay, Duration::ZERO);
        assert_eq!(config.backoff_base, Duration::from_millis(200));
        assert_eq!(config.backoff_max, Duration::from_secs(2));
        for (yaml, key) in [
            (
                "pipefy: {max_tries: 0}",
                "key pipefy.max_tries: must be between 1 and 10, got 0",
            ),
            (
                "pipefy: {max_tries: 11}",
                "key pipefy.max_tries: must be between 1 and 10",
            ),
            (
                "pipefy: {retry_delay: 2m}",
                "key pipefy.retry_delay: must be at most 1m",
            ),
            (
                "pipefy: {backoff_base: 0s}",
                "key pipefy.backoff_base: must be greater than 0",
            ),
            (
                "pipefy: {backoff_base: 2m, backoff_max: 1m}",
                "key pipefy.backoff_max: must be at least pipefy.backoff_base",
            ),
            (
                "pipefy: {backoff_max: soon}",
                "key pipefy.backoff_max: invalid duration",
            ),
        ] {
            let msg = message(parse_env(yaml, env));
            assert!(msg.contains(key), "{yaml}: {msg}");
        }
    }

    /// `(name, interval, stale_after)` of each enabled collector, in seconds.
    fn schedules(config: &Config) -> Vec<(&'static str, u64, u64)> {
        config
            .collectors
            .iter()
            .map(|c| {
                let s = c.schedule();
                (c.name(), s.interval.as_secs(), s.stale_after.as_secs())
            })
            .collect()
    }

    #[test]
    fn each_collector_has_its_own_default_interval() {
        let config = parse_env("{}", &[(ENV_TOKEN, "t")]).unwrap();
        assert_eq!(
            schedules(&config),
            [
                ("subscription_limits", 300, 900),
                ("ai_credits", 900, 2700),
                ("api_usage", 900, 2700),
                ("automation_jobs", 900, 2700),
                ("integrations", 3600, 10800),
                ("token_attribution", 3600, 10800),
            ]
        );
    }

    #[test]
    fn refresh_interval_is_the_interval_of_collectors_without_their_own() {
        let yaml = "refresh_interval: 2m\nstale_after: 10m\ncollectors:\n  subscription_limits: {interval: 1m}\n  integrations: {interval: 1h}\n  ai_credits: true\n  automation_jobs: false\n";
        let config = parse_env(yaml, &[(ENV_TOKEN, "t")]).unwrap();
        assert_eq!(
            schedules(&config),
            [
                ("subscription_limits", 60, 600),
                ("ai_credits", 120, 600),
                ("api_usage", 120, 600),
                ("integrations", 3600, 10800),
                ("token_attribution", 120, 600),
            ]
        );
    }

    #[test]
    fn a_short_interval_warns_with_its_daily_cost() {
        let yaml = "organizations: [2, 300]\ncollectors:\n  subscription_limits: {interval: 30s}\n";
        let config = parse_env(yaml, &[(ENV_TOKEN, "t")]).unwrap();
        assert_eq!(
            config.warnings(),
            ["collectors.subscription_limits.interval is 30s: 2880 paid Pipefy calls a day for 2 organization(s), more with more organizations"]
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let msg = message(parse("pipefy:\n  auth:\n    token_fle: /x\n"));
        assert!(
            msg.starts_with(
                "config file test.yml: key pipefy.auth.token_fle: unknown field `token_fle`"
            ),
            "{msg}"
        );
        assert!(msg.contains("unknown field `token_fle`"), "{msg}");
        let msg = message(parse_env("colectors: {}", &[(ENV_TOKEN, "t")]));
        assert!(msg.contains("unknown field `colectors`"), "{msg}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let env = &[(ENV_TOKEN, "t")];
        let msg = message(parse_env("refresh_interval: 5 minutes", env));
        assert!(
            msg.contains("key refresh_interval: invalid duration"),
            "{msg}"
        );
        let msg = message(parse_env("organizations: [acme]", env));
        assert!(
            msg.contains("key organizations: invalid organization id \"acme\""),
            "{msg}"
        );
        let msg = message(parse_env(
            "collectors:\n  token_attribution:\n    deadline: 2027-02-30",
            env,
        ));
        assert!(
            msg.contains("key collectors.token_attribution.deadline: invalid date"),
            "{msg}"
        );
        let msg = message(parse_env(
            "collectors:\n  api_usage: {by_tokens: true}",
            env,
        ));
        assert!(
            msg.contains("key collectors.api_usage.by_tokens: unknown field `by_tokens`"),
            "{msg}"
        );
        let msg = message(parse_env(
            "collectors:\n  api_usage: {period: this_month}",
            env,
        ));
        assert!(
            msg.contains("key collectors.api_usage.period: unknown variant `this_month`"),
            "{msg}"
        );
        let msg = message(parse_env(
            "collectors:\n  integrations: {interval: 0s}",
            env,
        ));
        assert!(
            msg.contains("key collectors.integrations.interval: must be greater than 0"),
            "{msg}"
        );
        let msg = message(parse_env("collectors:\n  api_usage: yes please", env));
        assert!(
            msg.contains("key collectors.api_usage: invalid type: string \"yes please\", expected true, false, or a table of settings"),
            "{msg}"
        );
        let msg = message(parse_env("pipefy:\n  endpoint: ftp://x", env));
        assert!(msg.contains("key pipefy.endpoint"), "{msg}");
        let msg = message(parse_env("pipefy:\n  list_page_size: 0", env));
        assert!(
            msg.contains("key pipefy.list_page_size: must be between 1 and 1000, got 0"),
            "{msg}"
        );
        let msg = message(parse_env(
            "pipefy:\n  too_large_errors: [complexity, ' ']",
            env,
        ));
        assert!(
            msg.contains("key pipefy.too_large_errors: must not hold an empty string"),
            "{msg}"
        );
        let msg = message(parse_env("pipefy:\n  max_orgs_per_request: 0", env));
        assert!(
            msg.contains("key pipefy.max_orgs_per_request: must be between 1 and 500"),
            "{msg}"
        );
    }

    #[test]
    fn missing_or_double_auth_is_an_error() {
        let msg = message(parse("organizations: [2]"));
        assert!(msg.contains("key pipefy.auth: required"), "{msg}");
        let msg = message(parse(
            "pipefy:\n  auth:\n    token_file: /a\n    service_account: {client_id: a, token_endpoint: 'https://x/t'}\n",
        ));
        assert!(msg.contains("exactly one"), "{msg}");
    }

    #[test]
    fn missing_secret_file_names_key_and_file() {
        let msg = message(parse(
            "pipefy:\n  auth:\n    token_file: /nonexistent/pipefy-token\n",
        ));
        assert!(
            msg.contains("key pipefy.auth.token_file: cannot read /nonexistent/pipefy-token"),
            "{msg}"
        );
    }

    #[test]
    fn secrets_come_from_files_and_env_overrides_them() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t\n").unwrap();
        let yaml = format!(
            "pipefy:\n  auth:\n    service_account:\n      client_id: abc\n      client_secret_file: {}\n      token_endpoint: https://auth.example/oauth/token\n",
            secret.display()
        );
        let expected = |s: &str| Credential::ServiceAccount {
            client_id: "abc".into(),
            client_secret: Secret::new(s),
            token_endpoint: "https://auth.example/oauth/token".into(),
        };
        assert_eq!(
            parse(&yaml).unwrap().accounts[0].credential,
            expected("s3cr3t")
        );
        let from_env = parse_env(&yaml, &[(ENV_CLIENT_SECRET, "from-env")]).unwrap();
        assert_eq!(from_env.accounts[0].credential, expected("from-env"));
        // Debug output never shows a secret.
        assert!(!format!("{from_env:?}").contains("from-env"));
    }

    #[test]
    fn accounts_replace_the_top_level_pair() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "tok-a").unwrap();
        let yaml = format!(
            "accounts:\n  - name: acme\n    auth: {{token_file: {0}}}\n    organizations: [\"42\"]\n  - name: group\n    auth: {{token_file: {0}}}\n",
            a.display()
        );
        let config = parse(&yaml).unwrap();
        assert_eq!(config.accounts.len(), 2);
        assert_eq!(
            config.accounts[0].organizations,
            Some(vec!["42".to_string()])
        );
        assert_eq!(config.accounts[1].organizations, None);

        let both = format!("organizations: [1]\n{yaml}");
        assert!(message(parse(&both))
            .contains("key organizations: not allowed together with `accounts`"));
        let dup = format!(
            "accounts:\n  - name: a\n    auth: {{token_file: {0}}}\n    organizations: [1]\n  - name: b\n    auth: {{token_file: {0}}}\n    organizations: [1]\n",
            a.display()
        );
        assert!(message(parse(&dup))
            .contains("key accounts[1].organizations: organization 1 is already listed"));
    }

    #[test]
    fn collectors_can_be_disabled() {
        let config = parse_env(
            "collectors:\n  ai_credits: false\n  token_attribution:\n    enabled: false\n",
            &[(ENV_TOKEN, "t")],
        )
        .unwrap();
        let names: Vec<&str> = config.collectors.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "subscription_limits",
                "api_usage",
                "automation_jobs",
                "integrations"
            ]
        );
        let none = "collectors: {subscription_limits: false, ai_credits: false, api_usage: false, automation_jobs: false, integrations: false, token_attribution: false}";
        let msg = message(parse_env(none, &[(ENV_TOKEN, "t")]));
        assert!(
            msg.contains("key collectors: every collector is disabled"),
            "{msg}"
        );
    }

    #[test]
    fn mangled_files_give_errors_not_panics() {
        let valid = "pipefy:\n  endpoint: https://api.pipefy.com/graphql\n  auth:\n    token_file: /nonexistent\n  timeout: 30s\nrefresh_interval: 5m\nstale_after: 15m\norganizations: [\"2\", 300]\ncollectors:\n  token_attribution:\n    deadline: 2027-01-05\n";
        let inserts = [
            "",
            ":",
            "-",
            "[",
            "{",
            "\"",
            "\n",
            "  ",
            "é",
            "\u{0}",
            "99999999999999999999",
            "~",
            "&a",
            "*a",
            "!!binary",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..3_000 {
            let mut text: Vec<char> = valid.chars().collect();
            for _ in 0..1 + next(4) {
                let at = next(text.len() + 1);
                match next(3) {
                    0 if at < text.len() => {
                        text.remove(at);
                    }
                    0 => {}
                    1 => text
                        .splice(at..at, inserts[next(inserts.len())].chars())
                        .for_each(drop),
                    _ => text.truncate(at),
                }
            }
            let text: String = text.into_iter().collect();
            // Every outcome is an Ok or an error naming the file; never a panic.
            if let Err(e) = parse_env(&text, &[(ENV_TOKEN, "t")]) {
                assert!(
                    e.to_string().starts_with("config file test.yml: key "),
                    "{e}"
                );
            }
        }
    }
}
