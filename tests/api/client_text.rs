//! Client text that the database cannot store, and error messages and call
//! results that would otherwise repeat a phone number.

use serde_json::json;

use crate::support::{valid_campaign, TestApp};

#[tokio::test]
async fn nul_in_campaign_name_is_422() {
    let app = TestApp::spawn().await;
    let mut campaign = valid_campaign(app.tenant.project);
    campaign["name"] = json!("Winter\u{0}offer");
    let (status, body) = app.post("/v1/campaigns", &app.admin(), campaign).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_character", "{body}");
    let campaigns: i64 = sqlx::query_scalar("SELECT count(*) FROM campaigns")
        .fetch_one(&app.pool)
        .await
        .expect("count campaigns");
    assert_eq!(campaigns, 0, "nothing is written");
    app.finish().await;
}

#[tokio::test]
async fn json_type_error_hides_number() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            &format!("/v1/clients/{}/suppressions", app.tenant.client),
            &app.admin(),
            json!({ "number": 491_570_110, "reason": "asked by phone" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_body", "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(!detail.contains("491570110"), "{detail}");
    assert!(detail.contains("expected"), "the reason stays: {detail}");
    app.finish().await;
}

#[tokio::test]
async fn exclusion_reason_error_hides_number() {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(json!({})).await;
    let (status, body) = app
        .post(
            &format!("/v1/campaigns/{campaign}/exclusions"),
            &app.admin(),
            json!({ "reasons": ["+61 491 570 156"] }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(!detail.contains("570"), "{detail}");
    app.finish().await;
}

#[tokio::test]
async fn misspelt_window_day_rejected() {
    let app = TestApp::spawn().await;
    for (field, value) in [
        (
            "calling_window",
            json!({ "weekday": { "start": "09:00", "end": "17:00" } }),
        ),
        ("retry_policy", json!({ "busy_minute": 30 })),
    ] {
        let mut campaign = valid_campaign(app.tenant.project);
        campaign[field] = value;
        let (status, body) = app.post("/v1/campaigns", &app.admin(), campaign).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(body["code"], "invalid_body", "{field}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("unknown field"), "{field}: {detail}");
    }
    let campaigns: i64 = sqlx::query_scalar("SELECT count(*) FROM campaigns")
        .fetch_one(&app.pool)
        .await
        .expect("count campaigns");
    assert_eq!(campaigns, 0, "nothing is written");
    app.finish().await;
}

#[tokio::test]
async fn patch_needs_json_content_type() {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(json!({})).await;
    let response = app
        .http
        .patch(app.url(&format!("/v1/campaigns/{campaign}")))
        .bearer_auth(app.admin())
        .header("If-Match", "*")
        .header("Content-Type", "text/plain")
        .body(r#"{"name":"Spring offer"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 415);
    let body: serde_json::Value = response.json().await.expect("problem body");
    assert_eq!(body["code"], "unsupported_media_type", "{body}");
    let (status, stored) = app
        .get(&format!("/v1/campaigns/{campaign}"), &app.admin())
        .await;
    assert_eq!(status, 200, "{stored}");
    assert_ne!(stored["name"], "Spring offer", "nothing is changed");
    app.finish().await;
}

#[tokio::test]
async fn long_suppression_reason_rejected() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            &format!("/v1/clients/{}/suppressions", app.tenant.client),
            &app.admin(),
            json!({ "number": "0491 570 110", "reason": "x".repeat(501) }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_reason", "{body}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM suppressions")
        .fetch_one(&app.pool)
        .await
        .expect("count suppressions");
    assert_eq!(stored, 0, "nothing is written");
    app.finish().await;
}
