//! Turning an uploaded file into records: character set, delimiter and quoting.

use encoding_rs::{UTF_16BE, UTF_16LE, WINDOWS_1252};

use crate::problem::ApiError;

/// Character sets a request may declare for a file without a byte order mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclaredEncoding {
    Utf8,
    Windows1252,
}

impl DeclaredEncoding {
    /// Reads `charset=` from a Content-Type or an `encoding` query value.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().trim_matches('"').to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(DeclaredEncoding::Utf8),
            "windows-1252" | "cp1252" | "latin1" | "iso-8859-1" => {
                Some(DeclaredEncoding::Windows1252)
            }
            _ => None,
        }
    }
}

/// Decodes an upload to text: a UTF-8 or UTF-16 byte order mark wins; else the
/// declared encoding; else UTF-8, which must be valid.
///
/// # Errors
/// `422 unsupported_encoding` when the bytes are not valid in that encoding.
pub fn decode(bytes: &[u8], declared: Option<DeclaredEncoding>) -> Result<String, ApiError> {
    let unsupported =
        |detail: &str| ApiError::unprocessable("unsupported_encoding", detail.to_owned());
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8(rest.to_vec()).map_err(|_| {
            unsupported("the file has a UTF-8 byte order mark but is not valid UTF-8")
        });
    }
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        let encoding = if bytes.starts_with(b"\xFF\xFE") {
            UTF_16LE
        } else {
            UTF_16BE
        };
        let (text, _, had_errors) = encoding.decode(bytes);
        if had_errors {
            return Err(unsupported(
                "the file has a UTF-16 byte order mark but is not valid UTF-16",
            ));
        }
        return Ok(text.trim_start_matches('\u{feff}').to_owned());
    }
    match declared {
        Some(DeclaredEncoding::Windows1252) => {
            let (text, _, _) = WINDOWS_1252.decode(bytes);
            Ok(text.into_owned())
        }
        _ => String::from_utf8(bytes.to_vec()).map_err(|_| {
            unsupported("the file is not valid UTF-8; save it as UTF-8, or declare charset=windows-1252 in Content-Type or ?encoding=windows-1252")
        }),
    }
}

/// Picks `,`, `;` or tab: whichever appears most in the header line outside quotes.
pub fn detect_delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for byte in header.bytes() {
        if byte == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for (delimiter, count) in counts.iter_mut() {
                if byte == *delimiter {
                    *count += 1;
                }
            }
        }
    }
    counts
        .iter()
        .max_by_key(|(_, count)| *count)
        .filter(|(_, count)| *count > 0)
        .map_or(b',', |(d, _)| *d)
}

/// The line where a quoted field opens and never closes, if any.
pub fn unterminated_quote_line(text: &str, delimiter: u8) -> Option<u64> {
    let bytes = text.as_bytes();
    let mut line = 1u64;
    let mut quoted = false;
    let mut opened_at = 0;
    let mut field_start = true;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if quoted {
            if byte == b'"' {
                if bytes.get(index + 1) == Some(&b'"') {
                    index += 1;
                } else {
                    quoted = false;
                }
            } else if byte == b'\n' {
                line += 1;
            }
        } else if byte == b'"' && field_start {
            quoted = true;
            opened_at = line;
        } else if byte == b'\n' {
            line += 1;
        }
        field_start = !quoted && (byte == delimiter || byte == b'\n' || (byte == b'\r'));
        index += 1;
    }
    quoted.then_some(opened_at)
}

/// A CSV reader over decoded text, with headers read by the caller.
pub fn reader(text: &str, delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_marks_pick_the_encoding() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFto_number\n", None).ok().as_deref(),
            Some("to_number\n")
        );
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("a,b\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode(&utf16, None).ok().as_deref(), Some("a,b\n"));
    }

    #[test]
    fn windows_1252_only_when_declared() {
        let bytes = b"first_name\nZo\xEB\n";
        assert_eq!(
            decode(bytes, None).map_err(|e| e.code),
            Err("unsupported_encoding")
        );
        assert_eq!(
            decode(bytes, Some(DeclaredEncoding::Windows1252))
                .ok()
                .as_deref(),
            Some("first_name\nZo\u{eb}\n")
        );
    }

    #[test]
    fn delimiter_detected_from_header() {
        assert_eq!(detect_delimiter("to_number;contact_ref\n1,2;3"), b';');
        assert_eq!(detect_delimiter("to_number\tcontact_ref\n"), b'\t');
        assert_eq!(detect_delimiter("to_number,contact_ref\n"), b',');
        assert_eq!(detect_delimiter("to_number\n"), b',');
    }

    #[test]
    fn unterminated_quote_names_its_line() {
        assert_eq!(unterminated_quote_line("a,b\n1,\"x\n2,y\n", b','), Some(2));
        assert_eq!(
            unterminated_quote_line("a,b\n1,\"x,\"\"y\"\"\nz\"\n", b','),
            None
        );
        assert_eq!(unterminated_quote_line("a,b\r\n\"1\",2\r\n", b','), None);
    }
}
