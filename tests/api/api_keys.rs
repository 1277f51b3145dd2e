//! Partner API keys: shown once, hashed at rest, scoped, revocable, rate limited.

use crate::support::{Options, TestApp};

async fn create_key(app: &TestApp, body: serde_json::Value) -> serde_json::Value {
    let (status, key) = app.post("/v1/api-keys", &app.admin(), body).await;
    assert_eq!(status, 201, "key should be created: {key}");
    key
}

#[tokio::test]
async fn api_key_shown_once_and_hashed() {
    let app = TestApp::spawn().await;
    let created = create_key(
        &app,
        serde_json::json!({"name": "CRM sync", "role": "partner_admin"}),
    )
    .await;
    let key = created["key"]
        .as_str()
        .expect("key shown on creation")
        .to_owned();
    assert!(key.starts_with("obk_"), "keys carry a recognisable prefix");
    assert!(
        key.len() >= 4 + 12 + 1 + 43,
        "at least 256 random bits after the prefix"
    );

    let (status, list) = app.get("/v1/api-keys", &app.admin()).await;
    assert_eq!(status, 200);
    assert!(
        !list.to_string().contains(&key),
        "the list never shows the key"
    );
    assert_eq!(list["items"][0]["prefix"], created["prefix"]);

    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM api_keys")
        .fetch_one(&app.pool)
        .await
        .expect("row");
    assert_eq!(stored.len(), 32, "an HMAC-SHA256 hash is stored");
    let text_in_db: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE position($1 in name || prefix || created_by) > 0",
    )
    .bind(&key)
    .fetch_one(&app.pool)
    .await
    .expect("query");
    assert_eq!(text_in_db, 0, "the key is not stored in clear");
    app.finish().await;
}

#[tokio::test]
async fn api_key_authenticates_and_records_use() {
    let app = TestApp::spawn().await;
    let created = create_key(
        &app,
        serde_json::json!({"name": "CRM sync", "role": "partner_admin"}),
    )
    .await;
    let key = created["key"].as_str().expect("key").to_owned();
    let (status, body) = app
        .post(
            "/v1/campaigns",
            &key,
            crate::support::valid_campaign(app.tenant.project),
        )
        .await;
    assert_eq!(status, 201, "an admin key can create campaigns: {body}");
    let used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys")
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert!(used.is_some(), "last_used_at is recorded");
    app.finish().await;
}

#[tokio::test]
async fn read_only_key_cannot_write() {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(serde_json::json!({})).await;
    let created = create_key(
        &app,
        serde_json::json!({"name": "dashboard", "role": "partner_user"}),
    )
    .await;
    let key = created["key"].as_str().expect("key").to_owned();
    let (status, _) = app.get(&format!("/v1/campaigns/{campaign}"), &key).await;
    assert_eq!(status, 200, "a read-only key reads");
    let (status, body) = app
        .post(
            &format!("/v1/campaigns/{campaign}/cancel"),
            &key,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 403, "a read-only key cannot change state: {body}");
    app.finish().await;
}

#[tokio::test]
async fn client_scoped_key_sees_only_its_clients() {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(serde_json::json!({})).await;
    let other_client = outbound_persistence::tenancy::create_client(&app.pool, "Second client")
        .await
        .expect("client");
    outbound_persistence::tenancy::assign_client(&app.pool, app.tenant.partner, other_client)
        .await
        .expect("assign");
    let admin = crate::support::token_for(
        "partner_admin",
        Some(app.tenant.partner),
        &[app.tenant.client, other_client],
        60,
    );
    let (status, created) = app.post("/v1/api-keys", &admin, serde_json::json!({"name": "scoped", "role": "partner_admin", "client_ids": [other_client]})).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().expect("key").to_owned();
    let (status, _) = app.get(&format!("/v1/campaigns/{campaign}"), &key).await;
    assert_eq!(
        status, 404,
        "a key scoped to another client does not see this campaign"
    );

    let (status, problem) = app.post("/v1/api-keys", &app.admin(), serde_json::json!({"name": "bad", "role": "partner_admin", "client_ids": [uuid::Uuid::new_v4()]})).await;
    assert_eq!(status, 422, "keys cannot name unassigned clients");
    assert_eq!(problem["code"], "invalid_client_ids");
    app.finish().await;
}

#[tokio::test]
async fn revoked_key_is_rejected_at_once() {
    let app = TestApp::spawn().await;
    let created = create_key(
        &app,
        serde_json::json!({"name": "old", "role": "partner_admin"}),
    )
    .await;
    let key = created["key"].as_str().expect("key").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, _) = app.get("/v1/campaigns", &key).await;
    assert_eq!(status, 200);
    let (status, revoked) = app
        .post(
            &format!("/v1/api-keys/{id}/revoke"),
            &app.admin(),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_string());
    let (status, problem) = app.get("/v1/campaigns", &key).await;
    assert_eq!(status, 401, "a revoked key is refused");
    assert!(!problem.to_string().contains(&key), "the key is not echoed");

    let mut tampered = key.clone();
    tampered.pop();
    tampered.push(if key.ends_with('A') { 'B' } else { 'A' });
    let (status, _) = app.get("/v1/campaigns", &tampered).await;
    assert_eq!(status, 401, "a key with a wrong secret is refused");
    app.finish().await;
}

#[tokio::test]
async fn key_management_needs_partner_admin() {
    let app = TestApp::spawn().await;
    let (status, _) = app
        .post(
            "/v1/api-keys",
            &app.token("partner_user"),
            serde_json::json!({"name": "x", "role": "partner_user"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, problem) = app
        .post(
            "/v1/api-keys",
            &app.admin(),
            serde_json::json!({"name": "x", "role": "customer_admin"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["code"], "invalid_role");
    app.finish().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let app = TestApp::spawn_with(Options {
        rate_limits: Some((1, 3)),
        ..Options::default()
    })
    .await;
    let token = app.admin();
    let mut limited = None;
    for _ in 0..10 {
        let response = app
            .http
            .get(app.url("/v1/campaigns"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("the limit is reached within ten requests");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After names whole seconds"
    );
    let problem: serde_json::Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "rate_limited");
    let other = crate::support::token_for(
        "partner_user",
        Some(app.tenant.partner),
        &[app.tenant.client],
        60,
    );
    let (status, _) = app.get("/v1/campaigns", &other).await;
    assert_eq!(status, 200, "another caller has its own allowance");
    app.finish().await;
}
