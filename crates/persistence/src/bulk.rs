//! PostgreSQL binary `COPY ... FROM STDIN` payloads, for bulk writes that
//! would be too slow as `INSERT` statements.
//!
//! The format is PostgreSQL's own, documented under "COPY, Binary Format".
//! A payload starts with an 11-byte signature and two 32-bit header words.
//! Each tuple is a 16-bit field count, then per field a 32-bit length (`-1`
//! for NULL) and the type's binary form. A 16-bit `-1` ends the payload.
//! Every integer is big-endian.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Microseconds between the Unix epoch and PostgreSQL's epoch, 2000-01-01 UTC.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// One binary `COPY` payload under construction: header first, trailer on
/// [`CopyBuffer::finish`].
pub struct CopyBuffer {
    bytes: Vec<u8>,
    tuples: usize,
}

impl CopyBuffer {
    pub fn with_capacity(capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity.max(32));
        bytes.extend_from_slice(SIGNATURE);
        bytes.extend_from_slice(&0i32.to_be_bytes());
        bytes.extend_from_slice(&0i32.to_be_bytes());
        Self { bytes, tuples: 0 }
    }

    /// Tuples written so far.
    pub fn tuples(&self) -> usize {
        self.tuples
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tuples == 0
    }

    /// Starts a tuple of `fields` fields; the caller then writes exactly that many.
    pub fn start_tuple(&mut self, fields: i16) {
        self.bytes.extend_from_slice(&fields.to_be_bytes());
        self.tuples += 1;
    }

    pub fn null(&mut self) {
        self.bytes.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn value(&mut self, data: &[u8]) {
        // A field is at most 1 GiB in PostgreSQL, far above any value written here.
        let length = i32::try_from(data.len()).expect("a COPY field is shorter than 2 GiB");
        self.bytes.extend_from_slice(&length.to_be_bytes());
        self.bytes.extend_from_slice(data);
    }

    pub fn uuid(&mut self, value: Uuid) {
        self.value(value.as_bytes());
    }

    pub fn int4(&mut self, value: i32) {
        self.value(&value.to_be_bytes());
    }

    pub fn text(&mut self, value: &str) {
        self.value(value.as_bytes());
    }

    pub fn bytea(&mut self, value: &[u8]) {
        self.value(value);
    }

    pub fn opt_text(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    pub fn opt_bytea(&mut self, value: Option<&[u8]>) {
        match value {
            Some(value) => self.bytea(value),
            None => self.null(),
        }
    }

    pub fn opt_timestamptz(&mut self, value: Option<DateTime<Utc>>) {
        match value {
            Some(instant) => {
                let micros = instant.timestamp_micros() - POSTGRES_EPOCH_MICROS;
                self.value(&micros.to_be_bytes());
            }
            None => self.null(),
        }
    }

    pub fn opt_date(&mut self, value: Option<NaiveDate>) {
        match value {
            Some(date) => {
                let epoch =
                    NaiveDate::from_ymd_opt(2000, 1, 1).expect("2000-01-01 is a valid date");
                let days = i32::try_from((date - epoch).num_days())
                    .expect("a chrono date is within i32 days of 2000-01-01");
                self.value(&days.to_be_bytes());
            }
            None => self.null(),
        }
    }

    /// Appends the trailer and returns the payload.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&(-1i16).to_be_bytes());
        self.bytes
    }
}

/// Largest piece handed to the connection at once, so its write buffer stays small.
const SEND_PIECE: usize = 256 * 1024;

/// Runs `statement` (a `COPY ... FROM STDIN (FORMAT binary)`) with `payload`;
/// returns the number of rows copied.
///
/// # Errors
/// Fails when PostgreSQL rejects the statement or any row, for example on a
/// constraint violation; the surrounding transaction is then aborted.
pub async fn copy_in(
    connection: &mut PgConnection,
    statement: &str,
    payload: &[u8],
) -> sqlx::Result<u64> {
    let mut copy = connection.copy_in_raw(statement).await?;
    for piece in payload.chunks(SEND_PIECE) {
        if let Err(error) = copy.send(piece).await {
            let _ = copy.abort("the client failed to send COPY data").await;
            return Err(error);
        }
    }
    copy.finish().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_payload_has_header_and_trailer() {
        let payload = CopyBuffer::with_capacity(0).finish();
        assert_eq!(&payload[..11], SIGNATURE);
        assert_eq!(payload.len(), 11 + 4 + 4 + 2);
        assert_eq!(&payload[payload.len() - 2..], &[0xff, 0xff]);
    }

    #[test]
    fn fields_are_length_prefixed_big_endian() {
        let mut buffer = CopyBuffer::with_capacity(0);
        buffer.start_tuple(3);
        buffer.int4(7);
        buffer.null();
        buffer.text("ab");
        let payload = buffer.finish();
        let tuple = &payload[19..payload.len() - 2];
        assert_eq!(
            tuple,
            &[0, 3, 0, 0, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, b'a', b'b']
        );
    }

    #[test]
    fn dates_and_times_count_from_2000() {
        let mut buffer = CopyBuffer::with_capacity(0);
        buffer.opt_date(NaiveDate::from_ymd_opt(2000, 1, 2));
        buffer.opt_timestamptz(DateTime::from_timestamp(946_684_801, 0));
        let payload = buffer.finish();
        assert_eq!(&payload[19..27], &[0, 0, 0, 4, 0, 0, 0, 1]);
        assert_eq!(
            &payload[27..39],
            &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]
        );
    }
}
