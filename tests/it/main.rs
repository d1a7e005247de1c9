//! Integration tests: the real exporter (`serve_with`, or the binary) over real sockets
//! against the GraphQL simulator.

mod auth;
mod batching;
mod binary;
mod certs;
mod docs;
mod e2e;
mod failures;
mod helpers;
mod usage_stats;
mod values;
mod webconfig;
