//! Partner API keys: create (shown once), list and revoke.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use outbound_persistence::api_keys::{self, ApiKey};
use outbound_persistence::audit::{self, AuditEntry};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::campaigns::PageQuery;
use super::{decode_time_cursor, encode_cursor, idempotent, page_limit, parse_uuid, request_id};
use crate::auth::{Principal, API_KEY_PREFIX};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;

/// Random bytes in a key's secret part (256 bits).
const SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A label for people, such as the integration's name.
    pub name: String,
    /// `partner_admin` or `partner_user` (read-only).
    pub role: String,
    /// Limit the key to these assigned clients; absent means every client
    /// assigned to the partner when a request is made.
    pub client_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The public part of the key, for telling keys apart.
    pub prefix: String,
    pub role: String,
    pub client_ids: Option<Vec<Uuid>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(key: &ApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            role: key.role.clone(),
            client_ids: key.client_ids.clone(),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// The key itself, shown only in this response; store it now.
    pub key: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
    pub next: Option<String>,
}

/// Create a partner API key. The key is shown once; only its HMAC-SHA256 hash is stored.
#[utoipa::path(
    tag = "api-keys",
    request_body = CreateApiKey,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first response")),
    responses(
        (status = 201, description = "Created; `key` is shown only here", body = CreatedApiKey),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only partner_admin manages keys", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, role or clients", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    body: web::Json<CreateApiKey>,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    let body = body.into_inner();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "name must be 1 to 100 characters",
        ));
    }
    if !matches!(body.role.as_str(), "partner_admin" | "partner_user") {
        return Err(ApiError::unprocessable(
            "invalid_role",
            "role must be partner_admin or partner_user",
        ));
    }
    if let Some(ids) = &body.client_ids {
        if ids.is_empty() || ids.iter().any(|id| !scope.client_ids.contains(id)) {
            return Err(ApiError::unprocessable(
                "invalid_client_ids",
                "client_ids must be a non-empty list of clients assigned to you",
            ));
        }
    }
    let fingerprint = serde_json::to_vec(&body).unwrap_or_default();
    idempotent(&state, &request, scope.partner_id, &fingerprint, async {
        let mut prefix_bytes = [0u8; 6];
        let mut secret = zeroize::Zeroizing::new([0u8; SECRET_BYTES]);
        rand::thread_rng().fill_bytes(&mut prefix_bytes);
        rand::thread_rng().fill_bytes(secret.as_mut());
        let prefix = hex::encode(prefix_bytes);
        let key = format!("{API_KEY_PREFIX}{prefix}_{}", URL_SAFE_NO_PAD.encode(secret.as_ref()));
        let hash = state.keyring.api_key_hash(&key);
        let mut transaction = state.pool.begin().await?;
        let record = api_keys::insert(
            &mut *transaction,
            Uuid::new_v4(),
            scope.partner_id,
            &name,
            &prefix,
            &hash,
            &body.role,
            body.client_ids.as_deref(),
            &principal.actor(),
        )
        .await?;
        audit::record(
            &mut *transaction,
            AuditEntry {
                partner_id: Some(scope.partner_id),
                campaign_id: None,
                actor: &principal.actor(),
                action: "api_key.create",
                from_state: None,
                to_state: None,
                details: serde_json::json!({ "api_key_id": record.id, "prefix": prefix, "role": body.role }),
                request_id: request_id(&request).as_deref(),
            },
        )
        .await?;
        transaction.commit().await?;
        tracing::info!(api_key_id = %record.id, partner_id = %scope.partner_id, "API key created");
        Ok((StatusCode::CREATED, CreatedApiKey { view: ApiKeyView::from(&record), key }))
    })
    .await
}

/// List the partner's API keys (never the keys themselves), newest first.
#[utoipa::path(
    tag = "api-keys",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of keys", body = ApiKeyList),
        (status = 400, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only partner_admin manages keys", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/api-keys")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<ApiKeyList>> {
    let scope = principal.write_scope()?;
    let limit = page_limit(query.limit)?;
    let before = query
        .cursor
        .as_deref()
        .map(decode_time_cursor)
        .transpose()?;
    let rows = api_keys::list(&state.pool, scope.partner_id, before, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<ApiKeyView> = rows
        .iter()
        .take(limit as usize)
        .map(ApiKeyView::from)
        .collect();
    let next = match (more, items.last()) {
        (true, Some(last)) => Some(encode_cursor(&[
            last.created_at.to_rfc3339(),
            last.id.to_string(),
        ])),
        _ => None,
    };
    Ok(web::Json(ApiKeyList { items, next }))
}

/// Revoke an API key. It is refused with 401 from the next request on.
#[utoipa::path(
    tag = "api-keys",
    params(("api_key_id" = String, Path, description = "API key id"),
           ("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first response")),
    responses(
        (status = 200, description = "Revoked", body = ApiKeyView),
        (status = 401, description = "Missing or invalid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only partner_admin manages keys", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key for this partner", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/api-keys/{api_key_id}/revoke")]
pub async fn revoke_api_key(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let scope = principal.write_scope()?;
    let id = parse_uuid(&path, "API key")?;
    idempotent(&state, &request, scope.partner_id, id.as_bytes(), async {
        let mut transaction = state.pool.begin().await?;
        let record = api_keys::revoke(&mut *transaction, scope.partner_id, id, &principal.actor())
            .await?
            .ok_or_else(|| ApiError::not_found("API key"))?;
        audit::record(
            &mut *transaction,
            AuditEntry {
                partner_id: Some(scope.partner_id),
                campaign_id: None,
                actor: &principal.actor(),
                action: "api_key.revoke",
                from_state: None,
                to_state: None,
                details: serde_json::json!({ "api_key_id": record.id, "prefix": record.prefix }),
                request_id: request_id(&request).as_deref(),
            },
        )
        .await?;
        transaction.commit().await?;
        tracing::info!(api_key_id = %record.id, partner_id = %scope.partner_id, "API key revoked");
        Ok((StatusCode::OK, ApiKeyView::from(&record)))
    })
    .await
}
