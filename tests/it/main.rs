//! Integration tests: the router alone (`handlers`), the real exporter (`serve_with`, or
//! the binary) over real sockets against the GraphQL simulator, and (ignored unless
//! `--include-ignored`, as `scripts/test` runs them) the checks that need Debian's
//! Prometheus tools and Chromium.

mod auth;
mod batching;
mod binary;
mod browser;
mod certs;
mod connections;
mod dashboards;
mod docs;
mod e2e;
mod failures;
mod faults;
mod handlers;
mod helpers;
mod reload;
mod schema_check;
mod sharding;
mod usage_stats;
mod values;
mod webconfig;
