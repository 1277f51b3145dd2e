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
/// is `422 idempotency_key_reused`. The key is claimed before the work runs,
/// so a repeat sent while the first is still running gets `409
/// idempotency_key_in_use` instead of doing the work twice. Errors are not
/// stored, so a failed request can be retried with its key.
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
    use outbound_persistence::imports::{self as keys, KeyClaim};

    let Some(key) = idempotency_key(request)? else {
        let (status, body) = work.await?;
        return Ok(HttpResponse::build(status).json(body));
    };
    let mut hasher = Sha256::new();
    hasher.update(request.method().as_str());
    hasher.update(request.path());
    hasher.update(request_fingerprint);
    let request_hash = hex::encode(hasher.finalize());
    let scoped_key = format!("{}:{key}", request.path());
    match keys::claim_key(&state.pool, partner_id, &scoped_key, &request_hash).await? {
        KeyClaim::Claimed => {}
        KeyClaim::Stored(stored) => {
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
        KeyClaim::InProgress => {
            let mut error = ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still running; send it again in a moment to get its response",
            );
            error.retry_after = Some(1);
            return Err(error);
        }
    }
    // Released if the request ends before the work does, as when the client
    // disconnects and the handler is dropped.
    let mut claim = ClaimGuard {
        pool: state.pool.clone(),
        partner_id,
        key: Some(scoped_key.clone()),
    };
    let result = work.await;
    claim.key = None;
    let pool = state.pool.clone();
    match result {
        Ok((status, body)) => {
            let body: Value = serde_json::to_value(body).map_err(|e| ApiError::internal(&e))?;
            let recorded = keys::complete_key(
                &pool,
                partner_id,
                &scoped_key,
                i32::from(status.as_u16()),
                &body,
            )
            .await;
            if recorded.is_err() {
                // The work is done, so the response is sent. Recording it is
                // tried again, or a repeat after the claim expires would do
                // the work a second time.
                let stored = body.clone();
                let code = i32::from(status.as_u16());
                retry_later(partner_id, move || {
                    let (pool, key, stored) = (pool.clone(), scoped_key.clone(), stored.clone());
                    async move { keys::complete_key(&pool, partner_id, &key, code, &stored).await }
                });
            }
            Ok(HttpResponse::build(status).json(body))
        }
        Err(error) => {
            if keys::release_key(&pool, partner_id, &scoped_key)
                .await
                .is_err()
            {
                // Most likely every connection is busy: try again shortly,
                // so the key is not stuck until its claim is abandoned.
                release_later(pool, partner_id, scoped_key);
            }
            Err(error)
        }
    }
}

/// A claimed `Idempotency-Key` that is released when dropped before its
/// request finished.
struct ClaimGuard {
    pool: sqlx::PgPool,
    partner_id: Uuid,
    key: Option<String>,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            release_later(self.pool.clone(), self.partner_id, key);
        }
    }
}

/// Releases a claimed key in the background, trying for about a minute.
fn release_later(pool: sqlx::PgPool, partner_id: Uuid, key: String) {
    retry_later(partner_id, move || {
        let (pool, key) = (pool.clone(), key.clone());
        async move { outbound_persistence::imports::release_key(&pool, partner_id, &key).await }
    });
}

/// Runs a write to an `Idempotency-Key` in the background, every 2 seconds
/// until it succeeds, for about a minute.
fn retry_later<F, Attempt>(partner_id: Uuid, mut write: F)
where
    F: FnMut() -> Attempt + 'static,
    Attempt: std::future::Future<Output = sqlx::Result<()>> + 'static,
{
    actix_web::rt::spawn(async move {
        for _ in 0..30 {
            match write().await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%partner_id, %error, "an Idempotency-Key could not be updated yet");
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    });
}
