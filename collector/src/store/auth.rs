//! Users and sessions. Passwords arrive here already hashed (argon2, [`crate::auth`]);
//! session tokens are stored as their SHA-256, so a copy of the database opens no session.

use super::{sqlerr, Store, StoreError};

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Login name.
    pub username: String,
    /// The argon2 PHC string.
    pub password_hash: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
}

/// Who a live session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// Login name.
    pub username: String,
    /// Role name.
    pub role: String,
    /// When the session ends (Unix ms).
    pub expires_at_ms: i64,
}

impl Store {
    /// Creates or replaces user `username` (the audit trail notes who did it).
    pub fn put_user(
        &mut self,
        username: &str,
        password_hash: &str,
        role: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let p = self.name.clone();
        let tx = self
            .db
            .begin()
            .map_err(sqlerr(&p, "cannot begin transaction"))?;
        tx.execute(
            "INSERT INTO users (username, password_hash, role, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (username) DO UPDATE SET \
             password_hash = excluded.password_hash, role = excluded.role",
            &[&username, &password_hash, &role, &now_ms],
        )
        .map_err(sqlerr(&p, "cannot store user"))?;
        // A new password ends the user's sessions.
        tx.execute("DELETE FROM sessions WHERE username = ?1", &[&username])
            .map_err(sqlerr(&p, "cannot end sessions"))?;
        tx.execute(
            "INSERT INTO audit (incident_id, at_ms, actor, action, note) \
             VALUES (NULL, ?1, ?2, 'user', ?3)",
            &[
                &now_ms,
                &actor,
                &format!("user {username} set with role {role}"),
            ],
        )
        .map_err(sqlerr(&p, "cannot audit"))?;
        tx.commit().map_err(sqlerr(&p, "cannot commit user"))
    }

    /// User `username`, if any.
    pub fn user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        self.db
            .query_opt(
                "SELECT username, password_hash, role FROM users WHERE username = ?1",
                &[&username],
            )
            .and_then(|r| {
                r.map(|r| {
                    Ok(UserRow {
                        username: r.get(0)?,
                        password_hash: r.get(1)?,
                        role: r.get(2)?,
                    })
                })
                .transpose()
            })
            .map_err(self.err("cannot read user"))
    }

    /// Every user: `(username, role)`.
    pub fn users(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.db
            .query("SELECT username, role FROM users ORDER BY username", &[])
            .and_then(|rows| rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect())
            .map_err(self.err("cannot list users"))
    }

    /// Records a session (`token_sha256` hex) for `username` until `expires_at_ms`; drops
    /// expired ones on the way.
    pub fn create_session(
        &mut self,
        token_sha256: &str,
        username: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.db
            .execute("DELETE FROM sessions WHERE expires_at_ms <= ?1", &[&now_ms])
            .map_err(self.err("cannot expire sessions"))?;
        self.db
            .execute(
                "INSERT INTO sessions (token_sha256, username, created_at_ms, expires_at_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
                &[&token_sha256, &username, &now_ms, &expires_at_ms],
            )
            .map_err(self.err("cannot store session"))?;
        Ok(())
    }

    /// The user of a live session.
    pub fn session(
        &self,
        token_sha256: &str,
        now_ms: i64,
    ) -> Result<Option<SessionUser>, StoreError> {
        self.db
            .query_opt(
                "SELECT u.username, u.role, s.expires_at_ms FROM sessions s \
                 JOIN users u ON u.username = s.username \
                 WHERE s.token_sha256 = ?1 AND s.expires_at_ms > ?2",
                &[&token_sha256, &now_ms],
            )
            .and_then(|r| {
                r.map(|r| {
                    Ok(SessionUser {
                        username: r.get(0)?,
                        role: r.get(1)?,
                        expires_at_ms: r.get(2)?,
                    })
                })
                .transpose()
            })
            .map_err(self.err("cannot read session"))
    }

    /// Ends a session (logout).
    pub fn delete_session(&mut self, token_sha256: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "DELETE FROM sessions WHERE token_sha256 = ?1",
                &[&token_sha256],
            )
            .map_err(self.err("cannot end session"))?;
        Ok(())
    }
}
