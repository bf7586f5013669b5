//! What the engine judges per track: zone membership and transits, line crossings, the
//! lasting per-object rules (loitering, stopped vehicle, wrong way), a lost track's
//! reacquisition and its end.

use super::*;
use crate::appearance::SAME_OBJECT;

/// One new ground point of a track: zone membership, zone transits, line crossings.
pub(super) fn step_point(
    cx: &mut Cx<'_>,
    rules: &mut [Rule],
    ctx: &mut TrackCtx,
    tr: &Track,
    p: Point,
    t: f64,
) {
    for (zi, zone) in cx.zones.iter().enumerate() {
        let raw = zone.poly.contains(p);
        let zm = &mut ctx.zones[zi];
        if raw != zm.inside {
            if zm.streak == 0 {
                zm.streak_t = t;
            }
            zm.streak += 1;
            let need = if zm.inside { zone.exit } else { zone.enter };
            if need.met(zm.streak, t - zm.streak_t) {
                zm.inside = raw;
                zm.streak = 0;
                if raw {
                    zm.entered_at = zm.streak_t;
                    zm.last_out = None;
                }
            }
        } else {
            zm.streak = 0;
        }
        if !raw && !zm.inside {
            let transit = zm
                .last_out
                .is_some_and(|lo| zone.poly.proper_crossings(lo, p) >= 2);
            zm.last_out = Some(p);
            if transit {
                zone_transit(cx, rules, ctx, tr, zi, t);
            }
        }
    }
    for li in 0..cx.lines.len() {
        let line = &cx.lines[li];
        let lm = &mut ctx.lines[li];
        let s = line.side(p);
        let mut crossed = None;
        if let (Some(cur), Some(s)) = (lm.side, s) {
            if let Some(pd) = lm.pending.as_mut() {
                if s == pd.to {
                    pd.frames += 1;
                } else {
                    lm.pending = None; // back where it came from: jitter on the line
                }
            } else if s != cur {
                let through = lm.last_off.is_some_and(|lo| {
                    segment_contact(lo, p, line.a, line.b) != SegmentContact::None
                });
                if through {
                    lm.pending = Some(Pending {
                        to: s,
                        frames: 1,
                        t,
                        heading: lm.last_off.and_then(|lo| (p - lo).heading_deg()),
                    });
                } else {
                    lm.side = Some(s); // went round the end of the line
                }
            }
            if let Some(pd) = lm.pending {
                if line.confirm.met(pd.frames, t - pd.t) {
                    lm.side = Some(pd.to);
                    lm.pending = None;
                    crossed = Some(pd);
                }
            }
        } else if lm.side.is_none() {
            lm.side = s;
        }
        if s.is_some() {
            lm.last_off = Some(p);
        }
        if let Some(pd) = crossed {
            let dir = if pd.to == line.in_side {
                CrossDirection::In
            } else {
                CrossDirection::Out
            };
            line_crossed(cx, rules, tr, li, dir, pd);
        }
    }
}

fn zone_transit(
    cx: &mut Cx<'_>,
    rules: &mut [Rule],
    ctx: &mut TrackCtx,
    tr: &Track,
    zi: usize,
    t: f64,
) {
    for (ri, rule) in rules.iter_mut().enumerate() {
        if rule.kind != RuleKind::Intrusion
            || rule.zone != Some(zi)
            || !rule.accepts(tr.class_id())
            || !rule.armed(cx.frame.local)
            || ctx.rules[ri].incident.is_some()
            || !rule.cooled(cx.frame.t_sec)
        {
            continue;
        }
        rule.last_fire = Some(cx.frame.t_sec);
        let id = cx.new_incident();
        let mut d = EventDetails {
            transit: true,
            ..EventDetails::default()
        };
        speed_details(tr, &mut d);
        let ev = event(
            rule,
            cx,
            id,
            Phase::Instant,
            t,
            Some(t),
            vec![object(tr, cx.class_names)],
            d,
        );
        cx.out.events.push(ev);
    }
}

fn line_crossed(
    cx: &mut Cx<'_>,
    rules: &mut [Rule],
    tr: &Track,
    li: usize,
    dir: CrossDirection,
    pd: Pending,
) {
    if cx.lines[li].count {
        if let Some(c) = cx.counts[li].get_mut(usize::from(tr.class_id())) {
            c[usize::from(dir == CrossDirection::Out)] += 1;
        }
    }
    for rule in rules.iter_mut() {
        if rule.kind != RuleKind::LineCrossing
            || rule.line != Some(li)
            || !rule.accepts(tr.class_id())
            || !(rule.direction == CrossDirection::Both || rule.direction == dir)
            || !rule.armed(cx.frame.local)
            || !rule.cooled(cx.frame.t_sec)
        {
            continue;
        }
        rule.last_fire = Some(cx.frame.t_sec);
        let id = cx.new_incident();
        let mut d = EventDetails {
            direction: Some(dir),
            heading_deg: pd.heading,
            ..EventDetails::default()
        };
        speed_details(tr, &mut d);
        let ev = event(
            rule,
            cx,
            id,
            Phase::Instant,
            pd.t,
            Some(pd.t),
            vec![object(tr, cx.class_names)],
            d,
        );
        cx.out.events.push(ev);
    }
}

/// Per-track rules (intrusion, loitering, stopped vehicle, wrong way) after a frame's points.
pub(super) fn judge_track(
    cx: &mut Cx<'_>,
    rules: &mut [Rule],
    ctx: &mut TrackCtx,
    tr: &Track,
    t: f64,
) {
    for (ri, rule) in rules.iter_mut().enumerate() {
        let Some(zi) = rule.zone else { continue };
        if !rule.accepts(tr.class_id()) {
            continue;
        }
        let zm = ctx.zones[zi];
        let armed = rule.armed(cx.frame.local);
        let tstate = &mut ctx.rules[ri];
        let (raw, hint) = match rule.kind {
            RuleKind::Intrusion | RuleKind::Loitering => (armed && zm.inside, zm.entered_at),
            RuleKind::StoppedVehicle => (armed && zm.inside && rule.slow(tr), t),
            RuleKind::WrongWay => {
                if armed && zm.inside && !tstate.latched && rule.cooled(t) {
                    if let Some(heading) = wrong_way(rule, tr, zm.entered_at, t) {
                        tstate.latched = true;
                        rule.last_fire = Some(t);
                        let id = cx.new_incident();
                        let mut d = EventDetails {
                            heading_deg: Some(heading),
                            ..EventDetails::default()
                        };
                        speed_details(tr, &mut d);
                        let ev = event(
                            rule,
                            cx,
                            id,
                            Phase::Instant,
                            t,
                            Some(t),
                            vec![object(tr, cx.class_names)],
                            d,
                        );
                        cx.out.events.push(ev);
                    }
                }
                continue;
            }
            _ => continue,
        };
        let cleared = tstate.hold.update(raw, t, rule.clear, hint);
        let held = tstate.hold.held(t);
        match (tstate.incident, cleared) {
            (Some(inc), Some(ended)) => {
                tstate.incident = None;
                let mut d = EventDetails {
                    dwell_sec: Some(ended - inc.started_at),
                    ..EventDetails::default()
                };
                speed_details(tr, &mut d);
                let ev = event(
                    rule,
                    cx,
                    inc.id,
                    Phase::End,
                    inc.started_at,
                    Some(ended),
                    vec![object(tr, cx.class_names)],
                    d,
                );
                cx.out.events.push(ev);
            }
            (None, _) if held.is_some_and(|h| h >= rule.min_dur) && rule.cooled(t) => {
                let started = t - held.unwrap_or(0.0);
                let id = cx.new_incident();
                rule.last_fire = Some(t);
                tstate.incident = Some(Incident {
                    id,
                    started_at: started,
                });
                let mut d = EventDetails {
                    dwell_sec: held,
                    ..EventDetails::default()
                };
                speed_details(tr, &mut d);
                let ev = event(
                    rule,
                    cx,
                    id,
                    Phase::Start,
                    started,
                    None,
                    vec![object(tr, cx.class_names)],
                    d,
                );
                cx.out.events.push(ev);
            }
            _ => {}
        }
    }
}

/// Heading of the track's recent net displacement if it goes against the lane far enough.
fn wrong_way(rule: &Rule, tr: &Track, entered_at: f64, t: f64) -> Option<f64> {
    let hist = tr.history();
    let now = hist.back()?;
    let from = (t - WRONG_WAY_WINDOW_SEC).max(entered_at);
    let k = hist.partition_point(|h| h.t_sec < from);
    let then = hist.get(k)?;
    let d_img = now.ground - then.ground;
    let dist = match rule.min_dist.unit {
        LengthUnit::Norm => d_img.norm(),
        LengthUnit::Metres => then.ground_m?.dist(now.ground_m?),
    };
    if dist < rule.min_dist.value || dist <= 0.0 {
        return None;
    }
    let heading = d_img.heading_deg()?;
    // The box's extent along the heading (both in normalised image units, as the displacement).
    let b = tr.bbox();
    let u = Point::from_heading_deg(heading);
    let length = u.x.abs() * b.width() + u.y.abs() * b.height();
    if d_img.norm() < WRONG_WAY_MIN_LENGTHS * length {
        return None;
    }
    (angle_diff_deg(heading, rule.lane_deg + 180.0) <= rule.tol_deg).then_some(heading)
}

/// Whether the timers of `c` (a stationary track lost or dropped) may be those of the object
/// of `tr`, a new track born at `born`: same class, born where that object stood, within half
/// a width of its whole box across (it may reappear part by part from behind what hid it, and
/// a box shifted by more than about half its width is what the tracker fails to match), and on
/// its ground line.
fn stood_here(c: &TrackCtx, tr: &Track, born: Point) -> bool {
    let b = c.still_box.unwrap_or(c.bbox);
    let (w, h) = (b.width(), b.height());
    let (x1, x2) = (f64::from(b.x1), f64::from(b.x2));
    c.class_id == tr.class_id()
        && c.still
        && !c.retired
        && c.has_rule_state()
        && place(c).is_some_and(|p| {
            (born.y - p.y).abs() <= REACQUIRE_RADIUS_H * h
                && born.x >= x1 - 0.5 * w
                && born.x <= x2 + 0.5 * w
        })
}

fn place(c: &TrackCtx) -> Option<Point> {
    c.still_at.or(c.prev)
}

/// Whether the object of `c` and that of `tr` may be one: they look alike, or either was never
/// seen in the clear (then the place alone decides, as it did before looks).
fn looks_agree(c: &TrackCtx, tr: &Track) -> bool {
    match (c.look.as_ref(), tr.look()) {
        (Some(a), Some(b)) => a.similarity(b) >= SAME_OBJECT,
        _ => true,
    }
}

/// Whether a new track, not yet seen in the clear, was born where a stationary object that was
/// seen in the clear stood: its look will say whether it takes over that object's timers.
pub(super) fn reacquire_pending(
    tr: &Track,
    tracks: &[Track],
    ctxs: &HashMap<u64, TrackCtx>,
    ghosts: &[Ghost],
) -> bool {
    let Some(born) = tr.history().front().map(|h| h.ground) else {
        return false;
    };
    let waits = |c: &TrackCtx| c.look.is_some() && stood_here(c, tr, born);
    tracks
        .iter()
        .filter(|o| o.id() != tr.id() && o.state() == TrackState::Lost)
        .filter_map(|o| ctxs.get(&o.id()))
        .any(waits)
        || ghosts.iter().any(|g| waits(&g.ctx))
}

/// The zone state a new track takes over: that of a stationary track of the same class that
/// was lost or dropped where the new one was born and looks like it (an id switch behind
/// passers-by, a parked car re-found after a bus; not someone else stopping on the spot the
/// first one left). A lost donor is retired, so its state lives on in one place only.
pub(super) fn reacquire(
    tr: &Track,
    tracks: &[Track],
    ctxs: &mut HashMap<u64, TrackCtx>,
    ghosts: &mut Vec<Ghost>,
) -> Option<TrackCtx> {
    let born = tr.history().front()?.ground;
    let near = |c: &TrackCtx| stood_here(c, tr, born) && looks_agree(c, tr);
    let dist = |c: &TrackCtx| place(c).map_or(f64::INFINITY, |p| p.dist(born));
    let lost = tracks
        .iter()
        .filter(|o| o.id() != tr.id() && o.state() == TrackState::Lost)
        .filter_map(|o| ctxs.get(&o.id()).map(|c| (o.id(), dist(c), near(c))))
        .filter(|(_, _, ok)| *ok)
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let ghost = ghosts
        .iter()
        .enumerate()
        .filter(|(_, g)| near(&g.ctx))
        .map(|(i, g)| (i, dist(&g.ctx)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match (lost, ghost) {
        (Some((id, d, _)), g) if g.is_none_or(|(_, gd)| d <= gd) => {
            let donor = ctxs.get_mut(&id)?;
            let mut c = TrackCtx {
                zones: donor.zones.clone(),
                lines: donor.lines.clone(),
                rules: donor.rules.clone(),
                ..TrackCtx::default()
            };
            // The donor keeps its place in the map (the tracker still reports it) but
            // hands over everything it was timing.
            for r in &mut donor.rules {
                *r = TrackRule::default();
            }
            donor.retired = true;
            c.last_t = donor.last_t;
            c.last_frame = donor.last_frame;
            c.prev = donor.prev;
            c.still_at = donor.still_at;
            c.still_box = donor.still_box;
            c.look = donor.look;
            c.still_look = donor.still_look;
            c.still_t = donor.still_t;
            c.frozen = true;
            Some(c)
        }
        (_, Some((i, _))) => {
            let mut c = ghosts.swap_remove(i).ctx;
            c.frozen = true;
            Some(c)
        }
        _ => None,
    }
}

/// Gives timers back to the object they belong to after the tracker swapped two ids: a track
/// `a` that stood still (with timers) now moves off, and a live track `b` stands on `a`'s spot;
/// if what `b` shows now looks like the object that stood there (by a margin more than what `a`
/// shows now), the two were swapped as one passed the other (one box for both for a frame or
/// two, then each id followed the other person), and their zone and rule states change places.
/// Someone else arriving as the first leaves looks like someone else, and nothing changes.
pub(super) fn repair_swaps(tracks: &[Track], ctxs: &mut HashMap<u64, TrackCtx>, t: f64) {
    let live = |tr: &&Track| tr.is_credible() && tr.state() == TrackState::Tracked;
    for a in tracks.iter().filter(live) {
        let Some(ca) = ctxs.get(&a.id()) else {
            continue;
        };
        let Some(was) = ca.still_look else { continue };
        if ca.retired
            || !ca.has_rule_state()
            || a.still_sec(t) > 0.0
            || t - ca.still_t > SWAP_WINDOW_SEC
        {
            continue;
        }
        // What `a` shows since it set off.
        let Some((now_a, _)) = a.last_clear_look().filter(|(_, at)| *at > ca.still_t) else {
            continue;
        };
        let left = was.similarity(now_a);
        let best = tracks
            .iter()
            .filter(live)
            .filter(|b| b.id() != a.id() && b.class_id() == a.class_id())
            .filter_map(|b| {
                let cb = ctxs.get(&b.id())?;
                let (now_b, at) = b.last_clear_look()?;
                let here = b.ground_point()?;
                let on_spot =
                    !cb.retired && at > ca.still_t && b.stationary() && stands_on(ca, here);
                let sim = was.similarity(now_b);
                (on_spot && sim >= SAME_OBJECT && sim >= left + SWAP_MARGIN)
                    .then_some((b.id(), sim))
            })
            .max_by(|x, y| x.1.total_cmp(&y.1));
        let Some((b, _)) = best else { continue };
        let Some(mut cb) = ctxs.remove(&b) else {
            continue;
        };
        if let Some(ca) = ctxs.get_mut(&a.id()) {
            std::mem::swap(&mut ca.zones, &mut cb.zones);
            std::mem::swap(&mut ca.rules, &mut cb.rules);
            std::mem::swap(&mut ca.still_at, &mut cb.still_at);
            std::mem::swap(&mut ca.still_box, &mut cb.still_box);
            std::mem::swap(&mut ca.still_look, &mut cb.still_look);
            std::mem::swap(&mut ca.still_t, &mut cb.still_t);
        }
        ctxs.insert(b, cb);
    }
}

/// Whether `p` is where the object of `c` stood: on its ground line and within half a width of
/// its whole box across (as [`stood_here`] for a newborn track).
fn stands_on(c: &TrackCtx, p: Point) -> bool {
    let b = c.still_box.unwrap_or(c.bbox);
    let (w, h) = (b.width(), b.height());
    let (x1, x2) = (f64::from(b.x1), f64::from(b.x2));
    place(c).is_some_and(|s| {
        (p.y - s.y).abs() <= REACQUIRE_RADIUS_H * h && p.x >= x1 - 0.5 * w && p.x <= x2 + 0.5 * w
    })
}

/// Ends the lasting incidents of a track the tracker dropped, at its last observation.
pub(super) fn end_track(cx: &mut Cx<'_>, rules: &mut [Rule], ctx: &mut TrackCtx, id: u64) {
    for (ri, rule) in rules.iter_mut().enumerate() {
        let Some(inc) = ctx.rules[ri].incident.take() else {
            continue;
        };
        let ended = ctx.last_t.max(inc.started_at);
        let d = EventDetails {
            dwell_sec: Some(ended - inc.started_at),
            ..EventDetails::default()
        };
        let obj = EventObject {
            track_id: id,
            class_id: ctx.class_id,
            class: cx
                .class_names
                .get(usize::from(ctx.class_id))
                .cloned()
                .unwrap_or_default(),
            score: ctx.score,
            bbox: ctx.bbox,
        };
        let ev = event(
            rule,
            cx,
            inc.id,
            Phase::End,
            inc.started_at,
            Some(ended),
            vec![obj],
            d,
        );
        cx.out.events.push(ev);
    }
}
