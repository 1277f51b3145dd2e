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

/// Type OIDs of array elements, from PostgreSQL's `pg_type`.
const INT4_OID: u32 = 23;
const TEXT_OID: u32 = 25;

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

    /// Writes a one-dimensional `integer[]` without NULLs.
    pub fn int4_array(&mut self, values: &[i32]) {
        self.array(INT4_OID, values.len(), |bytes| {
            for value in values {
                bytes.extend_from_slice(&4i32.to_be_bytes());
                bytes.extend_from_slice(&value.to_be_bytes());
            }
        });
    }

    /// Writes a one-dimensional `text[]` without NULLs.
    pub fn text_array<'a>(&mut self, values: impl ExactSizeIterator<Item = &'a str>) {
        self.array(TEXT_OID, values.len(), |bytes| {
            for value in values {
                let length =
                    i32::try_from(value.len()).expect("an array element is shorter than 2 GiB");
                bytes.extend_from_slice(&length.to_be_bytes());
                bytes.extend_from_slice(value.as_bytes());
            }
        });
    }

    /// Writes an array field: its length, the array header (one dimension,
    /// no NULLs, element type, `count` elements from index 1), then the
    /// elements `write_elements` appends.
    fn array(&mut self, element_oid: u32, count: usize, write_elements: impl FnOnce(&mut Vec<u8>)) {
        let count = i32::try_from(count).expect("an array has fewer than 2^31 elements");
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&0i32.to_be_bytes());
        self.bytes.extend_from_slice(&1i32.to_be_bytes());
        self.bytes.extend_from_slice(&0i32.to_be_bytes());
        self.bytes.extend_from_slice(&element_oid.to_be_bytes());
        self.bytes.extend_from_slice(&count.to_be_bytes());
        self.bytes.extend_from_slice(&1i32.to_be_bytes());
        write_elements(&mut self.bytes);
        let length = i32::try_from(self.bytes.len() - start - 4)
            .expect("a COPY field is shorter than 2 GiB");
        self.bytes[start..start + 4].copy_from_slice(&length.to_be_bytes());
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
    fn arrays_have_header_and_elements() {
        let mut buffer = CopyBuffer::with_capacity(0);
        buffer.int4_array(&[5]);
        buffer.text_array(["ab", ""].into_iter());
        let payload = buffer.finish();
        let fields = &payload[19..payload.len() - 2];
        let int4_header = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 1, 0, 0, 0, 1];
        let text_header = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, 2, 0, 0, 0, 1];
        let mut expected = vec![0, 0, 0, 28];
        expected.extend_from_slice(&int4_header);
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 5]);
        expected.extend_from_slice(&[0, 0, 0, 30]);
        expected.extend_from_slice(&text_header);
        expected.extend_from_slice(&[0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0]);
        assert_eq!(fields, expected.as_slice());
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
