//! Turning an uploaded file into records, incrementally: character set,
//! delimiter, quoting and line numbers, with memory bounded by the longest
//! record rather than the file.

use actix_web::web::Bytes;
use encoding_rs::{Decoder, DecoderResult, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};

use crate::problem::ApiError;

/// Character set a request may declare for its file. UTF-8 and
/// Windows-1252 apply to files without a byte order mark. The UTF-16 ones
/// require a UTF-16 byte order mark that agrees with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclaredEncoding {
    Utf8,
    Windows1252,
    /// `utf-16`: either byte order, given by the byte order mark.
    Utf16,
    Utf16Le,
    Utf16Be,
}

impl DeclaredEncoding {
    /// Reads `charset=` from a Content-Type or an `encoding` query value.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().trim_matches('"').to_ascii_lowercase().as_str() {
            // ASCII is a subset of UTF-8; utf-8-sig is Python's name for UTF-8
            // with a byte order mark, which is read either way.
            "utf-8" | "utf8" | "utf-8-sig" | "us-ascii" | "ascii" => Some(DeclaredEncoding::Utf8),
            "windows-1252" | "cp1252" | "latin1" | "iso-8859-1" => {
                Some(DeclaredEncoding::Windows1252)
            }
            "utf-16" | "utf16" => Some(DeclaredEncoding::Utf16),
            "utf-16le" | "utf16le" => Some(DeclaredEncoding::Utf16Le),
            "utf-16be" | "utf16be" => Some(DeclaredEncoding::Utf16Be),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeclaredEncoding::Utf8 => "utf-8",
            DeclaredEncoding::Windows1252 => "windows-1252",
            DeclaredEncoding::Utf16 => "utf-16",
            DeclaredEncoding::Utf16Le => "utf-16le",
            DeclaredEncoding::Utf16Be => "utf-16be",
        }
    }

    /// Returns whether a file with this byte order mark (`utf-8`,
    /// `utf-16le`, `utf-16be` or `None`) may be read under this declaration.
    /// A byte order mark wins over `utf-8` and `windows-1252`.
    fn accepts_bom(self, bom: Option<&str>) -> bool {
        match self {
            DeclaredEncoding::Utf8 | DeclaredEncoding::Windows1252 => true,
            DeclaredEncoding::Utf16 => matches!(bom, Some("utf-16le" | "utf-16be")),
            DeclaredEncoding::Utf16Le => bom == Some("utf-16le"),
            DeclaredEncoding::Utf16Be => bom == Some("utf-16be"),
        }
    }
}

/// Returns the `422 unsupported_encoding` for a file whose byte order mark
/// (`bom`) disagrees with the declared character set.
fn declared_bom_mismatch(declared: DeclaredEncoding, bom: Option<&str>) -> ApiError {
    let found = match bom {
        Some(bom) => format!("a {} byte order mark", bom.to_ascii_uppercase()),
        None => "no byte order mark".to_owned(),
    };
    ApiError::unprocessable(
        "unsupported_encoding",
        format!(
            "the request declares charset={} but the file has {found}; UTF-16 files need a byte order mark that matches the declaration, so declare the file's real encoding or save it again as UTF-16 with a byte order mark",
            declared.as_str()
        ),
    )
    .with("declared_encoding", declared.as_str())
    .with("byte_order_mark", bom.unwrap_or("none"))
}

/// Raw upload bytes, pulled on a blocking thread.
pub trait ByteSource {
    /// Returns the next chunk, or `None` at the end of the upload.
    ///
    /// # Errors
    /// Whatever stopped the upload: a body over the size limit, a client that
    /// went away, an unreadable temporary file.
    fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError>;
}

/// An upload already in memory, handed out in chunks of the given size.
pub struct MemorySource {
    bytes: Bytes,
    chunk: usize,
}

impl MemorySource {
    pub fn new(bytes: impl Into<Bytes>, chunk: usize) -> Self {
        Self {
            bytes: bytes.into(),
            chunk: chunk.max(1),
        }
    }
}

impl ByteSource for MemorySource {
    fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let size = self.chunk.min(self.bytes.len());
        Ok(Some(self.bytes.split_to(size)))
    }
}

/// The decoder a file needs, which also picks the wording of its errors.
#[derive(Debug, Clone, Copy)]
enum Detected {
    Utf8Bom,
    Utf16,
    Windows1252,
    Utf8,
}

/// Decodes an upload to UTF-8 chunk by chunk. A UTF-8 or UTF-16 byte order
/// mark wins over a declared `utf-8` or `windows-1252`; a declared UTF-16
/// must agree with it. Without one, the declared encoding applies, else UTF-8,
/// which must be valid.
pub struct TextDecoder<S> {
    source: S,
    declared: Option<DeclaredEncoding>,
    decoder: Option<(Decoder, Detected)>,
    /// Raw bytes read but not decoded yet.
    pending: Vec<u8>,
    source_done: bool,
    finished: bool,
    /// Raw bytes read from the source so far.
    bytes_read: u64,
}

impl<S: ByteSource> TextDecoder<S> {
    pub fn new(source: S, declared: Option<DeclaredEncoding>) -> Self {
        Self {
            source,
            declared,
            decoder: None,
            pending: Vec::new(),
            source_done: false,
            finished: false,
            bytes_read: 0,
        }
    }

    /// Raw bytes read from the source so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    fn pull(&mut self) -> Result<(), ApiError> {
        match self.source.next_chunk()? {
            Some(chunk) => {
                self.bytes_read += chunk.len() as u64;
                self.pending.extend_from_slice(&chunk);
            }
            None => self.source_done = true,
        }
        Ok(())
    }

    /// Picks the decoder from the first bytes and drops the byte order mark.
    fn sniff(&mut self) -> Result<(), ApiError> {
        while self.pending.len() < 4 && !self.source_done {
            self.pull()?;
        }
        // An .xlsx workbook is a ZIP archive, and an .xls one an OLE2
        // compound file; neither is text in any encoding.
        if self.pending.starts_with(b"PK\x03\x04") || self.pending.starts_with(b"\xD0\xCF\x11\xE0")
        {
            return Err(crate::upload::workbook_error());
        }
        let bom_name = if self.pending.starts_with(b"\xEF\xBB\xBF") {
            Some("utf-8")
        } else if self.pending.starts_with(b"\xFF\xFE") {
            Some("utf-16le")
        } else if self.pending.starts_with(b"\xFE\xFF") {
            Some("utf-16be")
        } else {
            None
        };
        if let Some(declared) = self.declared {
            // An empty file is reported as empty whatever it declares.
            if !self.pending.is_empty() && !declared.accepts_bom(bom_name) {
                return Err(declared_bom_mismatch(declared, bom_name));
            }
        }
        let (detected, bom) = if self.pending.starts_with(b"\xEF\xBB\xBF") {
            (
                (UTF_8.new_decoder_without_bom_handling(), Detected::Utf8Bom),
                3,
            )
        } else if self.pending.starts_with(b"\xFF\xFE") {
            (
                (UTF_16LE.new_decoder_without_bom_handling(), Detected::Utf16),
                2,
            )
        } else if self.pending.starts_with(b"\xFE\xFF") {
            (
                (UTF_16BE.new_decoder_without_bom_handling(), Detected::Utf16),
                2,
            )
        } else if self.declared == Some(DeclaredEncoding::Windows1252) {
            (
                (
                    WINDOWS_1252.new_decoder_without_bom_handling(),
                    Detected::Windows1252,
                ),
                0,
            )
        } else {
            (
                (UTF_8.new_decoder_without_bom_handling(), Detected::Utf8),
                0,
            )
        };
        self.pending.drain(..bom);
        self.decoder = Some(detected);
        Ok(())
    }

    /// Appends the next decoded text to `out`; returns `false` once the
    /// upload is fully decoded.
    ///
    /// # Errors
    /// `422 unsupported_encoding` when the bytes are invalid in the encoding
    /// in use, and any error of the source.
    pub fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool, ApiError> {
        if self.finished {
            return Ok(false);
        }
        if self.decoder.is_none() {
            self.sniff()?;
        }
        if self.pending.is_empty() && !self.source_done {
            self.pull()?;
        }
        let last = self.source_done;
        let (decoder, detected) = self.decoder.as_mut().expect("sniffed above");
        let start = out.len();
        let room = decoder
            .max_utf8_buffer_length_without_replacement(self.pending.len())
            .unwrap_or(self.pending.len() * 3 + 16);
        out.resize(start + room, 0);
        let (result, read, written) =
            decoder.decode_to_utf8_without_replacement(&self.pending, &mut out[start..], last);
        out.truncate(start + written);
        self.pending.drain(..read);
        match result {
            DecoderResult::Malformed(_, _) => Err(invalid_encoding(*detected)),
            DecoderResult::OutputFull => Ok(true),
            DecoderResult::InputEmpty => {
                if last {
                    self.finished = true;
                }
                Ok(true)
            }
        }
    }
}

fn invalid_encoding(detected: Detected) -> ApiError {
    let detail = match detected {
        Detected::Utf8Bom => "the file has a UTF-8 byte order mark but is not valid UTF-8",
        Detected::Utf16 => "the file has a UTF-16 byte order mark but is not valid UTF-16",
        Detected::Windows1252 | Detected::Utf8 => {
            "the file is not valid UTF-8; save it as UTF-8, or declare charset=windows-1252 in Content-Type or ?encoding=windows-1252"
        }
    };
    ApiError::unprocessable("unsupported_encoding", detail)
}

/// Picks `,`, `;` or tab: whichever appears most in the header line outside quotes.
pub fn detect_delimiter(header_line: &[u8]) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &byte in header_line {
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

/// Decoded bytes at the start of a file checked for the pattern of UTF-16 text.
const UTF16_SAMPLE: usize = 256;

/// Returns whether text read as UTF-8 is really UTF-16 without a byte order
/// mark. Each ASCII character of UTF-16 text has a NUL byte beside it.
fn looks_like_utf16(sample: &[u8]) -> bool {
    let nul = sample.iter().filter(|&&b| b == 0).count();
    sample.len() >= 4 && nul * 4 >= sample.len()
}

/// Reads Excel's `sep=;` first line, which names the delimiter of the rest of
/// the file. Returns `None` when the line is something else, and an error for
/// a delimiter the importer does not take.
fn excel_separator(line: &[u8]) -> Option<Result<u8, ()>> {
    let line = line.trim_ascii_start();
    let end = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\r')
        .map_or(0, |last| last + 1);
    let line = &line[..end];
    if line.len() < 5 || !line[..4].eq_ignore_ascii_case(b"sep=") {
        return None;
    }
    let delimiter = line[4];
    // Saving such a file again can pad the line with more delimiters.
    if !line[5..].iter().all(|&b| b == delimiter) {
        return None;
    }
    Some(match delimiter {
        b',' | b';' | b'\t' => Ok(delimiter),
        _ => Err(()),
    })
}

/// Returns whether a line of decoded text contains no value: only spaces of any
/// kind, invisible characters, delimiters and quotes, as in `"",""`.
fn is_empty_line(line: &[u8]) -> bool {
    std::str::from_utf8(line).is_ok_and(|line| {
        line.chars().all(|c| {
            c.is_whitespace()
                || outbound_domain::phone::is_invisible(c)
                || matches!(c, ',' | ';' | '"')
        })
    })
}

/// Builds a `malformed_csv` problem that names the line.
pub fn malformed(line: u64, detail: &str) -> ApiError {
    ApiError::unprocessable("malformed_csv", format!("line {line}: {detail}")).with("line", line)
}

/// Physical line numbers and whether a quoted field is open, over the text in
/// order. A line ends at `\n`, `\r\n` or a lone `\r`. A quote opens a field
/// only at the start of the field, and `""` inside a quoted field is a quote,
/// as the CSV reader has it.
#[derive(Debug, Clone)]
struct TextScanner {
    delimiter: u8,
    line: u64,
    after_cr: bool,
    quoted: bool,
    /// A quote inside a quoted field whose meaning depends on the next byte.
    quote_pending: bool,
    field_start: bool,
    opened_at: u64,
}

impl TextScanner {
    fn new(delimiter: u8) -> Self {
        Self {
            delimiter,
            line: 1,
            after_cr: false,
            quoted: false,
            quote_pending: false,
            field_start: true,
            opened_at: 0,
        }
    }

    fn advance(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match byte {
                b'\r' => self.line += 1,
                b'\n' if !self.after_cr => self.line += 1,
                _ => {}
            }
            self.after_cr = byte == b'\r';
            if self.quote_pending {
                self.quote_pending = false;
                if byte == b'"' {
                    continue;
                }
                self.quoted = false;
            }
            if self.quoted {
                if byte == b'"' {
                    self.quote_pending = true;
                }
                continue;
            }
            if byte == b'"' && self.field_start {
                self.quoted = true;
                self.opened_at = self.line;
            }
            self.field_start = byte == self.delimiter || byte == b'\n' || byte == b'\r';
        }
    }

    /// Returns the line where a quoted field opened and never closed, at the end of the text.
    fn unterminated_at_end(&self) -> Option<u64> {
        (self.quoted && !self.quote_pending).then_some(self.opened_at)
    }
}

/// Limits that keep one record's memory bounded.
#[derive(Debug, Clone, Copy)]
pub struct RecordLimits {
    /// Maximum field length, in bytes of UTF-8.
    pub max_field_bytes: usize,
    /// Maximum number of fields in one record.
    pub max_fields: usize,
}

impl RecordLimits {
    /// Returns the maximum record length: sixteen fields at the field limit,
    /// because a real record never has every field that long.
    fn max_record_bytes(&self) -> usize {
        self.max_field_bytes.saturating_mul(16)
    }
}

/// Decoded text read per refill.
const READ_AHEAD: usize = 64 * 1024;

/// Reads records from an upload one at a time, with the physical line each
/// starts on. Blank lines are skipped.
pub struct RecordReader<S> {
    decoder: TextDecoder<S>,
    text: Vec<u8>,
    position: usize,
    text_done: bool,
    core: csv_core::Reader,
    delimiter: u8,
    scanner: TextScanner,
    fields: Vec<u8>,
    ends: Vec<usize>,
    field_count: usize,
    line: u64,
    limits: RecordLimits,
}

impl<S: ByteSource> RecordReader<S> {
    /// Opens the upload and detects the delimiter from its first line.
    ///
    /// # Errors
    /// `422 unsupported_encoding` or `malformed_csv` when the first line is
    /// unreadable or too long, and any error of the source.
    pub fn open(decoder: TextDecoder<S>, limits: RecordLimits) -> Result<Self, ApiError> {
        let mut reader = Self {
            decoder,
            text: Vec::with_capacity(READ_AHEAD * 2),
            position: 0,
            text_done: false,
            core: csv_core::Reader::new(),
            delimiter: b',',
            scanner: TextScanner::new(b','),
            fields: vec![0; 1024],
            ends: vec![0; 64],
            field_count: 0,
            line: 0,
            limits,
        };
        // Lines before the header that hold nothing but spaces and delimiters
        // are empty records, skipped like those between rows. The header's
        // delimiter is detected from the first line with content.
        let mut line_start = 0;
        let line_end = loop {
            let end = reader.line_end(line_start)?;
            let line = &reader.text[line_start..end];
            if !is_empty_line(line) || end == reader.text.len() {
                break end;
            }
            line_start = end + 1;
            if reader.text[end] == b'\r' {
                if end + 1 == reader.text.len() && !reader.text_done {
                    reader.refill()?;
                }
                if reader.text.get(end + 1) == Some(&b'\n') {
                    line_start += 1;
                }
            }
        };
        if looks_like_utf16(&reader.text[..reader.text.len().min(UTF16_SAMPLE)]) {
            return Err(ApiError::unprocessable(
                "unsupported_encoding",
                "the file looks like UTF-16 without a byte order mark; save it as UTF-8, or as UTF-16 with a byte order mark",
            ));
        }
        let first_line = &reader.text[line_start..line_end];
        let directive = match excel_separator(first_line) {
            Some(Ok(delimiter)) => Some(delimiter),
            Some(Err(())) => {
                return Err(malformed(
                    reader.line_number_at(line_start),
                    "the sep= line names a delimiter other than comma, semicolon or tab",
                ))
            }
            None => None,
        };
        reader.delimiter = directive.unwrap_or_else(|| detect_delimiter(first_line));
        reader.core = csv_core::ReaderBuilder::new()
            .delimiter(reader.delimiter)
            .build();
        reader.scanner = TextScanner::new(reader.delimiter);
        // Excel's `sep=;` line is not a record: the header follows it.
        let skipped = if directive.is_some() {
            line_end
        } else {
            line_start
        };
        let skipped_text = &reader.text[..skipped];
        reader.scanner.advance(skipped_text);
        reader.position = skipped;
        Ok(reader)
    }

    /// Returns the end of the line that starts at `start` in the text read so
    /// far, reading more as needed: the position of its `\n` or `\r`, or the
    /// end of the text. Used only while the reader is opened, before any
    /// text is consumed.
    fn line_end(&mut self, start: usize) -> Result<usize, ApiError> {
        loop {
            if let Some(offset) = self.text[start..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
            {
                return Ok(start + offset);
            }
            if self.text_done {
                return Ok(self.text.len());
            }
            if self.text.len() - start > self.limits.max_record_bytes() {
                return Err(malformed(
                    self.line_number_at(start),
                    &format!(
                        "the header line is longer than {} bytes",
                        self.limits.max_record_bytes()
                    ),
                ));
            }
            self.refill()?;
        }
    }

    /// Returns the 1-based physical line that starts at `position` of the text read
    /// so far, counted as the scanner counts, while the reader is opened.
    fn line_number_at(&self, position: usize) -> u64 {
        let mut scanner = TextScanner::new(b',');
        scanner.advance(&self.text[..position]);
        scanner.line
    }

    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Raw bytes read from the upload so far.
    pub fn bytes_read(&self) -> u64 {
        self.decoder.bytes_read()
    }

    fn refill(&mut self) -> Result<(), ApiError> {
        if self.position > 0 && self.position * 2 >= self.text.len() {
            self.text.drain(..self.position);
            self.position = 0;
        }
        let target = self.text.len() + READ_AHEAD;
        while self.text.len() < target {
            if !self.decoder.read_into(&mut self.text)? {
                self.text_done = true;
                break;
            }
        }
        Ok(())
    }

    /// Skips line ends before a record; returns `false` at the end of the text.
    fn skip_blank_lines(&mut self) -> Result<bool, ApiError> {
        loop {
            let rest = &self.text[self.position..];
            let blank = rest
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
            self.scanner.advance(&rest[..blank]);
            self.position += blank;
            if self.position < self.text.len() {
                return Ok(true);
            }
            if self.text_done {
                return Ok(false);
            }
            self.refill()?;
        }
    }

    /// Reads the next record; `None` at the end of the upload.
    ///
    /// # Errors
    /// `422 malformed_csv` for a quoted field that never closes, a field over
    /// the length limit or too many fields; `unsupported_encoding` and source
    /// errors as they happen.
    pub fn next_record(&mut self) -> Result<Option<RecordView<'_>>, ApiError> {
        if !self.skip_blank_lines()? {
            return Ok(None);
        }
        self.line = self.scanner.line;
        let (mut output_length, mut ends_length) = (0, 0);
        loop {
            let input = &self.text[self.position..];
            let (result, read, written, ended) = self.core.read_record(
                input,
                &mut self.fields[output_length..],
                &mut self.ends[ends_length..],
            );
            self.scanner.advance(&input[..read]);
            self.position += read;
            output_length += written;
            ends_length += ended;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {
                    if !self.text_done {
                        self.refill()?;
                    }
                }
                csv_core::ReadRecordResult::OutputFull => {
                    let last_end = if ends_length == 0 {
                        0
                    } else {
                        self.ends[ends_length - 1]
                    };
                    self.check_field_length(output_length - last_end)?;
                    if output_length >= self.limits.max_record_bytes() {
                        return Err(malformed(
                            self.line,
                            &format!(
                                "the record is longer than {} bytes",
                                self.limits.max_record_bytes()
                            ),
                        ));
                    }
                    let grown = (self.fields.len() * 2).min(self.limits.max_record_bytes() + 1);
                    self.fields.resize(grown.max(self.fields.len() + 1), 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    if ends_length >= self.limits.max_fields {
                        return Err(malformed(
                            self.line,
                            &format!("the record has more than {} fields", self.limits.max_fields),
                        ));
                    }
                    let grown = (self.ends.len() * 2).min(self.limits.max_fields + 1);
                    self.ends.resize(grown.max(self.ends.len() + 1), 0);
                }
                csv_core::ReadRecordResult::Record => break,
                csv_core::ReadRecordResult::End => return Ok(None),
            }
        }
        if self.text_done && self.position == self.text.len() {
            if let Some(line) = self.scanner.unterminated_at_end() {
                return Err(malformed(line, "a quoted field is never closed"));
            }
        }
        if self.fields[..output_length].contains(&0) {
            return Err(malformed(
                self.line,
                "the record contains a NUL byte, so the file is not plain text; export it again as CSV",
            ));
        }
        if ends_length > self.limits.max_fields {
            return Err(malformed(
                self.line,
                &format!("the record has more than {} fields", self.limits.max_fields),
            ));
        }
        let mut start = 0;
        for &end in &self.ends[..ends_length] {
            self.check_field_length(end - start)?;
            start = end;
        }
        self.field_count = ends_length;
        Ok(Some(RecordView {
            text: &self.fields[..output_length],
            ends: &self.ends[..ends_length],
            line: self.line,
        }))
    }

    fn check_field_length(&self, length: usize) -> Result<(), ApiError> {
        if length <= self.limits.max_field_bytes {
            return Ok(());
        }
        let detail = match self.scanner.quoted.then_some(self.scanner.opened_at) {
            Some(opened) => format!(
                "a field is longer than {} bytes; the quote opened on line {opened} is probably never closed",
                self.limits.max_field_bytes
            ),
            None => format!("a field is longer than {} bytes", self.limits.max_field_bytes),
        };
        Err(malformed(self.line, &detail))
    }
}

/// One record as read: its fields and the physical line it starts on.
pub struct RecordView<'a> {
    text: &'a [u8],
    ends: &'a [usize],
    pub line: u64,
}

impl<'a> RecordView<'a> {
    /// Returns the fields as text. The upload was decoded to UTF-8 and the
    /// reader splits only at ASCII bytes, so every field is valid UTF-8.
    pub fn fields(&self) -> Vec<&'a str> {
        let mut fields = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &end in self.ends {
            fields.push(std::str::from_utf8(&self.text[start..end]).unwrap_or(""));
            start = end;
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RecordLimits = RecordLimits {
        max_field_bytes: 64 * 1024,
        max_fields: 1024,
    };

    fn decode_all(bytes: &[u8], declared: Option<DeclaredEncoding>) -> Result<String, ApiError> {
        let mut decoder = TextDecoder::new(MemorySource::new(bytes.to_vec(), 2), declared);
        let mut out = Vec::new();
        while decoder.read_into(&mut out)? {}
        Ok(String::from_utf8(out).expect("the decoder writes UTF-8"))
    }

    /// Reads every record of `text` as (line, fields), in chunks of `chunk` bytes.
    fn records(text: &[u8], chunk: usize) -> Result<Vec<(u64, Vec<String>)>, ApiError> {
        let decoder = TextDecoder::new(MemorySource::new(text.to_vec(), chunk), None);
        let mut reader = RecordReader::open(decoder, LIMITS)?;
        let mut out = Vec::new();
        while let Some(record) = reader.next_record()? {
            let fields = record.fields().into_iter().map(str::to_owned).collect();
            out.push((record.line, fields));
        }
        Ok(out)
    }

    fn lines(text: &str) -> Vec<u64> {
        records(text.as_bytes(), 3)
            .expect("readable")
            .into_iter()
            .map(|(line, _)| line)
            .collect()
    }

    #[test]
    fn byte_order_marks_pick_the_encoding() {
        assert_eq!(
            decode_all(b"\xEF\xBB\xBFto_number\n", None).ok().as_deref(),
            Some("to_number\n")
        );
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("a,b\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode_all(&utf16, None).ok().as_deref(), Some("a,b\n"));
        let utf16be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("Zoë\n".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode_all(&utf16be, None).ok().as_deref(), Some("Zoë\n"));
    }

    #[test]
    fn windows_1252_only_when_declared() {
        let bytes = b"first_name\nZo\xEB\n";
        assert_eq!(
            decode_all(bytes, None).map_err(|e| e.code),
            Err("unsupported_encoding")
        );
        assert_eq!(
            decode_all(bytes, Some(DeclaredEncoding::Windows1252))
                .ok()
                .as_deref(),
            Some("first_name\nZo\u{eb}\n")
        );
    }

    #[test]
    fn utf8_split_across_chunks_decodes() {
        let text = "contact_ref\nZoë Seán Ōtake\n";
        for chunk in 1..8 {
            let mut decoder =
                TextDecoder::new(MemorySource::new(text.as_bytes().to_vec(), chunk), None);
            let mut out = Vec::new();
            while decoder.read_into(&mut out).expect("valid UTF-8") {}
            assert_eq!(out, text.as_bytes(), "chunk size {chunk}");
        }
    }

    #[test]
    fn truncated_utf16_is_rejected() {
        let bytes = [0xFF, 0xFE, b'a', 0, b'b'];
        assert_eq!(
            decode_all(&bytes, None).map_err(|e| e.code),
            Err("unsupported_encoding")
        );
    }

    #[test]
    fn delimiter_detected_from_header() {
        assert_eq!(detect_delimiter(b"to_number;contact_ref"), b';');
        assert_eq!(detect_delimiter(b"to_number\tcontact_ref"), b'\t');
        assert_eq!(detect_delimiter(b"to_number,contact_ref"), b',');
        assert_eq!(detect_delimiter(b"to_number"), b',');
        assert_eq!(detect_delimiter(b"\"a,b\";c"), b';');
    }

    #[test]
    fn semicolon_file_keeps_commas_in_fields() {
        let read = records(b"to_number;contact_ref\n0491 570 006;A,1\n", 4).expect("readable");
        assert_eq!(read[1].1, vec!["0491 570 006", "A,1"]);
    }

    #[test]
    fn lines_count_lf_crlf_and_cr() {
        assert_eq!(lines("h\na\nb\n"), vec![1, 2, 3]);
        assert_eq!(lines("h\r\na\r\nb\r\n"), vec![1, 2, 3]);
        assert_eq!(lines("h\ra\rb\r"), vec![1, 2, 3]);
        assert_eq!(lines("h\r\n\r\n\r\na\r\n"), vec![1, 4]);
    }

    #[test]
    fn excel_sep_line_sets_delimiter_and_is_skipped() {
        let read = records(b"sep=;\r\nto_number;contact_ref\r\n0491 570 006;A,1\r\n", 3)
            .expect("readable");
        assert_eq!(
            read[0],
            (2, vec!["to_number".to_owned(), "contact_ref".to_owned()])
        );
        assert_eq!(
            read[1],
            (3, vec!["0491 570 006".to_owned(), "A,1".to_owned()])
        );
        let tab = records(b"SEP=\t\nto_number\tcontact_ref\n", 2).expect("readable");
        assert_eq!(tab[0].1, vec!["to_number", "contact_ref"]);
        let error = records(b"sep=|\nto_number|contact_ref\n", 2).expect_err("refused");
        assert_eq!(error.code, "malformed_csv");
    }

    #[test]
    fn workbook_is_unsupported_media_type() {
        for bytes in [&b"PK\x03\x04\x14\x00"[..], b"\xD0\xCF\x11\xE0\xA1\xB1"] {
            let error = decode_all(bytes, None).expect_err("a workbook");
            assert_eq!(error.code, "unsupported_media_type");
            assert_eq!(error.status.as_u16(), 415);
        }
    }

    #[test]
    fn declared_charset_aliases() {
        for name in ["UTF-8", "utf-8-sig", "US-ASCII", "ascii"] {
            assert_eq!(
                DeclaredEncoding::parse(name),
                Some(DeclaredEncoding::Utf8),
                "{name}"
            );
        }
        for name in ["windows-1252", "ISO-8859-1", "\"cp1252\""] {
            assert_eq!(
                DeclaredEncoding::parse(name),
                Some(DeclaredEncoding::Windows1252),
                "{name}"
            );
        }
        assert_eq!(DeclaredEncoding::parse("utf-32"), None);
    }

    #[test]
    fn blank_lines_before_header_are_skipped() {
        for (text, header_line) in [
            (&b"\r\nto_number;contact_ref\r\n0491 570 006;A,1\r\n"[..], 2),
            (b"  \n;;;\nto_number;contact_ref\n0491 570 006;A,1\n", 3),
            (b"\t\t\r\rto_number\tcontact_ref\r0491 570 006\tA,1\r", 3),
            (b"\n,,\nsep=;\nto_number;contact_ref\n0491 570 006;A,1\n", 4),
            (
                "\"\";\"\"\n\u{a0}\n\u{200b}\nto_number;contact_ref\n0491 570 006;A,1\n".as_bytes(),
                4,
            ),
        ] {
            let read = records(text, 3).expect("readable");
            assert_eq!(
                read[0],
                (
                    header_line,
                    vec!["to_number".to_owned(), "contact_ref".to_owned()]
                ),
                "{text:?}"
            );
            assert_eq!(
                read[1],
                (
                    header_line + 1,
                    vec!["0491 570 006".to_owned(), "A,1".to_owned()]
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn cr_only_header_ends_at_its_cr() {
        let mut text = b"to_number;contact_ref\r".to_vec();
        for _ in 0..60_000 {
            text.extend_from_slice(b"0491 570 006;A,1\r");
        }
        let decoder = TextDecoder::new(MemorySource::new(text, 4096), None);
        let mut reader = RecordReader::open(decoder, LIMITS).expect("header found");
        assert_eq!(reader.delimiter(), b';');
        let mut count = 0;
        while let Some(record) = reader.next_record().expect("readable") {
            count += 1;
            assert_eq!(record.line, count);
        }
        assert_eq!(count, 60_001);
    }

    #[test]
    fn nul_byte_fails_file_with_line() {
        let error = records(b"to_number,contact_ref\n0491 570 006,A\x001\n", 3).expect_err("NUL");
        assert_eq!(error.code, "malformed_csv");
        assert_eq!(error.extensions["line"], 2);
    }

    #[test]
    fn utf16_without_bom_is_named() {
        let bytes: Vec<u8> = "to_number\r\n0491 570 006\r\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let error = records(&bytes, 7).expect_err("UTF-16 without a BOM");
        assert_eq!(error.code, "unsupported_encoding");
    }

    fn utf16_bytes(text: &str, bom: &[u8], little_endian: bool) -> Vec<u8> {
        let units = text.encode_utf16().flat_map(|unit| {
            if little_endian {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            }
        });
        bom.iter().copied().chain(units).collect()
    }

    #[test]
    fn declared_utf16_matching_bom_decodes() {
        let text = "to_number,contact_ref\r\n0491 570 006,Zoë\r\n";
        let cases = [
            (DeclaredEncoding::Utf16, &b"\xFF\xFE"[..], true),
            (DeclaredEncoding::Utf16, &b"\xFE\xFF"[..], false),
            (DeclaredEncoding::Utf16Le, &b"\xFF\xFE"[..], true),
            (DeclaredEncoding::Utf16Be, &b"\xFE\xFF"[..], false),
        ];
        for (declared, bom, little_endian) in cases {
            let bytes = utf16_bytes(text, bom, little_endian);
            let decoded = decode_all(&bytes, Some(declared))
                .unwrap_or_else(|error| panic!("{declared:?}: {}", error.detail));
            assert_eq!(decoded, text, "{declared:?}");
        }
    }

    #[test]
    fn declared_utf16_other_bom_rejected() {
        let text = "to_number\r\n0491 570 006\r\n";
        let cases = [
            (
                DeclaredEncoding::Utf16Le,
                utf16_bytes(text, b"\xFE\xFF", false),
                "utf-16be",
            ),
            (
                DeclaredEncoding::Utf16Be,
                utf16_bytes(text, b"\xFF\xFE", true),
                "utf-16le",
            ),
            (
                DeclaredEncoding::Utf16,
                utf16_bytes(text, b"", true),
                "none",
            ),
            (
                DeclaredEncoding::Utf16Le,
                utf16_bytes(text, b"", true),
                "none",
            ),
            (
                DeclaredEncoding::Utf16,
                format!("\u{feff}{text}").into_bytes(),
                "utf-8",
            ),
            (DeclaredEncoding::Utf16Be, text.as_bytes().to_vec(), "none"),
        ];
        for (declared, bytes, bom) in cases {
            let error = decode_all(&bytes, Some(declared)).expect_err("mismatch");
            assert_eq!(
                error.code, "unsupported_encoding",
                "{declared:?} with {bom}"
            );
            assert_eq!(error.extensions["declared_encoding"], declared.as_str());
            assert_eq!(error.extensions["byte_order_mark"], bom, "{declared:?}");
        }
    }

    #[test]
    fn declared_utf16_empty_file_is_empty() {
        let decoded = decode_all(b"", Some(DeclaredEncoding::Utf16)).expect("empty");
        assert_eq!(decoded, "");
    }

    #[test]
    fn multiline_record_starts_on_its_first_line() {
        let text = "h,r\r\na,\"one\r\ntwo\"\r\nb,x\r\n";
        let read = records(text.as_bytes(), 5).expect("readable");
        assert_eq!(read[1], (2, vec!["a".to_owned(), "one\r\ntwo".to_owned()]));
        assert_eq!(read[2].0, 4);
    }

    #[test]
    fn quotes_and_escaped_quotes_kept() {
        let read = records(b"a,b\n\"Smith, \"\"Jr\"\"\",x\n", 1).expect("readable");
        assert_eq!(read[1].1, vec!["Smith, \"Jr\"", "x"]);
    }

    #[test]
    fn unterminated_quote_names_its_line() {
        let error = records(b"a,b\n1,\"x\n2,y\n", 2).expect_err("malformed");
        assert_eq!(error.code, "malformed_csv");
        assert_eq!(error.extensions["line"], 2);
        assert!(records(b"a,b\n1,\"x,\"\"y\"\"\nz\"\n", 2).is_ok());
        assert!(records(b"a,b\r\n\"1\",2\r\n", 2).is_ok());
        assert!(records(b"a,b\n\"1\"", 1).is_ok());
    }

    #[test]
    fn field_over_limit_fails_file() {
        let limits = RecordLimits {
            max_field_bytes: 10,
            max_fields: 8,
        };
        let decoder = TextDecoder::new(MemorySource::new(&b"a,b\nx,0123456789A\n"[..], 3), None);
        let mut reader = RecordReader::open(decoder, limits).expect("header line");
        assert!(reader.next_record().expect("header").is_some());
        let error = reader.next_record().err().expect("field too long");
        assert_eq!(error.code, "malformed_csv");
        assert_eq!(error.extensions["line"], 2);
    }

    #[test]
    fn too_many_fields_fails_file() {
        let limits = RecordLimits {
            max_field_bytes: 10,
            max_fields: 4,
        };
        let decoder = TextDecoder::new(MemorySource::new(&b"a\n,,,,,,,,\n"[..], 64), None);
        let mut reader = RecordReader::open(decoder, limits).expect("header line");
        assert!(reader.next_record().expect("header").is_some());
        assert_eq!(
            reader.next_record().err().map(|e| e.code),
            Some("malformed_csv")
        );
    }

    mod fuzz {
        use outbound_domain::contact_row::{validate_record, HeaderMap, RowContext};
        use outbound_domain::hours::CallType;
        use outbound_domain::phone::NumberPolicy;
        use proptest::prelude::*;

        use super::super::*;
        use super::records;

        /// Reads `bytes` as a contact file in chunks of `chunk` bytes and
        /// validates every record against the header, as an import does.
        fn read_and_validate(bytes: &[u8], chunk: usize, declared: Option<DeclaredEncoding>) {
            let limits = RecordLimits {
                max_field_bytes: 256,
                max_fields: 64,
            };
            let decoder = TextDecoder::new(MemorySource::new(bytes.to_vec(), chunk), declared);
            let Ok(mut reader) = RecordReader::open(decoder, limits) else {
                return;
            };
            let header: Vec<String> = match reader.next_record() {
                Ok(Some(record)) => record.fields().into_iter().map(str::to_owned).collect(),
                _ => return,
            };
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            let keys = vec!["first_name".to_owned()];
            let map = HeaderMap::build(&header, &keys, true).ok();
            let context = RowContext {
                call_type: CallType::Telemarketing,
                number_policy: NumberPolicy::default(),
            };
            while let Ok(Some(record)) = reader.next_record() {
                assert!(record.line >= 1);
                if let Some(map) = &map {
                    let _ = validate_record(map, &record.fields(), context);
                }
            }
        }

        fn csv_like() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(b"to_number".to_vec()),
                Just(b"contact_ref".to_vec()),
                Just(b"first_name".to_vec()),
                Just(b"priority".to_vec()),
                Just(b"consent_type".to_vec()),
                Just(b"0491 570 006".to_vec()),
                Just(b"+61 (0)2 5550 1234".to_vec()),
                Just(b"4.91571E+08".to_vec()),
                Just(b"\"".to_vec()),
                Just(b"\"\"".to_vec()),
                Just(b",".to_vec()),
                Just(b";".to_vec()),
                Just(b"\t".to_vec()),
                Just(b"\n".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b"\r".to_vec()),
                Just(b"\xEF\xBB\xBF".to_vec()),
                Just(b"\xFF\xFE".to_vec()),
                Just("Zoë".as_bytes().to_vec()),
                proptest::collection::vec(any::<u8>(), 0..8),
            ];
            proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn arbitrary_bytes_never_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..600),
                chunk in 1usize..64,
                windows in any::<bool>(),
            ) {
                let declared = windows.then_some(DeclaredEncoding::Windows1252);
                read_and_validate(&bytes, chunk, declared);
            }

            #[test]
            fn csv_shaped_bytes_never_panic(bytes in csv_like(), chunk in 1usize..32) {
                read_and_validate(&bytes, chunk, None);
            }

            #[test]
            fn chunking_never_changes_records(text in "[a-c,;\"\r\n]{0,60}", chunk in 1usize..16) {
                let whole = records(text.as_bytes(), 4096).map_err(|e| e.code);
                let pieces = records(text.as_bytes(), chunk).map_err(|e| e.code);
                prop_assert_eq!(whole, pieces);
            }
        }
    }
}
