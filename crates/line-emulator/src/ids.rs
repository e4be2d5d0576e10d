//! Identifiers in the shapes LINE uses.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngCore;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A LINE user or bot id: `U` followed by 32 lowercase hex digits (webhook.yml, `destination`).
pub fn user_id() -> String {
    format!("U{}", random_hex(16))
}

/// Whether `s` has the shape `^U[0-9a-f]{32}$`.
pub fn is_user_id(s: &str) -> bool {
    s.len() == 33
        && s.starts_with('U')
        && s[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A reply token: 32 hex digits, like the tokens LINE issues.
pub fn reply_token() -> String {
    random_hex(16)
}

/// A webhook event id: a ULID (26 Crockford base32 characters, 48-bit millisecond time, 80
/// random bits), as webhook.yml says.
pub fn ulid() -> String {
    let ms = chrono::Utc::now().timestamp_millis() as u128 & ((1u128 << 48) - 1);
    let mut rnd = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut rnd);
    let mut random: u128 = 0;
    for b in rnd {
        random = (random << 8) | b as u128;
    }
    let value = (ms << 80) | random;
    (0..26)
        .rev()
        .map(|i| CROCKFORD[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// A quote token: an opaque string (LINE's are long base64-like strings).
pub fn quote_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut buf = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter()
        .map(|b| ALPHABET[(*b & 63) as usize] as char)
        .collect()
}

/// A request id for the `x-line-request-id` header (LINE's are UUIDs).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Message ids are numeric strings. One counter per process, started at a random 18-digit
/// value, so ids never repeat within a run even across several emulators.
pub fn message_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let start = 500_000_000_000_000_000 + (rand::random::<u64>() % 100_000_000_000_000);
        let _ = NEXT.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
    }
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let u = user_id();
        assert!(is_user_id(&u), "{u}");
        assert!(!is_user_id("U123"));
        assert!(!is_user_id(&u.to_uppercase()));
        assert_eq!(reply_token().len(), 32);
        let id = ulid();
        assert_eq!(id.len(), 26);
        assert!(id.bytes().all(|b| CROCKFORD.contains(&b)));
        assert_ne!(ulid(), ulid());
        let a: u64 = message_id().parse().unwrap();
        let b: u64 = message_id().parse().unwrap();
        assert!(b > a);
    }
}
