//! The `outbound demo` command end to end: the real binary on the example
//! files against a fresh database, then a scan of its output and of the whole
//! database for the example's phone numbers.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::support::fresh_database;

fn repository_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Every digit string of nine or more digits in the first column of a CSV
/// file, as the last nine digits (the national significant number).
fn numbers_in(path: &PathBuf) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("read example file");
    text.lines()
        .skip(1)
        .filter_map(|line| line.split(',').next())
        .map(|cell| {
            cell.chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|digits| digits.len() >= 9 && digits.len() <= 12)
        .map(|digits| digits[digits.len() - 9..].to_owned())
        .collect()
}

/// The forms a number may be written in: E.164, international without `+`,
/// national, and national with spaces.
fn written_forms(nsn: &str) -> Vec<String> {
    vec![
        format!("+61{nsn}"),
        format!("61{nsn}"),
        format!("0{nsn}"),
        format!("0{} {} {}", &nsn[..3], &nsn[3..6], &nsn[6..]),
        format!("0{} {} {}", &nsn[..1], &nsn[1..5], &nsn[5..]),
        format!("{} {} {}", &nsn[..3], &nsn[3..6], &nsn[6..]),
    ]
}

fn leaked_forms(haystack: &str, numbers: &BTreeSet<String>) -> Vec<String> {
    numbers
        .iter()
        .flat_map(|n| written_forms(n))
        .filter(|form| haystack.contains(form.as_str()))
        .collect()
}

#[tokio::test]
async fn demo_completes_and_leaks_no_numbers() {
    let (database, pool) = fresh_database().await;
    pool.close().await;
    let base: String = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| outbound_persistence::db::DEFAULT_DATABASE_URL.to_owned());
    let database_url = format!(
        "{}/{database}",
        base.rsplit_once('/').expect("URL has a database").0
    );
    let work = std::env::temp_dir().join(format!("outbound-demo-{database}"));
    std::fs::create_dir_all(&work).expect("temporary folder");
    let report_path = work.join("report.json");
    let contacts = repository_file("examples/contacts-au-demo.csv");
    let wash = repository_file("examples/dncr-wash-demo.csv");

    let output = Command::new(env!("CARGO_BIN_EXE_outbound"))
        .arg("demo")
        .arg("--csv")
        .arg(&contacts)
        .arg("--wash")
        .arg(&wash)
        .arg("--report-json")
        .arg(&report_path)
        .arg("--key-file")
        .arg(work.join("keys.json"))
        .env("DATABASE_URL", &database_url)
        .output()
        .expect("run outbound demo");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("faster than real time"),
        "the demo says its clock is accelerated"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report written"))
            .expect("report is JSON");
    assert_eq!(report["state"], "completed");
    let by_state = report["contacts_by_state"]
        .as_object()
        .expect("counts by state");
    for state in by_state.keys() {
        assert!(
            state == "done" || state == "excluded",
            "contact left in state {state}"
        );
    }
    let mut codes: Vec<&str> = report["import"]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["code"].as_str())
        .collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        vec![
            "duplicate_to_number",
            "invalid_date",
            "invalid_max_attempts",
            "invalid_priority",
            "invalid_recipient_timezone",
            "invalid_to_number",
            "invalid_to_number",
            "missing_to_number",
            "unsupported_number_type",
            "unsupported_number_type",
            "unsupported_number_type",
        ]
    );
    assert_eq!(
        report["import"]["rows_total"], 300,
        "the two empty records are not counted"
    );
    assert_eq!(report["excluded_by_reason"]["dncr_registered"], 12);

    let mut numbers = numbers_in(&contacts);
    numbers.extend(numbers_in(&wash));
    assert!(
        numbers.len() > 250,
        "the example files hold the demo's numbers"
    );
    let leaks = leaked_forms(&format!("{stdout}\n{stderr}\n{report}"), &numbers);
    assert!(
        leaks.is_empty(),
        "the demo printed phone numbers: {leaks:?}"
    );

    let dump = Command::new("pg_dump")
        .args(["--no-owner", "-h", "127.0.0.1", "-U", "postgres", &database])
        .output()
        .expect("run pg_dump");
    assert!(
        dump.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("phone_ciphertext"),
        "the dump holds the contacts table"
    );
    let leaks = leaked_forms(&dump, &numbers);
    assert!(
        leaks.is_empty(),
        "the database holds phone numbers in clear: {leaks:?}"
    );
    std::fs::remove_dir_all(&work).ok();
}
