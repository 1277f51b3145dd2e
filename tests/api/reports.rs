//! Contacts export and timeline.

use crate::support::TestApp;

#[tokio::test]
async fn export_masks_numbers_and_neutralises_formulas() {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(serde_json::json!({})).await;
    let csv = "to_number,contact_ref,first_name\n0491 570 006,=HYPERLINK(\"http://example.com\"),Noah\n0491 570 156,@SUM(A1),Zoë\n";
    let (status, import) = app.import_csv(&campaign, csv).await;
    assert_eq!(status, 201, "{import}");
    let response = app
        .http
        .get(app.url(&format!("/v1/campaigns/{campaign}/contacts.csv")))
        .bearer_auth(app.admin())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let text = response.text().await.expect("body");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("header row").clone();
    let at = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .expect("column present")
    };
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        &rows[0][at("masked_number")],
        "'+61 ******006",
        "numbers are masked and the leading + neutralised"
    );
    assert_eq!(
        &rows[0][at("contact_ref")],
        "'=HYPERLINK(\"http://example.com\")"
    );
    assert_eq!(&rows[1][at("contact_ref")], "'@SUM(A1)");
    for raw in [
        "0491570006",
        "491 570 006",
        "+61491570006",
        "0491 570 156",
        "Noah",
        "Zoë",
    ] {
        assert!(!text.contains(raw), "the export must not contain {raw:?}");
    }
    app.finish().await;
}

#[tokio::test]
async fn timeline_lists_state_changes() {
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
    let (status, timeline) = app
        .get(
            &format!("/v1/campaigns/{campaign}/timeline"),
            &app.token("partner_user"),
        )
        .await;
    assert_eq!(status, 200);
    let items = timeline["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{timeline}");
    assert_eq!(items[0]["to_state"], "draft");
    assert_eq!(items[1]["from_state"], "draft");
    assert_eq!(items[1]["to_state"], "cancelled");
    app.finish().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["checks"]["migrations_current"], true);
    let _ = app.get("/v1/campaigns", &app.admin()).await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("outbound_http_requests_total"),
        "request counter exported"
    );
    assert!(
        metrics.contains("route=\"/v1/campaigns\""),
        "routes are labelled by pattern"
    );
    let docs = app
        .http
        .get(app.url("/docs/"))
        .send()
        .await
        .expect("request");
    assert_eq!(docs.status(), 200, "Swagger UI is served offline");
    let response = app
        .http
        .get(app.url("/no/such/route"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);
    let problem: serde_json::Value = response.json().await.expect("problem document");
    assert_eq!(problem["code"], "not_found");
    let request_id = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("request")
        .headers()
        .get("x-request-id")
        .cloned();
    assert!(request_id.is_some(), "every response carries a request id");
    app.finish().await;
}

/// A pending contact waiting for a retry shows, in the contacts list and the
/// export, a next eligible time no earlier than its scheduled retry.
#[tokio::test]
async fn retry_wait_sets_next_eligible_time() {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(serde_json::json!({})).await;
    let checked_on = chrono::Utc::now()
        .with_timezone(&chrono_tz::Australia::Sydney)
        .date_naive();
    let csv = format!(
        "to_number,registry_status,registry_checked_at,registry_evidence\n0491 570 006,not_registered,{checked_on},WASH-TEST-1\n"
    );
    let (status, import) = app.import_csv(&campaign, &csv).await;
    assert_eq!(status, 201, "{import}");
    // Read back as stored, because PostgreSQL keeps microseconds only.
    let retry_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "UPDATE contacts SET next_attempt_at = now() + interval '10 days' RETURNING next_attempt_at",
    )
    .fetch_one(&app.pool)
    .await
    .expect("schedule a retry");

    let (status, page) = app
        .get(&format!("/v1/campaigns/{campaign}/contacts"), &app.admin())
        .await;
    assert_eq!(status, 200, "{page}");
    let contact = &page["items"][0];
    let parse = |value: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
            .expect("RFC 3339")
            .with_timezone(&chrono::Utc)
    };
    let listed = parse(&contact["next_eligible_at"]);
    assert!(
        listed >= retry_at,
        "listed {listed} before the retry {retry_at}"
    );

    let text = app
        .http
        .get(app.url(&format!("/v1/campaigns/{campaign}/contacts.csv")))
        .bearer_auth(app.admin())
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let column = reader
        .headers()
        .expect("header row")
        .iter()
        .position(|h| h == "next_eligible_at")
        .expect("next_eligible_at column");
    let row = reader.records().next().expect("one row").expect("record");
    let exported = parse(&serde_json::Value::from(&row[column]));
    assert!(
        exported >= retry_at,
        "exported {exported} before the retry {retry_at}"
    );
    app.finish().await;
}
