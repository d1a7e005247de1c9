//! Who may call: personal access tokens and 401s, the OAuth2 client-credentials grant
//! with expiry and revocation, and the token endpoint's refusals.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn static_tokens_and_401s() {
    let sim = Simulator::new(
        demo_data(),
        SimAuth {
            static_tokens: vec!["pat-1".to_string()],
            ..SimAuth::default()
        },
    );
    let server = start(&sim).await;
    let q = json!({"query": "{ organizations { id } }"});

    let a = post(&server, None, q.clone()).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body, json!({"errors": [{"message": "Unauthorized"}]}));
    let a = post(&server, Some("pat-2"), q.clone()).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body, json!({"errors": [{"message": "Unauthorized"}]}));

    // An injected failure waits behind authentication: the 401 does not consume it.
    sim.fail_next(1, 503, None);
    let a = post(&server, Some("wrong"), q.clone()).await;
    assert_eq!(a.status, 401);
    let a = post(&server, Some("pat-1"), q.clone()).await;
    assert_eq!(a.status, 503);

    let a = post(&server, Some("pat-1"), q.clone()).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["data"]["organizations"][0]["id"], "2");

    let stats = sim.stats();
    assert_eq!(stats.graphql_requests, 5);
    assert_eq!(stats.unauthorized, 3);
    assert_eq!(stats.operations, counts(&[("anonymous", 1)]));
}

#[tokio::test]
async fn oauth_client_credentials_expiry_and_revocation() {
    let sim = Simulator::new(
        demo_data(),
        SimAuth {
            clients: vec![("cid".to_string(), "csecret".to_string())],
            token_ttl: Duration::from_secs(1),
            ..SimAuth::default()
        },
    );
    let server = start(&sim).await;
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", "cid"),
        ("client_secret", "csecret"),
    ];
    let q = json!({"query": "{ organization(id: \"2\") { id } }"});

    let (status, body) = request_token(
        &server,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "cid"),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!((status, body), (401, json!({"error": "invalid_client"})));
    let (status, body) = request_token(
        &server,
        &[
            ("grant_type", "password"),
            ("client_id", "cid"),
            ("client_secret", "csecret"),
        ],
    )
    .await;
    assert_eq!((status, body), (401, json!({"error": "invalid_client"})));

    let (status, body) = request_token(&server, &good).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 1);
    let first = body["access_token"].as_str().expect("token").to_string();
    let a = post(&server, Some(&first), q.clone()).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, json!({"data": {"organization": {"id": "2"}}}));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a = post(&server, Some(&first), q.clone()).await;
    assert_eq!(a.status, 401);

    let (status, body) = request_token(&server, &good).await;
    assert_eq!(status, 200);
    let second = body["access_token"].as_str().expect("token").to_string();
    assert_ne!(first, second);
    assert_eq!(post(&server, Some(&second), q.clone()).await.status, 200);
    sim.revoke_access_tokens();
    assert_eq!(post(&server, Some(&second), q.clone()).await.status, 401);

    let (_, body) = request_token(&server, &good).await;
    let third = body["access_token"].as_str().expect("token").to_string();
    assert_eq!(post(&server, Some(&third), q.clone()).await.status, 200);

    let stats = sim.stats();
    assert_eq!(stats.token_requests, 5);
    assert_eq!(stats.tokens_issued, 3);
    assert_eq!(stats.unauthorized, 2);
    assert_eq!(stats.graphql_requests, 5);
}

#[tokio::test]
async fn token_endpoint_rejects_a_non_form_body() {
    let sim = Simulator::new(demo_data(), SimAuth::default());
    let server = start(&sim).await;
    let resp = reqwest::Client::new()
        .post(server.token_url())
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(sim.stats().token_requests, 1);
}
