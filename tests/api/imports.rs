//! Contact CSV import and wash result file tests.
//!
//! Every test sends real HTTP requests to a server on loopback with a fresh
//! database. Numbers are the fictitious ones from ACMA's list: mobiles
//! 0491 570 006, 0491 570 156–159, 0491 570 110, 0491 570 313, 0491 570 737 and
//! 0491 571 000–0491 579 999; landlines (02|03|07|08) 5550 xxxx and 7010 xxxx;
//! 1800 160 401, 1300 975 707 and 1900 654 321.

use serde_json::{json, Value};

use crate::support::{Options, TestApp};
use outbound_http::state::ImportLimits;

/// An HTTP response: status, Content-Type, raw text and the parsed body.
struct Reply {
    status: u16,
    content_type: String,
    text: String,
    body: Value,
}

/// Sends `body` as `text/csv` (or `content_type`) to `path` with an optional
/// Idempotency-Key.
async fn send(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> Reply {
    let mut request = app
        .http
        .post(app.url(path))
        .bearer_auth(app.admin())
        .header("Content-Type", content_type)
        .body(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("response text");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        text,
        body,
    }
}

/// Imports `csv` into `campaign`, appending `query` to the path unchanged.
async fn import(app: &TestApp, campaign: &str, query: &str, csv: impl Into<Vec<u8>>) -> Reply {
    send(
        app,
        &format!("/v1/campaigns/{campaign}/imports{query}"),
        "text/csv",
        csv.into(),
        None,
    )
    .await
}

/// Imports with an Idempotency-Key.
async fn import_with_key(app: &TestApp, campaign: &str, key: &str, csv: &str) -> Reply {
    send(
        app,
        &format!("/v1/campaigns/{campaign}/imports"),
        "text/csv",
        csv.as_bytes().to_vec(),
        Some(key),
    )
    .await
}

/// Sends a wash result file.
async fn wash(app: &TestApp, campaign: &str, query: &str, csv: &str) -> Reply {
    send(
        app,
        &format!("/v1/campaigns/{campaign}/wash-results?{query}"),
        "text/csv",
        csv.as_bytes().to_vec(),
        None,
    )
    .await
}

/// Starts a fresh server, creates one campaign (support's valid campaign
/// merged with `overrides`) and returns both.
async fn setup(overrides: Value) -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(overrides).await;
    (app, campaign)
}

/// Lists every contact of a campaign (one page of up to 500).
async fn contacts(app: &TestApp, campaign: &str) -> Vec<Value> {
    let (status, body) = app
        .get(
            &format!("/v1/campaigns/{campaign}/contacts?limit=500"),
            &app.admin(),
        )
        .await;
    assert_eq!(status, 200, "contacts list should be 200: {body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Sends a GET to `path` and returns the status and the raw response text.
async fn get_text(app: &TestApp, path: &str) -> (u16, String) {
    let response = app
        .http
        .get(app.url(path))
        .bearer_auth(app.admin())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("response text"))
}

/// Computes the SHA-256 of `bytes` in lower-case hex with PostgreSQL, apart
/// from the product's own code.
async fn sha256_hex(app: &TestApp, bytes: &[u8]) -> String {
    sqlx::query_scalar("SELECT encode(sha256($1), 'hex')")
        .bind(bytes)
        .fetch_one(&app.pool)
        .await
        .expect("sha256")
}

/// Asserts that `issues` contains an issue with `code` on `row`, at `line` in `column`.
#[track_caller]
fn assert_issue(issues: &Value, code: &str, row: i64, line: i64, column: &str) {
    let found = issues
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["code"] == code && i["row"] == row);
    let Some(issue) = found else {
        panic!("expected a {code} issue on row {row}, got {issues}");
    };
    assert_eq!(issue["line"], line, "{code} on row {row}: line");
    assert_eq!(issue["column"], column, "{code} on row {row}: column");
    assert!(
        issue["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{code} on row {row}: message"
    );
}

/// Asserts a 201 import with the given accepted and rejected counts.
#[track_caller]
fn assert_counts(reply: &Reply, accepted: i64, rejected: i64) {
    assert_eq!(reply.status, 201, "import should be 201: {}", reply.text);
    assert_eq!(
        reply.body["rows_accepted"], accepted,
        "rows_accepted: {}",
        reply.text
    );
    assert_eq!(
        reply.body["rows_rejected"], rejected,
        "rows_rejected: {}",
        reply.text
    );
}

/// Asserts a file-level problem with `status` and `code`.
#[track_caller]
fn assert_problem(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "status for {code}: {}", reply.text);
    assert!(
        reply.content_type.starts_with("application/problem+json"),
        "{code} should be a problem document, got {}",
        reply.content_type
    );
    assert_eq!(reply.body["code"], code, "problem code: {}", reply.text);
}

/// Imports one valid row and one row `bad` under `header`, expecting the bad
/// row to be rejected as row 2 on line 3. Returns the errors.
async fn reject_second_row(overrides: Value, header: &str, good: &str, bad: &str) -> Value {
    let (app, campaign) = setup(overrides).await;
    let reply = import(&app, &campaign, "", format!("{header}\n{good}\n{bad}\n")).await;
    assert_counts(&reply, 1, 1);
    assert_eq!(
        contacts(&app, &campaign).await.len(),
        1,
        "only the good row is stored"
    );
    app.finish().await;
    reply.body["errors"].clone()
}

// ---------------------------------------------------------------------------
// Row error codes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn missing_number_is_rejected() {
    let errors = reject_second_row(
        json!({}),
        "to_number,contact_ref",
        "0491 570 006,A-1",
        ",A-2",
    )
    .await;
    assert_issue(&errors, "missing_to_number", 2, 3, "to_number");
}

#[tokio::test]
async fn letters_in_number_rejected() {
    let errors = reject_second_row(json!({}), "to_number", "0491 570 006", "0491 57O 313").await;
    assert_issue(&errors, "invalid_to_number", 2, 3, "to_number");
}

#[tokio::test]
async fn scientific_notation_number_rejected() {
    let errors = reject_second_row(json!({}), "to_number", "0491 570 006", "4.91571E+08").await;
    assert_issue(&errors, "invalid_to_number", 2, 3, "to_number");
}

#[tokio::test]
async fn wrong_length_numbers_rejected() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "",
        "to_number\n0491 570 006\n0491 570 15\n0491 570 1566\n(02) 5550 123\n",
    )
    .await;
    assert_counts(&reply, 1, 3);
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        2,
        3,
        "to_number",
    );
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        3,
        4,
        "to_number",
    );
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        4,
        5,
        "to_number",
    );
    app.finish().await;
}

#[tokio::test]
async fn premium_number_always_rejected() {
    for allow in [false, true] {
        let errors = reject_second_row(
            json!({ "allow_non_geographic": allow }),
            "to_number",
            "0491 570 006",
            "1900 654 321",
        )
        .await;
        assert_issue(&errors, "unsupported_number_type", 2, 3, "to_number");
    }
}

#[tokio::test]
async fn non_geographic_rejected_by_default() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "",
        "to_number\n0491 570 006\n1800 160 401\n1300 975 707\n",
    )
    .await;
    assert_counts(&reply, 1, 2);
    assert_issue(
        &reply.body["errors"],
        "unsupported_number_type",
        2,
        3,
        "to_number",
    );
    assert_issue(
        &reply.body["errors"],
        "unsupported_number_type",
        3,
        4,
        "to_number",
    );
    app.finish().await;
}

#[tokio::test]
async fn non_geographic_accepted_when_allowed() {
    let (app, campaign) = setup(json!({ "allow_non_geographic": true })).await;
    let reply = import(
        &app,
        &campaign,
        "",
        "to_number\n1800 160 401\n1300 975 707\n",
    )
    .await;
    assert_counts(&reply, 2, 0);
    let list = contacts(&app, &campaign).await;
    assert_eq!(list.len(), 2, "both numbers are stored");
    for contact in &list {
        assert_eq!(
            contact["number_type"], "non_geographic",
            "number type: {contact}"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn landline_is_geographic() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "",
        "to_number\n(02) 5550 1234\n+61 3 7010 0040\n",
    )
    .await;
    assert_counts(&reply, 2, 0);
    let list = contacts(&app, &campaign).await;
    assert_eq!(list[0]["number_type"], "geographic", "first landline type");
    assert_eq!(
        list[0]["masked_number"], "+61 ******234",
        "first landline mask"
    );
    assert_eq!(
        list[1]["masked_number"], "+61 ******040",
        "second landline mask"
    );
    app.finish().await;
}

#[tokio::test]
async fn duplicate_in_file_names_first_row() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number\n0491 570 156\n0491 570 157\n+61 491 570 156\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 2, 1);
    let errors = &reply.body["errors"];
    assert_issue(errors, "duplicate_to_number", 3, 4, "to_number");
    let message = errors[0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("row 1"),
        "message should name row 1: {message}"
    );
    assert_eq!(
        contacts(&app, &campaign).await.len(),
        2,
        "the duplicate is not stored"
    );
    app.finish().await;
}

#[tokio::test]
async fn duplicate_of_earlier_import_rejected() {
    let (app, campaign) = setup(json!({})).await;
    let first = import(
        &app,
        &campaign,
        "",
        "to_number\n0491 570 006\n0491 570 157\n",
    )
    .await;
    assert_counts(&first, 2, 0);
    let second = import(
        &app,
        &campaign,
        "",
        "to_number\n0491 570 158\n61491570157\n",
    )
    .await;
    assert_counts(&second, 1, 1);
    assert_issue(
        &second.body["errors"],
        "duplicate_to_number",
        2,
        3,
        "to_number",
    );
    let message = second.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("earlier import"),
        "message should name the earlier import: {message}"
    );
    assert!(
        message.contains("row 2"),
        "message should name the earlier row: {message}"
    );
    assert_eq!(
        contacts(&app, &campaign).await.len(),
        3,
        "three distinct numbers are stored"
    );
    app.finish().await;
}

#[tokio::test]
async fn same_number_other_campaign_accepted() {
    let (app, campaign) = setup(json!({})).await;
    let other = app
        .create_campaign(json!({ "name": "Second campaign" }))
        .await;
    assert_counts(
        &import(&app, &campaign, "", "to_number\n0491 570 006\n").await,
        1,
        0,
    );
    assert_counts(
        &import(&app, &other, "", "to_number\n0491 570 006\n").await,
        1,
        0,
    );
    app.finish().await;
}

#[tokio::test]
async fn timezone_abbreviation_rejected() {
    let errors = reject_second_row(
        json!({}),
        "to_number,recipient_timezone",
        "0491 570 006,Australia/Perth",
        "0491 570 156,AEST",
    )
    .await;
    assert_issue(
        &errors,
        "invalid_recipient_timezone",
        2,
        3,
        "recipient_timezone",
    );
}

#[tokio::test]
async fn timezone_fixed_offset_rejected() {
    let errors = reject_second_row(
        json!({}),
        "to_number,recipient_timezone",
        "0491 570 006,QLD",
        "0491 570 156,+10:00",
    )
    .await;
    assert_issue(
        &errors,
        "invalid_recipient_timezone",
        2,
        3,
        "recipient_timezone",
    );
}

#[tokio::test]
async fn invalid_registry_status_rejected() {
    let header = "to_number,registry_status,registry_checked_at";
    let errors = reject_second_row(
        json!({}),
        header,
        "0491 570 006,N,2026-01-10",
        "0491 570 156,maybe,2026-01-10",
    )
    .await;
    assert_issue(&errors, "invalid_registry_status", 2, 3, "registry_status");
}

#[tokio::test]
async fn day_first_date_rejected() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,registry_status,registry_checked_at,consent_type,consent_given_at\n\
               0491 570 006,N,2026-01-10,,\n\
               0491 570 156,N,20/11/2026,,\n\
               0491 570 157,,,express,20/11/2026\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 2);
    assert_issue(
        &reply.body["errors"],
        "invalid_date",
        2,
        3,
        "registry_checked_at",
    );
    assert_issue(
        &reply.body["errors"],
        "invalid_date",
        3,
        4,
        "consent_given_at",
    );
    app.finish().await;
}

#[tokio::test]
async fn out_of_range_date_rejected() {
    // Years PostgreSQL cannot store used to fail the whole file with a 500.
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,registry_status,registry_checked_at,consent_type,consent_given_at\n\
               0491 570 006,N,2026-01-10,,\n\
               0491 570 156,N,-4800-01-01,,\n\
               0491 570 157,,,express,-5000-01-01\n\
               0491 570 158,N,0001-01-01T00:00:00Z,,\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 3);
    assert_issue(
        &reply.body["errors"],
        "invalid_date",
        2,
        3,
        "registry_checked_at",
    );
    assert_issue(
        &reply.body["errors"],
        "invalid_date",
        3,
        4,
        "consent_given_at",
    );
    assert_issue(
        &reply.body["errors"],
        "invalid_date",
        4,
        5,
        "registry_checked_at",
    );
    app.finish().await;
}

#[tokio::test]
async fn unknown_consent_type_rejected() {
    let header = "to_number,consent_type,consent_given_at";
    let errors = reject_second_row(
        json!({}),
        header,
        "0491 570 006,express,2026-01-10",
        "0491 570 156,verbal,2026-01-10",
    )
    .await;
    assert_issue(&errors, "invalid_consent", 2, 3, "consent_type");
}

#[tokio::test]
async fn express_consent_needs_date() {
    let header = "to_number,consent_type,consent_evidence";
    let errors = reject_second_row(
        json!({}),
        header,
        "0491 570 006,inferred,REF-1",
        "0491 570 156,express,REF-2",
    )
    .await;
    assert_issue(&errors, "invalid_consent", 2, 3, "consent_given_at");
}

#[tokio::test]
async fn consent_expiry_before_given_rejected() {
    let header = "to_number,consent_type,consent_given_at,consent_expires_at";
    let errors = reject_second_row(
        json!({}),
        header,
        "0491 570 006,express,2026-01-10,2027-01-10",
        "0491 570 156,express,2026-01-10,2025-01-10",
    )
    .await;
    assert_issue(&errors, "invalid_consent", 2, 3, "consent_expires_at");
}

#[tokio::test]
async fn unknown_exemption_rejected() {
    let errors = reject_second_row(
        json!({}),
        "to_number,exemption",
        "0491 570 006,charity",
        "0491 570 156,church",
    )
    .await;
    assert_issue(&errors, "invalid_exemption", 2, 3, "exemption");
}

#[tokio::test]
async fn call_type_mismatch_rejected() {
    let errors = reject_second_row(
        json!({}),
        "to_number,call_type",
        "0491 570 006,Telemarketing",
        "0491 570 156,research",
    )
    .await;
    assert_issue(&errors, "call_type_mismatch", 2, 3, "call_type");
}

#[tokio::test]
async fn priority_out_of_range_rejected() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "",
        "to_number,priority\n0491 570 006,10\n0491 570 156,high\n0491 570 157,0\n0491 570 158,11\n",
    )
    .await;
    assert_counts(&reply, 1, 3);
    assert_issue(&reply.body["errors"], "invalid_priority", 2, 3, "priority");
    assert_issue(&reply.body["errors"], "invalid_priority", 3, 4, "priority");
    assert_issue(&reply.body["errors"], "invalid_priority", 4, 5, "priority");
    assert_eq!(
        contacts(&app, &campaign).await[0]["priority"],
        10,
        "priority 10 is kept"
    );
    app.finish().await;
}

#[tokio::test]
async fn max_attempts_out_of_range_rejected() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(&app, &campaign, "", "to_number,max_attempts\n0491 570 006,1\n0491 570 156,0\n0491 570 157,11\n0491 570 158,many\n").await;
    assert_counts(&reply, 1, 3);
    assert_issue(
        &reply.body["errors"],
        "invalid_max_attempts",
        2,
        3,
        "max_attempts",
    );
    assert_issue(
        &reply.body["errors"],
        "invalid_max_attempts",
        3,
        4,
        "max_attempts",
    );
    assert_issue(
        &reply.body["errors"],
        "invalid_max_attempts",
        4,
        5,
        "max_attempts",
    );
    assert_eq!(
        contacts(&app, &campaign).await[0]["max_attempts"],
        1,
        "max_attempts 1 is kept"
    );
    app.finish().await;
}

#[tokio::test]
async fn long_contact_ref_rejected() {
    let (app, campaign) = setup(json!({})).await;
    let csv = format!(
        "to_number,contact_ref\n0491 570 006,{}\n0491 570 156,{}\n",
        "R".repeat(128),
        "R".repeat(129)
    );
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 1);
    assert_issue(&reply.body["errors"], "value_too_long", 2, 3, "contact_ref");
    app.finish().await;
}

#[tokio::test]
async fn contact_ref_limit_counts_characters() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "",
        format!("to_number,contact_ref\n0491 570 006,{}\n", "ë".repeat(128)),
    )
    .await;
    assert_counts(&reply, 1, 0);
    app.finish().await;
}

#[tokio::test]
async fn long_personalisation_rejected() {
    let (app, campaign) = setup(json!({})).await;
    let csv = format!(
        "to_number,first_name\n0491 570 006,{}\n0491 570 156,{}\n",
        "n".repeat(1024),
        "n".repeat(1025)
    );
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 1);
    assert_issue(&reply.body["errors"], "value_too_long", 2, 3, "first_name");
    app.finish().await;
}

#[tokio::test]
async fn every_error_in_row_reported() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,recipient_timezone,exemption,priority\n0491 57O 313,AEST,church,high\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 0, 1);
    let errors = &reply.body["errors"];
    assert_issue(errors, "invalid_to_number", 1, 2, "to_number");
    assert_issue(
        errors,
        "invalid_recipient_timezone",
        1,
        2,
        "recipient_timezone",
    );
    assert_issue(errors, "invalid_exemption", 1, 2, "exemption");
    assert_issue(errors, "invalid_priority", 1, 2, "priority");
    assert_eq!(reply.body["rows_total"], 1, "one row was read");
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Warnings
// ---------------------------------------------------------------------------

#[tokio::test]
async fn nine_digit_number_restores_zero() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(&app, &campaign, "", "to_number\n0491 570 006\n491570156\n").await;
    assert_counts(&reply, 2, 0);
    assert_eq!(reply.body["rows_with_warnings"], 1, "one row has a warning");
    assert_issue(
        &reply.body["warnings"],
        "trunk_zero_restored",
        2,
        3,
        "to_number",
    );
    let list = contacts(&app, &campaign).await;
    assert_eq!(
        list[1]["masked_number"], "+61 ******156",
        "the fixed number is stored"
    );
    assert_eq!(
        list[1]["number_type"], "mobile",
        "the fixed number is a mobile"
    );
    app.finish().await;
}

#[tokio::test]
async fn trailing_decimal_is_removed() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(&app, &campaign, "", "to_number\n0491570157.0\n").await;
    assert_counts(&reply, 1, 0);
    assert_issue(
        &reply.body["warnings"],
        "trailing_decimal_removed",
        1,
        2,
        "to_number",
    );
    assert_eq!(reply.body["errors"], json!([]), "no errors");
    assert_eq!(
        contacts(&app, &campaign).await[0]["masked_number"],
        "+61 ******157",
        "the fixed number is stored"
    );
    app.finish().await;
}

// ---------------------------------------------------------------------------
// File-level failures
// ---------------------------------------------------------------------------

/// Sends `csv` to a fresh campaign and expects a file-level problem with
/// nothing imported.
async fn expect_file_problem(
    options: Options,
    query: &str,
    csv: impl Into<Vec<u8>>,
    status: u16,
    code: &str,
) -> Reply {
    let app = TestApp::spawn_with(options).await;
    let campaign = app.create_campaign(json!({})).await;
    let reply = import(&app, &campaign, query, csv).await;
    assert_problem(&reply, status, code);
    assert!(
        contacts(&app, &campaign).await.is_empty(),
        "{code}: nothing is imported"
    );
    app.finish().await;
    reply
}

fn small_limits() -> Options {
    Options {
        limits: ImportLimits {
            max_bytes: 200,
            max_rows: 3,
            ..ImportLimits::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn missing_number_column_fails_file() {
    expect_file_problem(
        Options::default(),
        "",
        "contact_ref,first_name\nA-1,Noah\n",
        422,
        "missing_required_column",
    )
    .await;
}

#[tokio::test]
async fn phone_column_named_otherwise_gets_rename_hint() {
    let reply = expect_file_problem(
        Options::default(),
        "",
        "Mobile Phone,contact_ref\n0491 570 006,A-1\n",
        422,
        "missing_required_column",
    )
    .await;
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("\"mobile_phone\""), "{detail}");
    assert!(detail.contains("rename it to to_number"), "{detail}");
    assert!(!detail.contains("491"), "{detail}");
}

#[tokio::test]
async fn empty_body_fails_file() {
    expect_file_problem(Options::default(), "", "", 422, "missing_required_column").await;
}

#[tokio::test]
async fn duplicate_column_fails_file() {
    expect_file_problem(
        Options::default(),
        "",
        "to_number,contact_ref,To-Number\n0491 570 006,A-1,0491 570 156\n",
        422,
        "duplicate_column",
    )
    .await;
}

#[tokio::test]
async fn unknown_column_fails_file() {
    let reply = expect_file_problem(
        Options::default(),
        "",
        "to_number,nickname\n0491 570 006,Noah\n",
        422,
        "unknown_column",
    )
    .await;
    let detail = reply.body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("nickname"),
        "detail should name the column: {detail}"
    );
}

#[tokio::test]
async fn unknown_column_dropped_on_request() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "?drop_unknown_columns=true",
        "to_number,Nick Name,first_name\n0491 570 006,Noah,Noah\n",
    )
    .await;
    assert_counts(&reply, 1, 0);
    assert_eq!(
        reply.body["dropped_columns"],
        json!(["nick_name"]),
        "dropped columns: {}",
        reply.text
    );
    app.finish().await;
}

#[tokio::test]
async fn unterminated_quote_names_line() {
    let csv = "to_number,contact_ref\n0491 570 006,A-1\n0491 570 156,\"A-2\n0491 570 157,A-3\n";
    let reply = expect_file_problem(Options::default(), "", csv, 422, "malformed_csv").await;
    assert_eq!(
        reply.body["line"], 3,
        "line of the open quote: {}",
        reply.text
    );
}

#[tokio::test]
async fn invalid_utf8_fails_file() {
    let reply = expect_file_problem(
        Options::default(),
        "",
        b"to_number,contact_ref\n0491 570 006,Zo\xEB\n".to_vec(),
        422,
        "unsupported_encoding",
    )
    .await;
    let detail = reply.body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("windows-1252"),
        "detail should suggest declaring windows-1252: {detail}"
    );
}

#[tokio::test]
async fn unknown_declared_encoding_fails() {
    expect_file_problem(
        Options::default(),
        "?encoding=ebcdic",
        "to_number\n0491 570 006\n",
        422,
        "unsupported_encoding",
    )
    .await;
}

/// Builds a two-row file of exactly `size` bytes.
fn file_of_size(size: usize) -> String {
    let fixed = "to_number,contact_ref\n0491570006,\n0491570156,\n".len();
    let padding = size - fixed;
    let (first, second) = (padding / 2, padding - padding / 2);
    format!(
        "to_number,contact_ref\n0491570006,{}\n0491570156,{}\n",
        "a".repeat(first),
        "b".repeat(second)
    )
}

#[tokio::test]
async fn file_at_byte_limit_accepted() {
    let app = TestApp::spawn_with(small_limits()).await;
    let campaign = app.create_campaign(json!({})).await;
    let csv = file_of_size(200);
    assert_eq!(csv.len(), 200, "fixture size");
    assert_counts(&import(&app, &campaign, "", csv).await, 2, 0);
    app.finish().await;
}

#[tokio::test]
async fn file_over_byte_limit_413() {
    let csv = file_of_size(201);
    assert_eq!(csv.len(), 201, "fixture size");
    expect_file_problem(small_limits(), "", csv, 413, "file_too_large").await;
}

#[tokio::test]
async fn much_larger_file_413() {
    let csv = file_of_size(1000);
    expect_file_problem(small_limits(), "", csv, 413, "file_too_large").await;
}

#[tokio::test]
async fn rows_at_limit_accepted() {
    let app = TestApp::spawn_with(small_limits()).await;
    let campaign = app.create_campaign(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "",
        "to_number\n0491570006\n0491570156\n\n0491570157\n",
    )
    .await;
    assert_counts(&reply, 3, 0);
    app.finish().await;
}

#[tokio::test]
async fn too_many_rows_fails_file() {
    let csv = "to_number\n0491570006\n0491570156\n0491570157\n0491570158\n";
    expect_file_problem(small_limits(), "", csv, 422, "too_many_rows").await;
}

// ---------------------------------------------------------------------------
// Input forms
// ---------------------------------------------------------------------------

#[tokio::test]
async fn bom_and_crlf_accepted() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "\u{feff}to_number,contact_ref\r\n0491 570 006,Zoë\r\n0491 57O 313,A-2\r\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 1);
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        2,
        3,
        "to_number",
    );
    let contact = &contacts(&app, &campaign).await[0];
    assert_eq!(
        contact["contact_ref"], "Zoë",
        "contact_ref without a carriage return"
    );
    assert_eq!(
        contact["masked_number"], "+61 ******006",
        "number read past the byte order mark"
    );
    app.finish().await;
}

#[tokio::test]
async fn crlf_lines_point_to_record() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,contact_ref\r\n0491 570 006,A-1\r\n0491 57O 313,A-2\r\n0491 570 156,\"one\r\ntwo\"\r\n0491 57O 737,A-4\r\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 2, 2);
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        2,
        3,
        "to_number",
    );
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        4,
        6,
        "to_number",
    );
    app.finish().await;
}

#[tokio::test]
async fn utf16le_with_bom_accepted() {
    let (app, campaign) = setup(json!({})).await;
    let text = "to_number,contact_ref\r\n0491 570 006,Zoë\r\n0491 570 156,Seán\r\n";
    let bytes: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let reply = import(&app, &campaign, "", bytes).await;
    assert_counts(&reply, 2, 0);
    let list = contacts(&app, &campaign).await;
    assert_eq!(list[0]["contact_ref"], "Zoë", "first contact_ref");
    assert_eq!(list[1]["contact_ref"], "Seán", "second contact_ref");
    app.finish().await;
}

#[tokio::test]
async fn windows_1252_query_accepted() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "?encoding=windows-1252",
        b"to_number,contact_ref,first_name\n0491 570 006,Zo\xEB,Zo\xEB\n".to_vec(),
    )
    .await;
    assert_counts(&reply, 1, 0);
    assert_eq!(
        contacts(&app, &campaign).await[0]["contact_ref"],
        "Zoë",
        "0xEB is read as ë"
    );
    app.finish().await;
}

#[tokio::test]
async fn windows_1252_charset_accepted() {
    let (app, campaign) = setup(json!({})).await;
    let path = format!("/v1/campaigns/{campaign}/imports");
    let reply = send(
        &app,
        &path,
        "text/csv; charset=windows-1252",
        b"to_number,contact_ref\n0491 570 006,Zo\xEB\n".to_vec(),
        None,
    )
    .await;
    assert_counts(&reply, 1, 0);
    assert_eq!(
        contacts(&app, &campaign).await[0]["contact_ref"],
        "Zoë",
        "0xEB is read as ë"
    );
    app.finish().await;
}

#[tokio::test]
async fn semicolon_delimiter_accepted() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "",
        "to_number;contact_ref;first_name\n0491 570 006;A,1;Noah\n0491 57O 313;A-2;Leo\n",
    )
    .await;
    assert_counts(&reply, 1, 1);
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        2,
        3,
        "to_number",
    );
    assert_eq!(
        contacts(&app, &campaign).await[0]["contact_ref"],
        "A,1",
        "a comma is data under ';'"
    );
    app.finish().await;
}

#[tokio::test]
async fn blank_lines_before_header_skipped() {
    // A blank first line used to hide the semicolons of the header, which
    // was then read as one column named "to_number;contact_ref".
    let (app, campaign) = setup(json!({})).await;
    let csv = "\u{feff}\r\n;;\r\nto_number;contact_ref\r\n0491 570 006;A,1\r\n0491 570 15;B\r\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 1);
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        2,
        5,
        "to_number",
    );
    assert_eq!(contacts(&app, &campaign).await[0]["contact_ref"], "A,1");
    app.finish().await;
}

#[tokio::test]
async fn tab_delimiter_accepted() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "",
        "to_number\tcontact_ref\tfirst_name\n0491 570 006\tA;1\tNoah\n0491 570 156\tA-2\tLeo\n",
    )
    .await;
    assert_counts(&reply, 2, 0);
    assert_eq!(
        contacts(&app, &campaign).await[0]["contact_ref"],
        "A;1",
        "a semicolon is data under tab"
    );
    app.finish().await;
}

#[tokio::test]
async fn quoted_fields_keep_their_text() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,contact_ref\n\"0491 570 006\",\"Smith, \"\"Jr\"\"\"\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 0);
    assert_eq!(
        contacts(&app, &campaign).await[0]["contact_ref"],
        "Smith, \"Jr\"",
        "comma and quotes kept"
    );
    app.finish().await;
}

#[tokio::test]
async fn embedded_newlines_keep_line_numbers() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,contact_ref\n\
               0491 570 006,\"first\nsecond\nthird\"\n\
               0491 57O 313,A-2\n\
               0491 570 156,\"one\ntwo\"\n\
               0491 57O 737,A-4\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 2, 2);
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        2,
        5,
        "to_number",
    );
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        4,
        8,
        "to_number",
    );
    assert_eq!(
        contacts(&app, &campaign).await[0]["contact_ref"],
        "first\nsecond\nthird",
        "newlines kept"
    );
    app.finish().await;
}

#[tokio::test]
async fn multiline_record_error_points_start() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,contact_ref\n0491 570 006,A-1\n0491 57O 313,\"one\ntwo\"\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 1);
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        2,
        3,
        "to_number",
    );
    app.finish().await;
}

#[tokio::test]
async fn empty_records_not_counted() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,contact_ref\n,\n0491 570 006,A-1\n\n , \n0491 57O 313,A-2\n,\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 1);
    assert_eq!(reply.body["rows_total"], 2, "empty records are not rows");
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        2,
        6,
        "to_number",
    );
    assert_eq!(
        contacts(&app, &campaign).await[0]["row"],
        1,
        "the first real record is row 1"
    );
    app.finish().await;
}

#[tokio::test]
async fn headers_match_loosely() {
    let (app, campaign) = setup(json!({})).await;
    let csv = " To Number ,CONTACT-REF,First Name,Registry Status,registry-checked-at,MAX_ATTEMPTS\n0491 570 006,A-1,Noah,N,2026-01-10,2\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 0);
    assert_eq!(reply.body["dropped_columns"], json!([]), "nothing dropped");
    let contact = &contacts(&app, &campaign).await[0];
    assert_eq!(contact["contact_ref"], "A-1", "contact_ref read");
    assert_eq!(
        contact["registry_status"], "not_registered",
        "registry_status read"
    );
    assert_eq!(contact["max_attempts"], 2, "max_attempts read");
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Idempotency-Key
// ---------------------------------------------------------------------------

#[tokio::test]
async fn same_key_replays_import() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number\n0491 570 006\n0491 570 156\n";
    let first = import_with_key(&app, &campaign, "import-1", csv).await;
    assert_counts(&first, 2, 0);
    let second = import_with_key(&app, &campaign, "import-1", csv).await;
    assert_eq!(second.status, 201, "replay status: {}", second.text);
    assert_eq!(
        second.body["import_id"], first.body["import_id"],
        "replay returns the same import_id"
    );
    assert_eq!(
        second.body["rows_accepted"], 2,
        "replay returns the first counts"
    );
    assert_eq!(
        contacts(&app, &campaign).await.len(),
        2,
        "replay imports nothing again"
    );
    app.finish().await;
}

#[tokio::test]
async fn same_key_other_body_422() {
    let (app, campaign) = setup(json!({})).await;
    assert_counts(
        &import_with_key(&app, &campaign, "import-1", "to_number\n0491 570 006\n").await,
        1,
        0,
    );
    let reply = import_with_key(&app, &campaign, "import-1", "to_number\n0491 570 156\n").await;
    assert_problem(&reply, 422, "idempotency_key_reused");
    assert_eq!(
        contacts(&app, &campaign).await.len(),
        1,
        "the second body is not imported"
    );
    app.finish().await;
}

#[tokio::test]
async fn same_key_other_charset_422() {
    let (app, campaign) = setup(json!({})).await;
    let path = format!("/v1/campaigns/{campaign}/imports");
    let bytes = b"to_number,contact_ref\n0491 570 006,Zo\xC3\xAB\n".to_vec();
    let first = send(
        &app,
        &path,
        "text/csv; charset=windows-1252",
        bytes.clone(),
        Some("import-1"),
    )
    .await;
    assert_counts(&first, 1, 0);
    let second = send(
        &app,
        &path,
        "text/csv; charset=utf-8",
        bytes,
        Some("import-1"),
    )
    .await;
    assert_problem(&second, 422, "idempotency_key_reused");
    app.finish().await;
}

#[tokio::test]
async fn reupload_without_key_adds_nothing() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number\n0491 570 006\n0491 570 156\n";
    let first = import(&app, &campaign, "", csv).await;
    assert_counts(&first, 2, 0);
    let second = import(&app, &campaign, "", csv).await;
    assert_counts(&second, 0, 2);
    assert_ne!(
        second.body["import_id"], first.body["import_id"],
        "a new import is recorded"
    );
    assert_issue(
        &second.body["errors"],
        "duplicate_to_number",
        1,
        2,
        "to_number",
    );
    assert_issue(
        &second.body["errors"],
        "duplicate_to_number",
        2,
        3,
        "to_number",
    );
    assert_eq!(contacts(&app, &campaign).await.len(), 2, "no contact added");
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Campaign state
// ---------------------------------------------------------------------------

/// Imports one washed contact and launches the campaign.
async fn launch(app: &TestApp, campaign: &str) {
    assert_counts(
        &import(app, campaign, "", "to_number\n0491 570 006\n").await,
        1,
        0,
    );
    let washed = wash(
        app,
        campaign,
        "wash_reference=W-1",
        "number,result\n0491 570 006,N\n",
    )
    .await;
    assert_eq!(washed.status, 201, "wash: {}", washed.text);
    let (status, body) = app
        .post(
            &format!("/v1/campaigns/{campaign}/launch"),
            &app.admin(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "launch: {body}");
}

#[tokio::test]
async fn running_campaign_refuses_import() {
    let (app, campaign) = setup(json!({})).await;
    launch(&app, &campaign).await;
    let reply = import(&app, &campaign, "", "to_number\n0491 570 156\n").await;
    assert_problem(&reply, 409, "campaign_not_editable");
    assert_eq!(contacts(&app, &campaign).await.len(), 1, "nothing added");
    app.finish().await;
}

#[tokio::test]
async fn launch_leaves_other_campaigns_writable() {
    // A statement with a generic plan locks every partition of contacts on
    // PostgreSQL 15, so a launch that held a SHARE lock on its campaign's
    // partition (an index build, say) would hold up writes to every campaign.
    let (app, campaign) = setup(json!({})).await;
    let other = app.create_campaign(json!({})).await;
    assert_counts(
        &import(&app, &other, "", "to_number\n0491 570 156\n").await,
        1,
        0,
    );
    assert_counts(
        &import(&app, &campaign, "", "to_number\n0491 570 006\n").await,
        1,
        0,
    );
    let washed = wash(
        &app,
        &campaign,
        "wash_reference=W-1",
        "number,result\n0491 570 006,N\n",
    )
    .await;
    assert_eq!(washed.status, 201, "wash: {}", washed.text);

    // The launch writes its audit entry last, so a lock on audit_log keeps
    // its transaction open with everything else done.
    let mut holder = app.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE audit_log IN SHARE MODE")
        .execute(&mut *holder)
        .await
        .expect("lock audit_log");
    let admin = app.admin();
    let path = format!("/v1/campaigns/{campaign}/launch");
    let launch = app.post(&path, &admin, json!({}));
    let probe = async {
        let mut launch_waiting = false;
        for _ in 0..200 {
            launch_waiting = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_locks
                                 WHERE relation = 'audit_log'::regclass AND NOT granted)",
            )
            .fetch_one(&app.pool)
            .await
            .expect("lock lookup");
            if launch_waiting {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }

        let mut writer = app.pool.acquire().await.expect("connection");
        for setting in [
            "SET plan_cache_mode = force_generic_plan",
            "SET lock_timeout = '2s'",
        ] {
            sqlx::query(setting)
                .execute(&mut *writer)
                .await
                .expect("setting");
        }
        let written =
            sqlx::query("UPDATE contacts SET updated_at = updated_at WHERE campaign_id = $1::uuid")
                .bind(&other)
                .execute(&mut *writer)
                .await
                .map(|done| done.rows_affected());
        sqlx::query("RESET ALL")
            .execute(&mut *writer)
            .await
            .expect("reset");
        holder.rollback().await.expect("release audit_log");
        (launch_waiting, written)
    };
    let ((status, body), (launch_waiting, written)) = tokio::join!(launch, probe);

    assert!(launch_waiting, "the launch reached its audit entry");
    assert_eq!(status, 200, "launch: {body}");
    assert_eq!(
        written.expect("a write to another campaign during a launch does not wait"),
        1,
        "the other campaign's contact is written"
    );
    app.finish().await;
}

#[tokio::test]
async fn paused_campaign_accepts_import() {
    let (app, campaign) = setup(json!({})).await;
    launch(&app, &campaign).await;
    let (status, body) = app
        .post(
            &format!("/v1/campaigns/{campaign}/pause"),
            &app.admin(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "pause: {body}");
    assert_counts(
        &import(&app, &campaign, "", "to_number\n0491 570 156\n").await,
        1,
        0,
    );
    app.finish().await;
}

#[tokio::test]
async fn cancelled_campaign_refuses_import() {
    let (app, campaign) = setup(json!({})).await;
    let (status, body) = app
        .post(
            &format!("/v1/campaigns/{campaign}/cancel"),
            &app.admin(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "cancel: {body}");
    let reply = import(&app, &campaign, "", "to_number\n0491 570 156\n").await;
    assert_problem(&reply, 409, "campaign_not_editable");
    assert!(contacts(&app, &campaign).await.is_empty(), "nothing added");
    app.finish().await;
}

#[tokio::test]
async fn cancelled_campaign_refuses_wash() {
    let (app, campaign) = setup(json!({})).await;
    let (status, body) = app
        .post(
            &format!("/v1/campaigns/{campaign}/cancel"),
            &app.admin(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "cancel: {body}");
    let reply = wash(
        &app,
        &campaign,
        "wash_reference=W-1",
        "number,result\n0491 570 006,N\n",
    )
    .await;
    assert_problem(&reply, 409, "campaign_not_editable");
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Personalisation keys
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unapproved_personalisation_key_fails() {
    let (app, campaign) = setup(json!({ "personalisation_keys": [] })).await;
    let reply = import(
        &app,
        &campaign,
        "",
        "to_number,first_name\n0491 570 006,Noah\n",
    )
    .await;
    assert_problem(&reply, 422, "unknown_column");
    assert!(
        contacts(&app, &campaign).await.is_empty(),
        "nothing imported"
    );
    app.finish().await;
}

#[tokio::test]
async fn approved_personalisation_key_accepted() {
    let (app, campaign) =
        setup(json!({ "personalisation_keys": ["first_name", "plan_name"] })).await;
    let reply = import(
        &app,
        &campaign,
        "",
        "to_number,FIRST NAME,Plan-Name\n0491 570 006,Noah,Gold\n",
    )
    .await;
    assert_counts(&reply, 1, 0);
    assert_eq!(
        reply.body["dropped_columns"],
        json!([]),
        "no column dropped"
    );
    app.finish().await;
}

// ---------------------------------------------------------------------------
// No echo of numbers or personalisation values
// ---------------------------------------------------------------------------

#[tokio::test]
async fn headerless_file_hides_number() {
    let reply = expect_file_problem(
        Options::default(),
        "",
        "0491570006,Noah\n0491 570 156,Leo\n",
        422,
        "missing_required_column",
    )
    .await;
    assert!(
        !reply.text.contains("491570006"),
        "the problem repeats the number: {}",
        reply.text
    );
    assert!(
        !reply.text.contains("Noah"),
        "the problem repeats a personalisation value: {}",
        reply.text
    );
}

#[tokio::test]
async fn responses_never_echo_numbers_or_values() {
    let (app, campaign) = setup(json!({})).await;
    let long_value = "Wilhelmina".repeat(103);
    let csv = format!(
        "to_number,first_name\n\
         0491 570 006,Bartholomew\n\
         0491 57O 313,Maximilian\n\
         4.91571E+08,Theodora\n\
         0491 570 1566,Cornelius\n\
         0491 570 737,{long_value}\n\
         +61 491 570 006,Augustina\n"
    );
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 5);

    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let (status, issues) = get_text(
        &app,
        &format!("/v1/campaigns/{campaign}/imports/{import_id}/issues?limit=500"),
    )
    .await;
    assert_eq!(status, 200, "issues page: {issues}");
    let (status, fetched) = get_text(
        &app,
        &format!("/v1/campaigns/{campaign}/imports/{import_id}"),
    )
    .await;
    assert_eq!(status, 200, "import fetched: {fetched}");
    let (status, listed) = get_text(
        &app,
        &format!("/v1/campaigns/{campaign}/contacts?limit=500"),
    )
    .await;
    assert_eq!(status, 200, "contacts list: {listed}");

    let secrets = [
        "0491 570 006",
        "491570006",
        "491 570 006",
        "57O 313",
        "4.91571E+08",
        "4.91571",
        "0491 570 1566",
        "4915701566",
        "0491 570 737",
        "491570737",
        "Bartholomew",
        "Maximilian",
        "Theodora",
        "Cornelius",
        "Wilhelmina",
        "Augustina",
    ];
    for (name, text) in [
        ("import response", &reply.text),
        ("issues page", &issues),
        ("import fetched", &fetched),
        ("contacts list", &listed),
    ] {
        for secret in secrets {
            assert!(!text.contains(secret), "{name} contains {secret:?}");
        }
    }

    let list: Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(
        list["items"][0]["masked_number"], "+61 ******006",
        "masked number"
    );
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Fetching an import and paging its issues
// ---------------------------------------------------------------------------

#[tokio::test]
async fn import_can_be_fetched_again() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "?drop_unknown_columns=true",
        "to_number,nickname\n0491 570 006,N\n491570156,L\n0491 57O 313,M\n",
    )
    .await;
    assert_counts(&reply, 2, 1);
    let import_id = reply.body["import_id"].as_str().expect("import id");
    let (status, fetched) = app
        .get(
            &format!("/v1/campaigns/{campaign}/imports/{import_id}"),
            &app.admin(),
        )
        .await;
    assert_eq!(status, 200, "fetch: {fetched}");
    for field in [
        "import_id",
        "campaign_id",
        "rows_total",
        "rows_accepted",
        "rows_rejected",
        "rows_with_warnings",
        "dropped_columns",
        "file_sha256",
        "errors",
        "warnings",
    ] {
        assert_eq!(fetched[field], reply.body[field], "field {field} differs");
    }
    assert_eq!(fetched["state"], "completed", "state");
    let contacts = contacts(&app, &campaign).await;
    assert!(
        contacts.iter().all(|c| c["import_id"] == import_id),
        "contacts name their import"
    );
    app.finish().await;
}

#[tokio::test]
async fn unknown_import_is_404() {
    let (app, campaign) = setup(json!({})).await;
    let (status, body) = app
        .get(
            &format!("/v1/campaigns/{campaign}/imports/{}", uuid::Uuid::new_v4()),
            &app.admin(),
        )
        .await;
    assert_eq!(status, 404, "unknown import: {body}");
    assert_eq!(body["code"], "not_found", "code");
    app.finish().await;
}

#[tokio::test]
async fn issues_page_through_all() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,priority\n0491 570 006,1\n0491 57O 313,2\n491570156,3\n0491 570 15,high\n0491570157.0,4\n,5\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 3, 3);

    let import_id = reply.body["import_id"].as_str().expect("import id");
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("?limit=2&cursor={cursor}"),
            None => "?limit=2".to_owned(),
        };
        let (status, page) = app
            .get(
                &format!("/v1/campaigns/{campaign}/imports/{import_id}/issues{query}"),
                &app.admin(),
            )
            .await;
        assert_eq!(status, 200, "issues page: {page}");
        let batch = page["items"].as_array().cloned().unwrap_or_default();
        assert!(batch.len() <= 2, "page size is at most the limit");
        items.extend(batch);
        pages += 1;
        assert!(pages < 10, "paging should end");
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }

    let summary: Vec<(String, i64, String)> = items
        .iter()
        .map(|i| {
            (
                i["severity"].as_str().unwrap_or("").to_owned(),
                i["row"].as_i64().unwrap_or(0),
                i["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, i64, String)> = [
        ("error", 2, "invalid_to_number"),
        ("warning", 3, "trunk_zero_restored"),
        ("error", 4, "invalid_to_number"),
        ("error", 4, "invalid_priority"),
        ("warning", 5, "trailing_decimal_removed"),
        ("error", 6, "missing_to_number"),
    ]
    .into_iter()
    .map(|(s, r, c)| (s.to_owned(), r, c.to_owned()))
    .collect();
    assert_eq!(summary, expected, "every issue once, in row order");
    assert_eq!(pages, 3, "six issues in pages of two");
    assert!(
        items
            .iter()
            .all(|i| i["line"] == i["row"].as_i64().unwrap_or(0) + 1),
        "line is row + 1 in a file without multiline records"
    );
    app.finish().await;
}

#[tokio::test]
async fn bad_issue_cursor_is_400() {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(&app, &campaign, "", "to_number\n0491 57O 313\n").await;
    let import_id = reply.body["import_id"].as_str().expect("import id");
    let (status, body) = app
        .get(
            &format!("/v1/campaigns/{campaign}/imports/{import_id}/issues?cursor=not-a-cursor"),
            &app.admin(),
        )
        .await;
    assert_eq!(status, 400, "bad cursor: {body}");
    assert_eq!(body["code"], "invalid_cursor", "code");
    app.finish().await;
}

#[tokio::test]
async fn import_digest_matches_bytes() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,contact_ref\r\n0491 570 006,A-1\r\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 0);
    assert_eq!(
        reply.body["file_sha256"],
        sha256_hex(&app, csv.as_bytes()).await,
        "digest of the bytes sent"
    );
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Wash result files
// ---------------------------------------------------------------------------

/// Starts a fresh server with a campaign of five contacts: 0491 570 006 and
/// 0491 570 156–159.
async fn washable() -> (TestApp, String) {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(
        &app,
        &campaign,
        "",
        "to_number\n0491 570 006\n0491 570 156\n0491 570 157\n0491 570 158\n0491 570 159\n",
    )
    .await;
    assert_counts(&reply, 5, 0);
    (app, campaign)
}

const WASH_FILE: &str = "number,result\n\
                         0491 570 006,Y\n\
                         +61491570156,N\n\
                         0491570157,I\n\
                         0491 570 158,registered\n\
                         +61 491 570 159,not registered\n\
                         0491 570 110,N\n";

/// Returns the time one day ago, truncated to whole seconds.
fn yesterday() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now() - chrono::Duration::days(1);
    chrono::DateTime::from_timestamp(now.timestamp(), 0).expect("whole seconds")
}

#[tokio::test]
async fn wash_counts_codes_and_words() {
    let (app, campaign) = washable().await;
    let reply = wash(&app, &campaign, "wash_reference=W-2026-01", WASH_FILE).await;
    assert_eq!(reply.status, 201, "wash: {}", reply.text);
    let body = &reply.body;
    assert_eq!(body["rows_total"], 6, "rows_total");
    assert_eq!(body["registered"], 2, "registered");
    assert_eq!(body["not_registered"], 3, "not_registered");
    assert_eq!(body["invalid"], 1, "invalid");
    assert_eq!(body["contacts_matched"], 5, "contacts_matched");
    assert_eq!(body["numbers_unmatched"], 1, "numbers_unmatched");
    assert_eq!(body["rows_rejected"], 0, "rows_rejected");
    assert_eq!(body["wash_reference"], "W-2026-01", "wash_reference");
    assert_eq!(body["register"], "AU_DNCR", "register");
    app.finish().await;
}

#[tokio::test]
async fn wash_sets_contact_registry_status() {
    let (app, campaign) = washable().await;
    let received = yesterday();
    let query = format!(
        "wash_reference=W-2026-01&received_at={}",
        received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let reply = wash(&app, &campaign, &query, WASH_FILE).await;
    assert_eq!(reply.status, 201, "wash: {}", reply.text);
    let returned: chrono::DateTime<chrono::Utc> = reply.body["received_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("received_at");
    assert_eq!(returned, received, "received_at echoed");
    let list = contacts(&app, &campaign).await;
    let statuses: Vec<&str> = list
        .iter()
        .map(|c| c["registry_status"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(
        statuses,
        [
            "registered",
            "not_registered",
            "invalid",
            "registered",
            "not_registered"
        ],
        "statuses by row"
    );
    for contact in &list {
        let checked: Option<chrono::DateTime<chrono::Utc>> = contact["registry_checked_at"]
            .as_str()
            .and_then(|t| t.parse().ok());
        assert_eq!(
            checked,
            Some(received),
            "registry_checked_at of row {}",
            contact["row"]
        );
        assert_eq!(
            contact["registry_evidence"], "W-2026-01",
            "registry_evidence of row {}",
            contact["row"]
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn wash_digest_matches_bytes() {
    let (app, campaign) = washable().await;
    let reply = wash(&app, &campaign, "wash_reference=W-1", WASH_FILE).await;
    assert_eq!(reply.status, 201, "wash: {}", reply.text);
    assert_eq!(
        reply.body["file_sha256"],
        sha256_hex(&app, WASH_FILE.as_bytes()).await,
        "digest of the bytes sent"
    );
    app.finish().await;
}

#[tokio::test]
async fn wash_bad_rows_hide_number() {
    let (app, campaign) = washable().await;
    let csv =
        "number,result\n0491 570 006,N\n0491 57O 313,N\n0491 570 737,maybe\n0491 570 1566,Y\n";
    let reply = wash(&app, &campaign, "wash_reference=W-1", csv).await;
    assert_eq!(reply.status, 201, "wash: {}", reply.text);
    assert_eq!(reply.body["rows_total"], 4, "rows_total");
    assert_eq!(reply.body["rows_rejected"], 3, "rows_rejected");
    assert_eq!(reply.body["contacts_matched"], 1, "contacts_matched");
    let errors = &reply.body["errors"];
    assert_issue(errors, "invalid_to_number", 2, 3, "number");
    assert_issue(errors, "invalid_registry_status", 3, 4, "result");
    assert_issue(errors, "invalid_to_number", 4, 5, "number");
    for secret in [
        "57O 313",
        "0491 570 737",
        "491570737",
        "0491 570 1566",
        "4915701566",
        "maybe",
    ] {
        assert!(
            !reply.text.contains(secret),
            "wash response contains {secret:?}"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn future_received_at_rejected() {
    let (app, campaign) = washable().await;
    let future = (chrono::Utc::now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let reply = wash(
        &app,
        &campaign,
        &format!("wash_reference=W-1&received_at={future}"),
        WASH_FILE,
    )
    .await;
    assert_problem(&reply, 422, "invalid_date");
    let list = contacts(&app, &campaign).await;
    assert!(
        list.iter().all(|c| c["registry_status"].is_null()),
        "no registry status set"
    );
    app.finish().await;
}

#[tokio::test]
async fn wash_iso_date_received_at_accepted() {
    let (app, campaign) = washable().await;
    let date = yesterday().format("%Y-%m-%d").to_string();
    let reply = wash(
        &app,
        &campaign,
        &format!("wash_reference=W-1&received_at={date}"),
        WASH_FILE,
    )
    .await;
    assert_eq!(reply.status, 201, "wash with an ISO date: {}", reply.text);
    assert_eq!(reply.body["contacts_matched"], 5, "contacts_matched");
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Line numbers and declared character sets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn cr_only_lines_point_to_record() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,contact_ref\r0491 570 006,A-1\r0491 57O 313,A-2\r0491 570 156,\"one\rtwo\"\r0491 57O 737,A-4";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 2, 2);
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        2,
        3,
        "to_number",
    );
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        4,
        6,
        "to_number",
    );
    app.finish().await;
}

#[tokio::test]
async fn charset_parameter_matches_in_any_case() {
    let (app, campaign) = setup(json!({})).await;
    let reply = send(
        &app,
        &format!("/v1/campaigns/{campaign}/imports"),
        "text/csv; Charset=\"Windows-1252\"",
        b"to_number,contact_ref\n0491 570 006,Zo\xEB\n".to_vec(),
        None,
    )
    .await;
    assert_counts(&reply, 1, 0);
    assert_eq!(
        contacts(&app, &campaign).await[0]["contact_ref"],
        "Zoë",
        "decoded as windows-1252"
    );
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Length limits of free-text columns
// ---------------------------------------------------------------------------

/// Imports one row with `value` in `column` and returns the reply and the
/// rejected-rows CSV.
async fn import_free_text(column: &str, value: &str) -> (Reply, String) {
    let (app, campaign) = setup(json!({})).await;
    let csv = format!("to_number,{column}\n0491 570 006,{value}\n");
    let reply = import(&app, &campaign, "", csv).await;
    let import_id = reply.body["import_id"].as_str().unwrap_or("").to_owned();
    let (_, rejected) = get_text(
        &app,
        &format!("/v1/campaigns/{campaign}/imports/{import_id}/rejected.csv"),
    )
    .await;
    app.finish().await;
    (reply, rejected)
}

#[tokio::test]
async fn long_registry_evidence_rejected() {
    let value = "W".repeat(201);
    let (reply, rejected) = import_free_text("registry_evidence", &value).await;
    assert_counts(&reply, 0, 1);
    assert_issue(
        &reply.body["errors"],
        "value_too_long",
        1,
        2,
        "registry_evidence",
    );
    let message = reply.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("200"), "limit named: {message}");
    assert!(!reply.text.contains("WWWW"), "value echoed: {}", reply.text);
    assert!(!rejected.contains("WWWW"), "value in rejected.csv");

    let (reply, _) = import_free_text("registry_evidence", &"W".repeat(200)).await;
    assert_counts(&reply, 1, 0);
}

#[tokio::test]
async fn long_consent_evidence_rejected() {
    let value = "C".repeat(501);
    let (app, campaign) = setup(json!({})).await;
    let csv = format!(
        "to_number,consent_type,consent_given_at,consent_evidence\n0491 570 006,express,2026-10-01,{value}\n0491 570 156,express,2026-10-01,{}\n",
        "C".repeat(500)
    );
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 1);
    assert_issue(
        &reply.body["errors"],
        "value_too_long",
        1,
        2,
        "consent_evidence",
    );
    let message = reply.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("500"), "limit named: {message}");
    assert!(!reply.text.contains("CCCC"), "value echoed: {}", reply.text);
    app.finish().await;
}

#[tokio::test]
async fn phone_number_in_contact_ref_rejected() {
    let (reply, rejected) = import_free_text("contact_ref", "+61 491 570 006").await;
    assert_counts(&reply, 0, 1);
    assert_issue(
        &reply.body["errors"],
        "value_is_phone_number",
        1,
        2,
        "contact_ref",
    );
    for text in [&reply.text, &rejected] {
        assert!(!text.contains("491 570 006"), "number echoed: {text}");
    }
    // A nine-digit or six-digit reference is not taken for a number.
    let (reply, _) = import_free_text("contact_ref", "412345678").await;
    assert_counts(&reply, 1, 0);
}

#[tokio::test]
async fn phone_number_inside_free_text_rejected() {
    // Numbers among other words used to be stored and shown unmasked in the
    // contacts list, the export and rejected.csv.
    for (column, value, number) in [
        ("contact_ref", "CUST 0491 570 157", "0491 570 157"),
        ("registry_evidence", "ref 0491570159", "0491570159"),
        ("consent_evidence", "rec 0491-570-158", "0491-570-158"),
    ] {
        let (reply, rejected) = import_free_text(column, value).await;
        assert_counts(&reply, 0, 1);
        assert_issue(&reply.body["errors"], "value_is_phone_number", 1, 2, column);
        for text in [&reply.text, &rejected] {
            assert!(!text.contains(number), "{column}: number shown: {text}");
        }
    }
    let (reply, _) = import_free_text("contact_ref", "INV-2026-000123").await;
    assert_counts(&reply, 1, 0);
    // A date and an hour are not a landline.
    let (reply, _) = import_free_text("contact_ref", "Created 08/11/2026 09:12").await;
    assert_counts(&reply, 1, 0);
}

// ---------------------------------------------------------------------------
// Conflicting results in one wash file
// ---------------------------------------------------------------------------

/// Returns each contact's registry status, in row order.
async fn statuses(app: &TestApp, campaign: &str) -> Vec<String> {
    contacts(app, campaign)
        .await
        .iter()
        .map(|c| c["registry_status"].as_str().unwrap_or("none").to_owned())
        .collect()
}

#[tokio::test]
async fn wash_conflict_registered_later_wins() {
    let (app, campaign) = washable().await;
    let csv = "number,result\n0491 570 006,N\n0491 570 156,N\n+61 491 570 006,Y\n";
    let reply = wash(&app, &campaign, "wash_reference=W-1", csv).await;
    assert_eq!(reply.status, 201, "wash: {}", reply.text);
    assert_issue(
        &reply.body["errors"],
        "conflicting_wash_result",
        3,
        4,
        "result",
    );
    let message = reply.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("row 1"), "names the first row: {message}");
    assert_eq!(reply.body["rows_conflicting"], 1, "rows_conflicting");
    assert_eq!(reply.body["registered"], 1, "registered");
    assert_eq!(reply.body["not_registered"], 1, "not_registered");
    assert_eq!(reply.body["contacts_matched"], 2, "contacts_matched");
    assert_eq!(
        statuses(&app, &campaign).await[..2],
        ["registered", "not_registered"],
        "statuses"
    );
    app.finish().await;
}

#[tokio::test]
async fn wash_conflict_registered_first_kept() {
    let (app, campaign) = washable().await;
    let csv =
        "number,result\n0491570006,registered\n0491 570 157,N\n(0491) 570-006,not registered\n";
    let reply = wash(&app, &campaign, "wash_reference=W-1", csv).await;
    assert_eq!(reply.status, 201, "wash: {}", reply.text);
    assert_issue(
        &reply.body["errors"],
        "conflicting_wash_result",
        3,
        4,
        "result",
    );
    assert_eq!(reply.body["registered"], 1, "registered");
    assert_eq!(reply.body["not_registered"], 1, "not_registered");
    assert_eq!(statuses(&app, &campaign).await[0], "registered", "row 1");
    assert!(!reply.text.contains("570-006"), "number echoed");
    app.finish().await;
}

#[tokio::test]
async fn wash_conflict_invalid_beats_not_registered() {
    let (app, campaign) = washable().await;
    let csv = "number,result\n0491 570 158,N\n0491 570 158,I\n0491 570 158,N\n";
    let reply = wash(&app, &campaign, "wash_reference=W-1", csv).await;
    assert_eq!(reply.status, 201, "wash: {}", reply.text);
    assert_eq!(reply.body["rows_conflicting"], 2, "rows_conflicting");
    assert_issue(
        &reply.body["errors"],
        "conflicting_wash_result",
        2,
        3,
        "result",
    );
    assert_issue(
        &reply.body["errors"],
        "conflicting_wash_result",
        3,
        4,
        "result",
    );
    assert_eq!(reply.body["invalid"], 1, "invalid");
    assert_eq!(reply.body["not_registered"], 0, "not_registered");
    assert_eq!(statuses(&app, &campaign).await[3], "invalid", "row 4");
    app.finish().await;
}

#[tokio::test]
async fn wash_conflict_across_batches_registered() {
    let (app, campaign) = washable().await;
    let mut csv = String::from("number,result\n0491 570 159,N\n");
    for index in 0..10_000 {
        csv.push_str(&format!("02 5550 {index:04},N\n"));
    }
    csv.push_str("0491570159,Y\n");
    let reply = wash(&app, &campaign, "wash_reference=W-1", &csv).await;
    assert_eq!(reply.status, 201, "wash: {}", reply.text);
    assert_issue(
        &reply.body["errors"],
        "conflicting_wash_result",
        10_002,
        10_003,
        "result",
    );
    assert_eq!(reply.body["contacts_matched"], 1, "counted once");
    assert_eq!(reply.body["registered"], 1, "registered");
    assert_eq!(statuses(&app, &campaign).await[4], "registered", "row 5");
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Faults seen in real CSV importers
// ---------------------------------------------------------------------------

/// Imports `csv` into a fresh campaign, expects `accepted` rows and returns
/// the stored contacts' masked numbers with the reply.
async fn import_expecting(
    csv: impl Into<Vec<u8>>,
    accepted: i64,
    rejected: i64,
) -> (Reply, Vec<Value>) {
    let (app, campaign) = setup(json!({})).await;
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, accepted, rejected);
    let list = contacts(&app, &campaign).await;
    app.finish().await;
    (reply, list)
}

fn masked(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|c| c["masked_number"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn excel_sep_line_sets_delimiter() {
    let csv = "sep=;\r\nto_number;contact_ref\r\n0491 570 006;A,1\r\n0491 57O 313;A,2\r\n";
    let (reply, list) = import_expecting(csv, 1, 1).await;
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        2,
        4,
        "to_number",
    );
    assert_eq!(list[0]["contact_ref"], "A,1", "split on ;");
    assert_eq!(list[0]["row"], 1, "the sep line is not a row");
}

#[tokio::test]
async fn leading_apostrophe_number_accepted() {
    let csv = "to_number\n'0491 570 006\n'+61491570156\n";
    let (reply, list) = import_expecting(csv, 2, 0).await;
    assert_eq!(masked(&list), ["+61 ******006", "+61 ******156"]);
    assert_eq!(reply.body["rows_with_warnings"], 0, "no warning");
}

#[tokio::test]
async fn unicode_spaces_and_full_width_digits_accepted() {
    let csv = "to_number\n\
               0491\u{a0}570\u{a0}006\n\
               0491\u{202f}570\u{202f}156\n\
               \u{ff10}\u{ff14}\u{ff19}\u{ff11}\u{3000}\u{ff15}\u{ff17}\u{ff10}\u{3000}\u{ff11}\u{ff15}\u{ff17}\n\
               \u{202a}+61\u{200b}491\u{200b}570\u{200b}158\u{202c}\n";
    let (_, list) = import_expecting(csv, 4, 0).await;
    assert_eq!(
        masked(&list),
        [
            "+61 ******006",
            "+61 ******156",
            "+61 ******157",
            "+61 ******158"
        ]
    );
}

#[tokio::test]
async fn plus61_bracketed_zero_accepted() {
    let csv = "to_number\n+61 (0)491 570 006\n+61 (0)2 5550 1234\n";
    let (_, list) = import_expecting(csv, 2, 0).await;
    assert_eq!(masked(&list), ["+61 ******006", "+61 ******234"]);
}

#[tokio::test]
async fn tel_prefix_accepted() {
    let csv = "to_number\ntel:+61-491-570-006\nTEL:0491570156\ntel:+61491570157;ext=2\n";
    let (reply, list) = import_expecting(csv, 2, 1).await;
    assert_eq!(masked(&list), ["+61 ******006", "+61 ******156"]);
    assert_issue(
        &reply.body["errors"],
        "invalid_to_number",
        3,
        4,
        "to_number",
    );
}

#[tokio::test]
async fn excel_text_formula_number_accepted() {
    let csv = "to_number,contact_ref\n=\"0491570006\",A-1\n";
    let (_, list) = import_expecting(csv, 1, 0).await;
    assert_eq!(masked(&list), ["+61 ******006"]);
}

#[tokio::test]
async fn trailing_delimiter_on_every_line_accepted() {
    let csv = "to_number,contact_ref,\n0491 570 006,A-1,\n0491 570 156,A-2,\n";
    let (_, list) = import_expecting(csv, 2, 0).await;
    assert_eq!(list[1]["contact_ref"], "A-2");
}

#[tokio::test]
async fn unnamed_column_with_values_is_unknown_column() {
    // A value under a blank header used to be dropped without a word.
    let csv = "to_number,,contact_ref\n0491 570 006,,A-1\n0491 570 156,kept aside,A-2\n";
    let reply = expect_file_problem(Options::default(), "", csv, 422, "unknown_column").await;
    let detail = reply.body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("line 3") && detail.contains("column 2"),
        "names the line and position: {detail}"
    );
    assert!(!detail.contains("kept aside"), "no value echoed: {detail}");
    assert_eq!(reply.body["line"], 3, "{}", reply.text);

    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(json!({})).await;
    let reply = import(&app, &campaign, "?drop_unknown_columns=true", csv).await;
    assert_counts(&reply, 2, 0);
    assert_eq!(
        reply.body["dropped_columns"],
        json!(["(column 2)"]),
        "{}",
        reply.text
    );
    app.finish().await;
}

#[tokio::test]
async fn quoted_header_names_with_spaces_accepted() {
    let csv = "\" To Number \",\"Contact Ref\",\"Recipient\u{a0}Timezone\"\n0491 570 006,A-1,NSW\n";
    let (_, list) = import_expecting(csv, 1, 0).await;
    assert_eq!(list[0]["contact_ref"], "A-1");
}

#[tokio::test]
async fn last_line_without_newline_accepted() {
    let (_, list) = import_expecting(
        "to_number,contact_ref\n0491 570 006,A-1\n0491 570 156,A-2",
        2,
        0,
    )
    .await;
    assert_eq!(list[1]["contact_ref"], "A-2", "no line end kept");
}

#[tokio::test]
async fn nul_byte_fails_file_with_line() {
    let reply = expect_file_problem(
        Options::default(),
        "",
        b"to_number,contact_ref\n0491 570 006,A-1\n0491 570 156,A\x002\n".to_vec(),
        422,
        "malformed_csv",
    )
    .await;
    assert_eq!(reply.body["line"], 3, "line: {}", reply.text);
}

#[tokio::test]
async fn utf16_without_bom_fails_clearly() {
    let bytes: Vec<u8> = "to_number,contact_ref\r\n0491 570 006,A-1\r\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let reply =
        expect_file_problem(Options::default(), "", bytes, 422, "unsupported_encoding").await;
    assert!(
        reply.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("UTF-16")),
        "names UTF-16: {}",
        reply.text
    );
}

#[tokio::test]
async fn bom_inside_number_accepted() {
    let (_, list) = import_expecting("to_number\n\u{feff}0491\u{feff}570006\n", 1, 0).await;
    assert_eq!(masked(&list), ["+61 ******006"]);
}

#[tokio::test]
async fn joined_files_repeat_header_rejected() {
    let csv = "\u{feff}to_number,contact_ref\n0491 570 006,A-1\n\u{feff}to_number,contact_ref\n0491 570 156,A-2\n";
    let (reply, list) = import_expecting(csv, 2, 1).await;
    assert_issue(&reply.body["errors"], "repeated_header", 2, 3, "");
    assert_eq!(list.len(), 2);
}

#[tokio::test]
async fn header_only_file_imports_nothing() {
    let (reply, list) = import_expecting("to_number,contact_ref\r\n", 0, 0).await;
    assert_eq!(reply.body["rows_total"], 0, "rows_total");
    assert!(list.is_empty());
}

#[tokio::test]
async fn blank_lines_only_file_fails() {
    expect_file_problem(
        Options::default(),
        "",
        "\r\n\r\n\n\n",
        422,
        "missing_required_column",
    )
    .await;
}

#[tokio::test]
async fn dos_end_of_file_marker_ignored() {
    let (reply, _) = import_expecting("to_number\r\n0491 570 006\r\n\u{1a}", 1, 0).await;
    assert_eq!(reply.body["rows_total"], 1, "Ctrl-Z is not a row");
}

#[tokio::test]
async fn unquoted_delimiter_shifts_row_rejected() {
    let (app, campaign) = setup(json!({"personalisation_keys": ["first_name"]})).await;
    let csv = "to_number,first_name,contact_ref\n0491 570 006,Noah,A-1\n0491 570 156,Smith, Bartholomew,A-2\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 1);
    assert_issue(&reply.body["errors"], "too_many_fields", 2, 3, "");
    let import_id = reply.body["import_id"].as_str().expect("import id");
    let (status, rejected) = get_text(
        &app,
        &format!("/v1/campaigns/{campaign}/imports/{import_id}/rejected.csv"),
    )
    .await;
    assert_eq!(status, 200, "rejected.csv: {rejected}");
    assert!(
        !rejected.contains("Bartholomew"),
        "a shifted personalisation value is not shown: {rejected}"
    );
    app.finish().await;
}

#[tokio::test]
async fn shifted_number_not_in_rejected_csv() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "contact_ref,to_number,priority\n0491 570 156,0491 57O 313,5\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 0, 1);
    let import_id = reply.body["import_id"].as_str().expect("import id");
    let (_, rejected) = get_text(
        &app,
        &format!("/v1/campaigns/{campaign}/imports/{import_id}/rejected.csv"),
    )
    .await;
    assert!(!rejected.contains("570 156"), "number shown: {rejected}");
    assert!(rejected.contains("value_is_phone_number"), "{rejected}");
    app.finish().await;
}

#[tokio::test]
async fn full_width_number_header_not_echoed() {
    let reply = expect_file_problem(
        Options::default(),
        "",
        "\u{ff10}\u{ff14}\u{ff19}\u{ff11}\u{ff15}\u{ff17}\u{ff10}\u{ff10}\u{ff10}\u{ff16},Noah\n",
        422,
        "missing_required_column",
    )
    .await;
    assert!(!reply.text.contains('\u{ff10}'), "{}", reply.text);
}

#[tokio::test]
async fn very_long_line_fails_file_with_line() {
    let mut csv = String::from("to_number,contact_ref\n0491 570 006,A-1\n0491 570 156");
    csv.push_str(&",x".repeat(2_000));
    csv.push('\n');
    let reply = expect_file_problem(Options::default(), "", csv, 422, "malformed_csv").await;
    assert_eq!(reply.body["line"], 3, "line: {}", reply.text);
}

#[tokio::test]
async fn formula_contact_ref_neutralised_in_export() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "to_number,contact_ref\n0491 570 006,=1+2\n0491 570 156,\u{ff1d}1+2\n0491 570 157,@SUM(A1)\n";
    assert_counts(&import(&app, &campaign, "", csv).await, 3, 0);
    let (status, export) = get_text(&app, &format!("/v1/campaigns/{campaign}/contacts.csv")).await;
    assert_eq!(status, 200, "export: {export}");
    for cell in ["'=1+2", "'\u{ff1d}1+2", "'@SUM(A1)"] {
        assert!(export.contains(cell), "{cell} neutralised: {export}");
    }
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Conflicting registry status for one number in a contact file
// ---------------------------------------------------------------------------

const REGISTRY_HEADER: &str = "to_number,registry_status,registry_checked_at,registry_evidence";

/// Returns the first stored contact's registry status, checked time and evidence.
async fn first_registry(app: &TestApp, campaign: &str) -> (Value, Value, Value) {
    let list = contacts(app, campaign).await;
    let first = &list[0];
    assert_eq!(first["row"], 1, "the first contact is row 1: {first}");
    (
        first["registry_status"].clone(),
        first["registry_checked_at"].clone(),
        first["registry_evidence"].clone(),
    )
}

#[tokio::test]
async fn conflicting_status_registered_later_wins() {
    let (app, campaign) = setup(json!({})).await;
    let csv = format!(
        "{REGISTRY_HEADER}\n\
         0491 570 006,not_registered,2026-11-20T01:00:00Z,W-1\n\
         0491 570 156,N,2026-11-20T01:00:00Z,W-1\n\
         +61 491 570 006,registered,2026-11-21T02:30:00Z,W-2\n"
    );
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 2, 1);
    let errors = &reply.body["errors"];
    assert_issue(
        errors,
        "conflicting_registry_status",
        3,
        4,
        "registry_status",
    );
    let message = errors[0]["message"].as_str().unwrap_or("");
    assert!(message.contains("row 1"), "names the first row: {message}");
    assert!(
        message.contains("registered"),
        "names the kept status: {message}"
    );
    assert!(!reply.text.contains("570 006"), "number echoed");
    let (status, checked_at, evidence) = first_registry(&app, &campaign).await;
    assert_eq!(status, "registered", "the stricter status is kept");
    assert_eq!(
        checked_at, "2026-11-21T02:30:00Z",
        "checked time of the kept status"
    );
    assert_eq!(evidence, "W-2", "evidence of the kept status");
    app.finish().await;
}

#[tokio::test]
async fn conflicting_status_registered_first_kept() {
    let (app, campaign) = setup(json!({})).await;
    let csv = format!(
        "{REGISTRY_HEADER}\n\
         0491570006,Y,2026-11-20T01:00:00Z,W-1\n\
         (0491) 570-006,N,2026-11-21T01:00:00Z,W-2\n"
    );
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 1);
    assert_issue(
        &reply.body["errors"],
        "conflicting_registry_status",
        2,
        3,
        "registry_status",
    );
    let (status, checked_at, evidence) = first_registry(&app, &campaign).await;
    assert_eq!(status, "registered", "the first, stricter status stays");
    assert_eq!(
        checked_at, "2026-11-20T01:00:00Z",
        "first row's checked time"
    );
    assert_eq!(evidence, "W-1", "first row's evidence");
    app.finish().await;
}

#[tokio::test]
async fn conflicting_status_invalid_beats_not_registered() {
    let (app, campaign) = setup(json!({})).await;
    let csv = format!(
        "{REGISTRY_HEADER}\n\
         0491 570 158,N,2026-11-20T01:00:00Z,W-1\n\
         0491 570 158,I,2026-11-20T01:00:00Z,W-2\n\
         0491 570 158,N,2026-11-20T01:00:00Z,W-3\n\
         0491 570 158,invalid,2026-11-20T01:00:00Z,W-4\n"
    );
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 3);
    let errors = &reply.body["errors"];
    for (row, line) in [(2, 3), (3, 4)] {
        assert_issue(
            errors,
            "conflicting_registry_status",
            row,
            line,
            "registry_status",
        );
    }
    // Row 4 repeats the status the contact already has, so it is a plain duplicate.
    assert_issue(errors, "duplicate_to_number", 4, 5, "to_number");
    let (status, _, evidence) = first_registry(&app, &campaign).await;
    assert_eq!(status, "invalid", "invalid beats not_registered");
    assert_eq!(evidence, "W-2", "evidence of the invalid result");
    app.finish().await;
}

#[tokio::test]
async fn same_status_twice_is_duplicate() {
    let (app, campaign) = setup(json!({})).await;
    let csv = format!(
        "{REGISTRY_HEADER}\n\
         0491 570 159,N,2026-11-20T01:00:00Z,W-1\n\
         0491 570 159,not registered,2026-11-21T01:00:00Z,W-2\n\
         0491 570 159,,,\n"
    );
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 2);
    let errors = &reply.body["errors"];
    assert_issue(errors, "duplicate_to_number", 2, 3, "to_number");
    assert_issue(errors, "duplicate_to_number", 3, 4, "to_number");
    let (status, _, evidence) = first_registry(&app, &campaign).await;
    assert_eq!(status, "not_registered", "status unchanged");
    assert_eq!(evidence, "W-1", "first row's evidence");
    app.finish().await;
}

/// Builds a file whose row 1 is 0491 570 110 `not_registered`, then
/// `landlines` other numbers, then the first number again as `registered`.
fn conflict_after_landlines(landlines: usize) -> String {
    let mut csv = format!("{REGISTRY_HEADER}\n0491 570 110,N,2026-11-20T01:00:00Z,W-1\n");
    for index in 0..landlines {
        let area = ["02", "03", "07", "08"][index % 4];
        csv.push_str(&format!(
            "({area}) 5550 {:04},N,2026-11-20T01:00:00Z,W-1\n",
            index / 4
        ));
    }
    csv.push_str("+61491570110,Y,2026-11-21T01:00:00Z,W-2\n");
    csv
}

#[tokio::test]
async fn conflicting_status_across_batches_registered() {
    let (app, campaign) = setup(json!({})).await;
    // More rows than one batch of contacts (32,768), so row 1 is already
    // written when the conflicting row is read.
    let landlines = 33_000;
    let reply = import(&app, &campaign, "", conflict_after_landlines(landlines)).await;
    assert_counts(&reply, 1 + landlines as i64, 1);
    let last = 2 + landlines as i64;
    assert_issue(
        &reply.body["errors"],
        "conflicting_registry_status",
        last,
        last + 1,
        "registry_status",
    );
    let (status, checked_at, evidence) = first_registry(&app, &campaign).await;
    assert_eq!(status, "registered", "the written contact is updated");
    assert_eq!(checked_at, "2026-11-21T01:00:00Z", "checked time");
    assert_eq!(evidence, "W-2", "evidence");
    let registered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts WHERE campaign_id = $1::uuid AND registry_status = 'registered'",
    )
    .bind(&campaign)
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(registered, 1, "only that contact changes");
    app.finish().await;
}

#[tokio::test]
async fn conflicting_status_then_bad_file_imports_nothing() {
    let (app, campaign) = setup(json!({})).await;
    let mut csv = conflict_after_landlines(33_000);
    csv.push_str("0491 570 737,\"open quote\n");
    let reply = import(&app, &campaign, "", csv).await;
    assert_problem(&reply, 422, "malformed_csv");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(stored, 0, "no contact and no status update is kept");
    let issues: i64 = sqlx::query_scalar("SELECT count(*) FROM import_issue_blocks")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(issues, 0, "no row issue is kept");
    app.finish().await;
}

#[tokio::test]
async fn conflicting_status_row_in_rejected_csv() {
    let (app, campaign) = setup(json!({})).await;
    let csv = format!(
        "{REGISTRY_HEADER}\n\
         0491 570 313,N,2026-11-20T01:00:00Z,W-1\n\
         0491 570 313,Y,2026-11-21T01:00:00Z,W-2\n"
    );
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 1, 1);
    let import_id = reply.body["import_id"].as_str().expect("import id");
    let (status, text) = get_text(
        &app,
        &format!("/v1/campaigns/{campaign}/imports/{import_id}/rejected.csv"),
    )
    .await;
    assert_eq!(status, 200, "rejected.csv: {text}");
    assert!(
        text.contains("conflicting_registry_status"),
        "lists the row: {text}"
    );
    assert!(text.contains("W-2"), "keeps the row's evidence: {text}");
    assert!(!text.contains("570 313"), "number echoed: {text}");
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Declared UTF-16
// ---------------------------------------------------------------------------

/// Encodes `text` as UTF-16 in one byte order, after `bom`.
fn utf16(text: &str, bom: &[u8], little_endian: bool) -> Vec<u8> {
    let units = text.encode_utf16().flat_map(|unit| {
        if little_endian {
            unit.to_le_bytes()
        } else {
            unit.to_be_bytes()
        }
    });
    bom.iter().copied().chain(units).collect()
}

const UTF16_FILE: &str = "to_number,contact_ref\r\n0491 570 006,Zoë\r\n0491 570 156,Seán\r\n";

#[tokio::test]
async fn utf16_charset_matching_bom_accepted() {
    let cases = [
        ("text/csv; charset=utf-16", "", &b"\xFF\xFE"[..], true),
        ("text/csv; charset=UTF-16", "", &b"\xFE\xFF"[..], false),
        ("text/csv; charset=utf-16le", "", &b"\xFF\xFE"[..], true),
        ("text/csv", "?encoding=utf-16be", &b"\xFE\xFF"[..], false),
        ("text/csv", "", &b"\xFE\xFF"[..], false),
    ];
    for (content_type, query, bom, little_endian) in cases {
        let (app, campaign) = setup(json!({})).await;
        let reply = send(
            &app,
            &format!("/v1/campaigns/{campaign}/imports{query}"),
            content_type,
            utf16(UTF16_FILE, bom, little_endian),
            None,
        )
        .await;
        assert_counts(&reply, 2, 0);
        let list = contacts(&app, &campaign).await;
        assert_eq!(list[0]["contact_ref"], "Zoë", "{content_type}{query}");
        assert_eq!(list[1]["contact_ref"], "Seán", "{content_type}{query}");
        app.finish().await;
    }
}

#[tokio::test]
async fn utf16le_charset_with_be_bom_rejected() {
    let reply = expect_file_problem(
        Options::default(),
        "?encoding=utf-16le",
        utf16(UTF16_FILE, b"\xFE\xFF", false),
        422,
        "unsupported_encoding",
    )
    .await;
    assert_eq!(
        reply.body["declared_encoding"], "utf-16le",
        "{}",
        reply.text
    );
    assert_eq!(reply.body["byte_order_mark"], "utf-16be", "{}", reply.text);
    let detail = reply.body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("charset=utf-16le") && detail.contains("UTF-16BE byte order mark"),
        "names both: {detail}"
    );
}

#[tokio::test]
async fn utf16_charset_without_bom_rejected() {
    for (query, bytes) in [
        ("?encoding=utf-16", utf16(UTF16_FILE, b"", true)),
        ("?encoding=utf-16be", UTF16_FILE.as_bytes().to_vec()),
    ] {
        let reply = expect_file_problem(
            Options::default(),
            query,
            bytes,
            422,
            "unsupported_encoding",
        )
        .await;
        assert_eq!(
            reply.body["byte_order_mark"], "none",
            "{query}: {}",
            reply.text
        );
        let detail = reply.body["detail"].as_str().unwrap_or("");
        assert!(detail.contains("no byte order mark"), "{query}: {detail}");
    }
}

#[tokio::test]
async fn utf16_charset_with_utf8_bom_rejected() {
    let reply = expect_file_problem(
        Options::default(),
        "?encoding=utf-16",
        format!("\u{feff}{UTF16_FILE}"),
        422,
        "unsupported_encoding",
    )
    .await;
    assert_eq!(reply.body["byte_order_mark"], "utf-8", "{}", reply.text);
}

#[tokio::test]
async fn utf16_charset_same_key_other_charset_422() {
    let (app, campaign) = setup(json!({})).await;
    let path = format!("/v1/campaigns/{campaign}/imports");
    let bytes = utf16(UTF16_FILE, b"\xFF\xFE", true);
    let first = send(
        &app,
        &path,
        "text/csv; charset=utf-16",
        bytes.clone(),
        Some("k-16"),
    )
    .await;
    assert_counts(&first, 2, 0);
    let other = send(
        &app,
        &path,
        "text/csv; charset=utf-16le",
        bytes,
        Some("k-16"),
    )
    .await;
    assert_problem(&other, 422, "idempotency_key_reused");
    app.finish().await;
}

#[tokio::test]
async fn wash_file_declared_utf16_accepted() {
    let (app, campaign) = washable().await;
    let text = "number,result\r\n0491 570 006,Y\r\n";
    let reply = send(
        &app,
        &format!("/v1/campaigns/{campaign}/wash-results?wash_reference=W-16"),
        "text/csv; charset=utf-16",
        utf16(text, b"\xFF\xFE", true),
        None,
    )
    .await;
    assert_eq!(reply.status, 201, "wash: {}", reply.text);
    assert_eq!(reply.body["registered"], 1, "registered: {}", reply.text);
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Stored form of every column
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_column_stored_in_canonical_form() {
    let (app, campaign) = setup(json!({})).await;
    let csv = "To Number,contact ref,RECIPIENT_TIMEZONE,registry-status,Registry Checked At,registry_evidence,\
               consent type,consent_evidence,consent_given_at,consent_expires_at,exemption,call_type,priority,max_attempts,first_name\n\
               +61 (0)2 5550 0001,REF-1,VIC,Y,2026-11-20,W-77,Express,CRM-9,2026-10-01,2027-10-01,charity,telemarketing,9,4,Matilda\n\
               0491 570 006,REF-2,Australia/Perth,N,2026-11-20T03:04:05Z,W-78,inferred,,,,,,,,\n";
    let reply = import(&app, &campaign, "", csv).await;
    assert_counts(&reply, 2, 0);
    let list = contacts(&app, &campaign).await;
    let full = &list[0];
    assert_eq!(full["masked_number"], "+61 ******001", "masked: {full}");
    assert_eq!(full["number_type"], "geographic", "number_type");
    assert_eq!(full["contact_ref"], "REF-1", "contact_ref");
    assert_eq!(full["zone_source"], "explicit", "zone_source");
    assert_eq!(full["zone"], "VIC", "state code kept");
    assert_eq!(full["registry_status"], "registered", "Y to registered");
    assert_eq!(
        full["registry_checked_at"], "2026-11-19T13:00:00Z",
        "a date is the start of that day in Sydney"
    );
    assert_eq!(full["registry_evidence"], "W-77", "registry_evidence");
    assert_eq!(full["consent_type"], "express", "consent_type lower-cased");
    assert_eq!(full["exemption"], "charity", "exemption");
    assert_eq!(full["priority"], 9, "priority");
    assert_eq!(full["max_attempts"], 4, "max_attempts");

    let sparse = &list[1];
    assert_eq!(sparse["number_type"], "mobile", "number_type");
    assert_eq!(sparse["zone"], "Australia/Perth", "IANA zone kept");
    assert_eq!(sparse["registry_status"], "not_registered", "N");
    assert_eq!(
        sparse["registry_checked_at"], "2026-11-20T03:04:05Z",
        "date-time kept"
    );
    assert_eq!(sparse["consent_type"], "inferred", "consent_type");
    assert!(sparse["exemption"].is_null(), "no exemption");
    assert_eq!(sparse["priority"], 5, "default priority");

    let (evidence, given, expires, source): (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT consent_evidence, consent_given_on::text, consent_expires_on::text, registry_source
               FROM contacts WHERE campaign_id = $1::uuid AND row_number = 1",
    )
    .bind(&campaign)
    .fetch_one(&app.pool)
    .await
    .expect("stored consent");
    assert_eq!(evidence.as_deref(), Some("CRM-9"), "consent_evidence");
    assert_eq!(given.as_deref(), Some("2026-10-01"), "consent_given_at");
    assert_eq!(expires.as_deref(), Some("2027-10-01"), "consent_expires_at");
    assert_eq!(source.as_deref(), Some("contact_file"), "registry_source");

    // The number and the personalisation value are stored only sealed.
    let plain: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts c
          WHERE c::text LIKE '%Matilda%' OR c::text LIKE '%55500001%' OR c::text LIKE '%491570006%'
             OR encode(c.phone_ciphertext, 'escape') LIKE '%5550%'
             OR encode(c.personalisation_ciphertext, 'escape') LIKE '%Matilda%'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("search the stored rows");
    assert_eq!(plain, 0, "no plaintext number or personalisation value");
    app.finish().await;
}

#[tokio::test]
async fn duplicate_of_earlier_import_names_row() {
    let (app, campaign) = setup(json!({})).await;
    let first = import(
        &app,
        &campaign,
        "",
        "to_number\n0491 570 006\n0491 570 157\n",
    )
    .await;
    assert_counts(&first, 2, 0);
    let second = import(&app, &campaign, "", "to_number\n0011 61 491 570 157\n").await;
    assert_counts(&second, 0, 1);
    let message = second.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("row 2") && message.contains("earlier import"),
        "names row 2 of the earlier import: {message}"
    );
    app.finish().await;
}

#[tokio::test]
async fn wash_unmatched_number_never_stored() {
    let (app, campaign) = washable().await;
    let csv = "number,result\n0491 570 006,Y\n+61 491 570 737,N\n0491570737,N\n";
    let reply = wash(&app, &campaign, "wash_reference=W-9", csv).await;
    assert_eq!(reply.status, 201, "wash: {}", reply.text);
    assert_eq!(reply.body["numbers_unmatched"], 1, "counted once");
    assert_eq!(reply.body["contacts_matched"], 1, "contacts_matched");
    // Forms of the number, not its last digits alone: the reply's digest and
    // ids are random hex that can contain any three digits.
    for form in ["570737", "570 737", "570-737"] {
        assert!(!reply.text.contains(form), "not echoed: {}", reply.text);
    }
    assert_eq!(contacts(&app, &campaign).await.len(), 5, "no contact added");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(table_name) FROM information_schema.tables
          WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("list tables");
    for table in tables {
        let found: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} t WHERE t::text LIKE '%570737%' OR t::text LIKE '%570 737%'"
        ))
        .fetch_one(&app.pool)
        .await
        .expect("search a table");
        assert_eq!(found, 0, "the unmatched number is in {table}");
    }
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Content-Type of uploads
// ---------------------------------------------------------------------------

/// Asserts a 415 whose detail asks for the raw file as text/csv.
fn assert_unsupported_media_type(reply: &Reply, label: &str) {
    assert_problem(reply, 415, "unsupported_media_type");
    let detail = reply.body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("Content-Type: text/csv") && detail.contains("multipart/form-data"),
        "{label}: the detail says to send the file as text/csv or in a form: {detail}"
    );
}

#[tokio::test]
async fn import_rejects_non_csv_content_type_with_415() {
    let (app, campaign) = setup(json!({})).await;
    let path = format!("/v1/campaigns/{campaign}/imports");
    let csv = "to_number,contact_ref\n0491 570 006,A-1\n";
    for (content_type, body) in [
        ("application/json", csv.to_owned()),
        ("application/x-www-form-urlencoded", csv.to_owned()),
    ] {
        let reply = send(&app, &path, content_type, body.into_bytes(), None).await;
        assert_unsupported_media_type(&reply, content_type);
    }

    // Without a Content-Type the body is not guessed at either.
    let response = app
        .http
        .post(app.url(&path))
        .bearer_auth(app.admin())
        .body(csv)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 415, "no Content-Type is a 415");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["code"], "unsupported_media_type", "{body}");

    assert!(
        contacts(&app, &campaign).await.is_empty(),
        "nothing is imported"
    );
    app.finish().await;
}

#[tokio::test]
async fn import_accepts_every_csv_content_type() {
    let (app, campaign) = setup(json!({})).await;
    let path = format!("/v1/campaigns/{campaign}/imports");
    let types = [
        "text/csv",
        "application/csv",
        "text/plain",
        "text/tab-separated-values",
        "application/vnd.ms-excel",
        "application/octet-stream",
        "Text/CSV; charset=utf-8",
    ];
    for (index, content_type) in types.iter().enumerate() {
        let csv = format!(
            "to_number,contact_ref\n0491 571 {:03},A-{index}\n",
            100 + index
        );
        let reply = send(&app, &path, content_type, csv.into_bytes(), None).await;
        assert_counts(&reply, 1, 0);
    }
    assert_eq!(contacts(&app, &campaign).await.len(), types.len());
    app.finish().await;
}

#[tokio::test]
async fn wash_rejects_non_csv_content_type_with_415() {
    let (app, campaign) = setup(json!({})).await;
    let path = format!("/v1/campaigns/{campaign}/wash-results?wash_reference=W-415");
    let file = "number,result\n0491570006,N\n";
    for content_type in ["application/x-www-form-urlencoded", "application/json"] {
        let reply = send(&app, &path, content_type, file.as_bytes().to_vec(), None).await;
        assert_unsupported_media_type(&reply, content_type);
    }
    let reply = send(
        &app,
        &path,
        "application/octet-stream",
        file.as_bytes().to_vec(),
        None,
    )
    .await;
    assert_eq!(
        reply.status, 201,
        "octet-stream is accepted: {}",
        reply.text
    );
    app.finish().await;
}

#[tokio::test]
async fn headerless_file_echoes_no_name() {
    // "Marcella" contains "cell", and used to be named in a hint to rename
    // it to to_number.
    let reply = expect_file_problem(
        Options::default(),
        "",
        ",Marcella,Smith\n0491 570 156,Jo,Al\n",
        422,
        "missing_required_column",
    )
    .await;
    assert!(
        !reply.text.to_lowercase().contains("marcella"),
        "no value echoed: {}",
        reply.text
    );
}

#[tokio::test]
async fn unknown_column_names_setting_and_drop_parameter() {
    let reply = expect_file_problem(
        Options::default(),
        "",
        "to_number,nickname\n0491 570 006,Noah\n",
        422,
        "unknown_column",
    )
    .await;
    let detail = reply.body["detail"].as_str().unwrap_or("");
    for part in [
        "\"nickname\"",
        "personalisation_keys",
        "?drop_unknown_columns=true",
    ] {
        assert!(detail.contains(part), "detail names {part}: {detail}");
    }
    // A header cell that looks like a phone number, beside to_number, is an
    // unknown column named by its position, never echoed.
    let reply = expect_file_problem(
        Options::default(),
        "",
        "to_number,0491 570 156\n0491 570 006,Noah\n",
        422,
        "unknown_column",
    )
    .await;
    assert!(
        !reply.text.contains("570"),
        "the number-like cell is not echoed: {}",
        reply.text
    );
    let detail = reply.body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("header column 2"),
        "names the position: {detail}"
    );
}
