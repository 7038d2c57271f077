//! Stored CommuniGate passwords: encoding new ones and checking any stored form.
//!
//! Guide: Account passwords guide.txt:3717-3797, Password migration guide.txt:1817-1904.
//!
//! Stored forms of the `Password` account setting:
//! - clear text: no prefix. Recoverable, so CRAM-MD5, APOP and DIGEST-MD5 can use it.
//! - `\002` + an encoded form (guide.txt:1838-1866): `$argon2id$…` (ours, the default for new
//!   passwords), `$1$` MD5-crypt, `$5$`/`$6$` SHA-crypt, `$2y$` bcrypt, `{crypt}`/`{WM-CRY}` + Unix
//!   crypt, `{MD5}` / `{SHA}` + base64 digest, or a bare Unix (DES) crypt string.
//!
//! Choice (issue text): new passwords are stored one-way with argon2id unless the account's
//! effective `PasswordEncryption` is `clear`. An admin who needs CRAM-MD5, APOP or DIGEST-MD5 for
//! an account or a domain sets `PasswordEncryption=clear` there. The guide's `A-crpt` value is read
//! as argon2 (the guide does not define it; both mean "the server's own one-way encoding").
//!
//! Security: an absent or empty password never matches. Clear and digest comparisons run in
//! constant time; argon2 and crypt verification are the libraries'. Unknown encoded forms
//! (`{NS-MTA-MD5}` among them — todo:) never match.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::Engine;
use md5::{Digest, Md5};
use sha1::Sha1;

/// The one-byte prefix of encoded passwords (guide.txt:1838-1845).
pub const ENCODED_PREFIX: u8 = 0x02;

/// Encodes a new password for storage under the given `PasswordEncryption` value.
pub fn encode(pw: &[u8], encryption: &str) -> Result<Vec<u8>, &'static str> {
    if pw.first() == Some(&ENCODED_PREFIX) {
        return Err("a password may not start with the \\002 byte");
    }
    if pw.is_empty() || super::settings::is_clear_encryption(encryption) {
        return Ok(pw.to_vec());
    }
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(pw, &salt)
        .map_err(|_| "password hashing failed")?;
    let mut out = vec![ENCODED_PREFIX];
    out.extend_from_slice(hash.to_string().as_bytes());
    Ok(out)
}

/// Whether `pw` matches the stored form `stored`.
pub fn verify(stored: &[u8], pw: &[u8]) -> bool {
    if stored.is_empty() || pw.is_empty() {
        return false;
    }
    match stored.split_first() {
        Some((&ENCODED_PREFIX, rest)) => verify_encoded(rest, pw),
        _ => ct_eq(stored, pw),
    }
}

/// The clear-text password, when it is stored recoverably.
pub fn recoverable(stored: &[u8]) -> Option<Vec<u8>> {
    if stored.is_empty() || stored.first() == Some(&ENCODED_PREFIX) {
        None
    } else {
        Some(stored.to_vec())
    }
}

fn verify_encoded(enc: &[u8], pw: &[u8]) -> bool {
    let Ok(enc) = std::str::from_utf8(enc) else {
        return false;
    };
    if enc.is_empty() {
        return false;
    }
    if enc.starts_with("$argon2") {
        return PasswordHash::new(enc)
            .map(|h| Argon2::default().verify_password(pw, &h).is_ok())
            .unwrap_or(false);
    }
    if let Some(b64) = enc.strip_prefix("{MD5}") {
        return digest_matches(b64, &Md5::digest(pw));
    }
    if let Some(b64) = enc.strip_prefix("{SHA}") {
        return digest_matches(b64, &Sha1::digest(pw));
    }
    let crypt = enc
        .strip_prefix("{crypt}")
        .or_else(|| enc.strip_prefix("{CRYPT}"))
        .or_else(|| enc.strip_prefix("{WM-CRY}"))
        .unwrap_or(enc);
    if crypt.starts_with('{') {
        return false;
    }
    // pwhash covers $1$, $5$, $6$, $2y$ and traditional DES crypt; it returns false on a
    // malformed hash rather than panicking.
    pwhash::unix::verify(pw, crypt)
}

fn digest_matches(b64: &str, digest: &[u8]) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map(|want| ct_eq(&want, digest))
        .unwrap_or(false)
}

/// Constant-time equality (the length is not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let s = encode(b"secret", "argon2").unwrap();
        assert!(s.starts_with(b"\x02$argon2id$"));
        assert!(verify(&s, b"secret"));
        assert!(!verify(&s, b"Secret"));
        assert_eq!(recoverable(&s), None);
    }

    #[test]
    fn clear_round_trip() {
        let s = encode(b"secret", "clear").unwrap();
        assert_eq!(s, b"secret");
        assert!(verify(&s, b"secret"));
        assert!(!verify(&s, b"secre"));
        assert_eq!(recoverable(&s), Some(b"secret".to_vec()));
    }

    #[test]
    fn empty_never_matches() {
        assert!(!verify(b"", b""));
        assert!(!verify(b"", b"x"));
        assert!(!verify(b"\x02", b""));
        assert!(!verify(b"x", b""));
        assert_eq!(encode(b"", "argon2").unwrap(), b"");
    }

    #[test]
    fn legacy_forms() {
        // `openssl passwd -1 -salt saltsalt secret`
        assert!(verify(b"\x02$1$saltsalt$9xy1btjgzLYfb7hivXtC//", b"secret"));
        assert!(!verify(b"\x02$1$saltsalt$9xy1btjgzLYfb7hivXtC//", b"wrong"));
        // `openssl passwd -6 -salt saltsalt secret`
        let sha512 = b"\x02$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        assert!(verify(sha512, b"secret"));
        assert!(!verify(sha512, b"wrong"));
        // {MD5} and {SHA}: base64 digests of "secret".
        assert!(verify(b"\x02{MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==", b"secret"));
        assert!(verify(b"\x02{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", b"secret"));
        assert!(!verify(b"\x02{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", b"secreT"));
        assert!(!verify(b"\x02{NS-MTA-MD5}00", b"secret"));
        assert!(!verify(b"\x02$1$broken", b"secret"));
        // Bare Unix (DES) crypt, the guide's own sample form (guide.txt:1845): Python
        // `crypt.crypt("secret", "As")`.
        assert!(verify(b"\x02As3yXQTxW.olk", b"secret"));
        assert!(verify(b"\x02{crypt}As3yXQTxW.olk", b"secret"));
        assert!(!verify(b"\x02As3yXQTxW.olk", b"secreT"));
    }

    #[test]
    fn refuses_prefix_in_new_password() {
        assert!(encode(b"\x02abc", "clear").is_err());
    }
}
