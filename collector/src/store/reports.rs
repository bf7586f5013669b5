//! Read-only aggregates: health of agents and cameras, chart statistics, the daily report.
//! Days and hours are local to the configured UTC offset (`offset_ms`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::db::{DbError, ToArg};
use super::{Store, StoreError};
use crate::incident::{camera_states, camera_up, is_fresh, ts};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// One agent's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentHealth {
    /// Agent (site) id.
    pub site: String,
    /// The site's name for people, from its status (`[agent] name`).
    pub name: Option<String>,
    /// `online` / `offline`, or `unknown` when no live status confirmed it within
    /// `[incidents] stale_after_sec` (see `last_state`).
    pub state: String,
    /// What the agent last said, however old.
    pub last_state: String,
    /// When a live status last confirmed it (the collector's clock).
    pub heard_at: Option<String>,
    /// Its age at the time of the answer, seconds.
    pub age_s: Option<i64>,
    /// Agent clock minus collector clock on its last live status, ms (positive: ahead).
    pub clock_skew_ms: Option<i64>,
    /// What the agent says about its clock (`ok`, `before_build`, `jumped`), if anything.
    pub clock: Option<String>,
    /// Agent version.
    pub version: String,
    /// Since when in this state.
    pub since: Option<String>,
    /// Last status time (the agent's clock).
    pub at: String,
    /// Events stored.
    pub events: i64,
    /// Highest seq stored.
    pub max_seq: i64,
}

/// One camera's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraHealth {
    /// Agent (site) id.
    pub site: String,
    /// Camera id.
    pub camera: String,
    /// The camera's name for people, from its status.
    pub name: Option<String>,
    /// `streaming`, `reconnecting`, …, or `unknown` when not confirmed recently (see
    /// [`AgentHealth::state`]).
    pub state: String,
    /// What the agent last said about it, however old.
    pub last_state: String,
    /// When a live status last confirmed it.
    pub heard_at: Option<String>,
    /// Its age at the time of the answer, seconds.
    pub age_s: Option<i64>,
    /// Frames per second received, if streaming.
    pub fps: Option<f64>,
    /// Frames per second the agent analysed (detected, or judged still), if streaming.
    pub detect_fps: Option<f64>,
    /// The analysis rate the camera is configured for.
    pub target_fps: Option<f64>,
    /// Frames dropped in the agent's last interval because its detectors were busy.
    pub dropped: Option<i64>,
    /// Median time from decoded frame to detections, milliseconds.
    pub detect_latency_ms: Option<f64>,
    /// Why it is not streaming.
    pub error: Option<String>,
    /// Since when in this state.
    pub since: Option<String>,
    /// Open incidents of this camera.
    pub open_incidents: i64,
}

/// Agents and cameras.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// Every agent with a status.
    pub agents: Vec<AgentHealth>,
    /// Every camera with a status.
    pub cameras: Vec<CameraHealth>,
    /// When this answer was made.
    pub now: String,
    /// How old a state may be before it is shown as unknown, seconds.
    pub stale_after_s: i64,
}

/// Chart data for the console.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// `(day "YYYY-MM-DD", kind, incidents)`.
    pub per_day_kind: Vec<(String, String, i64)>,
    /// `(hour 0..23, kind, incidents)` over the whole range.
    pub per_hour_kind: Vec<(i64, String, i64)>,
    /// `(day, site, camera, line, class, direction, count)`.
    pub counts: Vec<(String, String, String, String, String, String, i64)>,
    /// Incidents by state now, over the range.
    pub per_state: Vec<(String, i64)>,
}

/// Median and 90th percentile of a duration, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Durations {
    /// How many incidents the figures cover.
    pub n: usize,
    /// Median seconds.
    pub median_s: Option<f64>,
    /// 90th percentile seconds.
    pub p90_s: Option<f64>,
}

/// One camera's uptime over the report's day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uptime {
    /// Site (agent).
    pub site: String,
    /// Camera.
    pub camera: String,
    /// Share of the observed part of the day with frames arriving (0..1).
    pub uptime: f64,
    /// How much of the day the collector knew the camera's state, in seconds.
    pub observed_s: i64,
}

/// Everything the daily report shows, for one local day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyReport {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The UTC offset the day is counted in, in minutes.
    pub utc_offset_minutes: i64,
    /// Incidents opened that day.
    pub total: i64,
    /// By kind, most first.
    pub by_kind: Vec<(String, i64)>,
    /// By site, most first.
    pub by_site: Vec<(String, i64)>,
    /// 24 buckets.
    pub by_hour: Vec<i64>,
    /// By state now.
    pub by_state: Vec<(String, i64)>,
    /// Escalated at least once.
    pub overdue: i64,
    /// Creation to acknowledgement.
    pub time_to_acknowledge: Durations,
    /// Creation to resolution (resolved only).
    pub time_to_resolve: Durations,
    /// Dismissed / (resolved + dismissed), if any closed.
    pub false_alarm_share: Option<f64>,
    /// Per camera.
    pub uptime: Vec<Uptime>,
    /// `(site, camera, line, class, direction, count)`.
    pub counts: Vec<(String, String, String, String, String, i64)>,
    /// The day's incidents in time order (line counts at severity info left out: they are
    /// in `counts`), at most [`REPORT_INCIDENTS`].
    pub incidents: Vec<ReportIncident>,
}

/// The most incidents a daily report lists (the figures count them all).
pub const REPORT_INCIDENTS: i64 = 500;

/// One incident of the day, as a leader reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportIncident {
    /// Incident id.
    pub id: i64,
    /// When it began.
    pub first_at_ms: i64,
    /// Site id, and its name if its status gave one.
    pub site: String,
    /// The site's name.
    pub site_name: Option<String>,
    /// Camera id (empty for an agent incident).
    pub camera: String,
    /// The camera's name.
    pub camera_name: Option<String>,
    /// Kind.
    pub kind: String,
    /// Zone or line.
    pub place: String,
    /// The agent's rule.
    pub rule: Option<String>,
    /// Severity.
    pub severity: String,
    /// State now.
    pub state: String,
    /// Who closed it, else who acknowledged it.
    pub handled_by: Option<String>,
    /// The operators' notes, in order.
    pub notes: Vec<String>,
    /// The event whose snapshot shows it.
    pub snapshot: Option<String>,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` of day number `z`.
pub fn day_name(z: i64) -> String {
    let (y, m, d) = civil_from_days(z);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `YYYY-MM-DD` into a day number.
pub fn parse_day(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) || s.len() != 10 {
        return None;
    }
    let z = days_from_civil(y, m, d);
    (civil_from_days(z) == (y, m, d)).then_some(z)
}

fn durations(mut v: Vec<i64>) -> Durations {
    v.sort_unstable();
    let pick = |q: f64| -> Option<f64> {
        if v.is_empty() {
            return None;
        }
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        Some(v[i] as f64 / 1000.0)
    };
    Durations {
        n: v.len(),
        median_s: pick(0.5),
        p90_s: pick(0.9),
    }
}

impl Store {
    /// Agents and cameras with their current state.
    pub fn health(&self, now_ms: i64) -> Result<Health, StoreError> {
        let e = || self.err("cannot read health");
        let policy = self.policy;
        let fresh = |state: String, heard: Option<i64>| {
            let shown = if is_fresh(heard, now_ms, &policy) {
                state.clone()
            } else {
                "unknown".to_owned()
            };
            (
                shown,
                state,
                heard.map(|h| ts(h).as_str().to_owned()),
                heard.map(|h| now_ms.saturating_sub(h).max(0) / 1000),
            )
        };
        let agents = self
            .db
            .query(
                "SELECT a.agent, a.state, a.version, a.since_ms, a.at, \
                 (SELECT COUNT(*) FROM events e WHERE e.agent = a.agent), \
                 (SELECT COALESCE(MAX(seq), 0) FROM events e WHERE e.agent = a.agent), \
                 a.heard_at_ms, a.clock_skew_ms, a.clock, a.name \
                 FROM agents a ORDER BY a.agent",
                &[],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        let (state, last_state, heard_at, age_s) = fresh(r.get(1)?, r.get(7)?);
                        Ok(AgentHealth {
                            site: r.get(0)?,
                            name: r.get(10)?,
                            state,
                            last_state,
                            heard_at,
                            age_s,
                            clock_skew_ms: r.get(8)?,
                            clock: r.get(9)?,
                            version: r.get(2)?,
                            since: r.get::<Option<i64>>(3)?.map(|m| ts(m).as_str().to_owned()),
                            at: r.get(4)?,
                            events: r.get(5)?,
                            max_seq: r.get(6)?,
                        })
                    })
                    .collect()
            })
            .map_err(e())?;
        let cameras = self
            .db
            .query(
                "SELECT c.agent, c.camera, c.state, c.fps, c.error, c.since_ms, \
                 (SELECT COUNT(*) FROM incidents i WHERE i.agent = c.agent \
                  AND i.camera = c.camera AND i.state IN ('open', 'acknowledged')), \
                 c.detect_fps, c.target_fps, c.dropped, c.detect_latency_ms, c.heard_at_ms, \
                 c.name \
                 FROM cameras c ORDER BY c.agent, c.camera",
                &[],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        let (state, last_state, heard_at, age_s) = fresh(r.get(2)?, r.get(11)?);
                        Ok(CameraHealth {
                            site: r.get(0)?,
                            camera: r.get(1)?,
                            name: r.get(12)?,
                            state,
                            last_state,
                            heard_at,
                            age_s,
                            fps: r.get(3)?,
                            detect_fps: r.get(7)?,
                            target_fps: r.get(8)?,
                            dropped: r.get(9)?,
                            detect_latency_ms: r.get(10)?,
                            error: r.get(4)?,
                            since: r.get::<Option<i64>>(5)?.map(|m| ts(m).as_str().to_owned()),
                            open_incidents: r.get(6)?,
                        })
                    })
                    .collect()
            })
            .map_err(e())?;
        Ok(Health {
            agents,
            cameras,
            now: ts(now_ms).as_str().to_owned(),
            stale_after_s: policy.stale_after_ms / 1000,
        })
    }

    /// Chart data for incidents first seen in `[from_ms, to_ms)`.
    pub fn stats(&self, from_ms: i64, to_ms: i64, offset_ms: i64) -> Result<Stats, StoreError> {
        let e = || self.err("cannot compute statistics");
        let q = |sql: &str, args: &[&dyn ToArg]| self.db.query(sql, args).map_err(e());
        let per_day_kind = q(
            "SELECT (first_at_ms + ?3) / 86400000, kind, COUNT(*) FROM incidents \
             WHERE first_at_ms >= ?1 AND first_at_ms < ?2 GROUP BY 1, 2 ORDER BY 1, 2",
            &[&from_ms, &to_ms, &offset_ms],
        )?
        .iter()
        .map(|r| Ok((day_name(r.get(0)?), r.get(1)?, r.get(2)?)))
        .collect::<Result<_, DbError>>()
        .map_err(e())?;
        let per_hour_kind = q(
            "SELECT ((first_at_ms + ?3) % 86400000) / 3600000, kind, COUNT(*) FROM incidents \
             WHERE first_at_ms >= ?1 AND first_at_ms < ?2 GROUP BY 1, 2 ORDER BY 1, 2",
            &[&from_ms, &to_ms, &offset_ms],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .collect::<Result<_, DbError>>()
        .map_err(e())?;
        let counts = q(
            "SELECT (interval_start_ms + ?3) / 86400000, agent, camera, line, class, direction, \
             CAST(SUM(count) AS BIGINT) FROM count_items \
             WHERE interval_start_ms >= ?1 AND interval_start_ms < ?2 \
             GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6",
            &[&from_ms, &to_ms, &offset_ms],
        )?
        .iter()
        .map(|r| {
            Ok((
                day_name(r.get(0)?),
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .collect::<Result<_, DbError>>()
        .map_err(e())?;
        let per_state = q(
            "SELECT state, COUNT(*) FROM incidents \
             WHERE first_at_ms >= ?1 AND first_at_ms < ?2 GROUP BY 1 ORDER BY 1",
            &[&from_ms, &to_ms],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect::<Result<_, DbError>>()
        .map_err(e())?;
        Ok(Stats {
            per_day_kind,
            per_hour_kind,
            counts,
            per_state,
        })
    }

    /// The daily report of local day `day` (days since 1970-01-01), as of `now_ms`.
    pub fn daily_report(
        &self,
        day: i64,
        utc_offset_minutes: i64,
        now_ms: i64,
    ) -> Result<DailyReport, StoreError> {
        let e = || self.err("cannot compute the daily report");
        let off = utc_offset_minutes * 60_000;
        let start = day * DAY_MS - off;
        let end = start + DAY_MS;
        let pairs = |sql: &str| -> Result<Vec<(String, i64)>, StoreError> {
            self.db
                .query(sql, &[&start, &end])
                .and_then(|rows| rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect())
                .map_err(e())
        };
        let by_kind = pairs(
            "SELECT kind, COUNT(*) FROM incidents WHERE first_at_ms >= ?1 AND first_at_ms < ?2 \
             GROUP BY 1 ORDER BY 2 DESC, 1",
        )?;
        let by_site = pairs(
            "SELECT agent, COUNT(*) FROM incidents WHERE first_at_ms >= ?1 AND first_at_ms < ?2 \
             GROUP BY 1 ORDER BY 2 DESC, 1",
        )?;
        let by_state = pairs(
            "SELECT state, COUNT(*) FROM incidents WHERE first_at_ms >= ?1 AND first_at_ms < ?2 \
             GROUP BY 1 ORDER BY 1",
        )?;
        let mut by_hour = vec![0i64; 24];
        let mut overdue = 0;
        let mut to_ack = Vec::new();
        let mut to_resolve = Vec::new();
        let rows = self
            .db
            .query(
                "SELECT first_at_ms, created_at_ms, acked_at_ms, closed_at_ms, state, escalations \
                 FROM incidents WHERE first_at_ms >= ?1 AND first_at_ms < ?2",
                &[&start, &end],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.get::<i64>(0)?,
                            r.get::<i64>(1)?,
                            r.get::<Option<i64>>(2)?,
                            r.get::<Option<i64>>(3)?,
                            r.get::<String>(4)?,
                            r.get::<i64>(5)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, DbError>>()
            })
            .map_err(e())?;
        let total = rows.len() as i64;
        let (mut resolved, mut dismissed) = (0, 0);
        for (first, created, acked, closed, state, esc) in rows {
            by_hour[((first - start) / HOUR_MS).clamp(0, 23) as usize] += 1;
            if esc > 0 {
                overdue += 1;
            }
            if let Some(a) = acked {
                to_ack.push((a - created).max(0));
            }
            match (state.as_str(), closed) {
                ("resolved", Some(c)) => {
                    resolved += 1;
                    to_resolve.push((c - created).max(0));
                }
                ("dismissed", _) => dismissed += 1,
                _ => {}
            }
        }
        let false_alarm_share =
            (resolved + dismissed > 0).then(|| dismissed as f64 / (resolved + dismissed) as f64);
        let uptime = self.uptime(start, end.min(now_ms))?;
        let counts = self
            .db
            .query(
                "SELECT agent, camera, line, class, direction, CAST(SUM(count) AS BIGINT) \
                 FROM count_items WHERE interval_start_ms >= ?1 AND interval_start_ms < ?2 \
                 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
                &[&start, &end],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    })
                    .collect()
            })
            .map_err(e())?;
        let mut incidents: Vec<ReportIncident> = self
            .db
            .query(
                "SELECT i.id, i.first_at_ms, i.agent, a.name, i.camera, c.name, i.kind, i.place, \
                 i.rule, i.severity, i.state, COALESCE(i.closed_by, i.acked_by), \
                 i.snapshot_event_id FROM incidents i \
                 LEFT JOIN agents a ON a.agent = i.agent \
                 LEFT JOIN cameras c ON c.agent = i.agent AND c.camera = i.camera \
                 WHERE i.first_at_ms >= ?1 AND i.first_at_ms < ?2 \
                 AND NOT (i.kind = 'line_crossing' AND i.severity = 'info') \
                 ORDER BY i.first_at_ms, i.id LIMIT ?3",
                &[&start, &end, &REPORT_INCIDENTS],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok(ReportIncident {
                            id: r.get(0)?,
                            first_at_ms: r.get(1)?,
                            site: r.get(2)?,
                            site_name: r.get(3)?,
                            camera: r.get(4)?,
                            camera_name: r.get(5)?,
                            kind: r.get(6)?,
                            place: r.get(7)?,
                            rule: r.get(8)?,
                            severity: r.get(9)?,
                            state: r.get(10)?,
                            handled_by: r.get(11)?,
                            notes: Vec::new(),
                            snapshot: r.get(12)?,
                        })
                    })
                    .collect()
            })
            .map_err(e())?;
        // The operators' notes (not the system's), one query for the day.
        let notes = self
            .db
            .query(
                "SELECT a.incident_id, a.note FROM audit a JOIN incidents i ON i.id = a.incident_id \
                 WHERE i.first_at_ms >= ?1 AND i.first_at_ms < ?2 AND a.note IS NOT NULL \
                 AND a.note <> '' AND a.actor <> ?3 ORDER BY a.id",
                &[&start, &end, &crate::incident::SYSTEM],
            )
            .map_err(e())?;
        for r in &notes {
            let (id, note): (i64, String) = (r.get(0).map_err(e())?, r.get(1).map_err(e())?);
            if let Some(i) = incidents.iter_mut().find(|i| i.id == id) {
                i.notes.push(note);
            }
        }
        Ok(DailyReport {
            incidents,
            date: day_name(day),
            utc_offset_minutes,
            total,
            by_kind,
            by_site,
            by_hour,
            by_state,
            overdue,
            time_to_acknowledge: durations(to_ack),
            time_to_resolve: durations(to_resolve),
            false_alarm_share,
            uptime,
            counts,
        })
    }

    /// Per camera, the share of `[start, end)` with frames arriving, from the state history.
    fn uptime(&self, start: i64, end: i64) -> Result<Vec<Uptime>, StoreError> {
        let e = || self.err("cannot compute uptime");
        let rows = self
            .db
            .query(
                "SELECT agent, camera, state, at_ms FROM camera_history WHERE at_ms < ?1 \
                 ORDER BY agent, camera, at_ms",
                &[&end],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.get::<String>(0)?,
                            r.get::<String>(1)?,
                            r.get::<String>(2)?,
                            r.get::<i64>(3)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, DbError>>()
            })
            .map_err(e())?;
        let mut per_cam: BTreeMap<(String, String), Vec<(String, i64)>> = BTreeMap::new();
        for (a, c, s, at) in rows {
            per_cam.entry((a, c)).or_default().push((s, at));
        }
        let mut out = Vec::new();
        let up_states = camera_states(camera_up);
        for ((site, camera), hist) in per_cam {
            let (mut up, mut seen) = (0i64, 0i64);
            for (i, (state, at)) in hist.iter().enumerate() {
                let from = (*at).max(start);
                let to = hist.get(i + 1).map_or(end, |(_, next)| *next).min(end);
                if to > from {
                    seen += to - from;
                    if up_states.contains(&state.as_str()) {
                        up += to - from;
                    }
                }
            }
            if seen > 0 {
                out.push(Uptime {
                    site,
                    camera,
                    uptime: up as f64 / seen as f64,
                    observed_s: seen / 1000,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(day_name(19_844), "2024-05-01");
        for z in [-1000, 0, 59, 60, 11_016, 19_844, 30_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(parse_day("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        assert_eq!(parse_day("2023-02-29"), None);
        assert_eq!(parse_day("2024-2-1"), None);
        assert_eq!(parse_day("x"), None);
    }

    #[test]
    fn percentiles() {
        let d = durations(vec![5000, 1000, 3000, 2000, 4000]);
        assert_eq!(d.n, 5);
        assert_eq!(d.median_s, Some(3.0));
        assert_eq!(d.p90_s, Some(5.0));
        assert_eq!(durations(vec![]).median_s, None);
    }
}
