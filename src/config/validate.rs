//! The validation of the raw configuration into [`Config`]: every value checked, with the
//! file, the line and the key path of what is wrong, in the user's terms; secrets read
//! from their files or the environment.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::raw::{RawAccount, RawAuth, RawConfig, RawPipefy, RawServiceAccount, Whole};
use super::*;
use crate::collectors::Defaults;

pub(super) struct Validator<'a> {
    pub(super) file: File<'a>,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

impl Validator<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        self.file.err(key, message)
    }

    pub(super) fn validate(&self, mut raw: RawConfig) -> Result<Config, ConfigError> {
        let endpoint = raw
            .pipefy
            .endpoint
            .clone()
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        self.check_url("pipefy.endpoint", &endpoint)?;
        let timeout = raw.pipefy.timeout.unwrap_or(Duration::from_secs(30));
        if timeout.is_zero() {
            return Err(self.err("pipefy.timeout", "must be greater than 0"));
        }
        let max_orgs_per_request = self.whole(
            "pipefy.max_orgs_per_request",
            raw.pipefy.max_orgs_per_request,
            crate::pipefy::batch::MAX_FIELDS,
            crate::pipefy::batch::MAX_FIELDS,
        )?;
        let request_limits = self.request_limits(
            raw.pipefy.max_complexity,
            raw.pipefy.list_page_size,
            raw.pipefy.too_large_errors.clone(),
            max_orgs_per_request,
        )?;
        let max_concurrent_requests = self.whole(
            "pipefy.max_concurrent_requests",
            raw.pipefy.max_concurrent_requests,
            4,
            64,
        )?;
        let retries = self.retries(&raw.pipefy)?;
        let schema_check = self.schema_check(&raw.pipefy)?;
        let collectors = self.collectors(&mut raw)?;
        let accounts = self.all_accounts(raw)?;
        Ok(Config {
            endpoint,
            timeout,
            request_limits,
            max_concurrent_requests,
            max_tries: retries.max_tries,
            retry_delay: retries.retry_delay,
            backoff_base: retries.backoff_base,
            backoff_max: retries.backoff_max,
            schema_check,
            accounts,
            shard: Shard::ALL,
            collectors,
        })
    }

    /// `pipefy.max_tries`, `retry_delay`, `backoff_base` and `backoff_max`.
    fn retries(&self, pipefy: &RawPipefy) -> Result<Retries, ConfigError> {
        let max_tries = self.whole("pipefy.max_tries", pipefy.max_tries, DEFAULT_MAX_TRIES, 10)?;
        let retry_delay = pipefy.retry_delay.unwrap_or(DEFAULT_RETRY_DELAY);
        if retry_delay > Duration::from_secs(60) {
            return Err(self.err("pipefy.retry_delay", "must be at most 1m"));
        }
        let backoff_base = pipefy.backoff_base.unwrap_or(DEFAULT_BACKOFF_BASE);
        if backoff_base.is_zero() {
            return Err(self.err("pipefy.backoff_base", "must be greater than 0"));
        }
        let backoff_max = pipefy.backoff_max.unwrap_or(DEFAULT_BACKOFF_MAX);
        if backoff_max < backoff_base {
            return Err(self.err("pipefy.backoff_max", "must be at least pipefy.backoff_base"));
        }
        Ok(Retries {
            max_tries,
            retry_delay,
            backoff_base,
            backoff_max,
        })
    }

    /// `pipefy.schema_check_interval` and `pipefy.introspection`.
    fn schema_check(&self, pipefy: &RawPipefy) -> Result<SchemaCheck, ConfigError> {
        let schema_check = SchemaCheck {
            interval: pipefy
                .schema_check_interval
                .unwrap_or(DEFAULT_SCHEMA_CHECK_INTERVAL),
            introspection: pipefy.introspection.unwrap_or(true),
        };
        if schema_check.interval < Duration::from_secs(60) {
            return Err(self.err(
                "pipefy.schema_check_interval",
                "must be at least 1m: each check is a billed request per account",
            ));
        }
        Ok(schema_check)
    }

    /// The enabled collectors, with `refresh_interval` and `stale_after`; at least one.
    fn collectors(&self, raw: &mut RawConfig) -> Result<Vec<Arc<dyn Collector>>, ConfigError> {
        if raw.refresh_interval.is_some_and(|d| d.is_zero()) {
            return Err(self.err("refresh_interval", "must be greater than 0"));
        }
        if raw.stale_after.is_some_and(|d| d.is_zero()) {
            return Err(self.err("stale_after", "must be greater than 0"));
        }
        let defaults = Defaults {
            refresh_interval: raw.refresh_interval,
            stale_after: raw.stale_after,
        };
        let collectors = std::mem::take(&mut raw.collectors)
            .build(&defaults)
            .map_err(|(key, message)| self.err(format!("collectors.{key}"), message))?;
        if collectors.is_empty() {
            return Err(self.err(
                "collectors",
                "every collector is disabled: nothing to export",
            ));
        }
        Ok(collectors)
    }

    /// `accounts`, or the one account of `pipefy.auth` and `organizations`.
    fn all_accounts(&self, raw: RawConfig) -> Result<Vec<Account>, ConfigError> {
        let Some(accounts) = raw.accounts else {
            let credential = self.credential("pipefy.auth", raw.pipefy.auth, true)?;
            return Ok(vec![Account {
                name: "default".into(),
                credential,
                organizations: distinct_ids(raw.organizations.map(|ids| ids.0)),
            }]);
        };
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
        self.accounts(accounts)
    }

    /// A whole number from 1 to `max` at `key`, or `default` when absent.
    fn whole<T: TryFrom<i128>>(
        &self,
        key: &str,
        value: Option<Whole>,
        default: T,
        max: usize,
    ) -> Result<T, ConfigError> {
        let Some(Whole(value)) = value else {
            return Ok(default);
        };
        match T::try_from(value) {
            Ok(v) if (1..=max as i128).contains(&value) => Ok(v),
            _ => Err(self.err(
                key,
                format!("expected a whole number from 1 to {max}, found {value}"),
            )),
        }
    }

    /// `pipefy.max_complexity` (Pipefy's documented 50,000), and the two assumptions
    /// Pipefy's documentation leaves open: the page size of a list without `first:`,
    /// and the words of a rejection for size or time.
    fn request_limits(
        &self,
        max_complexity: Option<Whole>,
        page_size: Option<Whole>,
        too_large: Option<Vec<String>>,
        max_fields: usize,
    ) -> Result<crate::pipefy::batch::RequestLimits, ConfigError> {
        let default = crate::pipefy::batch::RequestLimits::default();
        let max_complexity = self.whole(
            "pipefy.max_complexity",
            max_complexity,
            default.max_complexity,
            1_000_000,
        )?;
        let page_size = self.whole("pipefy.list_page_size", page_size, default.page_size, 1000)?;
        let too_large = match too_large {
            None => default.too_large,
            Some(words) if words.iter().any(|w| w.trim().is_empty()) => {
                return Err(self.err("pipefy.too_large_errors", "must not hold an empty string"));
            }
            Some(words) => words.iter().map(|w| w.trim().to_lowercase()).collect(),
        };
        Ok(crate::pipefy::batch::RequestLimits {
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
            let organizations = distinct_ids(account.organizations.map(|ids| ids.0));
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
        let token_env = || {
            let replaces = format!("{key}.token_file");
            self.env_override(key, env_overrides, ENV_TOKEN, "token", &replaces)
        };
        let Some(raw) = raw else {
            // No `auth` block: a token in the environment is enough.
            return match token_env()? {
                Some(token) => Ok(Credential::from_env_token(&token)),
                None => Err(self.err(
                    key,
                    format!("required: set `token_file` or `service_account` (or the {ENV_TOKEN} environment variable)"),
                )),
            };
        };
        match (raw.token_file, raw.service_account) {
            (Some(_), Some(_)) => Err(self.err(
                key,
                "set exactly one of `token_file` and `service_account`, not both",
            )),
            (None, None) => match token_env()? {
                Some(token) => Ok(Credential::from_env_token(&token)),
                None => Err(self.err(key, "set exactly one of `token_file` and `service_account`")),
            },
            (Some(file), None) => Ok(match token_env()? {
                Some(token) => Credential::from_env_token(&token),
                None => Credential::Token {
                    token: Secret::new(self.read_secret(&format!("{key}.token_file"), &file)?),
                    // Resolved now, so that a rotation re-reads the same file whatever
                    // the working directory.
                    file: Some(self.file.resolve(&file)),
                },
            }),
            (None, Some(sa)) => self.service_account(key, sa, env_overrides),
        }
    }

    /// `<key>.service_account`: OAuth2 client credentials, the secret from its file or
    /// the environment.
    fn service_account(
        &self,
        key: &str,
        sa: RawServiceAccount,
        env_overrides: bool,
    ) -> Result<Credential, ConfigError> {
        let sa_key = format!("{key}.service_account");
        if sa.client_id.trim().is_empty() {
            return Err(self.err(format!("{sa_key}.client_id"), "must not be empty"));
        }
        self.check_url(&format!("{sa_key}.token_endpoint"), &sa.token_endpoint)?;
        let secret_key = format!("{sa_key}.client_secret_file");
        let from_env = self.env_override(
            key,
            env_overrides,
            ENV_CLIENT_SECRET,
            "client secret",
            &secret_key,
        )?;
        let (secret, client_secret_file) = match (from_env, sa.client_secret_file) {
            (Some(secret), _) => (secret, None),
            (None, Some(file)) => (
                self.read_secret(&secret_key, &file)?,
                Some(self.file.resolve(&file)),
            ),
            (None, None) => {
                return Err(self.err(
                    secret_key,
                    format!("required (or the {ENV_CLIENT_SECRET} environment variable)"),
                ))
            }
        };
        Ok(Credential::ServiceAccount {
            client_id: sa.client_id,
            client_secret: Secret::new(secret.trim()),
            client_secret_file,
            token_endpoint: sa.token_endpoint,
        })
    }

    /// The environment variable `name` holding the `secret` that takes the place of
    /// `replaces`, if `overrides` allows it (the single top-level credential only: with
    /// several accounts it would be ambiguous). An override set but empty is an error,
    /// not "unset": it is what a missing key of a Kubernetes Secret or a typo in a unit
    /// file gives, and falling back to the file would hide it.
    fn env_override(
        &self,
        key: &str,
        overrides: bool,
        name: &str,
        secret: &str,
        replaces: &str,
    ) -> Result<Option<String>, ConfigError> {
        match (self.env)(name) {
            Some(value) if overrides && value.trim().is_empty() => Err(self.err(
                key,
                format!("the {name} environment variable is set but empty: put the {secret} in it or unset it (it takes the place of {replaces})"),
            )),
            Some(value) if overrides => Ok(Some(value)),
            _ => Ok(None),
        }
    }

    /// The secret in `file`, relative to the config file's directory.
    fn read_secret(&self, key: &str, file: &Path) -> Result<String, ConfigError> {
        let file = self.file.resolve(file);
        let value = std::fs::read_to_string(&file)
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

/// What the retry and backoff settings came to.
struct Retries {
    max_tries: u32,
    retry_delay: Duration,
    backoff_base: Duration,
    backoff_max: Duration,
}

/// The listed organizations, in the order of the file without repeats; `None` when none
/// is listed (every organization the credential can see).
fn distinct_ids(ids: Option<Vec<String>>) -> Option<Vec<String>> {
    ids.filter(|ids| !ids.is_empty()).map(|ids| {
        // Keep the order of the file, drop repeats.
        let mut seen = BTreeSet::new();
        ids.into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect()
    })
}
