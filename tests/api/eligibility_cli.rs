//! `outbound eligibility`, run as a separate process: one request from flags
//! or JSON lines on standard input, one JSON object per request.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The numbers used here in the forms they could be printed in; none may
/// appear in any output.
const NUMBER_FORMS: [&str; 12] = [
    "491570006",
    "491 570 006",
    "491571234",
    "491 571 234",
    "255501234",
    "5550 1234",
    "370104321",
    "7010 4321",
    "1300975707",
    "975 707",
    "57A",
    "570 006",
];

fn assert_no_number(stdout: &str) {
    for form in NUMBER_FORMS {
        assert!(!stdout.contains(form), "output contains {form:?}: {stdout}");
    }
}

/// Runs `outbound eligibility` with `args` and returns its one JSON object and exit code.
fn eligibility(args: &[&str]) -> (Value, i32) {
    let output = Command::new(env!("CARGO_BIN_EXE_outbound"))
        .arg("eligibility")
        .args(args)
        .output()
        .expect("run outbound eligibility");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    assert_no_number(&stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object on one line: {stdout}"
    );
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("invalid JSON {stdout:?}: {error}"));
    (value, output.status.code().unwrap_or(-1))
}

/// Runs `outbound eligibility --batch` with `input` on standard input.
fn batch(input: &str) -> (Vec<Value>, i32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outbound"))
        .args(["eligibility", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start outbound eligibility --batch");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("write requests");
    let output = child
        .wait_with_output()
        .expect("wait for outbound eligibility --batch");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    assert_no_number(&stdout);
    let lines = stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("invalid JSON line {line:?}: {error}"))
        })
        .collect();
    (lines, output.status.code().unwrap_or(-1))
}

fn zone_names(answer: &Value) -> Vec<&str> {
    answer["zones"]
        .as_array()
        .expect("zones is an array")
        .iter()
        .map(|zone| zone["zone"].as_str().expect("zone name"))
        .collect()
}

#[test]
fn eligibility_allows_mobile_inside_all_zones() {
    // Monday 7 December 2026, 14:00 in Sydney: inside telemarketing hours in
    // every mainland zone.
    let (answer, code) = eligibility(&[
        "--number",
        "0491 570 006",
        "--call-type",
        "telemarketing",
        "--at",
        "2026-12-07T14:00:00+11:00",
        "--registry-status",
        "not_registered",
        "--registry-checked-at",
        "2026-12-01",
    ]);
    assert_eq!(code, 0);

    let object = answer.as_object().expect("an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "allowed",
            "clearance",
            "next_eligible_at",
            "reason",
            "zone_source",
            "zones"
        ]
    );

    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["reason"], Value::Null);
    assert_eq!(answer["zone_source"], "unknown");
    assert_eq!(answer["clearance"], "wash");
    assert_eq!(answer["next_eligible_at"], "2026-12-07T03:00:00Z");
    assert_eq!(zone_names(&answer).len(), 10);

    let sydney = &answer["zones"][6];
    assert_eq!(sydney["zone"], "Australia/Sydney");
    assert_eq!(sydney["local_time"], "2026-12-07T14:00:00+11:00");
    assert_eq!(sydney["allowed"], true);
    assert_eq!(sydney["reason"], Value::Null);
}

#[test]
fn eligibility_blocks_mobile_before_perth_opens() {
    let (answer, code) = eligibility(&[
        "--number",
        "+61 491 570 006",
        "--call-type",
        "telemarketing",
        "--at",
        "2026-12-07T10:00:00+11:00",
        "--registry-status",
        "N",
        "--registry-checked-at",
        "2026-12-01T09:00:00+11:00",
    ]);
    assert_eq!(code, 0, "a blocked answer is still an answer");
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["reason"], "outside_calling_window");
    // 12:00 in Sydney, when Perth reaches 09:00.
    assert_eq!(answer["next_eligible_at"], "2026-12-07T01:00:00Z");
    let perth = &answer["zones"][0];
    assert_eq!(perth["zone"], "Australia/Perth");
    assert_eq!(perth["local_time"], "2026-12-07T07:00:00+08:00");
    assert_eq!(perth["reason"], "outside_calling_window");
}

#[test]
fn eligibility_uses_explicit_timezone() {
    let (answer, _) = eligibility(&[
        "--number",
        "0491 571 234",
        "--call-type",
        "research",
        "--at",
        "2026-12-06T01:00:00Z",
        "--timezone",
        " australia/perth ",
    ]);
    assert_eq!(answer["zone_source"], "explicit");
    assert_eq!(zone_names(&answer), vec!["Australia/Perth"]);
    // Sunday 09:00 in Perth: research may call.
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["clearance"], "not_required");
}

#[test]
fn eligibility_infers_landline_zone() {
    let (answer, _) = eligibility(&[
        "--number",
        "(03) 7010 4321",
        "--call-type",
        "research",
        "--at",
        "2026-03-09T10:00:00+11:00",
    ]);
    assert_eq!(answer["zone_source"], "inferred");
    assert_eq!(
        zone_names(&answer),
        vec!["Australia/Melbourne", "Australia/Hobart"]
    );
    // Labour Day in Victoria, Eight Hours Day in Tasmania.
    assert_eq!(answer["reason"], "public_holiday");
    assert_eq!(answer["next_eligible_at"], "2026-03-09T22:00:00Z");
}

#[test]
fn eligibility_state_code_narrows_holidays() {
    let (answer, _) = eligibility(&[
        "--number",
        "02 5550 1234",
        "--call-type",
        "research",
        "--at",
        "2026-03-09T10:00:00+11:00",
        "--timezone",
        "NSW",
    ]);
    assert_eq!(
        answer["allowed"], true,
        "Canberra Day is an ACT holiday only"
    );
}

#[test]
fn eligibility_register_outcomes() {
    let at = "2026-12-07T14:00:00+11:00";
    let base = [
        "--number",
        "0491 570 006",
        "--call-type",
        "telemarketing",
        "--at",
        at,
    ];

    let (unwashed, _) = eligibility(&base);
    assert_eq!(unwashed["reason"], "dncr_unwashed");
    assert_eq!(unwashed["next_eligible_at"], Value::Null);
    assert_eq!(unwashed["clearance"], Value::Null);

    let registered = [
        &base[..],
        &[
            "--registry-status",
            "registered",
            "--registry-checked-at",
            "2026-12-01",
        ],
    ]
    .concat();
    let (answer, _) = eligibility(&registered);
    assert_eq!(answer["reason"], "dncr_registered");

    let with_consent = [
        &registered[..],
        &[
            "--consent-type",
            "express",
            "--consent-given-at",
            "2026-11-01",
        ],
    ]
    .concat();
    let (answer, _) = eligibility(&with_consent);
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["clearance"], "consent");

    let lapsed = [
        &registered[..],
        &[
            "--consent-type",
            "express",
            "--consent-given-at",
            "2026-08-01",
        ],
    ]
    .concat();
    let (answer, _) = eligibility(&lapsed);
    assert_eq!(answer["reason"], "consent_expired");

    let stale = [
        &base[..],
        &[
            "--registry-status",
            "not_registered",
            "--registry-checked-at",
            "2026-11-01",
        ],
    ]
    .concat();
    let (answer, _) = eligibility(&stale);
    assert_eq!(answer["reason"], "dncr_wash_expired");

    let exempt = [&base[..], &["--exemption", "charity"]].concat();
    let (answer, _) = eligibility(&exempt);
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["clearance"], "exemption");
}

#[test]
fn eligibility_invalid_requests_exit_with_2() {
    let at = "2026-12-07T14:00:00+11:00";
    let cases: [(&[&str], &str); 8] = [
        (
            &[
                "--number",
                "0491 57A 006",
                "--call-type",
                "research",
                "--at",
                at,
            ],
            "invalid_to_number",
        ),
        (
            &[
                "--number",
                "1300 975 707",
                "--call-type",
                "research",
                "--at",
                at,
            ],
            "unsupported_number_type",
        ),
        (
            &["--call-type", "research", "--at", at],
            "missing_to_number",
        ),
        (
            &["--number", "0491 570 006", "--call-type", "fax", "--at", at],
            "invalid_call_type",
        ),
        (
            &[
                "--number",
                "0491 570 006",
                "--call-type",
                "research",
                "--at",
                "7 Dec 2026",
            ],
            "invalid_date",
        ),
        (
            &[
                "--number",
                "0491 570 006",
                "--call-type",
                "research",
                "--at",
                at,
                "--timezone",
                "+10:00",
            ],
            "invalid_recipient_timezone",
        ),
        (
            &[
                "--number",
                "0491 570 006",
                "--call-type",
                "research",
                "--at",
                at,
                "--registry-status",
                "N",
                "--registry-checked-at",
                "1/12/2026",
            ],
            "invalid_date",
        ),
        (
            &[
                "--number",
                "0491 570 006",
                "--call-type",
                "research",
                "--at",
                at,
                "--exemption",
                "church",
            ],
            "invalid_exemption",
        ),
    ];
    for (args, expected) in cases {
        let (answer, code) = eligibility(args);
        assert_eq!(code, 2, "{args:?}");
        assert_eq!(answer["allowed"], false, "{args:?}");
        assert_eq!(answer["reason"], Value::Null, "{args:?}");
        assert_eq!(answer["error"]["code"], expected, "{args:?}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{args:?}"
        );
    }
}

#[test]
fn eligibility_batch_answers_each_line_in_order() {
    let input = "\
{\"number\": \"0491 570 006\", \"call_type\": \"telemarketing\", \"at\": \"2026-12-07T14:00:00+11:00\", \"registry_status\": \"not_registered\", \"registry_checked_at\": \"2026-12-01\"}
{\"number\": \"0491 57A 006\", \"call_type\": \"research\", \"at\": \"2026-12-07T14:00:00+11:00\"}

{\"number\": \"02 5550 1234\", \"call_type\": \"research\", \"at\": \"2026-12-25T10:00:00+11:00\", \"timezone\": null}
{\"number\": \"02 5550 1234\", \"call_type\": \"door_knocking\", \"at\": \"2026-12-07T14:00:00+11:00\"}
{\"number\": \"02 5550 1234\", \"call_type\": \"research\", \"at\": \"2026-12-07T14:00:00+11:00\", \"timezone\": \"AEDT\"}
{\"number\": \"02 5550 1234\", \"call_type\": \"research\", \"at\": \"yesterday\"}
not json
{\"number\": 491570006}
{\"number\": \"0491 570 006\", \"call_type\": \"research\", \"at\": \"2026-12-07T14:00:00+11:00\", \"fax\": \"yes\"}
{\"number\": \"1300 975 707\", \"call_type\": \"research\", \"at\": \"2026-12-07T14:00:00+11:00\"}
{\"number\": \"0491 571 234\", \"call_type\": \"research\", \"at\": \"2026-12-06T01:00:00Z\", \"timezone\": \"WA\", \"exemption\": null}
";
    let (lines, code) = batch(input);
    assert_eq!(code, 0, "invalid lines do not stop the batch");
    assert_eq!(
        lines.len(),
        11,
        "one line per request; blank lines are skipped"
    );

    assert_eq!(lines[0]["allowed"], true);
    assert_eq!(lines[0]["clearance"], "wash");
    assert_eq!(lines[0]["zone_source"], "unknown");

    assert_eq!(lines[2]["reason"], "public_holiday");
    assert_eq!(lines[2]["zone_source"], "inferred");
    assert_eq!(lines[2]["next_eligible_at"], "2026-12-26T22:00:00Z");

    let errors = [
        (1, "invalid_to_number"),
        (3, "invalid_call_type"),
        (4, "invalid_recipient_timezone"),
        (5, "invalid_date"),
        (6, "invalid_request"),
        (7, "invalid_request"),
        (8, "invalid_request"),
        (9, "unsupported_number_type"),
    ];
    for (index, expected) in errors {
        let line = &lines[index];
        assert_eq!(line["allowed"], false, "line {index}");
        assert_eq!(line["reason"], Value::Null, "line {index}");
        assert_eq!(line["error"]["code"], expected, "line {index}");
    }

    assert_eq!(lines[10]["allowed"], true);
    assert_eq!(lines[10]["zone_source"], "explicit");
    assert_eq!(zone_names(&lines[10]), vec!["Australia/Perth"]);
}

#[test]
fn eligibility_batch_of_nothing_prints_nothing() {
    let (lines, code) = batch("\n\n");
    assert_eq!(code, 0);
    assert!(lines.is_empty());
}

#[test]
fn eligibility_batch_rejects_single_request_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_outbound"))
        .args(["eligibility", "--batch", "--number", "0491 570 006"])
        .stdin(Stdio::null())
        .output()
        .expect("run outbound eligibility");
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap rejects the combination"
    );
    assert!(output.stdout.is_empty());
}
