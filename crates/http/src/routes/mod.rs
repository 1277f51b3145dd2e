//! HTTP handlers, one module per resource, and the helpers they share.

pub mod api_keys;
pub mod campaigns;
pub mod imports;
pub mod lifecycle;
pub mod reports;
pub mod suppressions;
pub mod webhooks;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// Default and maximum page sizes for lists.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;

/// The request id set by the request-id middleware.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub fn request_id(request: &HttpRequest) -> Option<String> {
    request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
}

/// Checks a `limit` query value.
///
/// # Errors
/// `400 invalid_limit` outside 1..=[`MAX_PAGE`].
pub fn page_limit(limit: Option<i64>) -> ApiResult<i64> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        )),
    }
}

pub fn encode_cursor(parts: &[String]) -> String {
    URL_SAFE_NO_PAD.encode(parts.join("|"))
}

/// Decodes an opaque cursor into its parts.
///
/// # Errors
/// `400 invalid_cursor` when it was not made by this server.
pub fn decode_cursor(cursor: &str, parts: usize) -> ApiResult<Vec<String>> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_cursor",
            "the cursor is invalid; use the `next` value of the previous page",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let values: Vec<String> = text.split('|').map(str::to_owned).collect();
    if values.len() != parts {
        return Err(invalid());
    }
    Ok(values)
}

/// Decodes a `(created_at, id)` cursor made by [`encode_cursor`] for lists
/// ordered newest first.
///
/// # Errors
/// `400 invalid_cursor` when it was not made by this server.
pub fn decode_time_cursor(cursor: &str) -> ApiResult<(chrono::DateTime<chrono::Utc>, Uuid)> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_cursor",
            "the cursor is invalid; use the `next` value of the previous page",
        )
    };
    let parts = decode_cursor(cursor, 2)?;
    let at = chrono::DateTime::parse_from_rfc3339(&parts[0])
        .map_err(|_| invalid())?
        .with_timezone(&chrono::Utc);
    let id = Uuid::parse_str(&parts[1]).map_err(|_| invalid())?;
    Ok((at, id))
}

pub fn parse_uuid(value: &str, what: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(value).map_err(|_| ApiError::not_found(what))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(crate) fn idempotency_key(request: &HttpRequest) -> ApiResult<Option<String>> {
    let Some(value) = request.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// Runs `work` once per `Idempotency-Key`: a repeat with the same request
/// returns the stored first response, and the same key with another request
/// is `422 idempotency_key_reused`. Errors are not stored, so a failed request
/// can be retried with its key.
pub async fn idempotent<F, T>(
    state: &AppState,
    request: &HttpRequest,
    partner_id: Uuid,
    request_fingerprint: &[u8],
    work: F,
) -> ApiResult<HttpResponse>
where
    F: std::future::Future<Output = ApiResult<(StatusCode, T)>>,
    T: Serialize,
{
    let key = idempotency_key(request)?;
    let mut hasher = Sha256::new();
    hasher.update(request.method().as_str());
    hasher.update(request.path());
    hasher.update(request_fingerprint);
    let request_hash = hex::encode(hasher.finalize());
    if let Some(key) = &key {
        let scoped_key = format!("{}:{key}", request.path());
        if let Some(stored) =
            outbound_persistence::imports::find_response(&state.pool, partner_id, &scoped_key)
                .await?
        {
            if stored.request_hash != request_hash {
                return Err(ApiError::unprocessable(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different request; use a new key",
                ));
            }
            let status = StatusCode::from_u16(stored.status as u16).unwrap_or(StatusCode::OK);
            return Ok(HttpResponse::build(status)
                .insert_header(("Idempotent-Replayed", "true"))
                .json(stored.body));
        }
    }
    let (status, body) = work.await?;
    let body: Value = serde_json::to_value(body).map_err(|e| ApiError::internal(&e))?;
    if let Some(key) = &key {
        let scoped_key = format!("{}:{key}", request.path());
        outbound_persistence::imports::store_response(
            &state.pool,
            partner_id,
            &scoped_key,
            &request_hash,
            i32::from(status.as_u16()),
            &body,
        )
        .await?;
    }
    Ok(HttpResponse::build(status).json(body))
}
