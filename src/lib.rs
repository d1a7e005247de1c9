//! pipefy-exporter: Pipefy plan limits, AI credits and token billing attribution as
//! Prometheus metrics.
//!
//! Data flows one way: [`config`] → [`refresh`] (which runs the [`collectors`] through
//! [`pipefy`]) → [`snapshot`] → [`exposition`]/[`http`]. The HTTP side only ever reads the latest snapshot, so a
//! scrape never reaches Pipefy. [`server`] serves it, over TLS and behind basic
//! authentication when [`web`] (`--web.config.file`) asks for them.
#![forbid(unsafe_code)]

mod app;
pub mod cli;
mod collectors;
pub mod config;
#[cfg(feature = "demo")]
mod demo;
mod duration;
pub mod exposition;
pub mod http;
pub mod logging;
mod pipefy;
mod process;
pub mod refresh;
pub mod secret;
pub mod self_metrics;
mod server;
#[cfg(feature = "demo")]
pub mod simulator;
pub mod snapshot;
pub mod timefmt;
pub mod web;
mod yaml;

pub use app::{serve, serve_with, ServeOptions};
