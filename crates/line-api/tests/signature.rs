//! Signature vectors from LINE's SDK test suites (see line-fixtures/README.md).

use line_api::signature::{sign, verify};

const VECTORS: [(&str, &str, &str); 3] = [
    (
        "channel_secret",
        "bodybodybodybody",
        "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k=",
    ),
    (
        "SECRET",
        "{}",
        "3q8QXTAGaey18yL8FWTqdVlbMr6hcuNvM4tefa0o9nA=",
    ),
    (
        "test_secret",
        r#"{"hello":"world"}"#,
        "t7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyyE/tM=",
    ),
];

#[test]
fn sdk_vectors_sign_and_verify() {
    for (secret, body, expected) in VECTORS {
        assert_eq!(
            sign(secret.as_bytes(), body.as_bytes()),
            expected,
            "{secret}"
        );
        assert!(
            verify(secret.as_bytes(), body.as_bytes(), expected),
            "{secret}"
        );
    }
}

#[test]
fn sdk_negative_vectors() {
    // python: not Base64 at all; java: Base64 of the wrong length; nodejs: case-flipped.
    assert!(!verify(
        b"channel_secret",
        b"bodybodybodybody",
        "invalid_signature"
    ));
    assert!(!verify(b"SECRET", b"{}", "596359635963"));
    assert!(!verify(
        b"test_secret",
        br#"{"hello":"world"}"#,
        "t7Hn4ZDHqs6e+wdvi5TyQivzie0DmMUmuXEBqyyE/tM="
    ));
}

#[test]
fn wrong_secret_or_body_fails() {
    let (secret, body, sig) = VECTORS[2];
    assert!(!verify(b"test_secreT", body.as_bytes(), sig));
    assert!(!verify(secret.as_bytes(), br#"{"hello": "world"}"#, sig));
    assert!(!verify(secret.as_bytes(), body.as_bytes(), ""));
    assert!(!verify(
        secret.as_bytes(),
        body.as_bytes(),
        &sig[..sig.len() - 1]
    ));
}
