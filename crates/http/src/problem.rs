//! Errors as RFC 9457 problem responses with a stable `code`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// An `application/problem+json` body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:outbound:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
    /// Extra members, such as the validation report of a refused launch.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
}

/// An error a handler returns; its body never contains internal details,
/// phone numbers or payloads.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub extensions: Map<String, Value>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extensions: Map::new(),
            retry_after: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.extensions.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// A 500 whose cause is logged here and never sent to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed with an internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle the request; try again later",
        )
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }

    pub fn to_problem(&self) -> Problem {
        Problem {
            problem_type: format!("urn:outbound:problem:{}", self.code),
            title: self.title().to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            extensions: self.extensions.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        response
            .content_type("application/problem+json")
            .json(self.to_problem())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        // PostgreSQL text cannot hold U+0000 (SQLSTATE 22021). The value came
        // from the client, and the failed statement rolled its transaction
        // back, so this is the client's mistake and nothing was written.
        let nul_in_text = error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code == "22021");
        if nul_in_text {
            tracing::info!("request rejected: a text value contains U+0000");
            return ApiError::unprocessable(
                "invalid_character",
                "a text value contains the NUL character (U+0000), which cannot be stored; remove it and send the request again",
            );
        }
        if matches!(error, sqlx::Error::PoolTimedOut) {
            // Every database connection is busy: the server is overloaded,
            // and the same request may succeed a moment later.
            tracing::warn!("request rejected: no database connection became free in time");
            let mut busy = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_busy",
                "the server is too busy to take this request now; nothing was changed, so send it again in a few seconds",
            );
            busy.retry_after = Some(5);
            return busy;
        }
        ApiError::internal(&error)
    }
}

/// Hides every run of six or more digits in `text` (spaces, `+`, `-`, `.`,
/// `(` and `)` may sit between them), so an error message or log line that
/// repeats a client's value never carries a phone number.
pub fn redact_digits(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() && chars[i] != '+' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The longest run of digits and separators from here, ending on a digit.
        let mut end = i;
        let mut digits = 0;
        let mut last_digit_end = i;
        while end < chars.len() {
            let c = chars[end];
            if c.is_ascii_digit() {
                digits += 1;
                last_digit_end = end + 1;
            } else if !matches!(c, ' ' | '+' | '-' | '.' | '(' | ')') {
                break;
            }
            end += 1;
        }
        if digits >= 6 {
            out.push_str("[hidden]");
            i = last_digit_end;
        } else {
            let stop = last_digit_end.max(i + 1);
            out.extend(&chars[i..stop]);
            i = stop;
        }
    }
    out
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::{redact_digits, ApiError, StatusCode};

    #[test]
    fn pool_timeout_is_server_busy() {
        let error = ApiError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code, "server_busy");
        assert_eq!(error.retry_after, Some(5));
    }

    #[test]
    fn redact_hides_numbers_in_any_form() {
        for (text, expected) in [
            (
                "invalid type: integer `491570110`",
                "invalid type: integer `[hidden]`",
            ),
            ("string \"+61491570006\"", "string \"[hidden]\""),
            ("call 0491 570 006 now", "call [hidden] now"),
            ("(02) 5550-1234.", "([hidden]."),
            ("at line 1 column 378", "at line 1 column 378"),
            ("priority 11, year 2026", "priority 11, year 2026"),
        ] {
            assert_eq!(redact_digits(text), expected, "{text}");
        }
    }
}
