//! HTTP routes of the simulator: `/graphql`, `/oauth/token` and `/sim/stats`.

use std::collections::HashMap;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::json;

use super::data::NOT_SPECIFIED;
use super::variants;
use super::{Admission, Corruption, Failure, Simulator};

pub(super) fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/graphql", post(graphql))
        .route("/oauth/token", post(token))
        .route("/sim/stats", get(stats))
        .with_state(sim)
}

/// The body of a GraphQL-over-HTTP POST.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphqlBody {
    query: String,
    #[serde(default)]
    variables: Option<serde_json::Value>,
    #[serde(default)]
    operation_name: Option<String>,
}

/// `POST /graphql`, then the bill for it, if the data asks for one
/// ([`SimData::bill_requests_to`](super::SimData::bill_requests_to)).
async fn graphql(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    let response = answer_graphql(&sim, &headers, &body).await;
    // Parsing the body a second time costs only when billing is on (the demo), and
    // keeps billing out of every early return below.
    if billable(response.status()) && sim.bills_requests() {
        sim.bill(&billed_operation(&body));
    }
    response
}

/// Whether Pipefy bills a request answered with `status` (its "Consumption Guide"):
/// 2xx, 3xx, 404, 408 and 422 are billed; 401, 403, other 4xx and 5xx are not.
pub(super) fn billable(status: StatusCode) -> bool {
    status.is_success() || status.is_redirection() || matches!(status.as_u16(), 404 | 408 | 422)
}

/// The operation name Pipefy bills a request under: `operationName`, else the name of
/// the document's only operation, else "Not specified".
pub(super) fn billed_operation(body: &[u8]) -> String {
    let Ok(body) = serde_json::from_slice::<GraphqlBody>(body) else {
        return NOT_SPECIFIED.to_string();
    };
    let given = body.operation_name.as_deref().filter(|n| !n.is_empty());
    let doc = async_graphql::parser::parse_query(&body.query).ok();
    named_operation(doc.as_ref(), given).unwrap_or_else(|| NOT_SPECIFIED.to_string())
}

/// Answers a `POST /graphql`. The order of the checks matters to the exporter's tests:
/// a request is counted first, then authenticated (401), then subject to injected
/// failures, then delayed, and only then is its body parsed. GraphQL errors of any kind
/// (parse, validation, resolver) are HTTP 200, like Pipefy.
async fn answer_graphql(sim: &Simulator, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Err(answer) = admitted(sim, headers).await {
        return answer;
    }

    let body: GraphqlBody = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"errors": [{"message": format!("Malformed request body: {err}")}]})),
            )
                .into_response();
        }
    };

    let given = body.operation_name.as_deref().filter(|n| !n.is_empty());
    // Parsed here only to name the operation and check it; async-graphql parses again
    // and reports syntax errors itself.
    let doc = async_graphql::parser::parse_query(&body.query).ok();
    let operation = operation_name(doc.as_ref(), given);
    sim.record_operation(operation.clone(), &body.query);
    let (variant, introspection) = sim.variant();
    if let Some(refused) = doc.as_ref().and_then(|doc| {
        refusal(
            sim,
            doc,
            given,
            body.variables.as_ref(),
            variant,
            introspection,
        )
    }) {
        sim.record_rejected(&operation);
        return refused;
    }

    let mut request = async_graphql::Request::new(body.query)
        .data(sim.clone())
        .data(variant);
    if let Some(name) = given {
        request = request.operation_name(name);
    }
    if let Some(variables) = body.variables {
        request = request.variables(async_graphql::Variables::from_json(variables));
    }
    let response = sim.inner.schema.execute(request).await;
    if response.data == async_graphql::Value::Null && !response.errors.is_empty() {
        sim.record_rejected(&operation);
    }
    (StatusCode::OK, Json(response)).into_response()
}

/// The first steps of [`answer_graphql`]: the request counted, authenticated, subject to
/// an injected failure, then delayed. `Err` holds the answer of a request that goes no
/// further.
async fn admitted(sim: &Simulator, headers: &HeaderMap) -> Result<(), Response> {
    match sim.admit(headers) {
        Admission::Unauthorized => Err((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            Json(json!({"errors": [{"message": "Unauthorized"}]})),
        )
            .into_response()),
        Admission::Fail(Failure {
            body: Some(corruption),
            ..
        }) => Err(corrupt(corruption)),
        Admission::Fail(failure) => Err(failed(failure)),
        Admission::Proceed { latency } => {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            Ok(())
        }
    }
}

/// The answer of an injected HTTP failure, with its `Retry-After`.
fn failed(failure: Failure) -> Response {
    // A 1xx is not a final answer and would confuse the HTTP stack: use 500.
    let status = StatusCode::from_u16(failure.status)
        .ok()
        .filter(|s| !s.is_informational())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = Json(json!({"errors": [{
        "message": format!("Simulated failure (HTTP {})", status.as_u16())
    }]}));
    let mut response = (status, body).into_response();
    if let Some(secs) = failure.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Whether a parsed document is refused as a whole before it is executed, and the
/// answer if so (HTTP 200, errors, no `data`), checking in order: its required
/// variables, the fields of the schema served ([`variants`]), the complexity limit
/// (whose count is recorded either way).
fn refusal(
    sim: &Simulator,
    doc: &ExecutableDocument,
    given: Option<&str>,
    variables: Option<&serde_json::Value>,
    variant: variants::SimSchema,
    introspection: bool,
) -> Option<Response> {
    if let Some(errors) = missing_variables(doc, given, variables) {
        return Some((StatusCode::OK, Json(json!({ "errors": errors }))).into_response());
    }
    if let Some((on, field)) =
        variants::hidden_field(&sim.inner.shapes, doc, given, variant, introspection)
    {
        return Some(
            (StatusCode::OK, Json(variants::undefined_field(&on, &field))).into_response(),
        );
    }
    let (limit, page_size) = sim.complexity_limit();
    let complexity = sim
        .inner
        .shapes
        .complexity(doc, given, variables, page_size);
    let refused = limit.is_some_and(|max| complexity > max);
    sim.record_complexity(complexity, refused);
    let max = limit.filter(|_| refused)?;
    // As Pipefy describes a complexity failure: 200, no `path`, no `data`.
    let message =
        format!("Query has complexity of {complexity}, which exceeds max complexity of {max}");
    Some(
        (
            StatusCode::OK,
            Json(json!({"errors": [{"message": message}]})),
        )
            .into_response(),
    )
}

/// A `200 OK` whose body is broken: an HTML page, or JSON that stops half-way and a
/// connection that breaks (the stream fails, so hyper aborts the chunked body).
fn corrupt(corruption: Corruption) -> Response {
    match corruption {
        Corruption::Garbage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>502 Bad Gateway</body></html>",
        )
            .into_response(),
        Corruption::Truncated => {
            use futures_util::StreamExt;
            let start = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
                b"{\"data\":{\"a0\":{\"id\":",
            ))]);
            // The pause lets hyper send the status line and the first bytes before the
            // break, as when a connection drops half-way through a response.
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Err(std::io::Error::other("simulated truncation"))
            });
            let body = axum::body::Body::from_stream(start.chain(cut));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
    }
}

/// The name a request is counted under: `operationName` if given, else the name of the
/// document's only operation, else `"anonymous"` (also for documents that do not parse).
pub(super) fn operation_name(doc: Option<&ExecutableDocument>, given: Option<&str>) -> String {
    named_operation(doc, given).unwrap_or_else(|| "anonymous".to_string())
}

/// `operationName` if given, else the name of the document's only operation.
fn named_operation(doc: Option<&ExecutableDocument>, given: Option<&str>) -> Option<String> {
    if let Some(name) = given {
        return Some(name.to_string());
    }
    // Named operations are always stored as `Multiple`, even when alone.
    match doc.map(|d| &d.operations) {
        Some(DocumentOperations::Multiple(ops)) if ops.len() == 1 => {
            ops.keys().next().map(ToString::to_string)
        }
        _ => None,
    }
}

/// Errors for required variables (`$x: T!` without a default) that the request did not
/// provide, or `None` when there are none.
///
/// GraphQL servers reject such a request as a whole before executing anything, but
/// async-graphql 7 executes it and only fails the fields that use the variable, which
/// would let an exporter that forgets a variable get partial data here and nothing from
/// Pipefy. The simulator answers like the real thing.
pub(super) fn missing_variables(
    doc: &ExecutableDocument,
    given: Option<&str>,
    variables: Option<&serde_json::Value>,
) -> Option<Vec<serde_json::Value>> {
    let operation = match (&doc.operations, given) {
        (DocumentOperations::Single(op), None) => &op.node,
        (DocumentOperations::Multiple(ops), Some(name)) => &ops.get(name)?.node,
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => &ops.values().next()?.node,
        // An unknown or ambiguous operation: async-graphql reports that itself.
        _ => return None,
    };
    let errors: Vec<serde_json::Value> = operation
        .variable_definitions
        .iter()
        .filter(|def| {
            let def = &def.node;
            let provided = variables
                .and_then(|v| v.get(def.name.node.as_str()))
                .is_some_and(|v| !v.is_null());
            !def.var_type.node.nullable && def.default_value.is_none() && !provided
        })
        .map(|def| {
            json!({
                "message": format!(
                    r#"Variable "${}" of required type "{}" was not provided."#,
                    def.node.name.node, def.node.var_type.node
                ),
                "locations": [{"line": def.pos.line, "column": def.pos.column}],
            })
        })
        .collect();
    (!errors.is_empty()).then_some(errors)
}

/// `POST /oauth/token`: the OAuth2 client-credentials grant, form-encoded.
async fn token(
    State(sim): State<Simulator>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        sim.count_token_request();
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    };
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        sim.count_token_request();
        return invalid_client();
    }
    match sim.issue_token(field("client_id"), field("client_secret")) {
        Some((access_token, expires_in)) => Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
        }))
        .into_response(),
        None => invalid_client(),
    }
}

fn invalid_client() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "invalid_client"})),
    )
        .into_response()
}

/// `GET /sim/stats`: what the simulator was asked so far.
async fn stats(State(sim): State<Simulator>) -> Json<super::SimStats> {
    Json(sim.stats())
}
