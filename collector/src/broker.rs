//! Agents' broker credentials, for `ioc-collector agents add/remove`: entries of mosquitto's
//! password file (the `$7$` PBKDF2-SHA512 form `mosquitto_passwd` writes, so the broker takes
//! them as they are) and the `[mqtt]` section an agent needs. The ACL needs nothing per
//! agent: the shipped pattern lines (`config/mosquitto.acl`) give each user its own topics.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha512};

/// mosquitto 2's default PBKDF2 iterations.
const ITERATIONS: u32 = 101;

fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> [u8; 64] {
    const BLOCK: usize = 128;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..64].copy_from_slice(&Sha512::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let (mut ipad, mut opad) = ([0x36u8; BLOCK], [0x5cu8; BLOCK]);
    for i in 0..BLOCK {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let mut inner = Sha512::new();
    inner.update(ipad);
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha512::new();
    outer.update(opad);
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// PBKDF2-HMAC-SHA512 with one 64-byte block (what mosquitto keeps).
fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 64] {
    let mut u = hmac_sha512(password, &[salt, &1u32.to_be_bytes()]);
    let mut t = u;
    for _ in 1..iterations {
        u = hmac_sha512(password, &[&u]);
        for (t, u) in t.iter_mut().zip(u) {
            *t ^= u;
        }
    }
    t
}

/// The password-file form of `password` with `salt`: `$7$101$<salt>$<hash>` (base64).
pub fn mosquitto_hash_with_salt(password: &str, salt: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let hash = pbkdf2_sha512(password.as_bytes(), salt, ITERATIONS);
    format!("$7${ITERATIONS}${}${}", b64.encode(salt), b64.encode(hash))
}

/// The password-file form of `password` with a random 12-byte salt.
pub fn mosquitto_hash(password: &str) -> String {
    let mut salt = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    mosquitto_hash_with_salt(password, &salt)
}

/// A new random password for an agent (24 characters without look-alikes).
pub fn generate_password() -> String {
    format!(
        "{}{}",
        crate::auth::generate_password(),
        &crate::auth::generate_password()[..8]
    )
}

/// Sets `user`'s line in the password file `file` (created if missing, written through a
/// temporary file and a rename, owner-only permissions kept or set). Returns whether the
/// user was there before.
pub fn set_user(file: &Path, user: &str, password: &str) -> std::io::Result<bool> {
    let line = format!("{user}:{}", mosquitto_hash(password));
    edit(file, user, Some(&line))
}

/// Removes `user` from the password file `file`. Returns whether it was there.
pub fn remove_user(file: &Path, user: &str) -> std::io::Result<bool> {
    edit(file, user, None)
}

fn edit(file: &Path, user: &str, line: Option<&str>) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let old = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let prefix = format!("{user}:");
    let mut found = false;
    let mut out = String::new();
    for l in old.lines() {
        if l.starts_with(&prefix) {
            found = true;
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    if let Some(line) = line {
        out.push_str(line);
        out.push('\n');
    }
    let mode = std::fs::metadata(file)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    let tmp = file.with_extension("ioc-tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)?;
    Ok(found)
}

/// The `[mqtt]` section of agent `agent` for a broker at `host:port`.
pub fn agent_mqtt_section(
    agent: &str,
    password: &str,
    host: &str,
    port: u16,
    ca_file: Option<&str>,
) -> String {
    let mut s = format!(
        "[mqtt]\nhost = \"{host}\"\nport = {port}\nusername = \"{agent}\"\npassword = \"{password}\"\n"
    );
    if let Some(ca) = ca_file {
        s.push_str(&format!("[mqtt.tls]\nca_file = \"{ca}\"\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_sha512_matches_the_published_vector() {
        // PBKDF2-HMAC-SHA512("password", "salt", 1), the widely published test vector.
        let got = pbkdf2_sha512(b"password", b"salt", 1);
        assert_eq!(
            hex::encode(got),
            "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252\
             c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"
        );
        let h = mosquitto_hash_with_salt("pw", &[0; 12]);
        assert!(h.starts_with("$7$101$AAAAAAAAAAAAAAAA$"), "{h}");
        assert_ne!(mosquitto_hash("pw"), mosquitto_hash("pw"), "salted");
        assert_eq!(generate_password().len(), 24);
    }

    #[test]
    fn users_are_set_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("passwd");
        assert!(!set_user(&f, "a", "x").unwrap());
        assert!(!set_user(&f, "b", "y").unwrap());
        assert!(set_user(&f, "a", "z").unwrap());
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().any(|l| l.starts_with("b:$7$101$")));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(remove_user(&f, "a").unwrap());
        assert!(!remove_user(&f, "a").unwrap());
        assert!(std::fs::read_to_string(&f).unwrap().starts_with("b:"));
    }
}
