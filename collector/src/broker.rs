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

/// Sets `user`'s line in the password file `file`. Returns whether the user was there before.
///
/// The broker reads this file after dropping to its own user, so the rewrite (a temporary
/// file and a rename, so a crash never leaves half a file) keeps the old file's owner, group
/// and mode; a new file is made `mosquitto:mosquitto 0600` where that user exists (owner-only
/// for the current user elsewhere). Edits are serialised by an exclusive lock on
/// `FILE.lock`, so `agents add` run twice at once loses no entry.
pub fn set_user(file: &Path, user: &str, password: &str) -> std::io::Result<bool> {
    let line = format!("{user}:{}", mosquitto_hash(password));
    edit(file, user, Some(&line))
}

/// Removes `user` from the password file `file`. Returns whether it was there.
pub fn remove_user(file: &Path, user: &str) -> std::io::Result<bool> {
    edit(file, user, None)
}

fn edit(file: &Path, user: &str, line: Option<&str>) -> std::io::Result<bool> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(lock_path(file))?;
    lock.lock()?; // released when `lock` is dropped, after the rename
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
    let (mode, owner, existed) = match std::fs::metadata(file) {
        Ok(m) => (
            m.permissions().mode() & 0o7777,
            Some((m.uid(), m.gid())),
            true,
        ),
        Err(_) => (0o600, broker_user(), false),
    };
    let tmp = file.with_extension("ioc-tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        if let Some((uid, gid)) = owner {
            match std::os::unix::fs::fchown(&f, Some(uid), Some(gid)) {
                Ok(()) => {}
                // Not root: a new file stays ours (the broker must be given it by hand).
                Err(e) if !existed && e.kind() == std::io::ErrorKind::PermissionDenied => {}
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!(
                            "cannot keep {}'s owner ({uid}:{gid}) on the rewritten file: {e}; \
                             run as root, or as that user",
                            file.display()
                        ),
                    ));
                }
            }
        }
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(found)
}

fn lock_path(file: &Path) -> std::path::PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    file.with_file_name(name)
}

/// The uid and gid of the `mosquitto` system user (Debian's broker runs as it), if it exists.
fn broker_user() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = text.lines().find(|l| l.starts_with("mosquitto:"))?;
    let mut f = line.split(':').skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// The names of the `user` blocks of a mosquitto ACL file: an agent of that name would get
/// the block's rights instead of only its own topics.
pub fn acl_users(acl: &str) -> Vec<String> {
    acl.lines()
        .filter_map(|l| l.trim().strip_prefix("user "))
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect()
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

    #[test]
    fn a_rewrite_keeps_the_files_owner_group_and_mode() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("passwd");
        std::fs::write(&f, "x:1\n").unwrap();
        // A group the broker reads through, as an admin may set it (any group not ours).
        let gid = 65534; // nogroup
        std::os::unix::fs::chown(&f, None, Some(gid)).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        set_user(&f, "a", "pw").unwrap();
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!(m.gid(), gid);
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        assert!(std::fs::read_to_string(&f)
            .unwrap()
            .starts_with("x:1\na:$7$"));
    }

    #[test]
    fn concurrent_edits_lose_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("passwd");
        let threads: Vec<_> = (0..12)
            .map(|i| {
                let f = f.clone();
                std::thread::spawn(move || set_user(&f, &format!("agent-{i}"), "pw").unwrap())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&f).unwrap().lines().count(), 12);
    }

    #[test]
    fn acl_user_blocks_are_found() {
        let acl = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/mosquitto.acl"),
        )
        .unwrap();
        assert_eq!(acl_users(&acl), ["collector"]);
        assert_eq!(acl_users("pattern read x\n  user  a-b \nuser\n"), ["a-b"]);
    }
}
