//! Passwords and tokens.
//!
//! - Passwords are hashed with argon2id (the crate's default parameters:
//!   19 MiB, 2 passes) and a random 16-byte salt, stored as a PHC string.
//! - A token is `rpt_` followed by 32 random bytes in hex. Only the hex
//!   SHA-256 of the whole token is stored, so a token is looked up by hash
//!   with one indexed query, and a stolen database reveals no token. Tokens
//!   are high-entropy, so a fast hash is enough (unlike passwords).

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};

/// Prefix of every token, so they can be recognised (and found by secret scanners).
pub const TOKEN_PREFIX: &str = "rpt_";

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Why a password or token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The password is too short.
    #[error("password too short: at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// The system's random source failed.
    #[error("no randomness: {0}")]
    Random(String),
    /// Hashing failed.
    #[error("cannot hash: {0}")]
    Hash(String),
}

/// The PHC string of `password` (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::WeakPassword);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A new token and the hash to store.
pub fn new_token() -> Result<(String, String), AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    let token = format!("{TOKEN_PREFIX}{}", hex(&bytes));
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// The stored form of a token: hex SHA-256.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves_and_salts_differ() {
        let a = hash_password("correct horse").expect("hash");
        let b = hash_password("correct horse").expect("hash");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "random salt");
        assert!(verify_password(&a, "correct horse"));
        assert!(!verify_password(&a, "correct horsf"));
        assert!(!verify_password("not a phc string", "correct horse"));
        assert!(matches!(
            hash_password("short"),
            Err(AuthError::WeakPassword)
        ));
    }

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let (t1, h1) = new_token().expect("token");
        let (t2, h2) = new_token().expect("token");
        assert!(t1.starts_with(TOKEN_PREFIX));
        assert_eq!(t1.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(t1, t2);
        assert_ne!(h1, h2);
        assert_eq!(token_hash(&t1), h1);
        assert_eq!(h1.len(), 64);
        // A known vector: SHA-256("abc").
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
