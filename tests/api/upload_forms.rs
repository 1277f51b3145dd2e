//! How a contact file reaches the server: as the file part of a
//! multipart/form-data form, from a client that stalls, and twice at once
//! under one Idempotency-Key.
//!
//! Numbers are the fictitious ones from ACMA's list: mobiles 0491 570 006,
//! 0491 570 156–159 and 0491 571 000–0491 579 999.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{Options, TestApp};
use outbound_http::state::ImportLimits;

const BOUNDARY: &str = "outbound-test-boundary";
const FILE: &str = "to_number,contact_ref\n0491 570 156,A-1\n0491 570 157,A-2\n";

/// Builds a multipart/form-data body with the given parts: (name, filename,
/// content type, content).
fn form(parts: &[(&str, Option<&str>, Option<&str>, &str)]) -> Vec<u8> {
    let mut body = String::new();
    for (name, filename, content_type, content) in parts {
        body.push_str(&format!("--{BOUNDARY}\r\n"));
        match filename {
            Some(filename) => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
            )),
            None => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"\r\n"
            )),
        }
        if let Some(content_type) = content_type {
            body.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        body.push_str("\r\n");
        body.push_str(content);
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    body.into_bytes()
}

/// Posts `body` to the campaign's imports with a Content-Type and an
/// optional Idempotency-Key; returns the status, the parsed body and
/// whether the response was replayed.
async fn post(
    app: &TestApp,
    campaign: &str,
    content_type: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> (u16, Value, bool) {
    let mut request = app
        .http
        .post(app.url(&format!("/v1/campaigns/{campaign}/imports")))
        .bearer_auth(app.admin())
        .header("Content-Type", content_type)
        .timeout(Duration::from_secs(60))
        .body(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let text = response.text().await.expect("response text");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        replayed,
    )
}

/// Starts a server with the default limits and creates a campaign on it.
async fn spawn_with_campaign() -> (TestApp, String) {
    spawn_with_limits(ImportLimits::default()).await
}

async fn post_form(app: &TestApp, campaign: &str, body: Vec<u8>) -> (u16, Value, bool) {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    post(app, campaign, &content_type, body, None).await
}

async fn contact_count(app: &TestApp, campaign: &str) -> usize {
    let (status, body) = app
        .get(
            &format!("/v1/campaigns/{campaign}/contacts?limit=500"),
            &app.admin(),
        )
        .await;
    assert_eq!(status, 200, "contacts list: {body}");
    body["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn multipart_file_part_imports() {
    let (app, campaign) = spawn_with_campaign().await;
    let body = form(&[
        ("note", None, None, "uploaded from the portal"),
        ("file", Some("contacts.csv"), Some("text/csv"), FILE),
    ]);
    let (status, reply, _) = post_form(&app, &campaign, body).await;
    assert_eq!(status, 201, "form upload: {reply}");
    assert_eq!(reply["rows_accepted"], 2, "{reply}");
    assert_eq!(reply["rows_rejected"], 0, "{reply}");
    assert_eq!(contact_count(&app, &campaign).await, 2);

    // A part with a filename is the file whatever its name, and the same
    // file sent again is all duplicates.
    let body = form(&[("upload", Some("export.csv"), None, FILE)]);
    let (status, reply, _) = post_form(&app, &campaign, body).await;
    assert_eq!(status, 201, "second form upload: {reply}");
    assert_eq!(reply["rows_accepted"], 0, "{reply}");
    assert_eq!(reply["rows_rejected"], 2, "{reply}");
    assert_eq!(contact_count(&app, &campaign).await, 2);
    app.finish().await;
}

#[tokio::test]
async fn multipart_wash_file_attaches() {
    let (app, campaign) = spawn_with_campaign().await;
    let (status, reply, _) = post_form(
        &app,
        &campaign,
        form(&[("file", Some("c.csv"), None, FILE)]),
    )
    .await;
    assert_eq!(status, 201, "{reply}");

    let body = form(&[(
        "file",
        Some("wash.csv"),
        Some("text/csv"),
        "number,result\n0491 570 156,N\n0491 570 157,Y\n",
    )]);
    let response = app
        .http
        .post(app.url(&format!(
            "/v1/campaigns/{campaign}/wash-results?wash_reference=W-FORM"
        )))
        .bearer_auth(app.admin())
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 201);
    let wash: Value = response.json().await.expect("json");

    assert_eq!(wash["contacts_matched"], 2, "{wash}");
    assert_eq!(wash["registered"], 1, "{wash}");
    assert_eq!(wash["not_registered"], 1, "{wash}");
    app.finish().await;
}

#[tokio::test]
async fn multipart_without_file_is_missing_file() {
    let (app, campaign) = spawn_with_campaign().await;
    let body = form(&[("note", None, None, "no file here")]);
    let (status, reply, _) = post_form(&app, &campaign, body).await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["code"], "missing_file", "{reply}");
    assert_eq!(contact_count(&app, &campaign).await, 0);
    app.finish().await;
}

#[tokio::test]
async fn multipart_with_two_files_imports_nothing() {
    let (app, campaign) = spawn_with_campaign().await;
    let body = form(&[
        ("file", Some("a.csv"), Some("text/csv"), FILE),
        (
            "file2",
            Some("b.csv"),
            Some("text/csv"),
            "to_number\n0491 570 158\n",
        ),
    ]);
    let (status, reply, _) = post_form(&app, &campaign, body).await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["code"], "multiple_files", "{reply}");
    assert_eq!(contact_count(&app, &campaign).await, 0, "nothing imported");
    app.finish().await;
}

#[tokio::test]
async fn multipart_workbook_is_unsupported_media_type() {
    let (app, campaign) = spawn_with_campaign().await;
    let body = form(&[(
        "file",
        Some("contacts.xlsx"),
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        "PK",
    )]);
    let (status, reply, _) = post_form(&app, &campaign, body).await;
    assert_eq!(status, 415, "{reply}");
    assert_eq!(reply["code"], "unsupported_media_type", "{reply}");
    assert!(
        reply["detail"]
            .as_str()
            .unwrap_or("")
            .contains("save the sheet as CSV"),
        "says what to do: {reply}"
    );
    app.finish().await;
}

#[tokio::test]
async fn malformed_multipart_is_bad_request() {
    let (app, campaign) = spawn_with_campaign().await;
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let (status, reply, _) = post(
        &app,
        &campaign,
        &content_type,
        b"to_number\n0491 570 156\n".to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["code"], "invalid_multipart", "{reply}");
    assert_eq!(contact_count(&app, &campaign).await, 0);
    app.finish().await;
}

/// Builds the head of an authenticated POST to `path` with extra `headers`
/// (each ending in CRLF); returns the server's address and the head.
fn raw_head(app: &TestApp, path: &str, headers: &str) -> (String, String) {
    let address = app.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n{headers}Connection: close\r\n\r\n",
        app.admin()
    );
    (address, head)
}

/// Connects to `address` and sends `head`, on a blocking thread.
fn send_head(address: &str, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("head");
    stream
}

/// Reads a response to its end; returns its status (0 when none came) and text.
fn read_response(stream: &mut TcpStream) -> (u16, String) {
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

/// Starts a client that sends a request head promising `length` bytes and
/// then only `start`. It sends `rest` on a signal from the returned sender,
/// then reads the response; the handle returns the status and text.
fn stalled_upload(
    app: &TestApp,
    campaign: &str,
    length: usize,
    start: &str,
    rest: &str,
) -> (mpsc::Sender<()>, tokio::task::JoinHandle<(u16, String)>) {
    let path = format!("/v1/campaigns/{campaign}/imports");
    let headers = format!("Content-Type: text/csv\r\nContent-Length: {length}\r\n");
    let (address, mut head) = raw_head(app, &path, &headers);
    head.push_str(start);
    let rest = rest.to_owned();
    let (finish, finish_signal) = mpsc::channel::<()>();
    let handle = tokio::task::spawn_blocking(move || {
        let mut stream = send_head(&address, &head);
        if finish_signal.recv().is_ok() {
            let _ = stream.write_all(rest.as_bytes());
        }
        read_response(&mut stream)
    });
    (finish, handle)
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

/// Starts a server whose uploads may idle for `seconds`, with one campaign.
async fn spawn_with_idle(seconds: u64) -> (TestApp, String) {
    spawn_with_limits(ImportLimits {
        idle_timeout: Duration::from_secs(seconds),
        ..ImportLimits::default()
    })
    .await
}

/// Posts the campaign `action` (such as `pause`) while an upload to the
/// campaign has sent only part of its body, then lets the upload finish.
/// Returns the action's status, or `None` when it waited 30 seconds, and the
/// upload's status and response text.
async fn action_during_stalled_upload(
    app: &TestApp,
    campaign: &str,
    action: &str,
) -> (Option<u16>, u16, String) {
    let start = "to_number\n0491 570 156\n";
    let rest = "0491 570 157\n";
    let length = start.len() + rest.len();
    let (finish, upload) = stalled_upload(app, campaign, length, start, rest);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let response = app
        .http
        .post(app.url(&format!("/v1/campaigns/{campaign}/{action}")))
        .bearer_auth(app.admin())
        .json(&json!({}))
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let action_status = response.ok().map(|response| response.status().as_u16());
    finish.send(()).expect("the client waits for the signal");
    let (status, text) = upload.await.expect("the upload finishes");
    (action_status, status, text)
}

#[tokio::test]
async fn stalled_upload_times_out() {
    let (app, campaign) = spawn_with_idle(1).await;
    let start = "to_number\n0491 570 156\n";
    let (finish, upload) = stalled_upload(&app, &campaign, 1000, start, "");
    // Without the signal the client never sends the rest.
    drop(finish);
    let (status, text) = upload.await.expect("the stalled client finishes");
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("upload_timeout"), "{text}");
    assert!(!text.contains("570"), "no number echoed: {text}");
    assert_eq!(contact_count(&app, &campaign).await, 0, "nothing imported");

    // The campaign is free again: it can be cancelled.
    let (status, body) = app
        .post(
            &format!("/v1/campaigns/{campaign}/cancel"),
            &app.admin(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "cancel after the stalled upload: {body}");
    app.finish().await;
}

#[tokio::test]
async fn stalled_upload_leaves_running_campaign_free() {
    let (app, campaign) = spawn_with_idle(120).await;
    let (status, reply, _) = post(
        &app,
        &campaign,
        "text/csv",
        b"to_number\n0491 570 006\n".to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    let washed = app
        .http
        .post(app.url(&format!(
            "/v1/campaigns/{campaign}/wash-results?wash_reference=W-1"
        )))
        .bearer_auth(app.admin())
        .header("Content-Type", "text/csv")
        .body("number,result\n0491 570 006,N\n")
        .send()
        .await
        .expect("wash");
    assert_eq!(washed.status().as_u16(), 201, "wash");
    let (status, body) = app
        .post(
            &format!("/v1/campaigns/{campaign}/launch"),
            &app.admin(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "launch: {body}");

    // While the upload stalls, the campaign is not held: a pause goes
    // through. Before, the upload held the campaign's row lock until its
    // body ended, and the pause waited for it.
    let (pause, status, text) = action_during_stalled_upload(&app, &campaign, "pause").await;

    assert_eq!(pause, Some(200), "the pause did not wait for the upload");
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("campaign_not_editable"), "{text}");
    assert_eq!(contact_count(&app, &campaign).await, 1, "nothing added");
    app.finish().await;
}

#[tokio::test]
async fn stalled_upload_leaves_draft_campaign_free() {
    let (app, campaign) = spawn_with_idle(120).await;

    // The file is received in full before the campaign is locked, so a
    // cancel does not wait for the slow client.
    let (cancel, status, text) = action_during_stalled_upload(&app, &campaign, "cancel").await;

    assert_eq!(cancel, Some(200), "the cancel did not wait for the upload");
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("campaign_not_editable"), "{text}");
    assert_eq!(contact_count(&app, &campaign).await, 0, "nothing imported");
    app.finish().await;
}

/// Builds a file of `count` distinct valid mobiles from 0491 571 000 on.
fn rows(count: usize) -> String {
    let mut csv = String::from("to_number,contact_ref\n");
    for index in 0..count {
        csv.push_str(&format!("0491 571 {:03},REF-{index}\n", index));
    }
    csv
}

/// Sends the same file twice at once under one Idempotency-Key and checks
/// that one import took place and both responses name it.
async fn same_key_at_once(app: &TestApp, campaign: &str, file: &str, status: u16) {
    let (first, second) = tokio::join!(
        post(
            app,
            campaign,
            "text/csv",
            file.as_bytes().to_vec(),
            Some("same-key")
        ),
        post(
            app,
            campaign,
            "text/csv",
            file.as_bytes().to_vec(),
            Some("same-key")
        ),
    );
    assert_eq!(
        (first.0, second.0),
        (status, status),
        "{first:?} {second:?}"
    );
    assert_eq!(
        first.1["import_id"], second.1["import_id"],
        "both answers name one import"
    );
    assert!(
        first.2 != second.2,
        "exactly one answer is a replay: {first:?} {second:?}"
    );
    let imports: i64 = sqlx::query_scalar("SELECT count(*) FROM imports")
        .fetch_one(&app.pool)
        .await
        .expect("count imports");
    assert_eq!(imports, 1, "one import recorded");
}

#[tokio::test]
async fn same_key_at_once_imports_once() {
    let (app, campaign) = spawn_with_campaign().await;
    same_key_at_once(&app, &campaign, &rows(400), 201).await;
    assert_eq!(contact_count(&app, &campaign).await, 400);
    app.finish().await;
}

#[tokio::test]
async fn same_key_at_once_starts_one_job() {
    let (app, campaign) = spawn_with_limits(ImportLimits {
        async_bytes: 256,
        ..ImportLimits::default()
    })
    .await;
    same_key_at_once(&app, &campaign, &rows(400), 202).await;
    let mut state = String::new();
    for _ in 0..600 {
        state = sqlx::query_scalar("SELECT state FROM imports")
            .fetch_one(&app.pool)
            .await
            .expect("import state");
        if state != "processing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "completed");
    assert_eq!(contact_count(&app, &campaign).await, 400);
    app.finish().await;
}

/// Sends a request over a raw connection: the head with `headers`, then each
/// piece of the body after its pause. Returns the status and the response text.
async fn raw_request(
    app: &TestApp,
    path: &str,
    headers: &str,
    pieces: Vec<(Duration, Vec<u8>)>,
) -> (u16, String) {
    let (address, head) = raw_head(app, path, headers);
    tokio::task::spawn_blocking(move || {
        let mut stream = send_head(&address, &head);
        for (pause, piece) in pieces {
            std::thread::sleep(pause);
            // The server may respond and close before the whole body is sent.
            if stream.write_all(&piece).is_err() {
                break;
            }
        }
        read_response(&mut stream)
    })
    .await
    .expect("the raw request finishes")
}

/// Encodes `body` as one HTTP/1.1 chunk and the last chunk.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    out
}

#[tokio::test]
async fn chunked_multipart_imports() {
    // A form sent without Content-Length is read to its end before the
    // import, then read again; that second read used to panic the worker.
    let (app, campaign) = spawn_with_campaign().await;
    let body = form(&[("file", Some("contacts.csv"), Some("text/csv"), FILE)]);
    let headers = format!(
        "Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n"
    );
    let path = format!("/v1/campaigns/{campaign}/imports");
    let (status, text) = raw_request(
        &app,
        &path,
        &headers,
        vec![(Duration::ZERO, chunked(&body))],
    )
    .await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(contact_count(&app, &campaign).await, 2);
    app.finish().await;
}

#[tokio::test]
async fn short_boundary_form_is_bad_request() {
    // Older versions of the form parser panicked on this body.
    let (app, campaign) = spawn_with_campaign().await;
    let body = format!(
        "--\n--ab\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.csv\"\r\n\r\n{FILE}\r\n--ab--\r\n"
    );
    let (status, reply, _) = post(
        &app,
        &campaign,
        "multipart/form-data; boundary=ab",
        body.into_bytes(),
        None,
    )
    .await;
    assert!(
        status == 400 || status == 201,
        "a clear answer, not a dropped connection: {status} {reply}"
    );
    app.finish().await;
}

#[tokio::test]
async fn boundary_split_across_packets_keeps_parts_apart() {
    // The form parser used to read a boundary split across two reads as
    // file content, so the next part's number became a contact.
    let (app, campaign) = spawn_with_campaign().await;
    let body = form(&[
        ("file", Some("contacts.csv"), Some("text/csv"), FILE),
        ("callback_number", None, None, "0491 571 021"),
    ]);
    let split = body
        .windows(4 + BOUNDARY.len())
        .position(|window| window == format!("\r\n--{BOUNDARY}").as_bytes())
        .expect("the boundary after the file")
        + 4;
    let headers = format!(
        "Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n",
        body.len()
    );

    let path = format!("/v1/campaigns/{campaign}/imports");
    let pieces = vec![
        (Duration::ZERO, body[..split].to_vec()),
        (Duration::from_millis(500), body[split..].to_vec()),
    ];
    let (status, text) = raw_request(&app, &path, &headers, pieces).await;
    assert_eq!(status, 201, "{text}");
    assert!(
        text.contains("\"rows_total\":2"),
        "only the file's rows: {text}"
    );
    assert_eq!(contact_count(&app, &campaign).await, 2);
    app.finish().await;
}

#[tokio::test]
async fn slow_form_part_is_not_idle() {
    // The idle timeout used to count chunks of the file only, so a long text
    // part before it, sent steadily, timed out.
    let (app, campaign) = spawn_with_idle(1).await;
    let note = "n".repeat(4000);
    let body = form(&[
        ("note", None, None, &note),
        ("file", Some("contacts.csv"), Some("text/csv"), FILE),
    ]);
    let headers = format!(
        "Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n",
        body.len()
    );
    let mut pieces: Vec<(Duration, Vec<u8>)> = body
        .chunks(500)
        .map(|piece| (Duration::from_millis(300), piece.to_vec()))
        .collect();
    pieces[0].0 = Duration::ZERO;
    let path = format!("/v1/campaigns/{campaign}/imports");
    let (status, text) = raw_request(&app, &path, &headers, pieces).await;
    assert_eq!(status, 201, "{text}");
    app.finish().await;
}

#[tokio::test]
async fn chunked_form_over_limit_is_too_large() {
    // The size limit used to count the file's bytes only, so other parts of
    // a form sent without Content-Length were unbounded.
    let (app, campaign) = spawn_with_limits(ImportLimits {
        max_bytes: 2000,
        ..ImportLimits::default()
    })
    .await;
    let note = "n".repeat(5000);
    let body = form(&[
        ("note", None, None, &note),
        ("file", Some("contacts.csv"), Some("text/csv"), FILE),
    ]);
    let headers = format!(
        "Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n"
    );

    let path = format!("/v1/campaigns/{campaign}/imports");
    let (status, text) = raw_request(
        &app,
        &path,
        &headers,
        vec![(Duration::ZERO, chunked(&body))],
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("file_too_large"), "{text}");
    assert_eq!(contact_count(&app, &campaign).await, 0);
    app.finish().await;
}

#[tokio::test]
async fn workbook_sent_raw_is_unsupported_media_type() {
    let (app, campaign) = spawn_with_campaign().await;
    let mut workbook = b"PK\x03\x04\x14\x00\x06\x00".to_vec();
    workbook.extend_from_slice(&[0; 64]);
    for content_type in ["application/octet-stream", "text/csv"] {
        let (status, reply, _) = post(&app, &campaign, content_type, workbook.clone(), None).await;
        assert_eq!(status, 415, "{content_type}: {reply}");
        assert_eq!(reply["code"], "unsupported_media_type", "{reply}");
    }
    let body = form(&[("file", Some("contacts.xlsx"), None, "PK\u{3}\u{4}rest")]);
    let (status, reply, _) = post_form(&app, &campaign, body).await;
    assert_eq!(status, 415, "{reply}");
    app.finish().await;
}

#[tokio::test]
async fn browser_empty_file_input_is_skipped() {
    let (app, campaign) = spawn_with_campaign().await;
    let body = form(&[
        ("attachment", Some(""), Some("application/octet-stream"), ""),
        ("FILE", None, None, FILE),
    ]);
    let (status, reply, _) = post_form(&app, &campaign, body).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["rows_accepted"], 2, "{reply}");
    app.finish().await;
}

#[tokio::test]
async fn slow_job_upload_holds_no_job_slot() {
    // A job slot used to be taken before the body was read, so slow uploads
    // of large files could hold every slot and refuse all other jobs.
    let (app, campaign) = spawn_with_limits(ImportLimits {
        async_bytes: 256,
        max_jobs: 1,
        idle_timeout: Duration::from_secs(120),
        ..ImportLimits::default()
    })
    .await;
    let slow = rows(40);
    let (finish, upload) = stalled_upload(&app, &campaign, slow.len(), &slow[..100], &slow[100..]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let other = app.create_campaign(json!({})).await;
    let file = rows(30).replace("0491 571", "0491 572");
    let (status, reply, _) = post(&app, &other, "text/csv", file.into_bytes(), None).await;
    finish.send(()).expect("the client waits for the signal");
    let (slow_status, text) = upload.await.expect("the slow upload finishes");

    assert_eq!(
        status, 202,
        "a job starts while the slow upload is sent: {reply}"
    );
    assert!(
        slow_status == 202 || slow_status == 429,
        "the slow upload gets a slot or a clear 429: {text}"
    );
    app.finish().await;
}

#[tokio::test]
async fn wash_key_repeat_without_received_at_replays() {
    // The default received_at, the time of the request, used to make every
    // repeat a different request.
    let (app, campaign) = spawn_with_campaign().await;
    let (status, reply, _) =
        post(&app, &campaign, "text/csv", FILE.as_bytes().to_vec(), None).await;
    assert_eq!(status, 201, "{reply}");

    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = app
            .http
            .post(app.url(&format!(
                "/v1/campaigns/{campaign}/wash-results?wash_reference=W-KEY"
            )))
            .bearer_auth(app.admin())
            .header("Content-Type", "text/csv")
            .header("Idempotency-Key", "wash-key")
            .body("number,result\n0491 570 156,N\n")
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let body: Value = response.json().await.expect("json");
        answers.push((status, replayed, body));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!((answers[0].0, answers[0].1), (201, false), "{answers:?}");
    assert_eq!((answers[1].0, answers[1].1), (201, true), "{answers:?}");
    assert_eq!(answers[0].2["wash_id"], answers[1].2["wash_id"]);
    app.finish().await;
}

#[tokio::test]
async fn inline_and_job_with_one_key_import_once() {
    // A job-sized upload stores its key without waiting for the campaign. An
    // upload imported while the request waited, with the same key, then
    // failed with a 500 when it found the key taken.
    let (app, campaign) = spawn_with_limits(ImportLimits {
        async_bytes: 2000,
        ..ImportLimits::default()
    })
    .await;
    let campaign_id = uuid::Uuid::parse_str(&campaign).expect("campaign id");
    let file = rows(20);
    assert!(file.len() < 2000, "the plain file is imported inline");
    // The same file in a form padded past the job threshold: the same
    // request for the key, sent as a job.
    let padding = "p".repeat(2500);
    let padded = form(&[
        ("note", None, None, &padding),
        ("file", Some("contacts.csv"), Some("text/csv"), &file),
    ]);

    // Hold the campaign so the inline import waits for it.
    let mut holder = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE")
        .bind(campaign_id)
        .execute(&mut *holder)
        .await
        .expect("lock the campaign");
    let lock_waiters = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.pool)
        .await
        .expect("read pg_stat_activity")
    };
    let inline = post(
        &app,
        &campaign,
        "text/csv",
        file.clone().into_bytes(),
        Some("mixed"),
    );
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let job = async {
        // Sent once the inline upload waits for the campaign.
        while lock_waiters().await < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        post(&app, &campaign, &content_type, padded, Some("mixed")).await
    };
    let release = async {
        // Released once the job waits for the campaign too, so the inline
        // upload, first in the queue, finds the key the job stored.
        while lock_waiters().await < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        holder.rollback().await.expect("release the campaign");
    };
    let (inline, job, ()) = tokio::join!(inline, job, release);

    assert_eq!(job.0, 202, "the job: {job:?}");
    assert_eq!(
        inline.0, 202,
        "the inline upload replays the job: {inline:?}"
    );
    assert!(inline.2, "a replay: {inline:?}");
    assert_eq!(inline.1["import_id"], job.1["import_id"]);
    for _ in 0..600 {
        let state: String = sqlx::query_scalar("SELECT state FROM imports")
            .fetch_one(&app.pool)
            .await
            .expect("one import");
        if state != "processing" {
            assert_eq!(state, "completed");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(contact_count(&app, &campaign).await, 20);
    app.finish().await;
}
