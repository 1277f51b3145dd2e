//! Column encryption and blind indexing.
//!
//! Phone numbers and personalisation values are sealed with AES-256-GCM under a
//! named key, so keys can rotate: the key id is stored beside each ciphertext.
//! The associated data names the table, row id and column, so a ciphertext
//! copied to another row or column fails to open. Numbers are matched through an
//! HMAC-SHA256 blind index under a separate key, never by decrypting in bulk.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use uuid::Uuid;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;

/// Fixed labels that key fingerprints are computed over. No phone number or
/// API key is ever hashed under them, so a fingerprint is no blind index.
const BLIND_INDEX_FINGERPRINT_LABEL: &[u8] = b"outbound/v1/key-fingerprint/blind-index";
const DATA_KEY_FINGERPRINT_LABEL: &[u8] = b"outbound/v1/key-fingerprint/data-key/";

/// HMAC-SHA256 of `label` and `suffix` under `key`.
fn fingerprint(key: &[u8], label: &[u8], suffix: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(label);
    mac.update(suffix);
    mac.finalize().into_bytes().into()
}

/// The ciphertext's place: table, row id and column.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub table: &'a str,
    pub row_id: Uuid,
    pub column: &'a str,
}

impl Binding<'_> {
    fn associated_data(&self) -> Vec<u8> {
        format!("outbound/v1/{}/{}/{}", self.table, self.row_id, self.column).into_bytes()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("no data key with id {0:?} is loaded")]
    UnknownKey(String),
    #[error("ciphertext failed authentication: wrong key, row or column")]
    Authentication,
    #[error("ciphertext is truncated")]
    Truncated,
    #[error("invalid key material: {0}")]
    InvalidKey(String),
}

/// Data keys and the blind-index key, loaded from configuration.
pub struct Keyring {
    active_key_id: String,
    ciphers: HashMap<String, Aes256Gcm>,
    data_key_fingerprints: BTreeMap<String, [u8; 32]>,
    blind_index_key: Zeroizing<Vec<u8>>,
}

// Key material never reaches a log line.
impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active_key_id", &self.active_key_id)
            .field("key_ids", &self.ciphers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Builds a keyring from raw 32-byte keys.
    ///
    /// # Errors
    /// Fails when a key is not 32 bytes, the blind-index key is shorter than
    /// 32 bytes or equal to a data key, or the active key is missing.
    pub fn new(
        data_keys: &[(String, Vec<u8>)],
        active_key_id: &str,
        blind_index_key: Vec<u8>,
    ) -> Result<Self, CryptoError> {
        let mut ciphers = HashMap::new();
        let mut data_key_fingerprints = BTreeMap::new();
        for (id, key) in data_keys {
            if key.len() != 32 {
                return Err(CryptoError::InvalidKey(format!(
                    "data key {id:?} must be 32 bytes"
                )));
            }
            if key == &blind_index_key {
                return Err(CryptoError::InvalidKey(
                    "the blind-index key must differ from every data key".into(),
                ));
            }
            let cipher = Aes256Gcm::new_from_slice(key)
                .map_err(|_| CryptoError::InvalidKey(format!("data key {id:?} is unusable")))?;
            ciphers.insert(id.clone(), cipher);
            data_key_fingerprints.insert(
                id.clone(),
                fingerprint(key, DATA_KEY_FINGERPRINT_LABEL, id.as_bytes()),
            );
        }
        if !ciphers.contains_key(active_key_id) {
            return Err(CryptoError::UnknownKey(active_key_id.to_owned()));
        }
        if blind_index_key.len() < 32 {
            return Err(CryptoError::InvalidKey(
                "the blind-index key must be at least 32 bytes".into(),
            ));
        }
        Ok(Self {
            active_key_id: active_key_id.to_owned(),
            ciphers,
            data_key_fingerprints,
            blind_index_key: Zeroizing::new(blind_index_key),
        })
    }

    pub fn active_key_id(&self) -> &str {
        &self.active_key_id
    }

    /// Returns whether a data key with this id is loaded.
    pub fn has_data_key(&self, key_id: &str) -> bool {
        self.ciphers.contains_key(key_id)
    }

    /// A non-secret fingerprint of the blind-index key: HMAC-SHA256 of a fixed
    /// label under it. It distinguishes keys without revealing the key or
    /// letting anyone compute a blind index.
    pub fn blind_index_fingerprint(&self) -> [u8; 32] {
        fingerprint(&self.blind_index_key, BLIND_INDEX_FINGERPRINT_LABEL, b"")
    }

    /// Non-secret fingerprints of the data keys by id: HMAC-SHA256 of a fixed
    /// label and the key id under each key.
    pub fn data_key_fingerprints(&self) -> &BTreeMap<String, [u8; 32]> {
        &self.data_key_fingerprints
    }

    /// Seals `plaintext` under the active key; returns `nonce || ciphertext || tag`.
    pub fn seal(&self, binding: Binding<'_>, plaintext: &[u8]) -> Vec<u8> {
        let cipher = &self.ciphers[&self.active_key_id];
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = binding.associated_data();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a ciphertext made by [`Keyring::seal`].
    ///
    /// # Errors
    /// Fails for an unknown key id, a truncated value, or a ciphertext that was
    /// made for another row or column or altered.
    pub fn open(
        &self,
        key_id: &str,
        binding: Binding<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let cipher = self
            .ciphers
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        if sealed.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Truncated);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let aad = binding.associated_data();
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Authentication)
    }

    /// The stored hash of a partner API key (HMAC-SHA256 under the
    /// blind-index key, with its own domain prefix).
    pub fn api_key_hash(&self, key: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.blind_index_key)
            .expect("HMAC accepts keys of any length");
        mac.update(b"outbound/v1/api-key/");
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Computes the stored blind index of an E.164 number ([`stored_index`]).
    pub fn phone_index(&self, e164: &str) -> Uuid {
        stored_index(&self.phone_index_array(e164))
    }

    /// The blind index of an E.164 number as an array, for [`BlindIndexMap`] keys.
    pub fn phone_index_array(&self, e164: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.blind_index_key)
            .expect("HMAC accepts keys of any length");
        mac.update(b"outbound/v1/phone/");
        mac.update(e164.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// A map keyed by the first 16 bytes of blind indexes ([`blind_index_key`]),
/// which halves its memory for a million numbers.
pub type BlindIndexMap<V> = HashMap<[u8; 16], V, BuildHasherDefault<BlindIndexHasher>>;

/// Returns the [`BlindIndexMap`] key of a blind index: its first 16 bytes.
/// Two of a million different numbers share them with a probability of
/// about 10^-27, and the unique index on stored contacts still holds.
pub fn blind_index_key(index: &[u8; 32]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key.copy_from_slice(&index[..16]);
    key
}

/// Converts a blind index to its stored form, the first 16 bytes
/// ([`blind_index_key`]) as a `uuid`, which PostgreSQL compares as fixed-size bytes.
pub fn stored_index(index: &[u8; 32]) -> Uuid {
    Uuid::from_bytes(blind_index_key(index))
}

/// Hashes a blind index by its first 8 bytes. An HMAC-SHA256 output is
/// uniformly distributed, and nobody without the blind-index key can choose
/// numbers whose indexes collide, so no further mixing is needed.
#[derive(Debug, Default)]
pub struct BlindIndexHasher(u64);

impl Hasher for BlindIndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let length = bytes.len().min(8);
        word[..length].copy_from_slice(&bytes[..length]);
        self.0 ^= u64::from_le_bytes(word);
    }

    fn write_usize(&mut self, value: usize) {
        // The length prefix that slices and arrays hash before their bytes.
        self.0 ^= value as u64;
    }
}

/// AES-256-GCM under a random key that exists only in this process's memory,
/// for temporary files that hold an upload while it is processed. Chunk `n` is
/// sealed with nonce `n`, so chunks that are swapped, repeated or altered fail
/// to open.
pub struct EphemeralCipher {
    cipher: Aes256Gcm,
}

impl fmt::Debug for EphemeralCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralCipher").finish_non_exhaustive()
    }
}

impl Default for EphemeralCipher {
    fn default() -> Self {
        Self::new()
    }
}

impl EphemeralCipher {
    pub fn new() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(key.as_mut());
        let cipher =
            Aes256Gcm::new_from_slice(key.as_ref()).expect("AES-256-GCM takes a 32-byte key");
        Self { cipher }
    }

    fn nonce(counter: u64) -> [u8; NONCE_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&counter.to_be_bytes());
        nonce
    }

    /// Seals chunk number `counter`; returns ciphertext and tag.
    pub fn seal_chunk(&self, counter: u64, plaintext: &[u8]) -> Vec<u8> {
        self.cipher
            .encrypt(Nonce::from_slice(&Self::nonce(counter)), plaintext)
            .expect("AES-GCM encryption of an in-memory buffer cannot fail")
    }

    /// Opens chunk number `counter`.
    ///
    /// # Errors
    /// Fails when the chunk was altered or is not chunk `counter` of this cipher.
    pub fn open_chunk(&self, counter: u64, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.cipher
            .decrypt(Nonce::from_slice(&Self::nonce(counter)), sealed)
            .map_err(|_| CryptoError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(&[("k1".into(), vec![7u8; 32])], "k1", vec![9u8; 32]).expect("valid keys")
    }

    fn binding(row_id: uuid::Uuid, column: &'static str) -> Binding<'static> {
        Binding {
            table: "contacts",
            row_id,
            column,
        }
    }

    #[test]
    fn sealed_value_opens_with_same_binding() {
        let keys = keyring();
        let id = uuid::Uuid::new_v4();
        let sealed = keys.seal(binding(id, "phone"), b"+61491570006");
        assert!(!sealed.windows(12).any(|w| w == b"+61491570006"));
        let opened = keys
            .open("k1", binding(id, "phone"), &sealed)
            .expect("opens");
        assert_eq!(opened.as_slice(), b"+61491570006");
    }

    #[test]
    fn ciphertext_moved_to_other_row_or_column_fails() {
        let keys = keyring();
        let id = uuid::Uuid::new_v4();
        let sealed = keys.seal(binding(id, "phone"), b"+61491570006");
        let other_row = keys.open("k1", binding(uuid::Uuid::new_v4(), "phone"), &sealed);
        assert!(matches!(other_row, Err(CryptoError::Authentication)));
        let other_column = keys.open("k1", binding(id, "personalisation"), &sealed);
        assert!(matches!(other_column, Err(CryptoError::Authentication)));
    }

    #[test]
    fn unknown_key_id_is_reported() {
        let keys = keyring();
        let id = uuid::Uuid::new_v4();
        let sealed = keys.seal(binding(id, "phone"), b"x");
        assert!(matches!(
            keys.open("k0", binding(id, "phone"), &sealed),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn blind_index_is_stable_and_keyed() {
        let keys = keyring();
        assert_eq!(
            keys.phone_index("+61491570006"),
            keys.phone_index("+61491570006")
        );
        assert_ne!(
            keys.phone_index("+61491570006"),
            keys.phone_index("+61491570156")
        );
        let other =
            Keyring::new(&[("k1".into(), vec![7u8; 32])], "k1", vec![8u8; 32]).expect("valid");
        assert_ne!(
            keys.phone_index("+61491570006"),
            other.phone_index("+61491570006")
        );
    }

    #[test]
    fn ephemeral_chunks_open_only_in_place() {
        let cipher = EphemeralCipher::new();
        let sealed = cipher.seal_chunk(3, b"to_number\n0491 570 006\n");
        assert!(!sealed.windows(3).any(|w| w == b"049"));
        let opened = cipher.open_chunk(3, &sealed).expect("opens as chunk 3");
        assert_eq!(opened, b"to_number\n0491 570 006\n");
        assert!(cipher.open_chunk(4, &sealed).is_err());
        assert!(EphemeralCipher::new().open_chunk(3, &sealed).is_err());
    }

    #[test]
    fn fingerprints_differ_per_key() {
        let one = keyring();
        let same = keyring();
        let other =
            Keyring::new(&[("k1".into(), vec![6u8; 32])], "k1", vec![8u8; 32]).expect("valid keys");
        assert_eq!(
            one.blind_index_fingerprint(),
            same.blind_index_fingerprint()
        );
        assert_ne!(
            one.blind_index_fingerprint(),
            other.blind_index_fingerprint()
        );
        assert_ne!(one.data_key_fingerprints(), other.data_key_fingerprints());
        assert_ne!(
            one.blind_index_fingerprint(),
            one.phone_index_array(""),
            "the fingerprint's label differs from the phone index's"
        );
        assert_ne!(
            one.blind_index_fingerprint().as_slice(),
            one.blind_index_key.as_slice()
        );
    }

    #[test]
    fn blind_index_array_matches_vector() {
        let keys = keyring();
        assert_eq!(
            keys.phone_index_array("+61491570006")[..16],
            keys.phone_index("+61491570006").as_bytes()[..]
        );
        let key = |e164: &str| blind_index_key(&keys.phone_index_array(e164));
        let mut map = BlindIndexMap::default();
        map.insert(key("+61491570006"), 1);
        map.insert(key("+61491570156"), 2);
        assert_eq!(map.get(&key("+61491570006")), Some(&1));
        assert_eq!(map.get(&key("+61491570156")), Some(&2));
        assert_eq!(map.get(&key("+61491570157")), None);
    }

    #[test]
    fn blind_index_key_must_differ_from_data_keys() {
        let same = Keyring::new(&[("k1".into(), vec![7u8; 32])], "k1", vec![7u8; 32]);
        assert!(matches!(same, Err(CryptoError::InvalidKey(_))));
    }
}
