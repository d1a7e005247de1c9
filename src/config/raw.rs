//! The configuration file exactly as written: serde shapes that refuse unknown keys, and
//! the parsers of the values that need one (dates, whole numbers, organization ids), so
//! that every error carries the key path and the line. `validate.rs` checks them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::collectors::RawCollectors;
use crate::duration::de_duration;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) pipefy: RawPipefy,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) refresh_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) stale_after: Option<Duration>,
    pub(super) organizations: Option<OrgIds>,
    pub(super) accounts: Option<Vec<RawAccount>>,
    #[serde(default)]
    pub(super) collectors: RawCollectors,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
pub(super) struct RawPipefy {
    pub(super) endpoint: Option<String>,
    pub(super) auth: Option<RawAuth>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) timeout: Option<Duration>,
    pub(super) max_orgs_per_request: Option<Whole>,
    pub(super) max_complexity: Option<Whole>,
    pub(super) list_page_size: Option<Whole>,
    pub(super) too_large_errors: Option<Vec<String>>,
    pub(super) max_concurrent_requests: Option<Whole>,
    pub(super) max_tries: Option<Whole>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) retry_delay: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) backoff_base: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) backoff_max: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) schema_check_interval: Option<Duration>,
    pub(super) introspection: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with token_file or service_account"
)]
pub(super) struct RawAuth {
    pub(super) token_file: Option<PathBuf>,
    pub(super) service_account: Option<RawServiceAccount>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with client_id, client_secret_file and token_endpoint"
)]
pub(super) struct RawServiceAccount {
    pub(super) client_id: String,
    pub(super) client_secret_file: Option<PathBuf>,
    pub(super) token_endpoint: String,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an account: a table with name, auth and organizations"
)]
pub(super) struct RawAccount {
    pub(super) name: String,
    pub(super) auth: RawAuth,
    pub(super) organizations: Option<OrgIds>,
}

/// What a date in the configuration looks like, for error messages.
const EXPECTED_DATE: &str = "a date in the form YYYY-MM-DD";

/// A `YYYY-MM-DD` date as Unix seconds (UTC midnight).
pub(crate) fn de_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(EXPECTED_DATE)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            timefmt::parse_date(v)
                .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &EXPECTED_DATE))
        }
    }
    d.deserialize_any(Visitor).map(Some)
}

/// A whole number as written; the validator checks its range, and says it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Whole(pub(super) i128);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Whole;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Whole, E> {
                Ok(Whole(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Whole, E> {
                Ok(Whole(v.into()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// What an organization id looks like, for error messages.
const EXPECTED_ORG_ID: &str = "an organization id (a positive integer or a string of digits)";

/// `organizations:`: ids are numbers in Pipefy URLs; YAML users write them quoted or
/// not. Each one is checked where it is read, so that an error names its index and line.
#[derive(Debug, Default)]
pub(super) struct OrgIds(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for OrgIds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = OrgIds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of organization ids, such as [\"2\", \"300\"]")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OrgIds, A::Error> {
                let mut ids = Vec::new();
                while let Some(OrgId(id)) = seq.next_element()? {
                    ids.push(id);
                }
                Ok(OrgIds(ids))
            }
            // `organizations:` with nothing after it: the same as an empty list.
            fn visit_unit<E: de::Error>(self) -> Result<OrgIds, E> {
                Ok(OrgIds::default())
            }
        }
        d.deserialize_any(Visitor)
    }
}

struct OrgId(String);

impl<'de> Deserialize<'de> for OrgId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = OrgId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(EXPECTED_ORG_ID)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OrgId, E> {
                match v {
                    0 => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                    _ => Ok(OrgId(v.to_string())),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OrgId, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OrgId, E> {
                let id = v.trim();
                if !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && id.bytes().any(|b| b != b'0')
                {
                    Ok(OrgId(id.to_owned()))
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}
