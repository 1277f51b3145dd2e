//! Loading secrets from the environment or a key file, and generating a
//! development key file.
//!
//! Key file (JSON, mode 0600):
//! ```json
//! { "data_keys": { "k1": "<base64 32 bytes>" }, "active_data_key": "k1",
//!   "blind_index_key": "<base64 32 bytes>",
//!   "voice_platform_secret": "<base64>", "jwt_hs256_secret": "<base64>" }
//! ```
//! Environment variables override the file: `OUTBOUND_DATA_KEYS`
//! (`id:base64,id:base64`), `OUTBOUND_ACTIVE_DATA_KEY`,
//! `OUTBOUND_BLIND_INDEX_KEY`, `OUTBOUND_VOICE_SECRET`,
//! `OUTBOUND_JWT_HS256_SECRET`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{CryptoError, Keyring};

#[derive(Serialize, Deserialize, Default)]
pub struct KeyFile {
    pub data_keys: BTreeMap<String, String>,
    pub active_data_key: String,
    pub blind_index_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_platform_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_hs256_secret: Option<String>,
}

/// Every secret the server uses, loaded once at start.
pub struct Secrets {
    pub keyring: Keyring,
    pub voice_platform_secret: Option<Zeroizing<Vec<u8>>>,
    pub jwt_hs256_secret: Option<Zeroizing<Vec<u8>>>,
    /// Where the secrets came from, for the start-up log (never the values).
    pub source: String,
    /// Whether this load generated a new development key file.
    pub origin: KeyOrigin,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("keyring", &self.keyring)
            .field(
                "voice_platform_secret",
                &self.voice_platform_secret.is_some(),
            )
            .field("jwt_hs256_secret", &self.jwt_hs256_secret.is_some())
            .field("source", &self.source)
            .field("origin", &self.origin)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no encryption keys configured: set OUTBOUND_KEY_FILE (or --key-file) or OUTBOUND_DATA_KEYS, OUTBOUND_ACTIVE_DATA_KEY and OUTBOUND_BLIND_INDEX_KEY; run `outbound keys generate --out FILE` to make a key file")]
    Missing,
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is not valid JSON of the expected shape: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid key configuration: {0}")]
    Invalid(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

fn random_base64(bytes: usize) -> String {
    let mut buffer = Zeroizing::new(vec![0u8; bytes]);
    rand::thread_rng().fill_bytes(&mut buffer);
    BASE64.encode(buffer.as_slice())
}

fn decode(name: &str, value: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    BASE64
        .decode(value.trim())
        .map(Zeroizing::new)
        .map_err(|_| KeyError::Invalid(format!("{name} is not valid base64")))
}

impl KeyFile {
    /// Returns a new key id: the date and a random suffix, such as
    /// `k20261204-3f9a1c7e`, so two keys generated on one day get different ids.
    /// Key files with older ids such as `k20261204` still load, because an id
    /// is any string.
    pub fn new_key_id() -> String {
        let mut suffix = [0u8; 4];
        rand::thread_rng().fill_bytes(&mut suffix);
        format!(
            "k{}-{}",
            chrono::Utc::now().format("%Y%m%d"),
            hex::encode(suffix)
        )
    }

    /// A new key file with fresh random keys.
    pub fn generate() -> Self {
        let mut data_keys = BTreeMap::new();
        let key_id = Self::new_key_id();
        data_keys.insert(key_id.clone(), random_base64(32));
        Self {
            data_keys,
            active_data_key: key_id,
            blind_index_key: random_base64(32),
            voice_platform_secret: Some(random_base64(32)),
            jwt_hs256_secret: Some(random_base64(32)),
        }
    }

    /// Writes the file with owner-only permissions, creating parent folders.
    ///
    /// # Errors
    /// Fails when the file exists or cannot be written.
    pub fn write_new(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")
    }

    fn read(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|error| KeyError::Parse {
            path: path.to_owned(),
            // serde_json's message names the line and field, never the values.
            message: format!("line {} column {}", error.line(), error.column()),
        })
    }
}

/// Outcome of [`Secrets::load`] when it had to create a development key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    Loaded,
    GeneratedDevelopmentFile(PathBuf),
}

impl Secrets {
    /// Loads secrets from `key_file` and the environment. In development mode a
    /// missing key file is generated at `key_file`.
    ///
    /// # Errors
    /// Fails when no keys are configured outside development mode, or keys are invalid.
    pub fn load(key_file: Option<&Path>, development: bool) -> Result<(Self, KeyOrigin), KeyError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut origin = KeyOrigin::Loaded;
        let mut file = match key_file {
            Some(path) if path.exists() => Some(KeyFile::read(path)?),
            Some(path) if development && env("OUTBOUND_DATA_KEYS").is_none() => {
                let generated = KeyFile::generate();
                generated.write_new(path).map_err(|source| KeyError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                origin = KeyOrigin::GeneratedDevelopmentFile(path.to_owned());
                Some(generated)
            }
            Some(path) if env("OUTBOUND_DATA_KEYS").is_none() => {
                return Err(KeyError::Read {
                    path: path.to_owned(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                })
            }
            _ => None,
        };
        let mut source = match (&file, key_file) {
            (Some(_), Some(path)) => format!("key file {}", path.display()),
            _ => "environment".to_owned(),
        };

        if let Some(keys) = env("OUTBOUND_DATA_KEYS") {
            let file = file.get_or_insert_with(KeyFile::default);
            file.data_keys.clear();
            for entry in keys.split(',') {
                let (id, key) = entry.split_once(':').ok_or_else(|| {
                    KeyError::Invalid("OUTBOUND_DATA_KEYS entries must be id:base64".into())
                })?;
                file.data_keys
                    .insert(id.trim().to_owned(), key.trim().to_owned());
            }
            source = "environment".to_owned();
        }
        let Some(mut file) = file else {
            return Err(KeyError::Missing);
        };
        if let Some(active) = env("OUTBOUND_ACTIVE_DATA_KEY") {
            file.active_data_key = active;
        }
        if let Some(blind) = env("OUTBOUND_BLIND_INDEX_KEY") {
            file.blind_index_key = blind;
        }
        if let Some(secret) = env("OUTBOUND_VOICE_SECRET") {
            file.voice_platform_secret = Some(secret);
        }
        if let Some(secret) = env("OUTBOUND_JWT_HS256_SECRET") {
            file.jwt_hs256_secret = Some(secret);
        }
        if file.data_keys.is_empty() || file.blind_index_key.is_empty() {
            return Err(KeyError::Missing);
        }

        let mut data_keys = Vec::new();
        for (id, key) in &file.data_keys {
            data_keys.push((id.clone(), decode(&format!("data key {id}"), key)?.to_vec()));
        }
        let blind = decode("blind_index_key", &file.blind_index_key)?;
        let keyring = Keyring::new(&data_keys, &file.active_data_key, blind.to_vec())?;
        let optional = |name: &str, value: &Option<String>| {
            value.as_deref().map(|v| decode(name, v)).transpose()
        };
        Ok((
            Self {
                keyring,
                voice_platform_secret: optional(
                    "voice_platform_secret",
                    &file.voice_platform_secret,
                )?,
                jwt_hs256_secret: optional("jwt_hs256_secret", &file.jwt_hs256_secret)?,
                source,
                origin: origin.clone(),
            },
            origin,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_ids_differ() {
        let first = KeyFile::generate();
        let second = KeyFile::generate();
        assert_ne!(first.active_data_key, second.active_data_key);
        assert!(first.data_keys.contains_key(&first.active_data_key));
        let (date, suffix) = first
            .active_data_key
            .split_once('-')
            .expect("the id has a random suffix");
        assert_eq!(date.len(), 9, "k and an eight-digit date: {date}");
        assert_eq!(suffix.len(), 8, "eight hex digits: {suffix}");
    }

    #[test]
    fn date_only_key_ids_load() {
        let path = std::env::temp_dir().join(format!(
            "outbound-old-key-id-{}.json",
            uuid::Uuid::new_v4().simple()
        ));
        let old = KeyFile {
            data_keys: [("k20261204".to_owned(), random_base64(32))]
                .into_iter()
                .collect(),
            active_data_key: "k20261204".into(),
            blind_index_key: random_base64(32),
            voice_platform_secret: None,
            jwt_hs256_secret: None,
        };
        old.write_new(&path).expect("write the key file");
        let loaded = Secrets::load(Some(&path), false);
        std::fs::remove_file(&path).ok();
        let (secrets, origin) = loaded.expect("an old key file loads");
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(secrets.keyring.active_key_id(), "k20261204");
    }
}
