//! Tests of the simulator over real sockets, with reqwest, the way the exporter talks to
//! it: one file per area. This file holds what they share: a server on a free port,
//! `POST /graphql` and `/oauth/token`, the demo's uuids, and readers of the answers.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::window;
use super::*;

mod auth;
mod data;
mod faults;
mod organizations;
mod requests;
mod schema;
mod stats;
mod usage_stats;

async fn start(sim: &Simulator) -> SimServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    sim.spawn(listener).await.expect("spawn simulator")
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn post(server: &SimServer, token: Option<&str>, body: Value) -> Answer {
    let mut req = reqwest::Client::new()
        .post(server.graphql_url())
        .json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("send /graphql");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.expect("JSON body");
    Answer {
        status,
        headers,
        body,
    }
}

async fn query(server: &SimServer, query: &str, variables: Value) -> Answer {
    post(
        server,
        None,
        json!({"query": query, "variables": variables}),
    )
    .await
}

async fn request_token(server: &SimServer, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(server.token_url())
        .form(form)
        .send()
        .await
        .expect("send /oauth/token");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

const ORG_QUERY: &str = r#"
query Limits($a: ID!, $b: ID!) {
  o0: organization(id: $a) { ...Org }
  o1: organization(id: $b) { ...Org }
}
fragment Org on Organization {
  id uuid name planName
  activeSubscription { limits { resource limit used } }
  personalAccessTokens { id name billingOrganization { id name } }
}"#;

const UUID_2: &str = "1f1c6d2e-0002-4a00-9000-000000000002";
const UUID_300: &str = "1f1c6d2e-0300-4a00-9000-000000000300";
const UUID_4242: &str = "1f1c6d2e-4242-4a00-9000-000000004242";

/// The demo data without billing, so that figures of organization 2 do not move with
/// every request a test makes.
fn quiet_demo() -> Simulator {
    let sim = Simulator::demo();
    sim.update(|d| d.bill_requests_to = None);
    sim
}

/// `filterDate` of `current_month` today, as the simulator answers it.
fn current_month() -> Value {
    let w = window::Window::of_period(window::PeriodFilter::CurrentMonth, window::today());
    json!({"from": w.from, "to": w.to})
}

/// The errors of an answer as (path, message), sorted by path.
fn errors_by_path(body: &Value) -> Vec<(Value, String)> {
    let mut errors: Vec<(Value, String)> = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let message = e["message"].as_str().unwrap_or_default().to_string();
                    (e["path"].clone(), message)
                })
                .collect()
        })
        .unwrap_or_default();
    errors.sort_by_key(|(path, _)| path.to_string());
    errors
}
