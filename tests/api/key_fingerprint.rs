//! Start-up key checks. The server refuses to start when the blind-index key
//! differs from the database's, a data key differs under the same id, or a
//! data key that stored contacts use is missing. The same keys start, and so
//! do the same keys plus a new active data key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use outbound_persistence::key_check::{verify_and_record, KeyCheckError};
use outbound_persistence::keys::KeyFile;

use crate::support::database_url;
use crate::support::{test_keyring, TestApp, AUDIENCE, ISSUER, JWT_SECRET, VOICE_SECRET};

const WAIT: Duration = Duration::from_secs(60);
const EXIT_KEY_MISMATCH: i32 = 3;

/// Builds a key file with the given data keys, blind-index key byte and the harness's secrets.
fn key_file(data_keys: &[(&str, u8)], active: &str, blind: u8) -> KeyFile {
    KeyFile {
        data_keys: data_keys
            .iter()
            .map(|(id, byte)| ((*id).to_owned(), BASE64.encode([*byte; 32])))
            .collect(),
        active_data_key: active.to_owned(),
        blind_index_key: BASE64.encode([blind; 32]),
        voice_platform_secret: Some(BASE64.encode(VOICE_SECRET)),
        jwt_hs256_secret: Some(BASE64.encode(JWT_SECRET)),
    }
}

fn work_folder() -> PathBuf {
    let work = std::env::temp_dir().join(format!("outbound-keycheck-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work).expect("create a work folder");
    work
}

/// A running `outbound serve`; dropping it kills the process.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a start ended: listening, or exited with a code and its standard error.
enum Start {
    Listening(Server),
    Exited(Option<i32>, String),
}

/// Starts `outbound serve --dev` in `dir` on `database`, with `key_file` when
/// given, and waits until it listens or exits.
async fn start(dir: &Path, database: &str, key_file: Option<&Path>, name: &str) -> Start {
    let address_file = dir.join(format!("{name}.address"));
    let log = dir.join(format!("{name}.log"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_outbound"));
    command.args([
        "serve",
        "--dev",
        "--no-dispatcher",
        "--listen",
        "127.0.0.1:0",
    ]);
    if let Some(path) = key_file {
        command.arg("--key-file").arg(path);
    }
    let child = command
        .arg("--address-file")
        .arg(&address_file)
        .args(["--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE])
        .env("DATABASE_URL", database_url(database))
        .env("RUST_LOG", "warn")
        .env_remove("OUTBOUND_KEY_FILE")
        .env_remove("OUTBOUND_DATA_KEYS")
        .env_remove("OUTBOUND_ACTIVE_DATA_KEY")
        .env_remove("OUTBOUND_BLIND_INDEX_KEY")
        .env_remove("OUTBOUND_VOICE_SECRET")
        .env_remove("OUTBOUND_JWT_HS256_SECRET")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create a log"))
        .spawn()
        .expect("start outbound serve");
    let mut server = Server {
        child,
        base: String::new(),
    };
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(address) = std::fs::read_to_string(&address_file) {
            if !address.trim().is_empty() {
                server.base = format!("http://{}", address.trim());
                return Start::Listening(server);
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            return Start::Exited(status.code(), stderr);
        }
        assert!(
            Instant::now() < deadline,
            "{name} neither listened nor exited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a server that must listen, and returns its `/readyz` status and body.
async fn start_ready(
    dir: &Path,
    database: &str,
    key_file: Option<&Path>,
    name: &str,
) -> (Server, u16, serde_json::Value) {
    let server = match start(dir, database, key_file, name).await {
        Start::Listening(server) => server,
        Start::Exited(code, stderr) => panic!("{name} exited with {code:?}: {stderr}"),
    };
    let response = reqwest::get(format!("{}/readyz", server.base))
        .await
        .expect("readyz answers");
    let status = response.status().as_u16();
    let body = response.json().await.expect("readyz is JSON");
    (server, status, body)
}

/// Starts a server that must refuse, and returns its standard error.
async fn start_refused(dir: &Path, database: &str, key_file: Option<&Path>, name: &str) -> String {
    match start(dir, database, key_file, name).await {
        Start::Listening(_) => panic!("{name} started with keys that do not match the database"),
        Start::Exited(code, stderr) => {
            assert_eq!(
                code,
                Some(EXIT_KEY_MISMATCH),
                "{name} exits with the key-mismatch status: {stderr}"
            );
            stderr
        }
    }
}

/// Every secret value of a key file, as written and as raw bytes in hex.
fn secrets_of(file: &KeyFile) -> Vec<String> {
    let mut values: Vec<String> = file.data_keys.values().cloned().collect();
    values.push(file.blind_index_key.clone());
    values.extend(file.voice_platform_secret.clone());
    values.extend(file.jwt_hs256_secret.clone());
    let raw: Vec<String> = values
        .iter()
        .filter_map(|v| BASE64.decode(v).ok())
        .map(|bytes| bytes.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    values.extend(raw);
    values
}

fn assert_no_key_material(stderr: &str, files: &[&KeyFile]) {
    for file in files {
        for secret in secrets_of(file) {
            assert!(
                !stderr.contains(&secret),
                "the error names no key material: {stderr}"
            );
        }
    }
}

/// A test app whose database contains one imported contact sealed under the
/// harness's data key `test1`.
async fn app_with_a_contact() -> TestApp {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(serde_json::json!({})).await;
    let (status, body) = app
        .import_csv(&campaign, "to_number,first_name\n0491 570 006,Ann\n")
        .await;
    assert_eq!(status, 201, "import: {body}");
    app
}

#[tokio::test]
async fn other_keys_refused_same_keys_start() {
    let app = app_with_a_contact().await;
    let work = work_folder();
    let same = work.join("same.json");
    key_file(&[("test1", 11)], "test1", 22)
        .write_new(&same)
        .expect("write");
    let other_file = KeyFile::generate();
    let other = work.join("other.json");
    other_file.write_new(&other).expect("write");
    let stored_before: Vec<u8> =
        sqlx::query_scalar("SELECT blind_index_fingerprint FROM key_fingerprints")
            .fetch_one(&app.pool)
            .await
            .expect("the fingerprint is recorded");

    let (first, status, body) = start_ready(&work, &app.database, Some(&same), "same-1").await;
    assert_eq!(status, 200, "the same keys are ready: {body}");
    assert_eq!(body["checks"]["keys_match_database"], true);

    let stderr = start_refused(&work, &app.database, Some(&other), "other").await;
    assert!(
        stderr.contains("do not match the keys this database was created with"),
        "the error says the keys do not match: {stderr}"
    );
    for hint in ["--key-file", "OUTBOUND_KEY_FILE", ".outbound/dev-keys.json"] {
        assert!(stderr.contains(hint), "the error names {hint}: {stderr}");
    }
    assert_no_key_material(
        &stderr,
        &[&other_file, &key_file(&[("test1", 11)], "test1", 22)],
    );

    let stored_after: Vec<u8> =
        sqlx::query_scalar("SELECT blind_index_fingerprint FROM key_fingerprints")
            .fetch_one(&app.pool)
            .await
            .expect("the fingerprint is still recorded");
    assert_eq!(
        stored_before, stored_after,
        "a refused start changes nothing"
    );

    // A second server with the same keys starts beside the first.
    let (second, status, body) = start_ready(&work, &app.database, Some(&same), "same-2").await;
    assert_eq!(status, 200, "the same keys are ready again: {body}");
    drop((first, second));
    std::fs::remove_dir_all(&work).ok();
    app.finish().await;
}

#[tokio::test]
async fn dev_mode_elsewhere_refuses_new_keys() {
    let (database, pool) = crate::support::fresh_database().await;
    pool.close().await;
    let first_dir = work_folder();
    let other_dir = work_folder();
    let (server, status, body) = start_ready(&first_dir, &database, None, "first").await;
    assert_eq!(status, 200, "the first development server is ready: {body}");
    drop(server);

    let stderr = start_refused(&other_dir, &database, None, "elsewhere").await;
    let generated = other_dir.join(".outbound/dev-keys.json");
    assert!(
        stderr.contains("do not match the keys this database was created with")
            && stderr.contains("generated a new development key file"),
        "the error says a new key file was generated and does not match: {stderr}"
    );
    let first_keys: KeyFile = serde_json::from_str(
        &std::fs::read_to_string(first_dir.join(".outbound/dev-keys.json")).expect("first keys"),
    )
    .expect("key file");
    let new_keys: KeyFile =
        serde_json::from_str(&std::fs::read_to_string(&generated).expect("new keys"))
            .expect("key file");
    assert_no_key_material(&stderr, &[&first_keys, &new_keys]);
    assert_ne!(
        first_keys.active_data_key, new_keys.active_data_key,
        "keys generated on one day get different ids"
    );

    // From the first directory the same keys start again.
    let (server, status, body) = start_ready(&first_dir, &database, None, "again").await;
    assert_eq!(status, 200, "the original keys are ready: {body}");
    drop(server);
    std::fs::remove_dir_all(&first_dir).ok();
    std::fs::remove_dir_all(&other_dir).ok();
    crate::support::drop_database(&database).await;
}

#[tokio::test]
async fn data_key_rotation_and_removal() {
    let app = app_with_a_contact().await;
    let work = work_folder();

    // Same id, other key material.
    let changed_file = key_file(&[("test1", 33)], "test1", 22);
    let changed = work.join("changed.json");
    changed_file.write_new(&changed).expect("write");
    let stderr = start_refused(&work, &app.database, Some(&changed), "changed").await;
    assert!(
        stderr.contains("data keys test1") && stderr.contains("do not match"),
        "the error names the differing data key: {stderr}"
    );
    assert_no_key_material(&stderr, &[&changed_file]);

    // The stored contact's key removed.
    let missing_file = key_file(&[("k2", 44)], "k2", 22);
    let missing = work.join("missing.json");
    missing_file.write_new(&missing).expect("write");
    let stderr = start_refused(&work, &app.database, Some(&missing), "missing").await;
    assert!(
        stderr.contains("contacts sealed under the data keys test1"),
        "the error names the missing data key: {stderr}"
    );
    assert_no_key_material(&stderr, &[&missing_file]);

    // Rotation: a new active key beside the old one starts.
    let rotated = work.join("rotated.json");
    key_file(&[("test1", 11), ("k2", 44)], "k2", 22)
        .write_new(&rotated)
        .expect("write");
    let (server, status, body) = start_ready(&work, &app.database, Some(&rotated), "rotated").await;
    assert_eq!(status, 200, "a rotated key file is ready: {body}");
    drop(server);
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT key_id FROM data_key_fingerprints ORDER BY key_id")
            .fetch_all(&app.pool)
            .await
            .expect("query");
    assert_eq!(recorded, vec!["k2".to_owned(), "test1".to_owned()]);

    // Dropping the old key after the rotation is still refused while
    // contacts are sealed under it.
    let stderr = start_refused(&work, &app.database, Some(&missing), "missing-again").await;
    assert!(stderr.contains("test1"), "test1 is still missing: {stderr}");
    std::fs::remove_dir_all(&work).ok();
    app.finish().await;
}

#[tokio::test]
async fn legacy_database_checked_against_contact() {
    let app = app_with_a_contact().await;
    // As a database migrated from before fingerprints existed.
    sqlx::query("DELETE FROM key_fingerprints")
        .execute(&app.pool)
        .await
        .expect("delete");
    sqlx::query("UPDATE data_key_fingerprints SET fingerprint = NULL")
        .execute(&app.pool)
        .await
        .expect("update");

    let other_blind = outbound_persistence::crypto::Keyring::new(
        &[("test1".into(), vec![11u8; 32])],
        "test1",
        vec![99u8; 32],
    )
    .expect("keys");
    let result = verify_and_record(&app.pool, &other_blind).await;
    assert!(
        matches!(result, Err(KeyCheckError::BlindIndexMismatch)),
        "a stored number's blind index shows the other blind-index key: {result:?}"
    );
    let other_data = outbound_persistence::crypto::Keyring::new(
        &[("test1".into(), vec![55u8; 32])],
        "test1",
        vec![22u8; 32],
    )
    .expect("keys");
    let result = verify_and_record(&app.pool, &other_data).await;
    assert!(
        matches!(result, Err(KeyCheckError::DataKeyMismatch(ref ids)) if ids == &["test1"]),
        "a stored number that does not open shows the other data key: {result:?}"
    );
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM key_fingerprints")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(recorded, 0, "a failed check records nothing");

    verify_and_record(&app.pool, &test_keyring())
        .await
        .expect("the right keys pass and are recorded");
    let unknown: i64 =
        sqlx::query_scalar("SELECT count(*) FROM data_key_fingerprints WHERE fingerprint IS NULL")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(unknown, 0, "the data key's fingerprint is recorded");
    app.finish().await;
}

#[tokio::test]
async fn readiness_fails_on_fingerprint_mismatch() {
    let app = TestApp::spawn().await;
    let readyz = || async {
        let response = reqwest::get(app.url("/readyz")).await.expect("readyz");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("json");
        (status, body)
    };
    let (status, body) = readyz().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["keys_match_database"], true);

    sqlx::query("UPDATE key_fingerprints SET blind_index_fingerprint = $1")
        .bind(vec![0u8; 32])
        .execute(&app.pool)
        .await
        .expect("update");
    let (status, body) = readyz().await;
    assert_eq!(status, 503, "mismatched keys are not ready: {body}");
    assert_eq!(body["checks"]["keys_match_database"], false);
    assert_eq!(body["checks"]["keys_loaded"], true);
    app.finish().await;
}
