//! The committed OpenAPI document must match the code.

use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json")
}

/// Fails when `openapi/openapi.json` differs from the document the code
/// generates. Run with `UPDATE_OPENAPI=1` to rewrite the file.
#[test]
fn committed_openapi_matches_code() {
    let generated = outbound_http::openapi::document_json();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write openapi/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date; regenerate it with UPDATE_OPENAPI=1 cargo test --test api committed_openapi"
    );
}

#[test]
fn every_operation_documents_its_errors() {
    let document: serde_json::Value =
        serde_json::from_str(&outbound_http::openapi::document_json()).expect("valid JSON");
    let paths = document["paths"].as_object().expect("paths");
    assert!(
        paths.len() >= 14,
        "expected every endpoint in the document, found {}",
        paths.len()
    );
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().expect("operations") {
            let responses = operation["responses"].as_object().expect("responses");
            if path == "/v1/voice/events" {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} must document 401"
                );
                continue;
            }
            for status in ["401", "403"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} must document {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn docs_without_slash_redirects_to_docs() {
    let app = crate::support::TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client.get(app.url("/docs")).send().await.expect("request");
    assert_eq!(response.status(), 308, "/docs redirects");
    assert_eq!(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/docs/"),
        "the redirect goes to /docs/"
    );
    let followed = app
        .http
        .get(app.url("/docs"))
        .send()
        .await
        .expect("request");
    assert_eq!(followed.status(), 200, "/docs/ serves Swagger UI");
    app.finish().await;
}
