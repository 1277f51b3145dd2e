//! HMAC-SHA256 signatures between the service and the voice platform.
//!
//! Header `X-Outbound-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, where
//! the MAC covers `<t>.<body>` under the platform's shared secret. Requests
//! older or newer than [`REPLAY_WINDOW_SECONDS`] are rejected.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "X-Outbound-Signature";
pub const REPLAY_WINDOW_SECONDS: i64 = 300;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` signed at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is missing")]
    Missing,
    #[error("signature header is malformed")]
    Malformed,
    #[error("signature timestamp is outside the replay window")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// Verifies a header value against `body` at time `now` (unix seconds), in
/// constant time.
///
/// # Errors
/// Returns why the signature is not acceptable.
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => {
                signatures.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > REPLAY_WINDOW_SECONDS {
        return Err(SignatureError::Stale);
    }
    let expected = mac(secret, timestamp, body);
    if signatures
        .iter()
        .any(|candidate| expected.clone().verify_slice(candidate).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_body_verifies() {
        let header = sign(b"secret", 1_000, b"{}");
        assert_eq!(verify(b"secret", Some(&header), b"{}", 1_010), Ok(()));
    }

    #[test]
    fn altered_body_or_secret_fails() {
        let header = sign(b"secret", 1_000, b"{}");
        assert_eq!(
            verify(b"secret", Some(&header), b"{ }", 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some(&header), b"{}", 1_000),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn replayed_signature_is_stale() {
        let header = sign(b"secret", 1_000, b"{}");
        assert_eq!(
            verify(
                b"secret",
                Some(&header),
                b"{}",
                1_000 + REPLAY_WINDOW_SECONDS + 1
            ),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        assert_eq!(
            verify(b"secret", None, b"{}", 0),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(b"secret", Some("v1=zz"), b"{}", 0),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"secret", Some("t=5"), b"{}", 0),
            Err(SignatureError::Malformed)
        );
    }
}
