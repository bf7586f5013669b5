//! What the engine judges per zone, over every track in it: crowd and congestion.

use super::*;

/// Zone-level rules: crowd and congestion.
pub(super) fn judge_aggregates(
    cx: &mut Cx<'_>,
    rules: &mut [Rule],
    ctxs: &HashMap<u64, TrackCtx>,
    tracks: &[Track],
    t: f64,
) {
    for rule in rules.iter_mut() {
        if !matches!(rule.kind, RuleKind::Crowd | RuleKind::Congestion) {
            continue;
        }
        let Some(zi) = rule.zone else { continue };
        let congestion = rule.kind == RuleKind::Congestion;
        // Taken out (and put back below) so the closure does not borrow the rule it updates;
        // a clone would allocate every frame.
        let (classes, max_speed) = (rule.classes.take(), rule.max_speed);
        let members = || {
            tracks.iter().filter(|tr| {
                tr.is_credible()
                    && accepts(classes.as_deref(), tr.class_id())
                    && ctxs.get(&tr.id()).is_some_and(|c| c.zones[zi].inside)
                    && (!congestion || slow(max_speed, tr))
            })
        };
        let count = members().count() as u32;
        let raw = rule.armed(cx.frame.local) && count >= rule.min_count;
        let cleared = rule.agg.hold.update(raw, t, rule.clear, t);
        let held = rule.agg.hold.held(t);
        let mut details = EventDetails {
            count: Some(count),
            ..EventDetails::default()
        };
        if congestion && count > 0 {
            let unit = rule.max_speed.unit;
            let sum: f64 = members().filter_map(|tr| tr.speed(unit)).sum();
            details.speed = Some(SpeedValue {
                value: sum / f64::from(count),
                unit,
            });
        }
        match (rule.agg.incident, cleared) {
            (Some(inc), Some(ended)) => {
                rule.agg.incident = None;
                details.dwell_sec = Some(ended - inc.started_at);
                let ev = event(
                    rule,
                    cx,
                    inc.id,
                    Phase::End,
                    inc.started_at,
                    Some(ended),
                    Vec::new(),
                    details,
                );
                cx.out.events.push(ev);
            }
            (Some(inc), None) if raw && count != rule.agg.last_count => {
                rule.agg.last_count = count;
                details.dwell_sec = Some(t - inc.started_at);
                let objs = members().map(|tr| object(tr, cx.class_names)).collect();
                let ev = event(
                    rule,
                    cx,
                    inc.id,
                    Phase::Update,
                    inc.started_at,
                    None,
                    objs,
                    details,
                );
                cx.out.events.push(ev);
            }
            (None, _) if held.is_some_and(|h| h >= rule.min_dur) && rule.cooled(t) => {
                let started = t - held.unwrap_or(0.0);
                let id = cx.new_incident();
                rule.last_fire = Some(t);
                rule.agg.incident = Some(Incident {
                    id,
                    started_at: started,
                });
                rule.agg.last_count = count;
                details.dwell_sec = held;
                let objs = members().map(|tr| object(tr, cx.class_names)).collect();
                let ev = event(rule, cx, id, Phase::Start, started, None, objs, details);
                cx.out.events.push(ev);
            }
            _ => {}
        }
        rule.classes = classes;
    }
}
