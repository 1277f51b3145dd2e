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
