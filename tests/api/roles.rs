//! Every endpoint against every kind of caller: `partner_admin` succeeds,
//! `partner_user` reads but every write is 403, customer roles are 403,
//! another partner's admin and an unassigned client get 404, and a missing,
//! malformed, wrongly signed or expired token is 401.

use crate::support::{create_tenant, token_for, TestApp, ISSUER};
use outbound_http::auth::{mint_hs256, Claims};

/// One endpoint: method, path (with `{c}` for the campaign and `{i}` for an
/// import), whether it writes, and its body.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    write: bool,
    body: Body,
}

#[derive(Clone, Copy)]
enum Body {
    None,
    Json(&'static str),
    Csv(&'static str),
    Campaign,
}

const CSV: &str = "to_number,first_name\n0491 570 006,Noah\n";
const WASH: &str = "number,result\n0491570006,N\n";

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "POST",
        path: "/v1/api-keys",
        write: true,
        body: Body::Json(r#"{"name":"matrix","role":"partner_user"}"#),
    },
    Endpoint {
        method: "GET",
        path: "/v1/api-keys",
        write: true,
        body: Body::None,
    },
    Endpoint {
        method: "POST",
        path: "/v1/api-keys/{k}/revoke",
        write: true,
        body: Body::None,
    },
    Endpoint {
        method: "POST",
        path: "/v1/campaigns",
        write: true,
        body: Body::Campaign,
    },
    Endpoint {
        method: "GET",
        path: "/v1/campaigns",
        write: false,
        body: Body::None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/campaigns/{c}",
        write: false,
        body: Body::None,
    },
    Endpoint {
        method: "PATCH",
        path: "/v1/campaigns/{c}",
        write: true,
        body: Body::Json(r#"{"name":"Renamed"}"#),
    },
    Endpoint {
        method: "POST",
        path: "/v1/campaigns/{c}/imports",
        write: true,
        body: Body::Csv(CSV),
    },
    Endpoint {
        method: "GET",
        path: "/v1/campaigns/{c}/imports/{i}",
        write: false,
        body: Body::None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/campaigns/{c}/imports/{i}/issues",
        write: false,
        body: Body::None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/campaigns/{c}/imports/{i}/rejected.csv",
        write: false,
        body: Body::None,
    },
    Endpoint {
        method: "POST",
        path: "/v1/campaigns/{c}/wash-results?wash_reference=W1",
        write: true,
        body: Body::Csv(WASH),
    },
    Endpoint {
        method: "POST",
        path: "/v1/campaigns/{c}/validation",
        write: false,
        body: Body::None,
    },
    Endpoint {
        method: "POST",
        path: "/v1/campaigns/{c}/exclusions",
        write: true,
        body: Body::Json(r#"{"reasons":["dncr_registered"]}"#),
    },
    Endpoint {
        method: "POST",
        path: "/v1/campaigns/{c}/launch",
        write: true,
        body: Body::None,
    },
    Endpoint {
        method: "POST",
        path: "/v1/campaigns/{c}/pause",
        write: true,
        body: Body::None,
    },
    Endpoint {
        method: "POST",
        path: "/v1/campaigns/{c}/resume",
        write: true,
        body: Body::None,
    },
    Endpoint {
        method: "POST",
        path: "/v1/campaigns/{c}/cancel",
        write: true,
        body: Body::None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/campaigns/{c}/report",
        write: false,
        body: Body::None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/campaigns/{c}/contacts",
        write: false,
        body: Body::None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/campaigns/{c}/audit",
        write: false,
        body: Body::None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/campaigns/{c}/contacts.csv",
        write: false,
        body: Body::None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/campaigns/{c}/timeline",
        write: false,
        body: Body::None,
    },
];

struct Fixture {
    app: TestApp,
    campaign: String,
    import: String,
    api_key: String,
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn().await;
    let campaign = app.create_campaign(serde_json::json!({})).await;
    let (status, import) = app.import_csv(&campaign, CSV).await;
    assert_eq!(status, 201, "fixture import: {import}");
    let import = import["import_id"].as_str().expect("import id").to_owned();
    let (status, key) = app
        .post(
            "/v1/api-keys",
            &app.admin(),
            serde_json::json!({"name": "fixture", "role": "partner_user"}),
        )
        .await;
    assert_eq!(status, 201, "fixture API key: {key}");
    let api_key = key["id"].as_str().expect("key id").to_owned();
    Fixture {
        app,
        campaign,
        import,
        api_key,
    }
}

async fn call(
    fixture: &Fixture,
    endpoint: &Endpoint,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let path = endpoint
        .path
        .replace("{c}", &fixture.campaign)
        .replace("{i}", &fixture.import)
        .replace("{k}", &fixture.api_key);
    let url = fixture.app.url(&path);
    let mut request = match endpoint.method {
        "GET" => fixture.app.http.get(url),
        "PATCH" => fixture.app.http.patch(url).header("If-Match", "*"),
        _ => fixture.app.http.post(url),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request = match endpoint.body {
        Body::None => request,
        Body::Json(text) => request
            .header("Content-Type", "application/json")
            .body(text),
        Body::Csv(text) => request.header("Content-Type", "text/csv").body(text),
        Body::Campaign => request.json(&crate::support::valid_campaign(fixture.app.tenant.project)),
    };
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let is_problem = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    if status >= 400 {
        assert!(
            is_problem,
            "{} {} answered {status} without a problem document",
            endpoint.method, endpoint.path
        );
        assert!(
            body["code"].is_string(),
            "{} {} problem without a code",
            endpoint.method,
            endpoint.path
        );
    }
    (status, body)
}

fn endpoint(method: &str, path: &str) -> &'static Endpoint {
    ENDPOINTS
        .iter()
        .find(|e| e.method == method && e.path == path)
        .expect("endpoint in the table")
}

fn label(endpoint: &Endpoint) -> String {
    format!("{} {}", endpoint.method, endpoint.path)
}

#[tokio::test]
async fn partner_admin_reaches_every_endpoint() {
    let fixture = fixture().await;
    let token = fixture.app.admin();
    for endpoint in ENDPOINTS {
        let (status, body) = call(&fixture, endpoint, Some(&token)).await;
        assert!(
            ![401, 403, 404].contains(&status) && status < 500,
            "{} answered {status} for partner_admin: {body}",
            label(endpoint)
        );
    }
    fixture.app.finish().await;
}

#[tokio::test]
async fn partner_user_reads_but_cannot_write() {
    let fixture = fixture().await;
    let token = fixture.app.token("partner_user");
    for endpoint in ENDPOINTS {
        let (status, body) = call(&fixture, endpoint, Some(&token)).await;
        if endpoint.write {
            assert_eq!(
                status,
                403,
                "{} should be 403 for partner_user: {body}",
                label(endpoint)
            );
        } else {
            assert_eq!(
                status,
                200,
                "{} should be 200 for partner_user: {body}",
                label(endpoint)
            );
        }
    }
    fixture.app.finish().await;
}

#[tokio::test]
async fn customer_roles_are_forbidden_everywhere() {
    let fixture = fixture().await;
    for role in ["customer_admin", "customer_user", "auditor"] {
        let token = token_for(
            role,
            Some(fixture.app.tenant.partner),
            &[fixture.app.tenant.client],
            60,
        );
        for endpoint in ENDPOINTS {
            let (status, body) = call(&fixture, endpoint, Some(&token)).await;
            assert_eq!(
                status,
                403,
                "{} should be 403 for {role}: {body}",
                label(endpoint)
            );
        }
    }
    fixture.app.finish().await;
}

#[tokio::test]
async fn other_partner_admin_sees_not_found() {
    let fixture = fixture().await;
    let other = create_tenant(&fixture.app.pool, "Other Partner").await;
    let token = token_for("partner_admin", Some(other.partner), &[other.client], 60);
    for endpoint in ENDPOINTS
        .iter()
        .filter(|e| e.path.contains("{c}") || e.path.contains("{k}"))
    {
        let (status, body) = call(&fixture, endpoint, Some(&token)).await;
        assert_eq!(
            status,
            404,
            "{} should be 404 for another partner: {body}",
            label(endpoint)
        );
    }
    let (_, list) = call(&fixture, endpoint("GET", "/v1/campaigns"), Some(&token)).await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(0),
        "another partner lists no campaigns"
    );
    fixture.app.finish().await;
}

#[tokio::test]
async fn unassigned_client_sees_not_found() {
    let fixture = fixture().await;
    let token = token_for("partner_admin", Some(fixture.app.tenant.partner), &[], 60);
    for endpoint in ENDPOINTS.iter().filter(|e| e.path.contains("{c}")) {
        let (status, body) = call(&fixture, endpoint, Some(&token)).await;
        assert_eq!(
            status,
            404,
            "{} should be 404 without the client assigned: {body}",
            label(endpoint)
        );
    }
    let (status, _) = call(&fixture, endpoint("POST", "/v1/campaigns"), Some(&token)).await;
    assert_eq!(
        status, 404,
        "creating in an unassigned client's project is 404"
    );
    fixture.app.finish().await;
}

#[tokio::test]
async fn missing_bad_and_expired_tokens_are_unauthorized() {
    let fixture = fixture().await;
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, exp: i64, nbf: i64| Claims {
        sub: "attacker".into(),
        role: "partner_admin".into(),
        partner_id: Some(fixture.app.tenant.partner),
        client_ids: vec![fixture.app.tenant.client],
        iss: iss.into(),
        aud: crate::support::AUDIENCE.into(),
        exp,
        nbf,
        iat: now,
    };
    let expired = token_for(
        "partner_admin",
        Some(fixture.app.tenant.partner),
        &[fixture.app.tenant.client],
        -10,
    );
    let wrong_secret = mint_hs256(
        b"another-secret-entirely-0123456789",
        &claims(ISSUER, now + 600, now),
    )
    .expect("token");
    let wrong_issuer = mint_hs256(
        crate::support::JWT_SECRET,
        &claims("someone-else", now + 600, now),
    )
    .expect("token");
    let not_yet_valid = mint_hs256(
        crate::support::JWT_SECRET,
        &claims(ISSUER, now + 7200, now + 3600),
    )
    .expect("token");
    // An unsigned token (alg none) built by hand.
    let header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = base64_url(
        serde_json::to_string(&claims(ISSUER, now + 600, now))
            .expect("json")
            .as_bytes(),
    );
    let unsigned = format!("{header}.{payload}.");
    let tokens = [
        ("no token", None),
        ("garbage", Some("not-a-jwt")),
        ("expired", Some(expired.as_str())),
        ("wrong secret", Some(wrong_secret.as_str())),
        ("wrong issuer", Some(wrong_issuer.as_str())),
        ("not yet valid", Some(not_yet_valid.as_str())),
        ("alg none", Some(unsigned.as_str())),
    ];
    for endpoint in ENDPOINTS {
        for (name, token) in &tokens {
            let (status, body) = call(&fixture, endpoint, *token).await;
            assert_eq!(
                status,
                401,
                "{} should be 401 with {name}: {body}",
                label(endpoint)
            );
            let detail = body["detail"].as_str().unwrap_or("");
            if let Some(token) = token {
                assert!(!detail.contains(token), "the token must not be echoed");
            }
        }
    }
    fixture.app.finish().await;
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
