//! pipefy-exporter: Pipefy plan limits, AI credits and token billing attribution as
//! Prometheus metrics.
//!
//! Data flows one way: [`config`] → [`refresh`] (which calls [`pipefy`]) → [`snapshot`]
//! → [`exposition`]/[`http`]. The HTTP side only ever reads the latest snapshot, so a
//! scrape never reaches Pipefy.
#![forbid(unsafe_code)]

pub mod simulator;
