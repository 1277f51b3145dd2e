//! Contact imports as background jobs, the rejected-rows CSV, upload limits,
//! atomicity and the reference checks on contacts.
//!
//! Every test sends real HTTP requests to a server on loopback with a fresh
//! database. Numbers are the fictitious ones from ACMA's list: mobiles
//! 0491 570 006, 0491 570 156–159, 0491 570 110, 0491 570 313, 0491 570 737 and
//! 0491 571 000–0491 579 999; landlines (02|03|07|08) 5550 xxxx and 7010 xxxx.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

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

async fn reply_of(response: reqwest::Response) -> Reply {
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

/// Sends `csv` to the campaign's import endpoint, with an optional Idempotency-Key.
async fn upload(
    app: &TestApp,
    campaign: &str,
    csv: impl Into<Vec<u8>>,
    key: Option<&str>,
) -> Reply {
    let mut request = app
        .http
        .post(app.url(&format!("/v1/campaigns/{campaign}/imports")))
        .bearer_auth(app.admin())
        .header("Content-Type", "text/csv")
        .body(csv.into());
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    reply_of(request.send().await.expect("request")).await
}

async fn get(app: &TestApp, path: &str) -> Reply {
    let response = app
        .http
        .get(app.url(path))
        .bearer_auth(app.admin())
        .send()
        .await
        .expect("request");
    reply_of(response).await
}

/// Sends `body` with chunked transfer encoding (no Content-Length) over a
/// raw connection, in chunks of `chunk` bytes; returns the status and body.
/// The blocking socket runs off the test's runtime, which drives the server's
/// database connections.
async fn post_chunked(app: &TestApp, path: &str, body: &[u8], chunk: usize) -> (u16, String) {
    let address = app.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.admin()
    );
    let body = body.to_vec();
    tokio::task::spawn_blocking(move || send_chunked(&address, &head, &body, chunk))
        .await
        .expect("the chunked request finishes")
}

fn send_chunked(address: &str, head: &str, body: &[u8], chunk: usize) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("head");
    for piece in body.chunks(chunk) {
        // The server may respond and close the connection before the whole body is sent.
        if stream
            .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .and_then(|()| stream.write_all(piece))
            .and_then(|()| stream.write_all(b"\r\n"))
            .is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Polls an import until it leaves `processing`; returns its last state.
async fn wait_for_import(app: &TestApp, campaign: &str, import_id: &str) -> Value {
    let started = Instant::now();
    loop {
        let reply = get(
            app,
            &format!("/v1/campaigns/{campaign}/imports/{import_id}"),
        )
        .await;
        assert_eq!(reply.status, 200, "poll: {}", reply.text);
        if reply.body["state"] != "processing" {
            return reply.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the import is still processing after a minute: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lists every contact of a campaign (one page of up to 500).
async fn contacts(app: &TestApp, campaign: &str) -> Vec<Value> {
    let reply = get(app, &format!("/v1/campaigns/{campaign}/contacts?limit=500")).await;
    assert_eq!(reply.status, 200, "contacts list: {}", reply.text);
    reply.body["items"].as_array().cloned().unwrap_or_default()
}

/// Starts a server with `limits` and creates a campaign on it.
async fn spawn_with_limits(limits: ImportLimits) -> (TestApp, String) {
    let app = TestApp::spawn_with(Options {
        limits,
        ..Default::default()
    })
    .await;
    let campaign = app.create_campaign(json!({})).await;
    (app, campaign)
}

fn job_limits() -> ImportLimits {
    ImportLimits {
        async_bytes: 256,
        ..ImportLimits::default()
    }
}

/// Builds a file of `count` distinct valid mobiles from 0491 571 000 on,
/// written in a few styles, with contact_ref and first_name.
fn valid_rows(count: usize) -> String {
    assert!(count <= 9_000, "the fictitious range holds 9,000 numbers");
    let mut csv = String::from("to_number,contact_ref,first_name\n");
    for index in 0..count {
        let suffix = 1_000 + index;
        let number = match index % 3 {
            0 => format!("0491 57{} {:03}", suffix / 1000, suffix % 1000),
            1 => format!("+61 491 57{} {:03}", suffix / 1000, suffix % 1000),
            _ => format!("049157{suffix:04}"),
        };
        csv.push_str(&format!("{number},REF-{index},Noah\n"));
    }
    csv
}

/// Builds a file of `count` distinct landlines from ACMA's fictitious ranges
/// (02, 03, 07 and 08 with 5550 xxxx, then 7010 xxxx), at most 80,000.
fn landline_rows(count: usize) -> String {
    assert!(
        count <= 80_000,
        "the fictitious landline ranges hold 80,000 numbers"
    );
    let mut csv = String::from("to_number,contact_ref\n");
    for index in 0..count {
        let area = ["02", "03", "07", "08"][index % 4];
        let block = if index / 4 < 10_000 { "5550" } else { "7010" };
        csv.push_str(&format!(
            "({area}) {block} {:04},L-{index}\n",
            (index / 4) % 10_000
        ));
    }
    csv
}

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

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

#[tokio::test]
async fn large_file_answers_202_then_completes() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let mut csv = valid_rows(300);
    csv.push_str("0491 57O 313,BAD-1,Leo\n0491 571 000,DUP-1,Mia\n");
    let reply = upload(&app, &campaign, csv, None).await;
    assert_eq!(reply.status, 202, "job accepted: {}", reply.text);
    assert_eq!(reply.body["state"], "processing", "state in the 202");
    assert!(reply.body["rows_total"].is_null(), "rows_total unknown yet");
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();

    let done = wait_for_import(&app, &campaign, &import_id).await;
    assert_eq!(done["state"], "completed", "final state: {done}");
    assert_eq!(done["rows_total"], 302, "rows_total");
    assert_eq!(done["rows_processed"], 302, "rows_processed");
    assert_eq!(done["rows_accepted"], 300, "rows_accepted");
    assert_eq!(done["rows_rejected"], 2, "rows_rejected");
    assert!(done["error"].is_null(), "no error: {done}");
    let codes: Vec<&str> = done["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["code"].as_str())
        .collect();
    assert_eq!(
        codes,
        ["invalid_to_number", "duplicate_to_number"],
        "row errors"
    );
    assert_eq!(done["errors"][1]["row"], 302, "duplicate row");
    assert_eq!(done["errors"][1]["line"], 303, "duplicate line");
    assert_eq!(
        contacts(&app, &campaign).await.len(),
        300,
        "contacts stored"
    );
    app.finish().await;
}

#[tokio::test]
async fn progress_visible_before_commit() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    // Holding this lock stops the job at its audit entry, after every row is
    // written and before its transaction commits.
    let mut blocker = app.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE audit_log IN SHARE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock audit_log");
    let mut csv = valid_rows(500);
    csv.push_str("0491 57O 313,BAD-1,Leo\n");
    let reply = upload(&app, &campaign, csv, None).await;
    assert_eq!(reply.status, 202, "job accepted: {}", reply.text);
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();

    let started = Instant::now();
    let seen = loop {
        let poll = get(
            &app,
            &format!("/v1/campaigns/{campaign}/imports/{import_id}"),
        )
        .await;
        assert_eq!(
            poll.body["state"], "processing",
            "the job cannot commit yet: {}",
            poll.text
        );
        if poll.body["rows_processed"] == 501 {
            break poll.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress after a minute: {}",
            poll.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seen["rows_accepted"], 500, "accepted so far");
    assert_eq!(seen["rows_rejected"], 1, "rejected so far");
    assert!(
        seen["rows_total"].is_null(),
        "rows_total unknown until completed"
    );
    assert!(
        contacts(&app, &campaign).await.is_empty(),
        "no contact visible before the commit"
    );

    blocker.rollback().await.expect("release the lock");
    let done = wait_for_import(&app, &campaign, &import_id).await;
    assert_eq!(done["state"], "completed", "final state: {done}");
    assert_eq!(
        contacts(&app, &campaign).await.len(),
        500,
        "contacts visible after the commit"
    );
    app.finish().await;
}

#[tokio::test]
async fn job_digest_matches_bytes() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let csv = valid_rows(40);
    let reply = upload(&app, &campaign, csv.clone(), None).await;
    assert_eq!(reply.status, 202, "job accepted: {}", reply.text);
    let expected: String = sqlx::query_scalar("SELECT encode(sha256($1), 'hex')")
        .bind(csv.as_bytes())
        .fetch_one(&app.pool)
        .await
        .expect("sha256");
    assert_eq!(reply.body["file_sha256"], expected, "digest in the 202");
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let done = wait_for_import(&app, &campaign, &import_id).await;
    assert_eq!(done["file_sha256"], expected, "digest once completed");
    app.finish().await;
}

#[tokio::test]
async fn small_file_stays_synchronous() {
    let (app, campaign) = spawn_with_limits(ImportLimits {
        async_bytes: 10_000,
        ..ImportLimits::default()
    })
    .await;
    let reply = upload(&app, &campaign, valid_rows(5), None).await;
    assert_eq!(reply.status, 201, "inline import: {}", reply.text);
    assert_eq!(reply.body["state"], "completed", "state");
    assert_eq!(reply.body["rows_total"], 5, "rows_total");
    app.finish().await;
}

#[tokio::test]
async fn job_issues_page_through() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let mut csv = valid_rows(20);
    for _ in 0..5 {
        csv.push_str("0491 57O 313,BAD,Leo\n");
    }
    let reply = upload(&app, &campaign, csv, None).await;
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    wait_for_import(&app, &campaign, &import_id).await;
    let page = get(
        &app,
        &format!("/v1/campaigns/{campaign}/imports/{import_id}/issues?limit=500"),
    )
    .await;
    assert_eq!(page.status, 200, "issues: {}", page.text);
    let rows: Vec<i64> = page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["row"].as_i64())
        .collect();
    assert_eq!(rows, [21, 22, 23, 24, 25], "every rejected row once");
    app.finish().await;
}

/// Builds a file of `count` rows: every seventh has a letter in its number
/// (an error), the others are fictitious landlines written without the trunk
/// zero, as a spreadsheet does (a warning).
fn warning_rows(count: usize) -> String {
    let mut csv = String::from("to_number,contact_ref\n");
    for index in 0..count {
        if index % 7 == 6 {
            csv.push_str(&format!("0491 57O 313,BAD-{index}\n"));
        } else {
            let area = ["2", "3", "7", "8"][index % 4];
            csv.push_str(&format!("{area}5550{:04},W-{index}\n", index / 4));
        }
    }
    csv
}

#[tokio::test]
async fn issue_pages_cross_blocks() {
    // 3,000 issues fill three stored blocks of at most 1,024.
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let reply = upload(&app, &campaign, warning_rows(3_000), None).await;
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let done = wait_for_import(&app, &campaign, &import_id).await;
    assert_eq!(done["state"], "completed", "state: {done}");
    assert_eq!(done["rows_rejected"], 428, "one row in seven rejected");
    assert_eq!(done["errors"][0]["row"], 7, "first inline error: {done}");
    assert_eq!(
        done["warnings"][0]["row"], 1,
        "first inline warning: {done}"
    );

    let mut issues = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let query = match &cursor {
            Some(cursor) => format!("?limit=500&cursor={cursor}"),
            None => "?limit=500".to_owned(),
        };
        let page = get(
            &app,
            &format!("/v1/campaigns/{campaign}/imports/{import_id}/issues{query}"),
        )
        .await;
        assert_eq!(page.status, 200, "issues: {}", page.text);
        issues.extend(page.body["items"].as_array().cloned().unwrap_or_default());
        cursor = page.body["next"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "paging ends");
    let rows: Vec<i64> = issues.iter().filter_map(|i| i["row"].as_i64()).collect();
    let expected_rows: Vec<i64> = (1..=3_000).collect();
    assert_eq!(rows, expected_rows, "every row's issue once, in row order");
    for issue in &issues {
        let row = issue["row"].as_i64().unwrap_or(0);
        let (severity, code) = if row % 7 == 0 {
            ("error", "invalid_to_number")
        } else {
            ("warning", "trunk_zero_restored")
        };
        assert_eq!(issue["severity"], severity, "severity of row {row}");
        assert_eq!(issue["code"], code, "code of row {row}");
        assert_eq!(issue["line"], row + 1, "line of row {row}");
    }

    let (csv_reply, records) = rejected_csv(&app, &campaign, &import_id).await;
    assert_eq!(csv_reply.status, 200, "rejected CSV: {}", csv_reply.text);
    assert_eq!(records.len(), 1 + 428, "header and one record per error");
    for record in &records[1..] {
        let row: usize = record[0].parse().expect("row number");
        assert_eq!(row % 7, 0, "only rejected rows: {record:?}");
        assert_eq!(
            record[5],
            format!("BAD-{}", row - 1),
            "contact_ref of row {row}"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn job_malformed_file_fails_with_line() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let mut csv = valid_rows(30);
    csv.push_str("0491 570 006,\"never closed,Leo\n0491 570 156,X,Mia\n");
    let reply = upload(&app, &campaign, csv, None).await;
    assert_eq!(reply.status, 202, "job accepted: {}", reply.text);
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let done = wait_for_import(&app, &campaign, &import_id).await;
    assert_eq!(done["state"], "failed", "state: {done}");
    assert_eq!(done["error"]["code"], "malformed_csv", "code: {done}");
    assert_eq!(done["error"]["line"], 32, "line of the open quote: {done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 32")),
        "message names the line: {done}"
    );
    assert_eq!(done["rows_accepted"], 0, "no accepted rows reported");
    assert!(
        contacts(&app, &campaign).await.is_empty(),
        "nothing imported"
    );
    app.finish().await;
}

#[tokio::test]
async fn job_too_many_rows_fails() {
    let (app, campaign) = spawn_with_limits(ImportLimits {
        async_bytes: 256,
        max_rows: 25,
        ..ImportLimits::default()
    })
    .await;
    let reply = upload(&app, &campaign, valid_rows(26), None).await;
    assert_eq!(reply.status, 202, "job accepted: {}", reply.text);
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let done = wait_for_import(&app, &campaign, &import_id).await;
    assert_eq!(done["state"], "failed", "state: {done}");
    assert_eq!(done["error"]["code"], "too_many_rows", "code: {done}");
    assert!(
        contacts(&app, &campaign).await.is_empty(),
        "nothing imported"
    );
    app.finish().await;
}

#[tokio::test]
async fn job_unknown_column_fails() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let csv = valid_rows(30).replacen("first_name", "nickname", 1);
    let reply = upload(&app, &campaign, csv, None).await;
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let done = wait_for_import(&app, &campaign, &import_id).await;
    assert_eq!(done["state"], "failed", "state: {done}");
    assert_eq!(done["error"]["code"], "unknown_column", "code: {done}");
    assert!(
        done["error"]["line"].is_null(),
        "a header problem has no line: {done}"
    );
    app.finish().await;
}

#[tokio::test]
async fn job_refused_on_running_campaign() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let (status, body) = app
        .post(
            &format!("/v1/campaigns/{campaign}/cancel"),
            &app.admin(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "cancel: {body}");
    let reply = upload(&app, &campaign, valid_rows(30), None).await;
    assert_problem(&reply, 409, "campaign_not_editable");
    let imports: i64 = sqlx::query_scalar("SELECT count(*) FROM imports")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(imports, 0, "no import recorded");
    app.finish().await;
}

#[tokio::test]
async fn job_same_key_replays_202() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let csv = valid_rows(30);
    let first = upload(&app, &campaign, csv.clone(), Some("job-1")).await;
    assert_eq!(first.status, 202, "first: {}", first.text);
    let import_id = first.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    wait_for_import(&app, &campaign, &import_id).await;
    let second = upload(&app, &campaign, csv, Some("job-1")).await;
    assert_eq!(second.status, 202, "replay status: {}", second.text);
    assert_eq!(second.body["import_id"], import_id.as_str(), "same import");
    let imports: i64 = sqlx::query_scalar("SELECT count(*) FROM imports")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(imports, 1, "one import recorded");
    assert_eq!(contacts(&app, &campaign).await.len(), 30, "imported once");
    app.finish().await;
}

#[tokio::test]
async fn job_reupload_adds_no_duplicates() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let csv = valid_rows(50);
    for round in 0..2 {
        let reply = upload(&app, &campaign, csv.clone(), None).await;
        assert_eq!(reply.status, 202, "round {round}: {}", reply.text);
        let import_id = reply.body["import_id"]
            .as_str()
            .expect("import id")
            .to_owned();
        let done = wait_for_import(&app, &campaign, &import_id).await;
        assert_eq!(done["state"], "completed", "round {round}: {done}");
        let accepted = if round == 0 { 50 } else { 0 };
        assert_eq!(done["rows_accepted"], accepted, "round {round} accepted");
        assert_eq!(
            done["rows_rejected"],
            50 - accepted,
            "round {round} rejected"
        );
    }
    let indexes: i64 = sqlx::query_scalar("SELECT count(DISTINCT phone_index) FROM contacts")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(indexes, 50, "one contact per number");
    assert_eq!(
        contacts(&app, &campaign).await.len(),
        50,
        "no contact added"
    );
    app.finish().await;
}

#[tokio::test]
async fn abandoned_job_reported_interrupted() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    // An import left `processing` by a server that stopped: no session holds
    // its job lock.
    let import_id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO imports (id, campaign_id, file_sha256, state, rows_total, rows_accepted, rows_rejected,
                              rows_with_warnings, rows_processed, created_by)
         VALUES ($1, $2::uuid, 'x', 'processing', 0, 10, 0, 0, 10, 'test')",
    )
    .bind(import_id)
    .bind(&campaign)
    .execute(&app.pool)
    .await
    .expect("insert import");
    let reply = get(
        &app,
        &format!("/v1/campaigns/{campaign}/imports/{import_id}"),
    )
    .await;
    assert_eq!(reply.status, 200, "fetch: {}", reply.text);
    assert_eq!(reply.body["state"], "failed", "state: {}", reply.text);
    assert_eq!(
        reply.body["error"]["code"], "import_interrupted",
        "code: {}",
        reply.text
    );
    assert_eq!(reply.body["rows_accepted"], 0, "counts reset");
    app.finish().await;
}

#[tokio::test]
async fn running_job_not_reported_interrupted() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let reply = upload(&app, &campaign, valid_rows(3_000), None).await;
    assert_eq!(reply.status, 202, "job accepted: {}", reply.text);
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let done = wait_for_import(&app, &campaign, &import_id).await;
    assert_eq!(
        done["state"], "completed",
        "a running job is never marked failed: {done}"
    );
    assert_eq!(done["rows_accepted"], 3_000, "rows_accepted");
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Atomicity
// ---------------------------------------------------------------------------

#[tokio::test]
async fn bad_last_row_imports_nothing() {
    let (app, campaign) = spawn_with_limits(ImportLimits::default()).await;
    let mut csv = valid_rows(200);
    csv.push_str("0491 570 006,\"open quote,Leo\n");
    let reply = upload(&app, &campaign, csv, None).await;
    assert_problem(&reply, 422, "malformed_csv");
    assert_eq!(reply.body["line"], 202, "line: {}", reply.text);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(stored, 0, "no contact stored");
    let imports: i64 = sqlx::query_scalar("SELECT count(*) FROM imports")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(imports, 0, "no import recorded");
    app.finish().await;
}

#[tokio::test]
async fn job_bad_last_row_imports_nothing() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    // More rows than one COPY batch, so contacts were written before the failure.
    let mut csv = landline_rows(40_000);
    csv.push_str(&format!("0491 570 006,{}\n", "R".repeat(70 * 1024)));
    let reply = upload(&app, &campaign, csv, None).await;
    assert_eq!(reply.status, 202, "job accepted: {}", reply.text);
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let done = wait_for_import(&app, &campaign, &import_id).await;
    assert_eq!(done["state"], "failed", "state: {done}");
    assert_eq!(done["error"]["code"], "malformed_csv", "code: {done}");
    assert_eq!(done["error"]["line"], 40_002, "line: {done}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(stored, 0, "no contact stored");
    let issues: i64 = sqlx::query_scalar("SELECT count(*) FROM import_issue_blocks")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(issues, 0, "no row issue stored");
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn declared_length_over_limit_413() {
    let (app, campaign) = spawn_with_limits(ImportLimits {
        max_bytes: 1_000,
        ..ImportLimits::default()
    })
    .await;
    let csv = valid_rows(9_000);
    assert!(csv.len() > 100_000, "fixture is large");
    let reply = upload(&app, &campaign, csv, None).await;
    assert_problem(&reply, 413, "file_too_large");
    assert_eq!(
        reply.body["max_bytes"], 1_000,
        "limit named: {}",
        reply.text
    );
    assert!(
        contacts(&app, &campaign).await.is_empty(),
        "nothing imported"
    );
    app.finish().await;
}

#[tokio::test]
async fn chunked_body_over_limit_413() {
    let (app, campaign) = spawn_with_limits(ImportLimits {
        max_bytes: 1_000,
        async_bytes: 100_000,
        ..ImportLimits::default()
    })
    .await;
    let body = valid_rows(200);
    let path = format!("/v1/campaigns/{campaign}/imports");
    let (status, text) = post_chunked(&app, &path, body.as_bytes(), 512).await;
    assert_eq!(status, 413, "chunked over limit: {text}");
    assert!(text.contains("file_too_large"), "code: {text}");
    assert!(
        contacts(&app, &campaign).await.is_empty(),
        "nothing imported"
    );
    app.finish().await;
}

#[tokio::test]
async fn chunked_body_over_threshold_becomes_job() {
    let (app, campaign) = spawn_with_limits(ImportLimits {
        async_bytes: 1_000,
        ..ImportLimits::default()
    })
    .await;
    let path = format!("/v1/campaigns/{campaign}/imports");
    let (status, text) = post_chunked(&app, &path, valid_rows(100).as_bytes(), 300).await;
    assert_eq!(status, 202, "job accepted: {text}");
    let (status, text) = post_chunked(&app, &path, b"to_number\n0491 570 006\n", 5).await;
    assert_eq!(status, 201, "small chunked body imported inline: {text}");
    app.finish().await;
}

#[tokio::test]
async fn field_over_limit_fails_file() {
    let (app, campaign) = spawn_with_limits(ImportLimits {
        max_field_bytes: 100,
        ..ImportLimits::default()
    })
    .await;
    let csv = format!(
        "to_number,contact_ref\n0491 570 006,A-1\n0491 570 156,{}\n",
        "R".repeat(101)
    );
    let reply = upload(&app, &campaign, csv, None).await;
    assert_problem(&reply, 422, "malformed_csv");
    assert_eq!(reply.body["line"], 3, "line: {}", reply.text);
    assert!(
        contacts(&app, &campaign).await.is_empty(),
        "nothing imported"
    );
    app.finish().await;
}

#[tokio::test]
async fn field_at_limit_is_row_error() {
    let (app, campaign) = spawn_with_limits(ImportLimits {
        max_field_bytes: 200,
        ..ImportLimits::default()
    })
    .await;
    let csv = format!(
        "to_number,contact_ref\n0491 570 006,A-1\n0491 570 156,{}\n",
        "R".repeat(200)
    );
    let reply = upload(&app, &campaign, csv, None).await;
    assert_eq!(reply.status, 201, "imported: {}", reply.text);
    assert_eq!(
        reply.body["errors"][0]["code"], "value_too_long",
        "row error"
    );
    assert_eq!(reply.body["errors"][0]["column"], "contact_ref", "column");
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Rejected rows as CSV
// ---------------------------------------------------------------------------

/// Reads a CSV body into rows of cells.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|record| {
            record
                .expect("valid CSV")
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

const REJECTED_HEADER: [&str; 18] = [
    "row",
    "line",
    "column",
    "code",
    "message",
    "contact_ref",
    "recipient_timezone",
    "registry_status",
    "registry_checked_at",
    "registry_evidence",
    "consent_type",
    "consent_evidence",
    "consent_given_at",
    "consent_expires_at",
    "exemption",
    "call_type",
    "priority",
    "max_attempts",
];

async fn rejected_csv(app: &TestApp, campaign: &str, import_id: &str) -> (Reply, Vec<Vec<String>>) {
    let reply = get(
        app,
        &format!("/v1/campaigns/{campaign}/imports/{import_id}/rejected.csv"),
    )
    .await;
    let rows = parse_csv(&reply.text);
    (reply, rows)
}

#[tokio::test]
async fn rejected_csv_lists_rows_and_values() {
    let (app, campaign) = spawn_with_limits(ImportLimits::default()).await;
    let csv = "to_number,contact_ref,first_name,recipient_timezone,registry_status,registry_checked_at,priority,max_attempts\n\
               0491 570 006,A-1,Bartholomew,NSW,N,2026-11-20,5,3\n\
               0491 57O 313,A-2,Maximilian,VIC,N,2026-11-20,5,3\n\
               0491 570 737,A-3,Theodora,AEST,maybe,20/11/2026,11,3\n\
               +61 491 570 006,A-4,Cornelius,QLD,,,,\n";
    let reply = upload(&app, &campaign, csv, None).await;
    assert_eq!(reply.status, 201, "import: {}", reply.text);
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();

    let (download, rows) = rejected_csv(&app, &campaign, &import_id).await;
    assert_eq!(download.status, 200, "download: {}", download.text);
    assert!(
        download.content_type.starts_with("text/csv"),
        "content type {}",
        download.content_type
    );
    assert_eq!(rows[0], REJECTED_HEADER, "header");
    let summary: Vec<(String, String, String)> = rows[1..]
        .iter()
        .map(|r| (r[0].clone(), r[2].clone(), r[3].clone()))
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("2", "to_number", "invalid_to_number"),
        ("3", "recipient_timezone", "invalid_recipient_timezone"),
        ("3", "registry_status", "invalid_registry_status"),
        ("3", "registry_checked_at", "invalid_date"),
        ("3", "priority", "invalid_priority"),
        ("4", "to_number", "duplicate_to_number"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(summary, expected, "one line per row error");
    let row_three = &rows[2];
    assert_eq!(row_three[1], "4", "line of row 3");
    assert_eq!(row_three[5], "A-3", "contact_ref kept");
    assert_eq!(row_three[6], "AEST", "recipient_timezone kept");
    assert_eq!(row_three[7], "maybe", "registry_status kept");
    assert_eq!(row_three[8], "20/11/2026", "registry_checked_at kept");
    assert_eq!(row_three[16], "11", "priority kept");
    assert_eq!(row_three[17], "3", "max_attempts kept");
    assert_eq!(rows[1][5], "A-2", "contact_ref of row 2");
    assert_eq!(rows[6][6], "QLD", "recipient_timezone of the duplicate");
    for secret in [
        "0491",
        "491570",
        "57O 313",
        "Bartholomew",
        "Maximilian",
        "Theodora",
        "Cornelius",
    ] {
        assert!(
            !download.text.contains(secret),
            "rejected.csv contains {secret:?}"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn rejected_csv_neutralises_formulas() {
    let (app, campaign) = spawn_with_limits(ImportLimits::default()).await;
    let csv = "to_number,contact_ref,priority\n\
               0491 57O 313,=HYPERLINK(\"http://example.com\"),5\n\
               0491 57O 737,+SUM(A1),5\n\
               0491 57O 110,-2+3,-1\n\
               0491 57O 156,@cmd,5\n\
               0491 57O 158,plain,5\n";
    let reply = upload(&app, &campaign, csv, None).await;
    assert_eq!(reply.status, 201, "import: {}", reply.text);
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let (download, rows) = rejected_csv(&app, &campaign, &import_id).await;
    assert_eq!(download.status, 200, "download: {}", download.text);
    let refs: Vec<&str> = rows[1..]
        .iter()
        .filter(|r| r[3] == "invalid_to_number")
        .map(|r| r[5].as_str())
        .collect();
    assert_eq!(
        refs,
        [
            "'=HYPERLINK(\"http://example.com\")",
            "'+SUM(A1)",
            "'-2+3",
            "'@cmd",
            "plain"
        ],
        "formula cells prefixed with an apostrophe"
    );
    let priority_of_row_three: Vec<&str> = rows[1..]
        .iter()
        .filter(|r| r[0] == "3" && r[3] == "invalid_priority")
        .map(|r| r[16].as_str())
        .collect();
    assert_eq!(
        priority_of_row_three,
        ["'-1"],
        "negative number neutralised"
    );
    app.finish().await;
}

#[tokio::test]
async fn rejected_csv_of_job() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let mut csv = valid_rows(100);
    csv.push_str("0491 57O 313,BAD-1,Leo\n");
    let reply = upload(&app, &campaign, csv, None).await;
    assert_eq!(reply.status, 202, "job: {}", reply.text);
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    wait_for_import(&app, &campaign, &import_id).await;
    let (download, rows) = rejected_csv(&app, &campaign, &import_id).await;
    assert_eq!(download.status, 200, "download: {}", download.text);
    assert_eq!(rows.len(), 2, "header and one row: {}", download.text);
    assert_eq!(rows[1][0], "101", "row");
    assert_eq!(rows[1][5], "BAD-1", "contact_ref");
    assert!(
        !download.text.contains("Leo"),
        "personalisation never included"
    );
    app.finish().await;
}

#[tokio::test]
async fn rejected_csv_of_clean_import_is_header() {
    let (app, campaign) = spawn_with_limits(ImportLimits::default()).await;
    let reply = upload(&app, &campaign, valid_rows(3), None).await;
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let (download, rows) = rejected_csv(&app, &campaign, &import_id).await;
    assert_eq!(download.status, 200, "download: {}", download.text);
    assert_eq!(
        rows,
        vec![REJECTED_HEADER.map(str::to_owned).to_vec()],
        "header only"
    );
    app.finish().await;
}

#[tokio::test]
async fn rejected_csv_unknown_import_404() {
    let (app, campaign) = spawn_with_limits(ImportLimits::default()).await;
    let (download, _) = rejected_csv(&app, &campaign, &uuid::Uuid::new_v4().to_string()).await;
    assert_problem(&download, 404, "not_found");
    app.finish().await;
}

#[tokio::test]
async fn rejected_rows_never_store_number_or_values() {
    let (app, campaign) = spawn_with_limits(ImportLimits::default()).await;
    let csv = "to_number,first_name,contact_ref\n0491 57O 313,Bartholomew,A-1\n";
    let reply = upload(&app, &campaign, csv, None).await;
    assert_eq!(reply.status, 201, "import: {}", reply.text);
    let stored: String =
        sqlx::query_scalar("SELECT row_to_json(r)::text FROM import_rejected_rows r")
            .fetch_one(&app.pool)
            .await
            .expect("rejected row");
    assert!(stored.contains("A-1"), "contact_ref kept: {stored}");
    for secret in ["57O", "0491", "Bartholomew"] {
        assert!(
            !stored.contains(secret),
            "stored row contains {secret:?}: {stored}"
        );
    }
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Wash result files
// ---------------------------------------------------------------------------

#[tokio::test]
async fn wash_over_limit_413() {
    let (app, campaign) = spawn_with_limits(ImportLimits {
        max_bytes: 100,
        ..ImportLimits::default()
    })
    .await;
    let mut csv = String::from("number,result\n");
    for index in 0..20 {
        csv.push_str(&format!(
            "0491 57{} {:03},N\n",
            1 + index / 1000,
            index % 1000
        ));
    }
    let response = app
        .http
        .post(app.url(&format!(
            "/v1/campaigns/{campaign}/wash-results?wash_reference=W-1"
        )))
        .bearer_auth(app.admin())
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("request");
    let reply = reply_of(response).await;
    assert_problem(&reply, 413, "file_too_large");
    app.finish().await;
}

#[tokio::test]
async fn wash_counts_repeats_once_and_unmatched() {
    let (app, campaign) = spawn_with_limits(ImportLimits::default()).await;
    let reply = upload(&app, &campaign, valid_rows(3), None).await;
    assert_eq!(reply.status, 201, "import: {}", reply.text);

    let csv = "number,result\r\n0491 571 000,N\r\n+61491571000,N\r\n0491 571 001,Y\r\n0491 570 737,N\r\n0491 57O 313,N\r\n";
    let response = app
        .http
        .post(app.url(&format!(
            "/v1/campaigns/{campaign}/wash-results?wash_reference=W-1"
        )))
        .bearer_auth(app.admin())
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("request");
    let reply = reply_of(response).await;
    assert_eq!(reply.status, 201, "wash: {}", reply.text);
    assert_eq!(reply.body["rows_total"], 5, "rows_total");
    assert_eq!(
        reply.body["not_registered"], 2,
        "not_registered counts a repeat once"
    );
    assert_eq!(reply.body["registered"], 1, "registered");
    assert_eq!(reply.body["contacts_matched"], 2, "contacts_matched");
    assert_eq!(reply.body["numbers_unmatched"], 1, "numbers_unmatched");
    assert_eq!(reply.body["rows_rejected"], 1, "rows_rejected");
    assert_eq!(
        reply.body["errors"][0]["line"], 6,
        "CRLF line of the bad row"
    );
    assert!(!reply.text.contains("57O"), "the bad number is not echoed");
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Reference checks on contacts
// ---------------------------------------------------------------------------

#[tokio::test]
async fn contact_with_unknown_parent_rejected() {
    let (app, campaign) = spawn_with_limits(ImportLimits::default()).await;
    let reply = upload(&app, &campaign, valid_rows(1), None).await;
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let client_id: String =
        sqlx::query_scalar("SELECT client_id::text FROM campaigns WHERE id = $1::uuid")
            .bind(&campaign)
            .fetch_one(&app.pool)
            .await
            .expect("client");

    let insert = |campaign_id: String, import_id: String| {
        sqlx::query(
            "INSERT INTO contacts (id, campaign_id, client_id, import_id, row_number, key_id, phone_ciphertext,
                                   phone_index, phone_masked, number_type, zone_source, zone_key, priority,
                                   max_attempts)
             VALUES (gen_random_uuid(), $1::uuid, $2::uuid, $3::uuid, 99, 'test1', '\\x00', '00000000-0000-0000-0000-000000000001',
                     '+61 ******999', 'mobile', 'number', 'AU', 5, 3)",
        )
        .bind(campaign_id)
        .bind(client_id.clone())
        .bind(import_id)
        .execute(&app.pool)
    };

    // An unknown campaign has no partition of contacts to hold the row.
    let error = insert(uuid::Uuid::new_v4().to_string(), import_id.clone())
        .await
        .expect_err("unknown campaign refused");
    assert_eq!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("23514"),
        "no partition for an unknown campaign"
    );
    let error = insert(campaign.clone(), uuid::Uuid::new_v4().to_string())
        .await
        .expect_err("unknown import refused");
    assert_eq!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("23503"),
        "foreign key violation for an unknown import"
    );

    let error = sqlx::query("DELETE FROM imports WHERE id = $1::uuid")
        .bind(&import_id)
        .execute(&app.pool)
        .await
        .expect_err("referenced import kept");
    assert_eq!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("23503"),
        "a referenced import cannot be deleted"
    );
    let error = sqlx::query("UPDATE contacts SET import_id = gen_random_uuid()")
        .execute(&app.pool)
        .await
        .expect_err("contacts stay with their import");
    assert_eq!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("23503"),
        "a contact cannot move"
    );
    app.finish().await;
}

/// Returns whether the table of the campaign's partition exists, and whether
/// it is attached to `contacts`.
async fn partition_state(app: &TestApp, campaign: &str) -> (bool, bool) {
    let name = format!("contacts_{}", campaign.replace('-', ""));
    sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1),
                EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
                         WHERE i.inhparent = 'contacts'::regclass AND p.relname = $1)",
    )
    .bind(name)
    .fetch_one(&app.pool)
    .await
    .expect("partition lookup")
}

#[tokio::test]
async fn failed_first_import_leaves_no_partition() {
    let (app, campaign) = spawn_with_limits(job_limits()).await;
    let mut csv = valid_rows(30);
    csv.push_str("0491 570 006,\"never closed,Leo\n");
    let reply = upload(&app, &campaign, csv, None).await;
    assert_eq!(reply.status, 202, "job accepted: {}", reply.text);
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let done = wait_for_import(&app, &campaign, &import_id).await;
    assert_eq!(done["state"], "failed", "state: {done}");
    assert_eq!(
        partition_state(&app, &campaign).await,
        (false, false),
        "the table of the failed import is gone with its transaction"
    );

    let reply = upload(&app, &campaign, valid_rows(30), None).await;
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let done = wait_for_import(&app, &campaign, &import_id).await;
    assert_eq!(done["state"], "completed", "state: {done}");
    assert_eq!(
        partition_state(&app, &campaign).await,
        (true, true),
        "the first completed import attaches the campaign's partition"
    );
    // The attach reuses the indexes the import built: one per index of contacts.
    let (indexes, attached): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(i.inhparent) FROM pg_index x
           LEFT JOIN pg_inherits i ON i.inhrelid = x.indexrelid
          WHERE x.indrelid = $1::regclass",
    )
    .bind(format!("contacts_{}", campaign.replace('-', "")))
    .fetch_one(&app.pool)
    .await
    .expect("index lookup");
    assert_eq!(indexes, 3, "no index built twice");
    assert_eq!(attached, 3, "every index belongs to an index of contacts");
    assert_eq!(
        contacts(&app, &campaign).await.len(),
        30,
        "every row imported"
    );
    app.finish().await;
}

#[tokio::test]
async fn later_import_into_partition_finds_duplicates() {
    let (app, campaign) = spawn_with_limits(ImportLimits::default()).await;
    let first = upload(&app, &campaign, valid_rows(3), None).await;
    assert_eq!(first.status, 201, "first import: {}", first.text);

    // Row 1 repeats the first file's row 2 in another style, and row 2 is new.
    let second = upload(
        &app,
        &campaign,
        "to_number,contact_ref\n0491571001,AGAIN\n0491 571 500,NEW\n",
        None,
    )
    .await;
    assert_eq!(second.status, 201, "second import: {}", second.text);
    assert_eq!(second.body["rows_accepted"], 1, "{}", second.text);
    assert_eq!(
        second.body["errors"][0]["code"], "duplicate_to_number",
        "{}",
        second.text
    );
    assert!(
        second.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|message| message.contains("row 2 of an earlier import")),
        "the duplicate names the row it repeats: {}",
        second.text
    );

    let listed = contacts(&app, &campaign).await;
    let refs: Vec<&str> = listed
        .iter()
        .map(|contact| contact["contact_ref"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        refs,
        ["REF-0", "REF-1", "REF-2", "NEW"],
        "contacts listed in import order, then file order"
    );
    app.finish().await;
}

#[tokio::test]
async fn first_import_ignores_attempt_writers() {
    let (app, campaign) = spawn_with_limits(ImportLimits::default()).await;
    // Any transaction that writes attempts holds this lock until it ends; a
    // dialling campaign always has one open. Attaching the partition must
    // not wait for it.
    let mut writer = app.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE attempts IN ROW EXCLUSIVE MODE")
        .execute(&mut *writer)
        .await
        .expect("lock attempts");
    let reply = tokio::time::timeout(
        Duration::from_secs(20),
        upload(&app, &campaign, valid_rows(5), None),
    )
    .await
    .expect("the import finishes while attempts are being written");
    assert_eq!(reply.status, 201, "first import: {}", reply.text);
    assert_eq!(reply.body["rows_accepted"], 5, "{}", reply.text);
    writer.rollback().await.expect("rollback");
    app.finish().await;
}

/// Runs `statement`, with `id` bound to `$1` when given, and returns the
/// SQLSTATE it fails with.
async fn failure_code(app: &TestApp, statement: &str, id: Option<&str>) -> String {
    let mut query = sqlx::query(statement);
    if let Some(id) = id {
        query = query.bind(id);
    }
    let error = query
        .execute(&app.pool)
        .await
        .expect_err("the statement is rejected");
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|code| code.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn issue_rows_need_their_import() {
    let (app, campaign) = spawn_with_limits(ImportLimits::default()).await;
    // One row, rejected for its priority: the import has an issue and a
    // rejected row but no contact.
    let reply = upload(
        &app,
        &campaign,
        "to_number,priority\n0491 570 156,11\n",
        None,
    )
    .await;
    assert_eq!(
        reply.status, 201,
        "import of a rejected row: {}",
        reply.text
    );
    assert_eq!(reply.body["rows_rejected"], 1, "{}", reply.text);
    let import_id = reply.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();

    for statement in [
        "INSERT INTO import_issue_blocks (import_id, first_seq, last_seq, errors, warnings, severities,
                                          row_numbers, lines, column_names, codes, messages)
         VALUES (gen_random_uuid(), 0, 0, 1, 0, '{error}', '{1}', '{2}', '{priority}', '{invalid_priority}', '{x}')",
        "INSERT INTO import_rejected_rows (import_id, row_number, line) VALUES (gen_random_uuid(), 1, 2)",
        "UPDATE import_issue_blocks SET import_id = gen_random_uuid()",
    ] {
        assert_eq!(
            failure_code(&app, statement, None).await,
            "23503",
            "foreign key violation for {statement}"
        );
    }
    assert_eq!(
        failure_code(
            &app,
            "DELETE FROM imports WHERE id = $1::uuid",
            Some(&import_id)
        )
        .await,
        "23503",
        "an import with issues cannot be deleted"
    );
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Concurrent import jobs
// ---------------------------------------------------------------------------

/// Sends only the head of a job-sized upload, declaring a body it never
/// sends, and returns the status and text of the response. A server that
/// tried to read the body would wait past the read timeout.
async fn post_head_only(app: &TestApp, path: &str, length: usize) -> (u16, String) {
    let address = app.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: text/csv\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n",
        app.admin()
    );
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(head.as_bytes()).expect("head");
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        (status, text)
    })
    .await
    .expect("the request finishes")
}

#[tokio::test]
async fn jobs_over_cap_refused_with_429() {
    let (app, campaign) = spawn_with_limits(ImportLimits {
        max_jobs: 1,
        ..job_limits()
    })
    .await;
    // Holding the campaign row keeps the first job waiting inside its slot.
    let mut blocker = app.pool.begin().await.expect("transaction");
    sqlx::query("SELECT 1 FROM campaigns WHERE id = $1::uuid FOR NO KEY UPDATE")
        .bind(&campaign)
        .execute(&mut *blocker)
        .await
        .expect("lock the campaign");
    let first = upload(&app, &campaign, valid_rows(50), None).await;
    assert_eq!(first.status, 202, "first job: {}", first.text);

    let response = app
        .http
        .post(app.url(&format!("/v1/campaigns/{campaign}/imports")))
        .bearer_auth(app.admin())
        .header("Content-Type", "text/csv")
        .body(valid_rows(60))
        .send()
        .await
        .expect("request");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let second = reply_of(response).await;
    assert_problem(&second, 429, "too_many_import_jobs");
    assert!(
        retry_after.is_some_and(|s| s > 0),
        "Retry-After: {retry_after:?}"
    );
    assert_eq!(
        second.body["max_import_jobs"], 1,
        "limit named: {}",
        second.text
    );
    assert!(
        second.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("again")),
        "tells the client to retry: {}",
        second.text
    );

    let path = format!("/v1/campaigns/{campaign}/imports");
    let (status, text) = post_head_only(&app, &path, 100_000).await;
    assert_eq!(status, 429, "refused before the body is read: {text}");

    blocker.rollback().await.expect("release");
    let first_id = first.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let done = wait_for_import(&app, &campaign, &first_id).await;
    assert_eq!(done["state"], "completed", "first job: {done}");

    let imported: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(imported, 50, "the refused upload imported nothing");

    let third = upload(&app, &campaign, valid_rows(60), None).await;
    assert_eq!(
        third.status, 202,
        "a freed slot takes a job: {}",
        third.text
    );
    let third_id = third.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let done = wait_for_import(&app, &campaign, &third_id).await;
    assert_eq!(done["state"], "completed", "third job: {done}");
    assert_eq!(done["rows_accepted"], 10, "third job: {done}");
    app.finish().await;
}

#[tokio::test]
async fn small_upload_not_limited_by_job_cap() {
    let (app, campaign) = spawn_with_limits(ImportLimits {
        max_jobs: 1,
        ..job_limits()
    })
    .await;
    let mut blocker = app.pool.begin().await.expect("transaction");
    sqlx::query("SELECT 1 FROM campaigns WHERE id = $1::uuid FOR NO KEY UPDATE")
        .bind(&campaign)
        .execute(&mut *blocker)
        .await
        .expect("lock the campaign");

    let first = upload(&app, &campaign, valid_rows(50), None).await;
    assert_eq!(first.status, 202, "first job: {}", first.text);

    // The small file arrives while the job has the only slot. It waits for
    // the campaign row like any import, and is not rejected.
    let release = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        blocker.rollback().await.expect("release");
    };
    let (small, ()) = tokio::join!(
        upload(&app, &campaign, "to_number\n0491 570 006\n", None),
        release
    );
    assert_eq!(small.status, 201, "inline import: {}", small.text);

    let first_id = first.body["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    wait_for_import(&app, &campaign, &first_id).await;
    app.finish().await;
}
