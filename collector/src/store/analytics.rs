//! Camera analytics pushed from the center: every version, who changed it and when.

use super::db::DbError;
use super::{sqlerr, Store, StoreError};

/// One stored version of a camera's analytics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AnalyticsVersion {
    /// Grows from 1 per camera.
    pub version: i64,
    /// The analytics section, as JSON text.
    pub config: String,
    /// Who pushed it.
    pub changed_by: String,
    /// When (ms since the Unix epoch).
    pub changed_at_ms: i64,
}

/// The outcome of [`Store::put_analytics`].
#[derive(Debug, Clone, PartialEq)]
pub enum PutAnalytics {
    /// Stored as this version.
    Stored(i64),
    /// Someone stored another version since `base_version`: this is the latest.
    Conflict(i64),
}

impl Store {
    /// The newest `limit` versions of `agent`'s `camera`, newest first.
    pub fn analytics_versions(
        &self,
        agent: &str,
        camera: &str,
        limit: i64,
    ) -> Result<Vec<AnalyticsVersion>, StoreError> {
        self.db
            .query(
                "SELECT version, config, changed_by, changed_at_ms FROM analytics_versions \
                 WHERE agent = ?1 AND camera = ?2 ORDER BY version DESC LIMIT ?3",
                &[&agent, &camera, &limit],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok(AnalyticsVersion {
                            version: r.get(0)?,
                            config: r.get(1)?,
                            changed_by: r.get(2)?,
                            changed_at_ms: r.get(3)?,
                        })
                    })
                    .collect()
            })
            .map_err(self.err("cannot read analytics versions"))
    }

    /// The cameras `agent` last said it runs (its status); none when it never reported.
    pub fn agent_cameras(&self, agent: &str) -> Result<Option<Vec<String>>, StoreError> {
        let rows = self
            .db
            .query("SELECT cameras FROM agents WHERE agent = ?1", &[&agent])
            .and_then(|rows| {
                rows.iter()
                    .map(|r| r.get::<String>(0))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.err("cannot read the agent's cameras"))?;
        Ok(rows
            .first()
            .map(|t| serde_json::from_str(t).unwrap_or_default()))
    }

    /// Stores `config` as the next version of `agent`'s `camera`, with an audit entry, if the
    /// latest version is still `base.expected` (none: not checked; 0: no version yet).
    ///
    /// The next version is above both this store's latest and `base.site_has` (the newest the
    /// site ran or refused): after the center's database is restored or replaced, versions
    /// do not start again below what the agents know, which they would ignore as old.
    pub fn put_analytics(
        &mut self,
        agent: &str,
        camera: &str,
        config: &str,
        base: VersionBase,
        actor: &str,
        now_ms: i64,
    ) -> Result<PutAnalytics, StoreError> {
        let p = self.name.clone();
        let tx = self
            .db
            .begin()
            .map_err(sqlerr(&p, "cannot begin transaction"))?;
        let out = (|| -> Result<PutAnalytics, DbError> {
            let latest: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM analytics_versions \
                     WHERE agent = ?1 AND camera = ?2",
                    &[&agent, &camera],
                )?
                .get(0)?;
            if base.expected.is_some_and(|b| b != latest) {
                return Ok(PutAnalytics::Conflict(latest));
            }
            let version = latest.max(base.site_has) + 1;
            // Two collectors storing at once: the primary key lets one win, the other fails
            // its commit and the user tries again.
            tx.execute(
                "INSERT INTO analytics_versions (agent, camera, version, config, changed_by, \
                 changed_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &[&agent, &camera, &version, &config, &actor, &now_ms],
            )?;
            super::incidents::audit(
                &tx,
                None,
                now_ms,
                actor,
                "analytics",
                (None, None),
                Some(&format!("{agent}/{camera}: analytics version {version}")),
            )?;
            Ok(PutAnalytics::Stored(version))
        })()
        .map_err(sqlerr(&p, "cannot store analytics"))?;
        tx.commit().map_err(sqlerr(&p, "cannot commit analytics"))?;
        Ok(out)
    }
}

/// What a new analytics version is made from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VersionBase {
    /// The version the change was edited from (none: not checked; 0: none yet); another
    /// stored meanwhile is a conflict.
    pub expected: Option<i64>,
    /// The newest version the site ran or refused (0: none known).
    pub site_has: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_grow_and_a_stale_base_is_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("t.db"), &dir.path().join("snaps")).unwrap();
        let put = |s: &mut Store, cfg: &str, expected| {
            let base = VersionBase {
                expected,
                site_has: 0,
            };
            s.put_analytics("a", "gate", cfg, base, "lan", 5)
        };
        assert_eq!(put(&mut s, "{}", Some(0)).unwrap(), PutAnalytics::Stored(1));
        assert_eq!(
            put(&mut s, "{\"zones\":[]}", None).unwrap(),
            PutAnalytics::Stored(2)
        );
        assert_eq!(
            put(&mut s, "{}", Some(1)).unwrap(),
            PutAnalytics::Conflict(2)
        );
        let v = s.analytics_versions("a", "gate", 10).unwrap();
        assert_eq!(v.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
        // A center whose database was replaced: the site runs version 7 of an older one.
        let base = VersionBase {
            expected: Some(0),
            site_has: 7,
        };
        assert_eq!(
            s.put_analytics("a", "new-cam", "{}", base, "lan", 6)
                .unwrap(),
            PutAnalytics::Stored(8),
            "above what the site knows"
        );
        assert_eq!(v[0].config, "{\"zones\":[]}");
        assert!(s.analytics_versions("a", "other", 10).unwrap().is_empty());
        let trail = s.audit_trail(None).unwrap();
        assert!(trail
            .iter()
            .any(|a| a.action == "analytics"
                && a.note.as_deref() == Some("a/gate: analytics version 2")));
    }
}
