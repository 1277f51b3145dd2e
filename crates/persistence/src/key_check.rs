//! Checking at start that the loaded keys are the ones this database's data
//! was written with.
//!
//! The database keeps non-secret fingerprints of the keys
//! ([`Keyring::blind_index_fingerprint`], [`Keyring::data_key_fingerprints`]).
//! The first start against a database records them. A later start with other
//! keys fails, because its blind indexes would match no stored number and its
//! data keys would open no stored ciphertext.

use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto::{Binding, Keyring};

/// Advisory lock id that serialises the checks of servers starting together.
const KEY_CHECK_LOCK: i64 = 874_203;

/// A mismatch between the loaded keys and the database.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    /// The blind-index key differs from the one the database was created with.
    #[error("the blind-index key differs from the one this database was created with")]
    BlindIndexMismatch,
    /// Loaded data keys whose ids the database has recorded with other key
    /// material.
    #[error("data keys {0:?} differ from the keys with the same ids that this database's contacts were sealed with")]
    DataKeyMismatch(Vec<String>),
    /// Data key ids that stored contacts were sealed under but are not loaded.
    #[error("this database holds contacts sealed under data keys {0:?}, which are not loaded")]
    MissingDataKeys(Vec<String>),
    #[error("cannot check the keys against the database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Compares the keyring with the fingerprints stored in the database and
/// records those still missing. Nothing is recorded when the check fails.
///
/// # Errors
/// Fails when a key differs from the one the database recorded under the same
/// purpose or id, when stored contacts were sealed under a data key that is
/// not loaded, or when the database fails.
pub async fn verify_and_record(pool: &PgPool, keyring: &Keyring) -> Result<(), KeyCheckError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(KEY_CHECK_LOCK)
        .execute(&mut *tx)
        .await?;

    // Data keys first: the blind-index check of an older database opens a
    // stored number, which needs a data key known to be right.
    let recorded: Vec<(String, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT key_id, fingerprint FROM data_key_fingerprints ORDER BY key_id")
            .fetch_all(&mut *tx)
            .await?;
    let mut mismatched = Vec::new();
    let mut missing = Vec::new();
    for (key_id, stored) in &recorded {
        match (keyring.data_key_fingerprints().get(key_id), stored) {
            (Some(loaded), Some(stored)) => {
                if loaded.as_slice() != stored.as_slice() {
                    mismatched.push(key_id.clone());
                }
            }
            (Some(_), None) => {
                // Recorded from contacts written before fingerprints existed.
                if opens_a_stored_contact(&mut tx, keyring, key_id).await? == Some(false) {
                    mismatched.push(key_id.clone());
                }
            }
            (None, _) => {
                let in_use: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM contacts WHERE key_id = $1)")
                        .bind(key_id)
                        .fetch_one(&mut *tx)
                        .await?;
                if in_use {
                    missing.push(key_id.clone());
                }
            }
        }
    }

    let stored: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT blind_index_fingerprint FROM key_fingerprints")
            .fetch_optional(&mut *tx)
            .await?;
    let loaded = keyring.blind_index_fingerprint();
    match stored {
        Some(stored) if stored.as_slice() == loaded.as_slice() => {}
        Some(_) => return Err(KeyCheckError::BlindIndexMismatch),
        None => {
            if !blind_index_matches_a_stored_contact(&mut tx, keyring).await? {
                return Err(KeyCheckError::BlindIndexMismatch);
            }
            sqlx::query("INSERT INTO key_fingerprints (blind_index_fingerprint) VALUES ($1)")
                .bind(loaded.as_slice())
                .execute(&mut *tx)
                .await?;
        }
    }
    if !mismatched.is_empty() {
        return Err(KeyCheckError::DataKeyMismatch(mismatched));
    }
    if !missing.is_empty() {
        return Err(KeyCheckError::MissingDataKeys(missing));
    }

    for (key_id, fingerprint) in keyring.data_key_fingerprints() {
        sqlx::query(
            "INSERT INTO data_key_fingerprints (key_id, fingerprint) VALUES ($1, $2)
             ON CONFLICT (key_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, recorded_at = now()
             WHERE data_key_fingerprints.fingerprint IS NULL",
        )
        .bind(key_id)
        .bind(fingerprint.as_slice())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Returns whether the blind-index fingerprint stored in the database is the
/// keyring's, and `false` when none is stored yet.
///
/// # Errors
/// Fails when the database fails.
pub async fn blind_index_matches(pool: &PgPool, keyring: &Keyring) -> Result<bool, sqlx::Error> {
    let stored: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT blind_index_fingerprint FROM key_fingerprints")
            .fetch_optional(pool)
            .await?;
    Ok(stored.is_some_and(|stored| stored.as_slice() == keyring.blind_index_fingerprint()))
}

/// Opens the number of one contact sealed under `key_id`: `None` when there
/// is none, otherwise whether it opened.
async fn opens_a_stored_contact(
    tx: &mut sqlx::PgConnection,
    keyring: &Keyring,
    key_id: &str,
) -> Result<Option<bool>, sqlx::Error> {
    let sample: Option<(Uuid, Vec<u8>)> =
        sqlx::query_as("SELECT id, phone_ciphertext FROM contacts WHERE key_id = $1 LIMIT 1")
            .bind(key_id)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(sample.map(|(id, sealed)| keyring.open(key_id, phone_binding(id), &sealed).is_ok()))
}

/// For a database with contacts but no recorded blind-index fingerprint
/// (written before fingerprints existed): whether the blind index of one
/// stored number, opened with a loaded data key, is the stored one. `true`
/// when no stored number can be opened to tell.
async fn blind_index_matches_a_stored_contact(
    tx: &mut sqlx::PgConnection,
    keyring: &Keyring,
) -> Result<bool, sqlx::Error> {
    let key_ids: Vec<String> = keyring.data_key_fingerprints().keys().cloned().collect();
    let sample: Option<(Uuid, String, Vec<u8>, Uuid)> = sqlx::query_as(
        "SELECT id, key_id, phone_ciphertext, phone_index FROM contacts
          WHERE key_id = ANY($1) LIMIT 1",
    )
    .bind(&key_ids)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, key_id, sealed, stored_index)) = sample else {
        return Ok(true);
    };
    let Ok(number) = keyring.open(&key_id, phone_binding(id), &sealed) else {
        // The data-key check reports a key that opens nothing.
        return Ok(true);
    };
    Ok(std::str::from_utf8(&number).is_ok_and(|e164| keyring.phone_index(e164) == stored_index))
}

fn phone_binding(row_id: Uuid) -> Binding<'static> {
    Binding {
        table: "contacts",
        row_id,
        column: "phone",
    }
}
