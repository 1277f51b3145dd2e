//! Campaign creation checks and settings edits with ETag / If-Match.

use crate::support::TestApp;

async fn read_etag(app: &TestApp, campaign: &str) -> String {
    let response = app
        .http
        .get(app.url(&format!("/v1/campaigns/{campaign}")))
        .bearer_auth(app.admin())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("GET returns an ETag")
        .to_owned()
}

async fn patch(
    app: &TestApp,
    campaign: &str,
    if_match: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value, Option<String>) {
    let mut request = app
        .http
        .patch(app.url(&format!("/v1/campaigns/{campaign}")))
        .bearer_auth(app.admin())
        .json(&body);
    if let Some(tag) = if_match {
        request = request.header("If-Match", tag);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
        etag,
    )
}

#[tokio::test]
async fn patch_with_current_etag_updates() {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(serde_json::json!({})).await;
    let tag = read_etag(&app, &campaign).await;
    let (status, body, new_tag) = patch(
        &app,
        &campaign,
        Some(&tag),
        serde_json::json!({"capacity": 9, "purpose": "a reminder"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["capacity"], 9);
    assert_eq!(body["purpose"], "a reminder");
    assert_ne!(
        new_tag.as_deref(),
        Some(tag.as_str()),
        "the ETag changes with the version"
    );

    let (status, body, _) = patch(
        &app,
        &campaign,
        Some(&tag),
        serde_json::json!({"capacity": 4}),
    )
    .await;
    assert_eq!(status, 412, "a stale ETag is rejected: {body}");
    assert_eq!(body["code"], "etag_mismatch");
    app.finish().await;
}

#[tokio::test]
async fn patch_without_if_match_is_428() {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(serde_json::json!({})).await;
    let (status, body, _) = patch(&app, &campaign, None, serde_json::json!({"capacity": 9})).await;
    assert_eq!(status, 428);
    assert_eq!(body["code"], "if_match_required");
    app.finish().await;
}

#[tokio::test]
async fn patch_rejects_immutable_and_invalid_fields() {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(serde_json::json!({})).await;
    let tag = read_etag(&app, &campaign).await;
    let (status, body, _) = patch(
        &app,
        &campaign,
        Some(&tag),
        serde_json::json!({"call_type": "research"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "immutable_field");
    let overnight =
        serde_json::json!({"calling_window": {"weekdays": {"start": "20:00", "end": "09:00"}}});
    let (status, body, _) = patch(&app, &campaign, Some(&tag), overnight).await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "invalid_calling_window");
    let (status, body, _) = patch(
        &app,
        &campaign,
        Some(&tag),
        serde_json::json!({"nickname": "x"}),
    )
    .await;
    assert_eq!(status, 422, "unknown fields are rejected: {body}");
    app.finish().await;
}

#[tokio::test]
async fn settings_frozen_outside_draft_and_paused() {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(serde_json::json!({})).await;
    let (status, _) = app
        .post(
            &format!("/v1/campaigns/{campaign}/cancel"),
            &app.admin(),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let tag = read_etag(&app, &campaign).await;
    let (status, body, _) = patch(
        &app,
        &campaign,
        Some(&tag),
        serde_json::json!({"capacity": 9}),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "campaign_not_editable");
    assert_eq!(body["state"], "cancelled");
    app.finish().await;
}

#[tokio::test]
async fn create_rejects_invalid_settings() {
    let app = TestApp::spawn().await;
    let cases = [
        (serde_json::json!({"name": ""}), "invalid_name"),
        (serde_json::json!({"capacity": -1}), "invalid_capacity"),
        (
            serde_json::json!({"default_max_attempts": 11}),
            "invalid_max_attempts",
        ),
        (
            serde_json::json!({"start_date": "2026-12-10", "end_date": "2026-12-01"}),
            "invalid_dates",
        ),
        (
            serde_json::json!({"personalisation_keys": ["to_number"]}),
            "invalid_personalisation_key",
        ),
        // A header cell with six digits is read as data, so the key could
        // never be imported.
        (
            serde_json::json!({"personalisation_keys": ["code_123456"]}),
            "invalid_personalisation_key",
        ),
        (
            serde_json::json!({"personalisation_keys": ["_private"]}),
            "invalid_personalisation_key",
        ),
        (
            serde_json::json!({"calling_window": {"weekdays": {"start": "9am", "end": "5pm"}}}),
            "invalid_calling_window",
        ),
    ];
    for (overrides, code) in cases {
        let mut body = crate::support::valid_campaign(app.tenant.project);
        if let (Some(target), serde_json::Value::Object(extra)) =
            (body.as_object_mut(), overrides.clone())
        {
            target.extend(extra);
        }
        let (status, problem) = app.post("/v1/campaigns", &app.admin(), body).await;
        assert_eq!(status, 422, "{overrides} should be rejected: {problem}");
        assert_eq!(problem["code"], code, "{overrides}");
    }
    let (status, problem) = app
        .post(
            "/v1/campaigns",
            &app.admin(),
            serde_json::json!({"name": "x"}),
        )
        .await;
    assert_eq!(
        status, 400,
        "missing fields are a malformed body: {problem}"
    );
    assert_eq!(problem["code"], "invalid_body");
    app.finish().await;
}

#[tokio::test]
async fn wider_window_is_a_validation_blocker() {
    let app = TestApp::spawn().await;
    let wide = serde_json::json!({"calling_window": {"weekdays": {"start": "08:00", "end": "21:00"}, "saturday": null, "sunday": null}});
    let campaign = app.create_campaign(wide).await;
    let (status, report) = app
        .post(
            &format!("/v1/campaigns/{campaign}/validation"),
            &app.admin(),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let check = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "calling_controls")
        .cloned()
        .expect("calling_controls check");
    assert_eq!(check["status"], "blocker", "{check}");
    app.finish().await;
}

#[tokio::test]
async fn campaign_list_pages_with_cursor() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.create_campaign(serde_json::json!({})).await;
    }
    let (status, first) = app.get("/v1/campaigns?limit=2", &app.admin()).await;
    assert_eq!(status, 200);
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let next = first["next"].as_str().expect("a next cursor").to_owned();
    let (status, second) = app
        .get(
            &format!("/v1/campaigns?limit=2&cursor={next}"),
            &app.admin(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    assert!(second["next"].is_null());
    let (status, problem) = app
        .get("/v1/campaigns?cursor=not-a-cursor", &app.admin())
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem["code"], "invalid_cursor");
    let (status, problem) = app.get("/v1/campaigns?limit=100000", &app.admin()).await;
    assert_eq!(status, 400);
    assert_eq!(problem["code"], "invalid_limit");
    app.finish().await;
}

#[tokio::test]
async fn json_body_without_json_content_type_is_415() {
    let app = TestApp::spawn().await;
    let body = crate::support::valid_campaign(app.tenant.project).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .http
            .post(app.url("/v1/campaigns"))
            .bearer_auth(app.admin())
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 415, "{content_type:?} is a 415");
        let problem: serde_json::Value = response.json().await.expect("problem body");
        assert_eq!(problem["code"], "unsupported_media_type", "{problem}");
        let detail = problem["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains("application/json"),
            "the detail names application/json: {detail}"
        );
    }
    // A malformed JSON body with the right Content-Type is still a 400.
    let response = app
        .http
        .post(app.url("/v1/campaigns"))
        .bearer_auth(app.admin())
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400, "malformed JSON stays 400");
    app.finish().await;
}

/// Creates a campaign with an Idempotency-Key; returns the status, body and
/// whether the response was replayed.
async fn create_with_key(app: &TestApp, key: &str, name: &str) -> (u16, serde_json::Value, bool) {
    let mut body = crate::support::valid_campaign(app.tenant.project);
    body["name"] = serde_json::json!(name);
    let response = app
        .http
        .post(app.url("/v1/campaigns"))
        .bearer_auth(app.admin())
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body, replayed)
}

async fn campaign_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM campaigns")
        .fetch_one(&app.pool)
        .await
        .expect("count campaigns")
}

#[tokio::test]
async fn create_key_replays_first_response() {
    let app = TestApp::spawn().await;
    let (status, first, replayed) = create_with_key(&app, "create-1", "Winter offer").await;
    assert_eq!(status, 201, "{first}");
    assert!(!replayed, "the first response is not a replay");
    let (status, again, replayed) = create_with_key(&app, "create-1", "Winter offer").await;
    assert_eq!(status, 201, "{again}");
    assert!(replayed, "the repeat is a replay");
    assert_eq!(again["id"], first["id"], "the same campaign");
    let (status, other, _) = create_with_key(&app, "create-1", "Spring offer").await;
    assert_eq!(status, 422, "{other}");
    assert_eq!(other["code"], "idempotency_key_reused", "{other}");
    assert_eq!(campaign_count(&app).await, 1, "one campaign");
    app.finish().await;
}

#[tokio::test]
async fn create_key_sent_at_once_creates_one() {
    // Requests sent together used to pass the stored-response check together
    // and each create a campaign.
    let app = TestApp::spawn().await;
    let replies = futures_util::future::join_all(
        (0..6).map(|_| create_with_key(&app, "create-at-once", "Winter offer")),
    )
    .await;
    assert_eq!(campaign_count(&app).await, 1, "one campaign: {replies:?}");
    let created: Vec<_> = replies
        .iter()
        .filter(|(status, _, replayed)| *status == 201 && !*replayed)
        .collect();
    assert_eq!(created.len(), 1, "one request did the work: {replies:?}");
    for (status, body, _) in &replies {
        match status {
            201 => assert_eq!(body["id"], created[0].1["id"], "{replies:?}"),
            409 => assert_eq!(body["code"], "idempotency_key_in_use", "{body}"),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    // Once the first has finished, the key replays its response.
    let (status, again, replayed) = create_with_key(&app, "create-at-once", "Winter offer").await;
    assert_eq!((status, replayed), (201, true), "{again}");
    assert_eq!(again["id"], created[0].1["id"]);
    app.finish().await;
}
