//! The binary's start-up rules: keys are required outside development mode.

use std::process::Command;

#[test]
fn serve_refuses_to_start_without_keys() {
    let output = Command::new(env!("CARGO_BIN_EXE_outbound"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("OUTBOUND_KEY_FILE")
        .env_remove("OUTBOUND_DATA_KEYS")
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        )
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run outbound serve");
    assert!(
        !output.status.success(),
        "serve must not start without keys"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no encryption keys configured"),
        "the error says what is missing: {stderr}"
    );
}

#[test]
fn keys_generate_writes_owner_only_file() {
    let path = std::env::temp_dir().join(format!("outbound-keys-{}.json", uuid::Uuid::new_v4()));
    let output = Command::new(env!("CARGO_BIN_EXE_outbound"))
        .args(["keys", "generate", "--out"])
        .arg(&path)
        .output()
        .expect("run outbound keys generate");
    assert!(output.status.success(), "keys generate failed");
    let text = std::fs::read_to_string(&path).expect("key file written");
    let file: serde_json::Value = serde_json::from_str(&text).expect("key file is JSON");
    assert!(
        file["blind_index_key"].is_string(),
        "key file has a blind-index key"
    );
    assert!(
        file["data_keys"]
            .as_object()
            .is_some_and(|keys| !keys.is_empty()),
        "key file has a data key"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "key file is readable by its owner only");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains(file["blind_index_key"].as_str().unwrap_or("-")),
        "keys are not printed"
    );
    std::fs::remove_file(&path).ok();
}

/// Runs `outbound token mint` with `args` and a fresh key file, and returns
/// whether it succeeded and its standard error.
fn mint_token(args: &[&str]) -> (bool, String) {
    let work = std::env::temp_dir().join(format!("outbound-mint-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work).expect("create a work folder");
    let key_file = work.join("keys.json");
    let generated = Command::new(env!("CARGO_BIN_EXE_outbound"))
        .args(["keys", "generate", "--out"])
        .arg(&key_file)
        .output()
        .expect("run outbound keys generate");
    assert!(generated.status.success(), "keys generate failed");
    let output = Command::new(env!("CARGO_BIN_EXE_outbound"))
        .args(["token", "mint", "--key-file"])
        .arg(&key_file)
        .args(args)
        .current_dir(&work)
        .output()
        .expect("run outbound token mint");
    std::fs::remove_dir_all(&work).ok();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn token_mint_partner_role_needs_partner() {
    for role in ["partner_admin", "partner_user"] {
        let (ok, stderr) = mint_token(&["--role", role]);
        assert!(!ok, "{role} without --partner must fail");
        assert!(
            stderr.contains("needs --partner") && stderr.contains(role),
            "the error names the role and the missing flag: {stderr}"
        );
    }
    let partner = uuid::Uuid::new_v4().to_string();
    let (ok, stderr) = mint_token(&["--role", "partner_user", "--partner", &partner]);
    assert!(ok, "partner_user with --partner mints a token: {stderr}");
    let (ok, stderr) = mint_token(&["--role", "customer_admin"]);
    assert!(ok, "a customer role needs no partner: {stderr}");
}

/// Starts `outbound serve` with `args` on a fresh database and a loopback
/// port, stops it once it listens, and returns its standard error.
async fn serve_stderr(args: &[&str], key_file: bool) -> String {
    let (database, pool) = crate::support::fresh_database().await;
    pool.close().await;
    let work = std::env::temp_dir().join(format!("outbound-serve-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work).expect("create a work folder");
    let mut command = Command::new(env!("CARGO_BIN_EXE_outbound"));
    command.arg("serve").args(args);
    if key_file {
        let path = work.join("keys.json");
        let generated = Command::new(env!("CARGO_BIN_EXE_outbound"))
            .args(["keys", "generate", "--out"])
            .arg(&path)
            .output()
            .expect("run outbound keys generate");
        assert!(generated.status.success(), "keys generate failed");
        command.arg("--key-file").arg(path);
    }

    let address_file = work.join("address");
    let log = work.join("stderr.log");
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| outbound_persistence::db::DEFAULT_DATABASE_URL.to_owned());
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL names a database");
    let mut child = command
        .args(["--listen", "127.0.0.1:0", "--address-file"])
        .arg(&address_file)
        .env("DATABASE_URL", format!("{server}/{database}"))
        .env_remove("OUTBOUND_KEY_FILE")
        .env_remove("OUTBOUND_DATA_KEYS")
        .env_remove("OUTBOUND_VOICE_PLATFORM_URL")
        .env_remove("OUTBOUND_JWT_PUBLIC_KEY_FILE")
        .current_dir(&work)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create a log"))
        .spawn()
        .expect("start outbound serve");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&address_file).is_ok_and(|a| !a.trim().is_empty()) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "serve exited with {status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(std::time::Instant::now() < deadline, "serve did not listen");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    child.kill().ok();
    child.wait().ok();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::remove_dir_all(&work).ok();
    crate::support::drop_database(&database).await;
    stderr
}

#[tokio::test]
async fn serve_dev_defaults_voice_platform_to_voice_sim() {
    let stderr = serve_stderr(&["--dev"], false).await;
    assert!(
        stderr.contains("voice platform at http://127.0.0.1:8090"),
        "development mode names the default voice platform URL: {stderr}"
    );
    assert!(
        !stderr.contains("no voice platform URL is configured"),
        "no warning about a missing URL in development mode: {stderr}"
    );
}

/// An Ed25519 public key made for tests only (the one in crates/http/src/auth.rs).
const TEST_ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAPCw5+VC60QfEiTXv93nZQqIvHFWYW6N4w3AXzdwEUog=\n-----END PUBLIC KEY-----\n";

#[tokio::test]
async fn serve_production_has_no_voice_platform_default() {
    let key = std::env::temp_dir().join(format!("outbound-jwt-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&key, TEST_ED25519_PUBLIC).expect("write the public key");
    let key_arg = key.to_string_lossy().into_owned();
    let stderr = serve_stderr(&["--jwt-public-key-file", &key_arg], true).await;
    std::fs::remove_file(&key).ok();
    assert!(
        stderr.contains("no voice platform URL is configured"),
        "production mode warns and sets no default: {stderr}"
    );
    assert!(
        !stderr.contains("127.0.0.1:8090"),
        "production mode does not use the simulator's address: {stderr}"
    );
}
