//! Users, roles, password hashing (argon2id) and session tokens.
//!
//! A session token is 32 random bytes (hex); the store keeps only its SHA-256, so reading
//! the database does not let anyone in. The same token works as a cookie (the console) and as
//! `Authorization: Bearer` (other systems).

mod guard;

pub use guard::{LoginGuard, Refused};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a user may do. Each role can do everything the roles before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads incidents, health, statistics and reports.
    Viewer,
    /// Also acknowledges, resolves, dismisses, reopens, assigns, notes; sets silences.
    Operator,
    /// Also manages users.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A password that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short to resist guessing.
    #[error("a password needs at least 10 characters")]
    TooShort,
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// A user name that cannot be used.
pub fn check_username(name: &str) -> Result<(), &'static str> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok && name != crate::incident::SYSTEM {
        Ok(())
    } else {
        Err("a user name is 1-64 of a-z, A-Z, 0-9, '.', '_', '-', '@', and not \"system\"")
    }
}

/// Hashes `password` with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < 10 {
        return Err(PasswordError::TooShort);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks `password` against a PHC string from [`hash_password`].
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A new session token and the SHA-256 (hex) the store keeps of it.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let sha = token_sha256(&token);
    (token, sha)
}

/// The stored form of a token.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A random password for generated accounts (the demo's operator): 16 characters from an
/// alphabet without look-alikes.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse battery!", &a));
        assert!(!verify_password("x", "not a hash"));
        assert_eq!(hash_password("short"), Err(PasswordError::TooShort));
    }

    #[test]
    fn tokens_and_names() {
        let (t, sha) = new_token();
        assert_eq!(t.len(), 64);
        assert_eq!(token_sha256(&t), sha);
        assert_ne!(new_token().0, t);
        assert!(check_username("op.nguyen").is_ok());
        assert!(check_username("system").is_err());
        assert!(check_username("a b").is_err());
        assert_eq!(generate_password().len(), 16);
        assert!(Role::Operator > Role::Viewer && Role::Admin > Role::Operator);
    }
}
