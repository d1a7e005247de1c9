//! pipefy-exporter: Pipefy plan limits, API calls, AI credits, automation jobs,
//! integrations and token billing attribution as Prometheus metrics.
//!
//! Data flows one way: [`config`] → `refresh` (which runs the `collectors` through the
//! `pipefy` client) → [`snapshot`] → [`exposition`] / [`http`]. The HTTP side only ever
//! reads the latest snapshot, so a scrape never reaches Pipefy. See ARCHITECTURE.md.
//!
//! The public surface is the binary's, [`cli`] and [`logging`]; what the integration
//! tests, the benchmarks and the fuzz targets need besides sits in `testing` (and
//! `fuzzing`), hidden from the documentation. Everything else is private to the crate,
//! and `unreachable_pub` keeps a `pub` from meaning more than that.
//!
//! The fake Pipefy of `--demo` and the tests is its own crate, `pipefy-sim`
//! (crates/pipefy-sim), an optional dependency behind the default `demo` feature.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod app;
pub mod cli;
mod collectors;
mod config;
#[cfg(feature = "demo")]
mod demo;
mod duration;
mod encoding;
mod exposition;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod landing;
pub mod logging;
mod pipefy;
mod preflight;
mod process;
mod refresh;
mod reload;
mod secret;
mod self_metrics;
mod server;
mod shard;
mod snapshot;
#[doc(hidden)]
pub mod testing;
mod thresholds;
mod web;
mod yaml;
