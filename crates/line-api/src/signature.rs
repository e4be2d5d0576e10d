//! The `X-Line-Signature` check.
//!
//! LINE signs every webhook with Base64(HMAC-SHA256(channel secret, raw body)). The MAC is
//! over the exact bytes received, so the check must run before any parsing or re-encoding.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(channel_secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(channel_secret).expect("HMAC accepts any key length");
    mac.update(body);
    mac
}

/// The signature LINE would send for `body`: Base64 (standard alphabet, padded) of
/// HMAC-SHA256 keyed with the channel secret. Used by the emulator and by tests.
pub fn sign(channel_secret: &[u8], body: &[u8]) -> String {
    STANDARD.encode(mac(channel_secret, body).finalize().into_bytes())
}

/// Whether `header` (the `X-Line-Signature` value) is the signature of `body`.
///
/// The comparison is constant-time (`verify_slice`), so an attacker cannot learn the
/// signature byte by byte from response times. A header that is not valid Base64, or that
/// decodes to the wrong length, is simply `false`.
pub fn verify(channel_secret: &[u8], body: &[u8], header: &str) -> bool {
    let Ok(expected) = STANDARD.decode(header.as_bytes()) else {
        return false;
    };
    mac(channel_secret, body).verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let sig = sign(b"s", b"body");
        assert!(verify(b"s", b"body", &sig));
        assert!(!verify(b"t", b"body", &sig));
        assert!(!verify(b"s", b"body!", &sig));
    }

    #[test]
    fn malformed_headers_are_false() {
        assert!(!verify(b"s", b"body", ""));
        assert!(!verify(b"s", b"body", "%%%"));
        // Valid Base64 of the wrong length (a truncated MAC must not pass).
        let sig = sign(b"s", b"body");
        let short = STANDARD.encode(&STANDARD.decode(&sig).unwrap()[..16]);
        assert!(!verify(b"s", b"body", &short));
    }
}
