//! A server killed with SIGKILL in the middle of a large contact import.
//!
//! The test runs the real `outbound serve` binary on a fresh database and
//! sends it a file large enough to become a job. A table lock stops the job
//! in the middle of the file: its first batch of contacts is already written
//! inside the import's open transaction, and the job waits to write its first
//! batch of row issues. The test kills the server while the job reports its
//! progress. It then checks through SQL that nothing of the import is left:
//! no contacts, no row issues, no rejected rows and no audit entry. A new
//! server on the same database must mark the import failed with
//! `import_interrupted` when it starts, and report it so. Uploading the file again with a new
//! `Idempotency-Key` must import every valid row exactly once.
//!
//! The lock is a `SHARE` lock on `import_issue_blocks` taken by the test. It
//! blocks the job's `COPY` into that table and nothing else the job needs.
//! The file has no row issue until after the first batch of contacts. Its
//! rejected rows then fill several batches of row issues, so the job's reader
//! stops well before the end of the file. The stop does not depend on timing.
//!
//! Numbers are ACMA's fictitious landlines (02|03|07|08) 5550 xxxx and
//! 7010 xxxx; the rejected rows carry a letter in the number.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{
    create_tenant, drop_database, fresh_database, token_for, valid_campaign, AUDIENCE, ISSUER,
};
use crate::support::{database_url, write_test_key_file};

/// Valid rows at the start of the file: more than one batch of contacts
/// (32,768 rows), so a `COPY` of contacts runs before the job is blocked.
const VALID_ROWS: usize = 36_000;
/// Rejected rows after them. Each adds a row issue of about 120 bytes and a
/// rejected row of about 100 (estimates). The job writes both in batches of
/// 1 MiB, so it sends a batch of issues about every 8,700 rows and one
/// of rejected rows every 10,000. The first batch of issues waits for the
/// test's lock and the next two fill the writer's queue of 2, so the reader
/// stops at about 20,000 of these rows.
const REJECTED_ROWS: usize = 36_000;
/// Upper bound of every wait.
const WAIT: Duration = Duration::from_secs(60);

/// Builds the file: `VALID_ROWS` distinct landlines, then `REJECTED_ROWS`
/// numbers with a letter in them.
fn large_file() -> String {
    let mut csv = String::from("to_number,contact_ref\n");
    for index in 0..VALID_ROWS {
        let area = ["02", "03", "07", "08"][index % 4];
        let block = if index / 4 < 10_000 { "5550" } else { "7010" };
        csv.push_str(&format!(
            "({area}) {block} {:04},L-{index}\n",
            (index / 4) % 10_000
        ));
    }
    for index in 0..REJECTED_ROWS {
        csv.push_str(&format!("0491 57O 313,BAD-{index}\n"));
    }
    csv
}

/// One `outbound serve` process; dropping it kills the process.
struct Server {
    child: Option<Child>,
    base: String,
}

impl Server {
    /// Starts a server with a job threshold of 64 KiB and waits until it is ready.
    async fn start(work: &Path, database: &str, name: &str) -> Self {
        let key_file = work.join("keys.json");
        if !key_file.exists() {
            write_test_key_file(&key_file);
        }
        let address_file = work.join(format!("{name}.address"));
        let spool = work.join("spool");
        std::fs::create_dir_all(&spool).expect("create the spool folder");
        let log = std::fs::File::create(work.join(format!("{name}.log"))).expect("create a log");
        let child = Command::new(env!("CARGO_BIN_EXE_outbound"))
            .arg("serve")
            .arg("--dev")
            .arg("--key-file")
            .arg(&key_file)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--address-file")
            .arg(&address_file)
            .args(["--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE])
            .args(["--async-import-bytes", "65536", "--no-dispatcher"])
            .args(["--rate-limit-per-second", "0"])
            .env("DATABASE_URL", database_url(database))
            .env("TMPDIR", &spool)
            .env("RUST_LOG", "warn")
            .env_remove("OUTBOUND_KEY_FILE")
            .env_remove("OUTBOUND_DATA_KEYS")
            .env_remove("OUTBOUND_VOICE_SECRET")
            .env_remove("OUTBOUND_ASYNC_IMPORT_BYTES")
            .current_dir(work)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start outbound serve");

        let mut server = Server {
            child: Some(child),
            base: String::new(),
        };

        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        server.base = loop {
            if let Ok(address) = std::fs::read_to_string(&address_file) {
                if !address.trim().is_empty() {
                    break format!("http://{}", address.trim());
                }
            }
            if let Some(child) = server.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{name} exited with {status} before listening; see {}",
                        work.display()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not write its address; see {}",
                work.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };

        loop {
            let ready = http
                .get(format!("{}/readyz", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not become ready; see {}",
                work.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// Kills the process with SIGKILL and waits for it to exit.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the server");
            child.wait().expect("the killed server exits");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Client {
    http: reqwest::Client,
    token: String,
}

impl Client {
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value, bool) {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let text = response.text().await.expect("response text");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            replayed,
        )
    }

    async fn upload(
        &self,
        server: &Server,
        campaign: &str,
        csv: &str,
        key: &str,
    ) -> (u16, Value, bool) {
        self.send(
            self.http
                .post(format!("{}/v1/campaigns/{campaign}/imports", server.base))
                .header("Content-Type", "text/csv")
                .header("Idempotency-Key", key)
                .body(csv.to_owned()),
        )
        .await
    }

    async fn get(&self, server: &Server, path: &str) -> Value {
        let (status, body, _) = self
            .send(self.http.get(format!("{}{path}", server.base)))
            .await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

async fn count(pool: &PgPool, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Returns the backend pid of the job session that waits for the test's lock
/// to write row issues, if there is one.
async fn blocked_job_session(pool: &PgPool) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'
            AND query LIKE 'COPY import_issue_blocks%'",
    )
    .fetch_optional(pool)
    .await
    .expect("read pg_stat_activity")
}

/// Returns whether session `pid` has written into a table that only its own
/// transaction can see. A first import creates the table of the campaign's
/// partition, and its first `COPY` of contacts takes the `RowExclusiveLock`,
/// kept until the transaction ends.
async fn wrote_contacts(pool: &PgPool, pid: i32) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l
                         WHERE l.pid = $1 AND l.locktype = 'relation' AND l.mode = 'RowExclusiveLock'
                           AND l.granted AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = l.relation))",
    )
    .bind(pid)
    .fetch_one(pool)
    .await
    .expect("read pg_locks")
}

#[tokio::test]
async fn killed_server_leaves_no_partial_import() {
    let (database, pool) = fresh_database().await;
    let tenant = create_tenant(&pool, "Kill Partner").await;
    let work = std::env::temp_dir().join(format!("outbound-import-kill-{database}"));
    std::fs::create_dir_all(&work).expect("create the work folder");
    let client = Client {
        http: reqwest::Client::new(),
        token: token_for("partner_admin", Some(tenant.partner), &[tenant.client], 60),
    };
    let csv = large_file();
    let total_rows = VALID_ROWS + REJECTED_ROWS;

    let mut first = Server::start(&work, &database, "first").await;
    let (status, campaign, _) = client
        .send(
            client
                .http
                .post(format!("{}/v1/campaigns", first.base))
                .json(&valid_campaign(tenant.project)),
        )
        .await;
    assert_eq!(status, 201, "create the campaign: {campaign}");
    let campaign = campaign["id"].as_str().expect("campaign id").to_owned();
    let campaign_id = Uuid::parse_str(&campaign).expect("campaign id is a UUID");

    // Block the job when it first writes row issues, after its first batch of contacts.
    let mut blocker = pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE import_issue_blocks IN SHARE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock import_issue_blocks");

    let (status, accepted, _) = client
        .upload(&first, &campaign, &csv, "kill-first-upload")
        .await;
    assert_eq!(status, 202, "the file becomes a job: {accepted}");
    let import_id = accepted["import_id"]
        .as_str()
        .expect("import id")
        .to_owned();
    let import_uuid = Uuid::parse_str(&import_id).expect("import id is a UUID");
    let import_path = format!("/v1/campaigns/{campaign}/imports/{import_id}");

    // Wait until the job is blocked with contacts written in its open
    // transaction, and until it has reported progress.
    let deadline = Instant::now() + WAIT;
    let (job_session, progress) = loop {
        let poll = client.get(&first, &import_path).await;
        assert_eq!(poll["state"], "processing", "the job cannot finish: {poll}");
        let blocked = blocked_job_session(&pool).await;
        let processed = poll["rows_processed"].as_u64().unwrap_or(0);
        if let (Some(pid), true) = (blocked, processed > 0) {
            break (pid, poll);
        }
        assert!(
            Instant::now() < deadline,
            "the job is not blocked with progress after {WAIT:?}: {poll}; logs in {}",
            work.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        wrote_contacts(&pool, job_session).await,
        "the job has written contacts in its open transaction"
    );
    let processed = progress["rows_processed"].as_u64().expect("rows_processed");
    assert!(
        processed < total_rows as u64,
        "the job is in the middle of the file: {processed} of {total_rows} rows read"
    );
    assert!(progress["rows_total"].is_null(), "rows_total unknown yet");

    first.kill();

    // Once the lock is released, the job's session reads end-of-file from
    // the dead client's socket and rolls back.
    blocker
        .rollback()
        .await
        .expect("release import_issue_blocks");
    let deadline = Instant::now() + WAIT;
    loop {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(job_session)
                .fetch_one(&pool)
                .await
                .expect("read pg_stat_activity");
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed server's session {job_session} is still open after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Nothing of the import is stored.
    let in_campaign = count(
        &pool,
        "SELECT count(*) FROM contacts WHERE campaign_id = $1",
        campaign_id,
    )
    .await;
    assert_eq!(in_campaign, 0, "no contact in the campaign");
    for (table, sql) in [
        (
            "contacts",
            "SELECT count(*) FROM contacts WHERE import_id = $1",
        ),
        (
            "import_issue_blocks",
            "SELECT count(*) FROM import_issue_blocks WHERE import_id = $1",
        ),
        (
            "import_rejected_rows",
            "SELECT count(*) FROM import_rejected_rows WHERE import_id = $1",
        ),
        (
            "audit_log",
            "SELECT count(*) FROM audit_log WHERE details->>'import_id' = $1::text",
        ),
    ] {
        assert_eq!(
            count(&pool, sql, import_uuid).await,
            0,
            "no {table} rows of the killed import"
        );
    }
    let partition_left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1)")
            .bind(format!("contacts_{}", campaign_id.simple()))
            .fetch_one(&pool)
            .await
            .expect("catalog lookup");
    assert!(
        !partition_left,
        "the table the first import was filling died with its transaction"
    );
    let state: String = sqlx::query_scalar("SELECT state FROM imports WHERE id = $1")
        .bind(import_uuid)
        .fetch_one(&pool)
        .await
        .expect("the import is recorded");
    assert_eq!(state, "processing", "no server has looked at it yet");
    let spooled: Vec<_> = std::fs::read_dir(work.join("spool"))
        .expect("read the spool folder")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .collect();
    assert!(spooled.is_empty(), "no upload left on disk: {spooled:?}");

    // A new server on the same database marks the import interrupted when
    // it starts, before any request reads it, and reports it so.
    let second = Server::start(&work, &database, "second").await;
    let (state, code): (String, Option<String>) =
        sqlx::query_as("SELECT state, error_code FROM imports WHERE id = $1")
            .bind(import_uuid)
            .fetch_one(&pool)
            .await
            .expect("the import is recorded");
    assert_eq!(
        (state.as_str(), code.as_deref()),
        ("failed", Some("import_interrupted")),
        "marked when the second server started"
    );
    let failed = client.get(&second, &import_path).await;
    assert_eq!(failed["state"], "failed", "interrupted import: {failed}");
    assert_eq!(
        failed["error"]["code"], "import_interrupted",
        "failure code: {failed}"
    );
    let message = failed["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("nothing was imported") && message.contains("upload the file again"),
        "the message says what happened and what to do: {message}"
    );
    for counter in [
        "rows_processed",
        "rows_total",
        "rows_accepted",
        "rows_rejected",
    ] {
        assert_eq!(failed[counter], 0, "{counter} reset: {failed}");
    }
    assert_eq!(failed["errors"], json!([]), "no row errors: {failed}");
    let issues = client.get(&second, &format!("{import_path}/issues")).await;
    assert_eq!(issues["items"], json!([]), "no stored issues: {issues}");

    // The first key still returns the first response, which points at the
    // failed import.
    let (status, replay, replayed) = client
        .upload(&second, &campaign, &csv, "kill-first-upload")
        .await;
    assert_eq!(status, 202, "replay of the first key: {replay}");
    assert!(replayed, "the first response is replayed");
    assert_eq!(replay["import_id"], import_id.as_str(), "same import");

    // The same file under a new key imports every valid row exactly once.
    let (status, again, _) = client
        .upload(&second, &campaign, &csv, "kill-second-upload")
        .await;
    assert_eq!(status, 202, "the file becomes a job again: {again}");
    let again_id = again["import_id"].as_str().expect("import id").to_owned();
    assert_ne!(again_id, import_id, "a new import");
    let again_path = format!("/v1/campaigns/{campaign}/imports/{again_id}");
    let deadline = Instant::now() + WAIT;
    let done = loop {
        let poll = client.get(&second, &again_path).await;
        if poll["state"] != "processing" {
            break poll;
        }
        assert!(
            Instant::now() < deadline,
            "the second import is still processing after {WAIT:?}: {poll}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["state"], "completed", "second import: {done}");
    assert_eq!(done["rows_total"], total_rows, "rows_total");
    assert_eq!(done["rows_accepted"], VALID_ROWS, "rows_accepted");
    assert_eq!(done["rows_rejected"], REJECTED_ROWS, "rows_rejected");
    let codes: Vec<&str> = done["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|error| error["code"].as_str())
        .collect();
    assert!(
        codes.iter().all(|code| *code == "invalid_to_number"),
        "only the rejected rows fail, none as a duplicate: {codes:?}"
    );
    let (contacts, numbers, from_second): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT phone_index), count(*) FILTER (WHERE import_id = $2)
           FROM contacts WHERE campaign_id = $1",
    )
    .bind(campaign_id)
    .bind(Uuid::parse_str(&again_id).expect("import id is a UUID"))
    .fetch_one(&pool)
    .await
    .expect("count contacts");
    assert_eq!(contacts, VALID_ROWS as i64, "one contact per valid row");
    assert_eq!(numbers, VALID_ROWS as i64, "no number twice");
    assert_eq!(from_second, VALID_ROWS as i64, "all from the second upload");

    drop(second);
    pool.close().await;
    drop_database(&database).await;
    std::fs::remove_dir_all(&work).ok();
}
