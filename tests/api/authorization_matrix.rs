//! Every operation of the OpenAPI document, called by every kind of caller.
//! The operations come from the document itself, so a new endpoint without
//! the right checks, or without an entry in `example_body`, fails here.

use crate::support::{create_tenant, token_for, TestApp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    PartnerAdmin,
    PartnerUser,
    Customer,
    OtherPartner,
    UnassignedClient,
    ReadOnlyKey,
    RevokedKey,
    ExpiredToken,
    NoToken,
}

const CALLERS: [Caller; 9] = [
    Caller::PartnerAdmin,
    Caller::PartnerUser,
    Caller::Customer,
    Caller::OtherPartner,
    Caller::UnassignedClient,
    Caller::ReadOnlyKey,
    Caller::RevokedKey,
    Caller::ExpiredToken,
    Caller::NoToken,
];

struct Operation {
    method: String,
    path: String,
}

impl Operation {
    fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Operations a read-only caller may use.
    fn is_read(&self) -> bool {
        let partner_keys = self.path.starts_with("/v1/api-keys");
        let read_post = self.method == "POST" && self.path.ends_with("/validation");
        !partner_keys && (self.method == "GET" || read_post)
    }

    fn names_resource(&self) -> bool {
        self.path.contains('{')
    }
}

/// A valid request body for each operation that takes one.
fn example_body(operation: &Operation, project: uuid::Uuid) -> Option<(&'static str, String)> {
    let json = "application/json";
    let csv = "text/csv";
    let body = match (operation.method.as_str(), operation.path.as_str()) {
        ("POST", "/v1/campaigns") => (json, crate::support::valid_campaign(project).to_string()),
        ("PATCH", "/v1/campaigns/{campaign_id}") => (json, r#"{"name":"Matrix"}"#.to_owned()),
        ("POST", "/v1/api-keys") => (
            json,
            r#"{"name":"matrix","role":"partner_user"}"#.to_owned(),
        ),
        ("POST", "/v1/campaigns/{campaign_id}/imports") => {
            (csv, "to_number\n0491 570 313\n".to_owned())
        }
        ("POST", "/v1/campaigns/{campaign_id}/wash-results") => {
            (csv, "number,result\n0491570313,N\n".to_owned())
        }
        ("POST", "/v1/campaigns/{campaign_id}/exclusions") => {
            (json, r#"{"reasons":["dncr_registered"]}"#.to_owned())
        }
        ("POST", "/v1/clients/{client_id}/suppressions") => (
            json,
            r#"{"number":"0491 570 737","reason":"matrix"}"#.to_owned(),
        ),
        ("POST", "/v1/clients/{client_id}/suppressions/{suppression_id}/remove") => {
            (json, r#"{"reason":"matrix"}"#.to_owned())
        }
        ("POST", path)
            if path.ends_with("/launch")
                || path.ends_with("/pause")
                || path.ends_with("/resume")
                || path.ends_with("/cancel")
                || path.ends_with("/validation")
                || path.ends_with("/revoke") =>
        {
            return None
        }
        ("GET", _) => return None,
        _ => panic!(
            "{} has no example body in the authorization matrix; add one",
            operation.label()
        ),
    };
    Some(body)
}

fn query_for(operation: &Operation) -> &'static str {
    if operation.path.ends_with("/wash-results") {
        "?wash_reference=MATRIX-1"
    } else {
        ""
    }
}

fn operations() -> Vec<Operation> {
    let document: serde_json::Value =
        serde_json::from_str(&outbound_http::openapi::document_json()).expect("document");
    let mut operations = Vec::new();
    for (path, methods) in document["paths"].as_object().expect("paths") {
        for (method, operation) in methods.as_object().expect("methods") {
            if operation.get("security").is_none() {
                continue;
            }
            operations.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
            });
        }
    }
    operations
}

#[tokio::test]
async fn every_operation_checks_every_caller() {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(serde_json::json!({})).await;
    let (status, import) = app.import_csv(&campaign, "to_number\n0491 570 006\n").await;
    assert_eq!(status, 201);
    let import = import["import_id"].as_str().expect("import id").to_owned();
    let key_for = |role: &'static str| {
        let app = &app;
        async move {
            let (status, key) = app
                .post(
                    "/v1/api-keys",
                    &app.admin(),
                    serde_json::json!({"name": role, "role": role}),
                )
                .await;
            assert_eq!(status, 201, "{key}");
            (
                key["id"].as_str().expect("id").to_owned(),
                key["key"].as_str().expect("key").to_owned(),
            )
        }
    };
    let (target_key_id, _) = key_for("partner_user").await;
    let (_, read_only_key) = key_for("partner_user").await;
    let (revoked_id, revoked_key) = key_for("partner_admin").await;
    let (status, _) = app
        .post(
            &format!("/v1/api-keys/{revoked_id}/revoke"),
            &app.admin(),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let other = create_tenant(&app.pool, "Other").await;
    let (status, suppression) = app
        .post(
            &format!("/v1/clients/{}/suppressions", app.tenant.client),
            &app.admin(),
            serde_json::json!({"number": "0491 570 110"}),
        )
        .await;
    assert_eq!(status, 201, "{suppression}");
    let suppression = suppression["id"]
        .as_str()
        .expect("suppression id")
        .to_owned();

    let credentials = |caller: Caller| -> Option<String> {
        let tenant = app.tenant;
        match caller {
            Caller::PartnerAdmin => Some(app.admin()),
            Caller::PartnerUser => Some(app.token("partner_user")),
            Caller::Customer => Some(token_for(
                "customer_admin",
                Some(tenant.partner),
                &[tenant.client],
                60,
            )),
            Caller::OtherPartner => Some(token_for(
                "partner_admin",
                Some(other.partner),
                &[other.client],
                60,
            )),
            Caller::UnassignedClient => {
                Some(token_for("partner_admin", Some(tenant.partner), &[], 60))
            }
            Caller::ReadOnlyKey => Some(read_only_key.clone()),
            Caller::RevokedKey => Some(revoked_key.clone()),
            Caller::ExpiredToken => Some(token_for(
                "partner_admin",
                Some(tenant.partner),
                &[tenant.client],
                -5,
            )),
            Caller::NoToken => None,
        }
    };

    let operations = operations();
    assert!(operations.len() >= 20, "the document lists every operation");
    for operation in &operations {
        for caller in CALLERS {
            let path = operation
                .path
                .replace("{campaign_id}", &campaign)
                .replace("{import_id}", &import)
                .replace("{api_key_id}", &target_key_id)
                .replace("{client_id}", &app.tenant.client.to_string())
                .replace("{suppression_id}", &suppression);
            let url = app.url(&format!("{path}{}", query_for(operation)));
            let mut request = match operation.method.as_str() {
                "GET" => app.http.get(url),
                "PATCH" => app.http.patch(url).header("If-Match", "*"),
                "POST" => app.http.post(url),
                other => panic!("unexpected method {other}"),
            };
            if let Some((content_type, body)) = example_body(operation, app.tenant.project) {
                request = request.header("Content-Type", content_type).body(body);
            }
            if let Some(token) = credentials(caller) {
                request = request.bearer_auth(token);
            }
            let status = request.send().await.expect("request").status().as_u16();
            let label = format!("{} as {caller:?}", operation.label());
            assert!(status < 500, "{label} answered {status}");
            match caller {
                Caller::PartnerAdmin => assert!(
                    ![401, 403, 404].contains(&status),
                    "{label} answered {status}"
                ),
                Caller::PartnerUser | Caller::ReadOnlyKey => {
                    if operation.is_read() {
                        assert_eq!(status, 200, "{label}");
                    } else {
                        assert_eq!(status, 403, "{label}");
                    }
                }
                Caller::Customer => assert_eq!(status, 403, "{label}"),
                Caller::OtherPartner => {
                    if operation.names_resource() {
                        assert_eq!(status, 404, "{label}");
                    } else if operation.path == "/v1/campaigns" && operation.method == "POST" {
                        assert_eq!(status, 404, "{label}: another partner's project");
                    } else {
                        assert!(![401, 403].contains(&status), "{label} answered {status}");
                    }
                }
                Caller::UnassignedClient => {
                    let client_resource = operation.path.starts_with("/v1/campaigns/{campaign_id}")
                        || operation.path.starts_with("/v1/clients/");
                    if client_resource
                        || (operation.path == "/v1/campaigns" && operation.method == "POST")
                    {
                        assert_eq!(status, 404, "{label}");
                    }
                }
                Caller::RevokedKey | Caller::ExpiredToken | Caller::NoToken => {
                    assert_eq!(status, 401, "{label}")
                }
            }
        }
    }
    app.finish().await;
}
