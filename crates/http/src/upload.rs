//! Request bodies of uploads: the size limit checked before reading, bodies
//! streamed to a blocking reader through a bounded channel, and bodies kept in
//! an encrypted temporary file while a job processes them.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use actix_multipart::{Field, Multipart};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Payload};
use actix_web::HttpRequest;
use futures_util::stream::{self, LocalBoxStream};
use futures_util::StreamExt;
use outbound_persistence::crypto::EphemeralCipher;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::csv_input::ByteSource;
use crate::problem::{ApiError, ApiResult};

/// Body chunks in flight between the request and a blocking reader.
const CHANNEL_CHUNKS: usize = 16;

pub fn file_too_large(max_bytes: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!("the file is larger than {max_bytes} bytes; split it into smaller files"),
    )
    .with("max_bytes", max_bytes)
}

/// Media types an upload of a contact or wash result file may declare. The
/// charset parameter is read separately.
pub const CSV_MEDIA_TYPES: [&str; 6] = [
    "text/csv",
    "application/csv",
    "text/plain",
    "text/tab-separated-values",
    "application/vnd.ms-excel",
    "application/octet-stream",
];

/// The form in which an upload sends its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadForm {
    /// The raw file as the request body.
    Raw,
    /// A `multipart/form-data` form whose file part is the file.
    Multipart,
}

/// Returns the media type of a request, lower case and without parameters.
fn media_type(request: &HttpRequest) -> Option<String> {
    request.headers().get(CONTENT_TYPE).map(|value| {
        value
            .to_str()
            .unwrap_or("(not ASCII)")
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

/// Checks that an upload declares a CSV media type or a `multipart/form-data`
/// form, before its body is read.
///
/// # Errors
/// `415 unsupported_media_type` when Content-Type is missing or names another
/// type, such as `application/x-www-form-urlencoded` from `curl
/// --data-binary` without `-H`, or an Excel workbook.
pub fn require_upload_content_type(request: &HttpRequest) -> ApiResult<UploadForm> {
    let media_type = media_type(request);
    match media_type.as_deref() {
        Some("multipart/form-data") => return Ok(UploadForm::Multipart),
        Some(media_type) if CSV_MEDIA_TYPES.contains(&media_type) => return Ok(UploadForm::Raw),
        _ => {}
    }
    let received = match media_type.as_deref() {
        None => "no Content-Type".to_owned(),
        Some("") => "an empty Content-Type".to_owned(),
        // Only a short media type token is repeated back, never other header text.
        Some(media_type)
            if media_type.len() <= 100
                && media_type
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/.+-_".contains(c)) =>
        {
            format!("Content-Type {media_type}")
        }
        Some(_) => "an unreadable Content-Type".to_owned(),
    };
    Err(unsupported_media_type(&received))
}

fn unsupported_media_type(received: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "the request has {received}; send the CSV file as the request body with `Content-Type: text/csv`, \
             for example `curl --data-binary @contacts.csv -H 'Content-Type: text/csv'`, or as the file part of a \
             multipart/form-data form (`curl -F file=@contacts.csv`). Accepted types: {}, multipart/form-data",
            CSV_MEDIA_TYPES.join(", ")
        ),
    )
    .with("accepted_media_types", CSV_MEDIA_TYPES)
}

/// Returns the body size from Content-Length, if the request declares it.
///
/// # Errors
/// `413 file_too_large` when the declared size is above `max_bytes`, so a
/// large body is refused before any of it is read.
pub fn declared_length(request: &HttpRequest, max_bytes: usize) -> ApiResult<Option<u64>> {
    let length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if length.is_some_and(|length| length > max_bytes as u64) {
        return Err(file_too_large(max_bytes));
    }
    Ok(length)
}

fn body_error(error: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(%error, "reading an upload body failed");
    ApiError::bad_request(
        "invalid_request",
        "the request body could not be read to the end; send it again",
    )
}

/// The file of an upload, read chunk by chunk: the raw request body, or the
/// file part of a `multipart/form-data` form. Each chunk of the request body
/// must arrive within the idle timeout, and the whole request body, form
/// parts included, is bounded by the upload size limit.
pub struct Body {
    chunks: LocalBoxStream<'static, Result<Bytes, ApiError>>,
}

impl Body {
    pub fn new(
        request: &HttpRequest,
        payload: Payload,
        form: UploadForm,
        idle: Duration,
        max_bytes: usize,
    ) -> Self {
        let failure = Rc::new(Cell::new(None));
        let raw = guarded(payload, idle, max_bytes, failure.clone());
        // Fused, because the body is read again after its end (to hash or
        // drop the rest), and an unfolded stream must not be.
        let chunks = match form {
            UploadForm::Raw => raw
                .map(move |chunk| chunk.map_err(|error| raw_error(&failure, &error)))
                .fuse()
                .boxed_local(),
            UploadForm::Multipart => file_part(Multipart::new(request.headers(), raw), failure)
                .fuse()
                .boxed_local(),
        };
        Self { chunks }
    }

    /// Returns the next chunk of the file, or `None` at its end.
    ///
    /// # Errors
    /// `408 upload_timeout` when the client sends nothing for the idle
    /// timeout, `413 file_too_large` above the upload size limit, and the
    /// errors of reading the body or form.
    pub async fn next(&mut self) -> Option<Result<Bytes, ApiError>> {
        self.chunks.next().await
    }
}

/// The reason the guard of a request body stopped it.
#[derive(Debug, Clone, Copy)]
enum RawFailure {
    Idle(Duration),
    TooLarge(usize),
}

/// Wraps the request body, failing when a chunk takes longer than `idle` to
/// arrive or the body grows beyond `max_bytes`. The reason is also kept in
/// `failure`, because a multipart parser reports it only as a payload error.
fn guarded(
    payload: Payload,
    idle: Duration,
    max_bytes: usize,
    failure: Rc<Cell<Option<RawFailure>>>,
) -> impl futures_util::Stream<Item = Result<Bytes, PayloadError>> {
    stream::unfold(Some((payload, 0u64)), move |state| {
        let failure = failure.clone();
        async move {
            let (mut payload, total) = state?;
            let stop = |reason: RawFailure| {
                failure.set(Some(reason));
                let error = std::io::Error::new(std::io::ErrorKind::TimedOut, "upload stopped");
                Some((Err(PayloadError::Io(error)), None))
            };
            match tokio::time::timeout(idle, payload.next()).await {
                Err(_) => stop(RawFailure::Idle(idle)),
                Ok(None) => None,
                Ok(Some(Err(error))) => Some((Err(error), None)),
                Ok(Some(Ok(bytes))) => {
                    let total = total + bytes.len() as u64;
                    if total > max_bytes as u64 {
                        return stop(RawFailure::TooLarge(max_bytes));
                    }
                    Some((Ok(bytes), Some((payload, total))))
                }
            }
        }
    })
    // The form parser may poll the body again after its end.
    .fuse()
}

/// Builds the error for a failed read of the request body.
fn raw_error(failure: &Cell<Option<RawFailure>>, error: &dyn std::fmt::Display) -> ApiError {
    match failure.get() {
        Some(RawFailure::Idle(idle)) => {
            tracing::warn!(idle_seconds = idle.as_secs(), "an upload stalled");
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "upload_timeout",
                format!(
                    "the upload sent nothing for {} seconds; nothing was imported, so send the file again",
                    idle.as_secs()
                ),
            )
        }
        Some(RawFailure::TooLarge(max_bytes)) => file_too_large(max_bytes),
        None => body_error(error),
    }
}

fn form_error(failure: &Cell<Option<RawFailure>>, error: &dyn std::fmt::Display) -> ApiError {
    if failure.get().is_some() {
        return raw_error(failure, error);
    }
    // The parser's message may repeat a part header, such as a file name
    // made of a phone number, so digit runs are hidden.
    let error = crate::problem::redact_digits(&error.to_string());
    tracing::warn!(%error, "reading a multipart/form-data upload failed");
    ApiError::bad_request(
        "invalid_multipart",
        "the multipart/form-data form could not be read; send the file as a form part with a filename, for example `curl -F file=@contacts.csv`",
    )
}

/// Returns whether a form part carries a file: it has a filename (a browser's
/// empty file input sends an empty one, which does not count), or is named
/// `file`.
fn is_file_part(field: &Field) -> bool {
    let Some(disposition) = field.content_disposition() else {
        return false;
    };
    match disposition.get_filename() {
        Some(filename) => !filename.is_empty(),
        None => {
            disposition.get_filename_ext().is_some()
                || disposition
                    .get_name()
                    .is_some_and(|name| name.eq_ignore_ascii_case("file"))
        }
    }
}

/// Returns whether a form part declares a spreadsheet workbook, which is not CSV.
fn is_workbook(field: &Field) -> bool {
    field.content_type().is_some_and(|mime| {
        let essence = mime.essence_str();
        essence.contains("spreadsheetml")
            || essence.contains("ms-excel.sheet")
            || essence == "application/zip"
    })
}

/// The position of [`file_part`] in a form.
enum FormPosition {
    /// Before the file part; other parts are read and dropped.
    Before(Multipart),
    /// Inside the file part.
    InFile(Multipart, Box<Field>),
    Done,
}

/// Reads a form part to its end and drops it.
async fn drain(field: &mut Field) -> Result<(), actix_multipart::MultipartError> {
    while let Some(chunk) = field.next().await {
        chunk?;
    }
    Ok(())
}

/// Streams the bytes of a form's file part. Parts before it are dropped. The
/// rest of the form is read after it, and a second file part fails the upload.
fn file_part(
    multipart: Multipart,
    failure: Rc<Cell<Option<RawFailure>>>,
) -> impl futures_util::Stream<Item = Result<Bytes, ApiError>> {
    stream::unfold(FormPosition::Before(multipart), move |position| {
        let failure = failure.clone();
        async move {
            let mut position = position;
            loop {
                match position {
                    FormPosition::Done => return None,
                    FormPosition::Before(mut multipart) => match multipart.next().await {
                        None => {
                            let error = ApiError::unprocessable(
                                "missing_file",
                                "the multipart/form-data form has no file part; send the CSV file as a part with a filename, for example `curl -F file=@contacts.csv`",
                            );
                            return Some((Err(error), FormPosition::Done));
                        }
                        Some(Err(error)) => {
                            return Some((Err(form_error(&failure, &error)), FormPosition::Done))
                        }
                        Some(Ok(field)) if is_file_part(&field) => {
                            if is_workbook(&field) {
                                return Some((Err(workbook_error()), FormPosition::Done));
                            }
                            position = FormPosition::InFile(multipart, Box::new(field));
                        }
                        Some(Ok(mut field)) => {
                            if let Err(error) = drain(&mut field).await {
                                return Some((
                                    Err(form_error(&failure, &error)),
                                    FormPosition::Done,
                                ));
                            }
                            position = FormPosition::Before(multipart);
                        }
                    },
                    FormPosition::InFile(mut multipart, mut field) => match field.next().await {
                        Some(Ok(bytes)) => {
                            return Some((Ok(bytes), FormPosition::InFile(multipart, field)))
                        }
                        Some(Err(error)) => {
                            return Some((Err(form_error(&failure, &error)), FormPosition::Done))
                        }
                        None => {
                            drop(field);
                            while let Some(next) = multipart.next().await {
                                let result = match next {
                                    Ok(other) if is_file_part(&other) => Err(ApiError::unprocessable(
                                        "multiple_files",
                                        "the multipart/form-data form has more than one file part; send one file per request",
                                    )),
                                    Ok(mut other) => drain(&mut other)
                                        .await
                                        .map_err(|error| form_error(&failure, &error)),
                                    Err(error) => Err(form_error(&failure, &error)),
                                };
                                if let Err(error) = result {
                                    return Some((Err(error), FormPosition::Done));
                                }
                            }
                            return None;
                        }
                    },
                }
            }
        }
    })
}

/// Builds the error for a spreadsheet workbook sent in place of a CSV file.
pub fn workbook_error() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the file is a spreadsheet workbook (.xlsx or .xls), not CSV; save the sheet as CSV (UTF-8) and upload that file",
    )
}

/// The start of a body read into memory, and whether it was the whole body.
pub struct BodyStart {
    pub bytes: Bytes,
    pub complete: bool,
}

/// Reads at most `limit + 1` bytes, enough to tell whether the body is
/// longer than `limit`.
///
/// # Errors
/// `400 invalid_request` when the body cannot be read.
pub async fn read_start(payload: &mut Body, limit: usize) -> ApiResult<BodyStart> {
    let mut buffer = Vec::new();
    while buffer.len() <= limit {
        match payload.next().await {
            Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
            Some(Err(error)) => return Err(error),
            None => {
                return Ok(BodyStart {
                    bytes: buffer.into(),
                    complete: true,
                })
            }
        }
    }
    Ok(BodyStart {
        bytes: buffer.into(),
        complete: false,
    })
}

/// The SHA-256 and length of a whole body.
#[derive(Debug, Clone)]
pub struct BodyDigest {
    pub sha256: String,
    pub bytes: u64,
}

/// Reads the rest of a body after `start`, hashing it and sending each chunk
/// to `sender` while the receiver is open. It keeps reading after the
/// receiver closes, so the client can always send its whole request.
///
/// # Errors
/// The errors of [`Body::next`], which are also sent to the receiver.
pub async fn feed(
    payload: &mut Body,
    start: Bytes,
    sender: mpsc::Sender<Result<Bytes, ApiError>>,
) -> ApiResult<BodyDigest> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut receiver_open = true;
    let mut chunk = (!start.is_empty()).then_some(start);
    loop {
        let Some(bytes) = chunk.take() else {
            match payload.next().await {
                Some(Ok(bytes)) => {
                    chunk = Some(bytes);
                    continue;
                }
                Some(Err(error)) => {
                    if receiver_open {
                        let _ = sender.send(Err(error.clone())).await;
                    }
                    return Err(error);
                }
                None => break,
            }
        };
        total += bytes.len() as u64;
        hasher.update(&bytes);
        if receiver_open && sender.send(Ok(bytes)).await.is_err() {
            receiver_open = false;
        }
    }
    Ok(BodyDigest {
        sha256: hex::encode(hasher.finalize()),
        bytes: total,
    })
}

/// Reads a whole body only to hash it, for `Idempotency-Key` replays.
///
/// # Errors
/// As [`feed`].
pub async fn digest(payload: &mut Body, start: Bytes) -> ApiResult<BodyDigest> {
    let (sender, receiver) = mpsc::channel(1);
    drop(receiver);
    feed(payload, start, sender).await
}

/// Creates a channel of body chunks and the [`ByteSource`] that reads it.
pub fn channel() -> (mpsc::Sender<Result<Bytes, ApiError>>, ChannelSource) {
    let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
    (sender, ChannelSource { receiver })
}

/// Body chunks received on a blocking thread.
pub struct ChannelSource {
    receiver: mpsc::Receiver<Result<Bytes, ApiError>>,
}

impl ByteSource for ChannelSource {
    fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        self.receiver.blocking_recv().transpose()
    }
}

/// Plaintext gathered before it is sealed as one chunk of the spool file.
const SPOOL_CHUNK: usize = 256 * 1024;

/// An upload kept in a temporary file, sealed under a key that exists only in
/// memory, so the file is unreadable to anyone else and after a crash. On
/// Unix the file has no name from the moment it is created.
pub struct Spool {
    file: File,
    path: Option<PathBuf>,
    cipher: EphemeralCipher,
    chunks: u64,
    pub digest: BodyDigest,
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn spool_error(error: &std::io::Error) -> ApiError {
    ApiError::internal(&format!(
        "the upload could not be written to a temporary file: {error}"
    ))
}

/// Creates an anonymous temporary file readable only by this user.
fn create_spool_file() -> std::io::Result<(File, Option<PathBuf>)> {
    let path = std::env::temp_dir().join(format!("outbound-upload-{}.spool", Uuid::new_v4()));
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path)?;
    if cfg!(unix) {
        std::fs::remove_file(&path)?;
        Ok((file, None))
    } else {
        Ok((file, Some(path)))
    }
}

/// Writes body chunks from `source` to a new spool file.
fn write_spool(
    mut source: ChannelSource,
) -> ApiResult<(File, Option<PathBuf>, EphemeralCipher, u64)> {
    let (file, path) = create_spool_file().map_err(|e| spool_error(&e))?;
    let cipher = EphemeralCipher::new();
    let mut writer = BufWriter::new(file);
    let mut plain = Vec::with_capacity(SPOOL_CHUNK);
    let mut chunks = 0u64;
    let mut flush = |plain: &mut Vec<u8>, writer: &mut BufWriter<File>| -> ApiResult<()> {
        let sealed = cipher.seal_chunk(chunks, plain);
        let length = u32::try_from(sealed.len()).expect("a spool chunk is far below 4 GiB");
        writer
            .write_all(&length.to_be_bytes())
            .and_then(|()| writer.write_all(&sealed))
            .map_err(|e| spool_error(&e))?;
        chunks += 1;
        plain.clear();
        Ok(())
    };
    while let Some(bytes) = source.next_chunk()? {
        plain.extend_from_slice(&bytes);
        if plain.len() >= SPOOL_CHUNK {
            flush(&mut plain, &mut writer)?;
        }
    }
    if !plain.is_empty() {
        flush(&mut plain, &mut writer)?;
    }
    let mut file = writer.into_inner().map_err(|e| spool_error(e.error()))?;
    file.seek(SeekFrom::Start(0)).map_err(|e| spool_error(&e))?;
    Ok((file, path, cipher, chunks))
}

/// Reads a whole body into a spool file, hashing it on the way.
///
/// # Errors
/// The errors of [`Body::next`], and `500` when the temporary file cannot be
/// written.
pub async fn spool(payload: &mut Body, start: Bytes) -> ApiResult<Spool> {
    let (sender, source) = channel();
    let writer = tokio::task::spawn_blocking(move || write_spool(source));
    let fed = feed(payload, start, sender).await;
    let written = writer
        .await
        .map_err(|error| ApiError::internal(&format!("the spool writer stopped: {error}")))?;
    let digest = fed?;
    let (file, path, cipher, chunks) = written?;
    Ok(Spool {
        file,
        path,
        cipher,
        chunks,
        digest,
    })
}

impl Spool {
    /// Returns a source that reads the upload back, chunk by chunk.
    ///
    /// # Errors
    /// `500` when the file handle cannot be duplicated for reading.
    pub fn into_source(mut self) -> ApiResult<SpoolSource> {
        let file = self.file.try_clone().map_err(|e| spool_error(&e))?;
        Ok(SpoolSource {
            reader: BufReader::with_capacity(SPOOL_CHUNK + 64, file),
            cipher: std::mem::take(&mut self.cipher),
            next: 0,
            chunks: self.chunks,
            _spool: self,
        })
    }
}

/// Reads a [`Spool`] back in the order it was written.
pub struct SpoolSource {
    reader: BufReader<File>,
    cipher: EphemeralCipher,
    next: u64,
    chunks: u64,
    /// Keeps the file (and on other systems than Unix, its name) until the job ends.
    _spool: Spool,
}

impl ByteSource for SpoolSource {
    fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        if self.next == self.chunks {
            return Ok(None);
        }
        let mut length = [0u8; 4];
        self.reader
            .read_exact(&mut length)
            .map_err(|e| spool_error(&e))?;
        let mut sealed = vec![0u8; u32::from_be_bytes(length) as usize];
        self.reader
            .read_exact(&mut sealed)
            .map_err(|e| spool_error(&e))?;
        let plain = self
            .cipher
            .open_chunk(self.next, &sealed)
            .map_err(|error| {
                ApiError::internal(&format!("the upload's temporary file is damaged: {error}"))
            })?;
        self.next += 1;
        Ok(Some(plain.into()))
    }
}
