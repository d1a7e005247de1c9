//! pipefy-exporter: Pipefy plan limits, API calls, AI credits, automation jobs,
//! integrations and token billing attribution as Prometheus metrics.
//!
//! Data flows one way: [`config`] → `refresh` (which runs the `collectors` through the
//! `pipefy` client) → [`snapshot`] → [`exposition`] / [`http`]. The HTTP side only ever
//! reads the latest snapshot, so a scrape never reaches Pipefy. See ARCHITECTURE.md.
//!
//! Everything is `pub(crate)` unless it is part of the public surface, which is what the
//! binary, the integration tests and the benchmark use:
//! - [`cli::run`] and [`cli::Cli`], [`logging::init`] (the binary);
//! - [`config::Config`] (load, validate, inspect schedules), [`shard::Shard`],
//!   [`web::WebConfig`];
//! - [`serve`], [`serve_with`], [`serve_all`], [`ServeOptions`] (one exporter on one or
//!   several listeners), with
//!   [`reload::Sources`] (what a reload reads again);
//! - [`http::app`] with [`http::AppState`] (the router, testable without a socket),
//!   [`exposition::render`], [`refresh::Refresher`], [`snapshot`], [`self_metrics`].
//!
//! The fake Pipefy of `--demo` and the tests is its own crate, `pipefy-sim`
//! (crates/pipefy-sim), an optional dependency behind the default `demo` feature.
#![forbid(unsafe_code)]

mod app;
pub mod cli;
mod collectors;
pub mod config;
#[cfg(feature = "demo")]
mod demo;
mod duration;
mod encoding;
pub mod exposition;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
mod landing;
pub mod logging;
mod pipefy;
mod preflight;
mod process;
pub mod refresh;
pub mod reload;
pub mod secret;
pub mod self_metrics;
mod server;
pub mod shard;
pub mod snapshot;
#[doc(hidden)]
pub mod testing;
mod thresholds;
pub mod web;
mod yaml;

pub use app::{serve, serve_all, serve_with, ServeOptions};
