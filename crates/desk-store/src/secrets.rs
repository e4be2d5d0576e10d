//! Secrets at rest (issue 9, item 15): the LINE Channel Secret and Access Token are stored
//! encrypted, and LINE passcodes as a keyed hash (to find the code a LINE user sends)
//! plus their encrypted value (to show it to agents) — a copy of the database or of a
//! backup alone reveals none of them.
//!
//! # The key
//!
//! One 32-byte master key per desk: `LINEDESK_SECRET_KEY` (base64), else the key file
//! `<data dir>/secret.key` (created at the first start, mode 0600). Several instances on one
//! PostgreSQL must all have the same key; the database records which key it is encrypted
//! with (`security.key_id`, a fingerprint, never the key), and an instance with another key
//! refuses to start — with a message saying so — instead of creating a second key. A desk
//! whose database records a key creates no key file: a lost key is reported, not replaced.
//!
//! Rotation: start with the new key in `LINEDESK_SECRET_KEY` and the old one in
//! `LINEDESK_SECRET_KEY_PREVIOUS`; everything is re-encrypted (and passcodes re-hashed)
//! under the new key in one transaction, then the old key is no longer needed.
//!
//! # The cipher
//!
//! ChaCha20-Poly1305 (AEAD) from `ring` — already the desk's TLS crypto (rustls), audited and
//! constant-time — with a random 96-bit nonce per value (a desk encrypts a handful of
//! values, far from the 2^32 where random nonces would matter) and the value's purpose as
//! associated data, so a ciphertext cannot be moved to another field. Stored form:
//! `enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. Sub-keys for encryption,
//! passcode hashing and the fingerprint are derived from the master key with HMAC-SHA256.
//! Values written before this (plain text) are encrypted at the first start with a key.
//!
//! Why one file of ~600 lines: the key handling, the encryption and the rotation must be read
//! together to be trusted; a fifth of it is tests.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::Sha256;

use crate::{Result, StoreError};

/// The key file's name in the data dir.
pub const KEY_FILE: &str = "secret.key";
/// The environment variable holding the key (base64 of 32 bytes).
pub const KEY_ENV: &str = "LINEDESK_SECRET_KEY";
/// The previous key, during a rotation.
pub const PREVIOUS_KEY_ENV: &str = "LINEDESK_SECRET_KEY_PREVIOUS";
/// The setting recording which key the database is encrypted with.
pub const KEY_ID_SETTING: &str = "security.key_id";
const PREFIX: &str = "enc:v1:";

/// Where an instance's key comes from.
#[derive(Clone, Debug, Default)]
pub struct KeyConfig {
    /// The key itself (`LINEDESK_SECRET_KEY`); wins over the file.
    pub key: Option<String>,
    /// The key being rotated away from (`LINEDESK_SECRET_KEY_PREVIOUS`).
    pub previous: Option<String>,
    /// The key file, read if there is no `key`, created if neither exists yet.
    pub key_file: Option<PathBuf>,
}

impl KeyConfig {
    /// `LINEDESK_SECRET_KEY`, `LINEDESK_SECRET_KEY_PREVIOUS`, and `<data dir>/secret.key`.
    pub fn from_env(data_dir: &Path) -> KeyConfig {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        KeyConfig {
            key: var(KEY_ENV),
            previous: var(PREVIOUS_KEY_ENV),
            key_file: Some(data_dir.join(KEY_FILE)),
        }
    }
}

/// A fresh random key, as `LINEDESK_SECRET_KEY` and the key file hold it.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source");
    STANDARD.encode(bytes)
}

/// One master key and what is derived from it.
struct Key {
    id: String,
    aead: LessSafeKey,
    mac: [u8; 32],
}

fn derive(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(master).expect("any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl Key {
    fn new(master: [u8; 32]) -> Key {
        let enc = derive(&master, b"linedesk/aead/v1");
        let id: String = derive(&master, b"linedesk/key-id/v1")[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Key {
            id,
            aead: LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, &enc).expect("a 32-byte key"),
            ),
            mac: derive(&master, b"linedesk/passcode/v1"),
        }
    }

    /// Parses a key as given: base64 (any alphabet, padded or not) or hex of 32 bytes.
    fn parse(text: &str, what: &str) -> Result<Key> {
        let text = text.trim();
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(text).ok().filter(|b| b.len() == 32))
            .or_else(|| {
                (text.len() == 64)
                    .then(|| {
                        (0..32)
                            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                            .collect::<Option<Vec<u8>>>()
                    })
                    .flatten()
            })
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "{what} must be 32 random bytes in base64 (make one with `linedesk secret-key generate` \
                     or `openssl rand -base64 32`)"
                ))
            })?;
        let mut master = [0u8; 32];
        master.copy_from_slice(&bytes);
        Ok(Key::new(master))
    }
}

/// The desk's secret key (and, during a rotation, the previous one).
pub struct Secrets {
    current: Key,
    previous: Option<Key>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("key_id", &self.current.id)
            .finish_non_exhaustive()
    }
}

/// What [`Secrets::open`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// Decrypted with the current key.
    Current(String),
    /// Decrypted with the previous key: write it again under the current one.
    Previous(String),
    /// Not encrypted (written before encryption existed).
    Plain(String),
}

impl Opened {
    pub fn into_inner(self) -> String {
        match self {
            Opened::Current(s) | Opened::Previous(s) | Opened::Plain(s) => s,
        }
    }
}

impl Secrets {
    /// From a key (base64 of 32 bytes), for tests and tools.
    pub fn from_key(key: &str) -> Result<Secrets> {
        Ok(Secrets {
            current: Key::parse(key, "the secret key")?,
            previous: None,
        })
    }

    /// The current key's fingerprint (recorded in the database, shown in messages).
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    pub fn previous_key_id(&self) -> Option<&str> {
        self.previous.as_ref().map(|k| k.id.as_str())
    }

    /// Encrypts `plain` for `purpose` (e.g. the setting's key) under the current key.
    pub fn seal(&self, purpose: &str, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source");
        let mut buf = plain.as_bytes().to_vec();
        self.current
            .aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut buf,
            )
            .expect("sealing cannot fail for these sizes");
        let mut out = nonce.to_vec();
        out.extend(buf);
        format!(
            "{PREFIX}{}:{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(out)
        )
    }

    /// Whether a stored value is encrypted (under any key).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// Decrypts a stored value; plain text (from before encryption) comes back as
    /// [`Opened::Plain`]. An unknown key or a tampered value is an error.
    pub fn open(&self, purpose: &str, stored: &str) -> Result<Opened> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(Opened::Plain(stored.to_owned()));
        };
        let (id, data) = rest
            .split_once(':')
            .ok_or_else(|| StoreError::Invalid("a malformed encrypted value".into()))?;
        let (key, previous) = if id == self.current.id {
            (&self.current, false)
        } else if let Some(p) = self.previous.as_ref().filter(|p| p.id == id) {
            (p, true)
        } else {
            return Err(StoreError::Invalid(format!(
                "a value is encrypted with key {id}, but this desk has key {}{}",
                self.current.id,
                self.previous
                    .as_ref()
                    .map(|p| format!(" (previous {})", p.id))
                    .unwrap_or_default()
            )));
        };
        let mut buf = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| StoreError::Invalid("a malformed encrypted value".into()))?;
        if buf.len() < NONCE_LEN {
            return Err(StoreError::Invalid("a malformed encrypted value".into()));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&buf[..NONCE_LEN]);
        let plain = key
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut buf[NONCE_LEN..],
            )
            .map_err(|_| {
                StoreError::Invalid(format!(
                    "the encrypted {purpose} does not decrypt (altered?)"
                ))
            })?;
        let plain = String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Invalid(format!("the encrypted {purpose} is not text")))?;
        Ok(if previous {
            Opened::Previous(plain)
        } else {
            Opened::Current(plain)
        })
    }

    /// The keyed hash a passcode is found by (HMAC-SHA256, hex), under the current key.
    pub fn passcode_hash(&self, code: &str) -> String {
        keyed_hash(&self.current.mac, code)
    }
}

fn keyed_hash(key: &[u8; 32], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(text.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Loads the key as configured. With neither a key nor a key file, a new key file is made
/// — unless `recorded` says the database is already encrypted with some key.
pub fn load(config: &KeyConfig, recorded: Option<&str>) -> Result<Secrets> {
    let previous = config
        .previous
        .as_deref()
        .map(|k| Key::parse(k, PREVIOUS_KEY_ENV))
        .transpose()?;
    let current = match (&config.key, &config.key_file) {
        (Some(k), _) => Key::parse(k, KEY_ENV)?,
        (None, Some(file)) => {
            // The key's folder (the data dir) is private too, on either database.
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::private_dir(dir)?;
            }
            let existing = read_key_file(file)?;
            match existing {
                Some(text) => Key::parse(&text, &format!("the key file {}", file.display()))?,
                None => {
                    if let Some(id) = recorded {
                        return Err(StoreError::Invalid(format!(
                            "the database's secrets are encrypted with key {id}, but this instance has no key: \
                         set {KEY_ENV} to that key, or copy the key file ({KEY_FILE}) of the instance that \
                         created it into {} (see docs/operations.md, Security)",
                            file.parent().unwrap_or(Path::new(".")).display()
                        )));
                    }
                    create_key_file(file)?
                }
            }
        }
        (None, None) => {
            return Err(StoreError::Invalid(format!("no secret key: set {KEY_ENV}")));
        }
    };
    Ok(Secrets { current, previous })
}

/// The key file's text, if it exists; a file others can read is made private.
fn read_key_file(file: &Path) -> Result<Option<String>> {
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(file, e)),
    };
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(file = %file.display(), "the secret key file was readable by others; made it 0600");
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_error(file, e))?;
    }
    std::fs::read_to_string(file)
        .map(Some)
        .map_err(|e| io_error(file, e))
}

/// Writes a new random key to `file` (0600, never overwriting: a key file another process
/// created meanwhile is read instead).
fn create_key_file(file: &Path) -> Result<Key> {
    let text = generate_key();
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file);
    match created {
        Ok(mut f) => {
            f.write_all(format!("{text}\n").as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| io_error(file, e))?;
            tracing::info!(file = %file.display(), "created the desk's secret key; back it up (docs/operations.md)");
            Key::parse(&text, "the new key")
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = read_key_file(file)?.unwrap_or_default();
            Key::parse(&text, &format!("the key file {}", file.display()))
        }
        Err(e) => Err(io_error(file, e)),
    }
}

fn io_error(file: &Path, e: std::io::Error) -> StoreError {
    StoreError::Invalid(format!("{}: {e}", file.display()))
}

/// The masked form a passcode's `code` column keeps once it is hashed and encrypted.
pub const MASKED_CODE: &str = "";

/// LINE設定's Channel Secret and Channel Access Token: the settings stored encrypted.
pub const CHANNEL_SECRET_SETTING: &str = "line.channel_secret";
pub const ACCESS_TOKEN_SETTING: &str = "line.channel_access_token";
pub const SECRET_SETTINGS: &[&str] = &[CHANNEL_SECRET_SETTING, ACCESS_TOKEN_SETTING];
/// The associated data of an encrypted passcode.
pub const PASSCODE_PURPOSE: &str = "passcode";
/// The advisory lock key serializing key changes across instances ("ldkeys").
const PG_LOCK_KEY: i64 = 0x6c64_6b65_7973;

impl crate::Store {
    /// The loaded key; an error for a store opened raw.
    pub fn secrets(&self) -> Result<&Secrets> {
        self.secrets.as_deref().ok_or_else(|| {
            StoreError::Invalid("this store was opened without its secret key".into())
        })
    }

    /// Loads the key and brings what is stored under it: plain values of older versions are
    /// encrypted (passcodes hashed), values under the previous key re-encrypted.
    pub(crate) async fn init_secrets(&mut self, config: &KeyConfig) -> Result<()> {
        let recorded = self.setting(KEY_ID_SETTING).await?.map(|(v, _)| v);
        let secrets = load(config, recorded.as_deref())?;
        check_recorded(&secrets, recorded.as_deref())?;
        if recorded.as_deref() != Some(secrets.key_id()) || self.has_plain_secrets().await? {
            self.convert_secrets(&secrets).await?;
        }
        self.secrets = Some(std::sync::Arc::new(secrets));
        Ok(())
    }

    async fn has_plain_secrets(&self) -> Result<bool> {
        for key in SECRET_SETTINGS {
            if let Some((v, _)) = self.setting(key).await?
                && !v.is_empty()
                && !Secrets::is_sealed(&v)
            {
                return Ok(true);
            }
        }
        let plain: i64 = on_db!(&self.db, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM customer_passcodes WHERE code_hash IS NULL"
        )
        .fetch_one(p)
        .await)?;
        Ok(plain > 0)
    }

    async fn convert_secrets(&self, secrets: &Secrets) -> Result<()> {
        let mut tx = self.begin().await?;
        match &mut tx.inner {
            crate::TxInner::Postgres(t) => {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_LOCK_KEY)
                    .execute(&mut **t)
                    .await?;
            }
            // The plain values this overwrites are zeroed in the file, not left in free
            // space (and the WAL is emptied after the commit, below).
            crate::TxInner::Sqlite(t) => {
                sqlx::query("PRAGMA secure_delete = ON")
                    .execute(&mut **t)
                    .await?;
            }
        }
        // Another instance may have done it meanwhile, perhaps with another key.
        let recorded: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "SELECT value FROM settings WHERE key = $1"
        )
        .bind(KEY_ID_SETTING)
        .fetch_optional(c)
        .await)?;
        check_recorded(secrets, recorded.as_deref())?;
        let mut converted = 0;
        for key in SECRET_SETTINGS {
            let value: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(
                "SELECT value FROM settings WHERE key = $1"
            )
            .bind(key)
            .fetch_optional(c)
            .await)?;
            let Some(value) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            let plain = match secrets.open(key, &value)? {
                Opened::Current(_) => continue,
                Opened::Previous(p) | Opened::Plain(p) => p,
            };
            // The value is rewritten, not changed: ステータス更新 stays as it was.
            exec_tx!(&mut tx, |c| sqlx::query(
                "UPDATE settings SET value = $2 WHERE key = $1"
            )
            .bind(key)
            .bind(secrets.seal(key, &plain)))?;
            converted += 1;
        }
        let previous_like = secrets
            .previous_key_id()
            .map(|id| format!("{PREFIX}{id}:%"))
            .unwrap_or_else(|| "no previous key".into());
        let rows: Vec<(i64, String, Option<String>)> = on_tx!(&mut tx, |c| sqlx::query_as(
            "SELECT id, code, code_enc FROM customer_passcodes
             WHERE code_hash IS NULL OR code_enc LIKE $1"
        )
        .bind(&previous_like)
        .fetch_all(c)
        .await)?;
        for (id, code, code_enc) in rows {
            let code = match code_enc {
                Some(enc) => secrets.open(PASSCODE_PURPOSE, &enc)?.into_inner(),
                None => code,
            };
            exec_tx!(&mut tx, |c| {
                sqlx::query(
                "UPDATE customer_passcodes SET code = $2, code_hash = $3, code_enc = $4 WHERE id = $1")
                .bind(id).bind(MASKED_CODE).bind(secrets.passcode_hash(&code))
                .bind(secrets.seal(PASSCODE_PURPOSE, &code))
            })?;
            converted += 1;
        }
        exec_tx!(&mut tx, |c| sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        .bind(KEY_ID_SETTING)
        .bind(secrets.key_id())
        .bind(0i64))?;
        if let crate::TxInner::Sqlite(t) = &mut tx.inner {
            sqlx::query("PRAGMA secure_delete = OFF")
                .execute(&mut **t)
                .await?;
        }
        tx.commit().await?;
        if converted > 0
            && let crate::Db::Sqlite(p) = &self.db
        {
            // The old page versions in the WAL go too.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(p)
                .await?;
        }
        if converted > 0 {
            tracing::info!(
                key = secrets.key_id(),
                values = converted,
                "secrets encrypted under the desk's key"
            );
        }
        Ok(())
    }

    /// A setting stored encrypted (LINE設定's secrets), decrypted, with when it changed.
    pub async fn secret_setting(&self, key: &str) -> Result<Option<(String, i64)>> {
        let Some((value, at)) = self.setting(key).await? else {
            return Ok(None);
        };
        if value.is_empty() {
            return Ok(Some((value, at)));
        }
        Ok(Some((self.secrets()?.open(key, &value)?.into_inner(), at)))
    }

    /// Stores a secret setting encrypted (announced like every setting).
    pub async fn set_secret_setting(&self, key: &str, value: &str, now_ms: i64) -> Result<()> {
        let sealed = self.secrets()?.seal(key, value);
        self.set_setting(key, &sealed, now_ms).await
    }
}

/// Refuses a database encrypted with a key this instance does not have.
fn check_recorded(secrets: &Secrets, recorded: Option<&str>) -> Result<()> {
    match recorded {
        None => Ok(()),
        Some(id) if id == secrets.key_id() || Some(id) == secrets.previous_key_id() => Ok(()),
        Some(id) => Err(StoreError::Invalid(format!(
            "the database's secrets are encrypted with key {id}, but this instance's key is {}: every \
             instance needs the same key ({KEY_ENV}, or the same {KEY_FILE} in its data dir); to change \
             keys, give the old one as {PREVIOUS_KEY_ENV} (docs/operations.md, Security)",
            secrets.key_id()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(key: &str, previous: Option<&str>) -> Secrets {
        Secrets {
            current: Key::parse(key, "k").unwrap(),
            previous: previous.map(|p| Key::parse(p, "p").unwrap()),
        }
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_purpose() {
        let a = generate_key();
        let b = generate_key();
        let s = secrets(&a, None);
        let sealed = s.seal("line.channel_secret", "abc123");
        assert!(Secrets::is_sealed(&sealed));
        assert!(!sealed.contains("abc123"));
        assert_ne!(
            sealed,
            s.seal("line.channel_secret", "abc123"),
            "fresh nonces"
        );
        assert_eq!(
            s.open("line.channel_secret", &sealed).unwrap(),
            Opened::Current("abc123".into())
        );
        assert!(
            s.open("line.channel_access_token", &sealed).is_err(),
            "bound to its purpose"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(s.open("line.channel_secret", &tampered).is_err());
        assert_eq!(
            s.open("line.channel_secret", "plain").unwrap(),
            Opened::Plain("plain".into())
        );
        let other = secrets(&b, None);
        let err = other.open("line.channel_secret", &sealed).unwrap_err();
        assert!(err.to_string().contains(s.key_id()), "{err}");
        let rotated = secrets(&b, Some(&a));
        assert_eq!(
            rotated.open("line.channel_secret", &sealed).unwrap(),
            Opened::Previous("abc123".into())
        );
    }

    #[test]
    fn passcode_hashes_are_keyed() {
        let s = secrets(&generate_key(), None);
        let t = secrets(&generate_key(), None);
        assert_eq!(s.passcode_hash("@105-908"), s.passcode_hash("@105-908"));
        assert_ne!(s.passcode_hash("@105-908"), s.passcode_hash("@105-909"));
        assert_ne!(s.passcode_hash("@105-908"), t.passcode_hash("@105-908"));
        assert_eq!(s.passcode_hash("@105-908").len(), 64);
    }

    #[test]
    fn keys_are_32_bytes_in_base64_or_hex() {
        assert!(Key::parse(&generate_key(), "k").is_ok());
        assert!(Key::parse(&"ab".repeat(32), "k").is_ok());
        assert!(Key::parse("short", "k").is_err());
        assert!(Key::parse(&STANDARD.encode([1u8; 16]), "k").is_err());
    }

    #[test]
    fn the_key_file_is_created_private_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(KEY_FILE);
        let config = KeyConfig {
            key_file: Some(file.clone()),
            ..Default::default()
        };
        // A database that records a key, and no key here: refused, no file made.
        let err = load(&config, Some("abcdef012345")).unwrap_err();
        assert!(err.to_string().contains("abcdef012345"), "{err}");
        assert!(!file.exists());
        let first = load(&config, None).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load(&config, Some(first.key_id())).unwrap();
        assert_eq!(first.key_id(), again.key_id());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        load(&config, None).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "made private again");
    }
}
