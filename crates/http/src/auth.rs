//! Bearer authentication with JWTs and the caller's role and scope.
//!
//! Tokens are verified with one pinned algorithm: HS256 with a shared secret in
//! development, EdDSA or RS256 with a public key in production. `exp`, `nbf`,
//! `iss` and `aud` are required and checked; `alg: none` and any algorithm
//! other than the pinned one are rejected.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use outbound_persistence::tenancy::Scope;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem::ApiError;
use crate::state::AppState;

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    PartnerAdmin,
    PartnerUser,
    /// `customer_admin`, `customer_user` or any other role: no campaign access.
    Customer(String),
}

impl Role {
    pub fn parse(value: &str) -> Self {
        match value {
            "partner_admin" => Role::PartnerAdmin,
            "partner_user" => Role::PartnerUser,
            other => Role::Customer(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Role::PartnerAdmin => "partner_admin",
            Role::PartnerUser => "partner_user",
            Role::Customer(name) => name,
        }
    }
}

/// The claims Outbound reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<Uuid>,
    #[serde(default)]
    pub client_ids: Vec<Uuid>,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    pub partner_id: Option<Uuid>,
    pub client_ids: Vec<Uuid>,
}

impl Principal {
    /// The caller's scope for reads; customer roles get 403.
    ///
    /// # Errors
    /// 403 for customer roles and partner tokens without a partner id.
    pub fn read_scope(&self) -> Result<Scope, ApiError> {
        match (&self.role, self.partner_id) {
            (Role::PartnerAdmin | Role::PartnerUser, Some(partner_id)) => Ok(Scope {
                partner_id,
                client_ids: self.client_ids.clone(),
            }),
            (Role::PartnerAdmin | Role::PartnerUser, None) => {
                Err(ApiError::forbidden("the token names no partner_id"))
            }
            (Role::Customer(role), _) => Err(ApiError::forbidden(format!(
                "role {role} has no access to outbound campaigns"
            ))),
        }
    }

    /// The caller's scope for writes; only `partner_admin` may write.
    ///
    /// # Errors
    /// 403 for every role but `partner_admin`.
    pub fn write_scope(&self) -> Result<Scope, ApiError> {
        let scope = self.read_scope()?;
        if self.role != Role::PartnerAdmin {
            return Err(ApiError::forbidden(
                "partner_user is read-only; this request needs partner_admin",
            ));
        }
        Ok(scope)
    }

    /// The audit trail's name for the caller.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.subject)
    }
}

/// Verifies bearer tokens with one pinned algorithm and key.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("invalid JWT key: {0}")]
    Key(String),
    #[error("unsupported JWT algorithm {0:?}; use EdDSA or RS256 (HS256 only in development)")]
    Algorithm(String),
}

fn validation(algorithm: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.validate_exp = true;
    validation.leeway = LEEWAY_SECONDS;
    validation
}

impl Authenticator {
    /// Development mode: HS256 with a shared secret.
    pub fn hs256(secret: &[u8], issuer: &str, audience: &str) -> Self {
        Self {
            key: DecodingKey::from_secret(secret),
            validation: validation(Algorithm::HS256, issuer, audience),
        }
    }

    /// Production: a PEM public key for EdDSA or RS256.
    ///
    /// # Errors
    /// Fails for another algorithm or an unreadable key.
    pub fn public_key(
        algorithm: &str,
        pem: &[u8],
        issuer: &str,
        audience: &str,
    ) -> Result<Self, AuthConfigError> {
        let (algorithm, key) = match algorithm {
            "EdDSA" => (Algorithm::EdDSA, DecodingKey::from_ed_pem(pem)),
            "RS256" => (Algorithm::RS256, DecodingKey::from_rsa_pem(pem)),
            other => return Err(AuthConfigError::Algorithm(other.to_owned())),
        };
        let key = key.map_err(|error| AuthConfigError::Key(error.to_string()))?;
        Ok(Self {
            key,
            validation: validation(algorithm, issuer, audience),
        })
    }

    /// Verifies a token and returns its caller.
    ///
    /// # Errors
    /// 401 for a bad signature, wrong algorithm, issuer or audience, or a token
    /// that is expired or not yet valid. The token is never echoed.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let data = decode::<Claims>(token, &self.key, &self.validation).map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            let reason = match error.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                ErrorKind::InvalidAudience => "the token's audience is not accepted",
                ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                ErrorKind::MissingRequiredClaim(_) => {
                    "the token lacks a required claim (exp, nbf, iss, aud, sub)"
                }
                _ => "the token is invalid",
            };
            ApiError::unauthorized(reason)
        })?;
        let claims = data.claims;
        Ok(Principal {
            subject: claims.sub,
            role: Role::parse(&claims.role),
            partner_id: claims.partner_id,
            client_ids: claims.client_ids,
        })
    }
}

/// Mints an HS256 development token.
///
/// # Errors
/// Fails only if signing fails.
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

fn bearer_token(request: &HttpRequest) -> Result<&str, ApiError> {
    let header = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "the Authorization header must be 'Bearer <token>'",
        ));
    }
    Ok(token.trim())
}

/// Prefix of partner API keys: `obk_<12 hex prefix>_<base64url secret>`.
pub const API_KEY_PREFIX: &str = "obk_";

/// Authenticates a partner API key: found by its prefix, compared by HMAC in
/// constant time, refused at once when revoked.
async fn authenticate_api_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let rejected = || ApiError::unauthorized("the API key is unknown or revoked");
    let rest = key.strip_prefix(API_KEY_PREFIX).ok_or_else(rejected)?;
    let (prefix, _) = rest.split_once('_').ok_or_else(rejected)?;
    let record = outbound_persistence::api_keys::find_by_prefix(&state.pool, prefix)
        .await?
        .ok_or_else(rejected)?;
    let presented = state.keyring.api_key_hash(key);
    let matches = presented.len() == record.secret_hash.len()
        && presented
            .iter()
            .zip(&record.secret_hash)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !matches || record.revoked_at.is_some() {
        tracing::warn!(api_key_id = %record.id, revoked = record.revoked_at.is_some(), "API key rejected");
        return Err(rejected());
    }
    let client_ids = match &record.client_ids {
        Some(ids) => ids.clone(),
        None => {
            outbound_persistence::api_keys::assigned_clients(&state.pool, record.partner_id).await?
        }
    };
    if let Err(error) = outbound_persistence::api_keys::touch(&state.pool, record.id).await {
        tracing::warn!(api_key_id = %record.id, error = %error, "failed to record API key use");
    }
    Ok(Principal {
        subject: format!("api_key:{}", record.id),
        role: Role::parse(&record.role),
        partner_id: Some(record.partner_id),
        client_ids,
    })
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(request).map(str::to_owned);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::internal(&"application state is not configured"))?;
            let token = token?;
            let principal = if token.starts_with(API_KEY_PREFIX) {
                authenticate_api_key(&state, &token).await?
            } else {
                state.authenticator.verify(&token)?
            };
            if let Some(limits) = &state.rate_limits {
                let key = format!(
                    "{}:{}",
                    principal.partner_id.unwrap_or_default(),
                    principal.subject
                );
                if let Err(seconds) = limits.check(&key) {
                    let mut error = ApiError::new(
                        actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!("too many requests; retry after {seconds} seconds"),
                    );
                    error.retry_after = Some(seconds);
                    return Err(error);
                }
            }
            Ok(principal)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A key pair made for these tests only (`openssl genpkey -algorithm ed25519`).
    const TEST_ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBtot0KQOR+CxLqDVMDpf/YWFQaNLKF7aK+2qT1s1zO8\n-----END PRIVATE KEY-----\n";
    const TEST_ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAPCw5+VC60QfEiTXv93nZQqIvHFWYW6N4w3AXzdwEUog=\n-----END PUBLIC KEY-----\n";

    fn claims(exp_offset: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: "user-1".into(),
            role: "partner_admin".into(),
            partner_id: Some(Uuid::nil()),
            client_ids: vec![Uuid::nil()],
            iss: "idp".into(),
            aud: "outbound-api".into(),
            exp: now + exp_offset,
            nbf: now - 10,
            iat: now - 10,
        }
    }

    fn eddsa_token(claims: &Claims) -> String {
        let key = EncodingKey::from_ed_pem(TEST_ED25519_PRIVATE.as_bytes()).expect("test key");
        encode(&Header::new(Algorithm::EdDSA), claims, &key).expect("signed")
    }

    fn production() -> Authenticator {
        Authenticator::public_key(
            "EdDSA",
            TEST_ED25519_PUBLIC.as_bytes(),
            "idp",
            "outbound-api",
        )
        .expect("valid public key")
    }

    #[test]
    fn eddsa_token_verifies_with_public_key() {
        let principal = production()
            .verify(&eddsa_token(&claims(600)))
            .expect("valid token");
        assert_eq!(principal.role, Role::PartnerAdmin);
        assert_eq!(principal.subject, "user-1");
    }

    #[test]
    fn hs256_token_rejected_by_eddsa_verifier() {
        // Algorithm confusion: an HS256 token keyed with the public key's text.
        let token = mint_hs256(TEST_ED25519_PUBLIC.as_bytes(), &claims(600)).expect("signed");
        assert_eq!(
            production()
                .verify(&token)
                .map(|_| ())
                .map_err(|e| e.detail),
            Err("the token's algorithm is not accepted".into())
        );
    }

    #[test]
    fn expired_eddsa_token_is_rejected() {
        let error = production()
            .verify(&eddsa_token(&claims(-120)))
            .map(|_| ())
            .map_err(|e| e.detail);
        assert_eq!(error, Err("the token has expired".into()));
    }

    #[test]
    fn wrong_audience_is_rejected() {
        let mut other = claims(600);
        other.aud = "another-api".into();
        let error = production()
            .verify(&eddsa_token(&other))
            .map(|_| ())
            .map_err(|e| e.detail);
        assert_eq!(error, Err("the token's audience is not accepted".into()));
    }

    #[test]
    fn unsupported_algorithm_is_a_configuration_error() {
        let result = Authenticator::public_key(
            "HS256",
            TEST_ED25519_PUBLIC.as_bytes(),
            "idp",
            "outbound-api",
        );
        assert!(matches!(result, Err(AuthConfigError::Algorithm(_))));
    }

    #[test]
    fn roles_parse_customer_roles_as_customer() {
        assert_eq!(Role::parse("partner_user"), Role::PartnerUser);
        assert_eq!(
            Role::parse("customer_admin"),
            Role::Customer("customer_admin".into())
        );
        let principal = Principal {
            subject: "s".into(),
            role: Role::parse("customer_user"),
            partner_id: Some(Uuid::nil()),
            client_ids: vec![],
        };
        assert_eq!(
            principal
                .read_scope()
                .map(|_| ())
                .map_err(|e| e.status.as_u16()),
            Err(403)
        );
    }
}
