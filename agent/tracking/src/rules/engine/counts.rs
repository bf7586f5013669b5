//! Line counts: per line and class, in and out, reported per interval.

use super::*;

/// Emits the counts interval that `t` closed, if any.
pub(super) fn flush_counts(
    t: f64,
    interval: f64,
    start: &mut Option<f64>,
    lines: &[Line],
    names: &[String],
    counts: &mut [Vec<[u32; 2]>],
    out: &mut EngineOutput,
) {
    let s = *start.get_or_insert((t / interval).floor() * interval);
    if t < s + interval || lines.is_empty() {
        return;
    }
    out.counts.push(CountsReport {
        start_sec: s,
        end_sec: s + interval,
        counts: take_counts(lines, names, counts),
    });
    // Skip intervals with no calls in them (e.g. an outage): the next one contains `t`.
    *start = Some((t / interval).floor() * interval);
}

/// The non-zero counts per line and class, reset to zero.
pub(super) fn take_counts(
    lines: &[Line],
    names: &[String],
    counts: &mut [Vec<[u32; 2]>],
) -> Vec<LineCount> {
    let mut rows = Vec::new();
    for (li, per_class) in counts.iter_mut().enumerate() {
        for (ci, c) in per_class.iter_mut().enumerate() {
            if c[0] + c[1] > 0 {
                rows.push(LineCount {
                    line: lines[li].name.clone(),
                    class_id: ci as u16,
                    class: names[ci].clone(),
                    in_count: c[0],
                    out_count: c[1],
                });
                *c = [0, 0];
            }
        }
    }
    rows
}
