//! The daily report for leaders: one self-contained HTML page (inline SVG charts, the
//! incidents' pictures inside as small JPEGs, readable on a phone, prints on A4) and a CSV of
//! the same figures. Labels and values are Vietnamese with English beside; times are the
//! district's clock, dates day first.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;

use base64::Engine as _;

use crate::store::{DailyReport, Store, StoreError};

/// The pictures a report carries: `(site, event id)` of an incident's snapshot → `data:` URI.
pub type Pictures = HashMap<(String, String), String>;

/// Where the pictures of a report's incidents are stored: `(site, event id)` → file.
pub type PictureFiles = Vec<((String, String), PathBuf)>;

/// Width of the pictures a report carries: twice the 120 px it shows them at (phones' dense
/// screens), about 10 KB each, so a full day's report stays small enough to e-mail.
const PICTURE_WIDTH: u32 = 240;

/// Where the snapshots of `r`'s incidents are stored (database look-ups only: cheap enough for
/// the store's thread; reading and shrinking them is [`pictures`]'s, off it).
pub fn picture_files(store: &Store, r: &DailyReport) -> Result<PictureFiles, StoreError> {
    let mut out = Vec::new();
    for i in &r.incidents {
        if let Some(ev) = &i.snapshot {
            if let Some(snap) = store.snapshot(&i.site, ev)? {
                out.push(((i.site.clone(), ev.clone()), snap.path));
            }
        }
    }
    Ok(out)
}

/// Reads and shrinks the pictures `picture_files` found; one that cannot be read or decoded is
/// left out (the report shows no picture there, never a broken link).
pub fn pictures(files: PictureFiles) -> Pictures {
    files
        .into_iter()
        .filter_map(|(key, path)| {
            let jpeg = std::fs::read(&path).ok()?;
            Some((key, thumbnail(&jpeg)?))
        })
        .collect()
}

/// The largest picture a report decodes: agents send 640 px snapshots, and a snapshot is what
/// a hostile site controls (a few bytes of JPEG may declare a gigapixel picture).
const PICTURE_MAX_SIDE: u32 = 4096;
const PICTURE_MAX_BYTES: u64 = 64 << 20;

/// `jpeg` at most [`PICTURE_WIDTH`] wide, as a `data:image/jpeg;base64,…` URI; `None` for what
/// is not a JPEG or is larger than [`PICTURE_MAX_SIDE`] on a side.
pub fn thumbnail(jpeg: &[u8]) -> Option<String> {
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(jpeg), image::ImageFormat::Jpeg);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(PICTURE_MAX_SIDE);
    limits.max_image_height = Some(PICTURE_MAX_SIDE);
    limits.max_alloc = Some(PICTURE_MAX_BYTES);
    reader.limits(limits);
    let img = reader.decode().ok()?;
    let img = if img.width() > PICTURE_WIDTH {
        let h = (u64::from(img.height()) * u64::from(PICTURE_WIDTH) / u64::from(img.width())).max(1)
            as u32;
        img.resize_exact(PICTURE_WIDTH, h, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 75);
    img.to_rgb8().write_with_encoder(enc).ok()?;
    Some(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&out)
    ))
}

/// HTML-escapes `s`.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A state's name for people.
pub fn state_name(state: &str) -> String {
    let (vi, en) = match state {
        "open" => ("Mới", "Open"),
        "acknowledged" => ("Đã nhận", "Acknowledged"),
        "resolved" => ("Đã xử lý", "Resolved"),
        "dismissed" => ("Báo động giả", "False alarm"),
        other => return other.to_owned(),
    };
    format!("{vi} / {en}")
}

/// A severity's name for people.
pub fn severity_name(severity: &str) -> String {
    let (vi, en) = match severity {
        "critical" => ("Khẩn cấp", "Critical"),
        "warning" => ("Cảnh báo", "Warning"),
        "info" => ("Thông tin", "Info"),
        other => return other.to_owned(),
    };
    format!("{vi} / {en}")
}

/// `YYYY-MM-DD` as `DD/MM/YYYY` (unchanged if it is not a date).
fn day_first(date: &str) -> String {
    match date.split('-').collect::<Vec<_>>()[..] {
        [y, m, d] => format!("{d}/{m}/{y}"),
        _ => date.to_owned(),
    }
}

/// `HH:MM` on the district's clock.
fn clock(ms: i64, utc_offset_minutes: i64) -> String {
    let t = (ms + utc_offset_minutes * 60_000).rem_euclid(86_400_000) / 60_000;
    format!("{:02}:{:02}", t / 60, t % 60)
}

/// A horizontal bar chart of `(label, value)` as inline SVG.
fn bars(rows: &[(String, i64)]) -> String {
    if rows.is_empty() {
        return "<p class=\"none\">—</p>".to_owned();
    }
    let max = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1) as f64;
    let h = 22 * rows.len() + 4;
    let mut s = format!(
        "<svg class=\"chart\" viewBox=\"0 0 640 {h}\" width=\"640\" height=\"{h}\" role=\"img\">"
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = 22 * i + 2;
        let w = (*v as f64 / max * 380.0).round();
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{ty}\" font-size=\"12\">{l}</text>\
             <rect x=\"200\" y=\"{y}\" width=\"{w}\" height=\"16\" fill=\"#2f6fb3\"/>\
             <text x=\"{tx}\" y=\"{ty}\" font-size=\"12\">{v}</text>",
            ty = y + 13,
            l = esc(label),
            tx = 206.0 + w,
        );
    }
    s.push_str("</svg>");
    s
}

/// A 24-column chart of incidents per hour.
fn hours(by_hour: &[i64]) -> String {
    let max = by_hour.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut s = String::from(
        "<svg class=\"chart\" viewBox=\"0 0 640 150\" width=\"640\" height=\"150\" role=\"img\">",
    );
    for (h, v) in by_hour.iter().enumerate() {
        let bh = (*v as f64 / max * 110.0).round();
        let x = 10 + h * 26;
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{y}\" width=\"20\" height=\"{bh}\" fill=\"#c0392b\"/>\
             <text x=\"{tx}\" y=\"145\" font-size=\"10\" text-anchor=\"middle\">{h}</text>",
            y = 125.0 - bh,
            tx = x + 10,
        );
        if *v > 0 {
            let _ = write!(
                s,
                "<text x=\"{tx}\" y=\"{ty}\" font-size=\"10\" text-anchor=\"middle\">{v}</text>",
                tx = x + 10,
                ty = 121.0 - bh,
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn secs(v: Option<f64>) -> String {
    match v {
        None => "—".to_owned(),
        Some(s) if s < 120.0 => format!("{s:.0} s"),
        Some(s) if s < 7200.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// The report as a standalone HTML page, with `pictures` inside.
pub fn html(r: &DailyReport, pictures: &Pictures) -> String {
    let mut s = String::with_capacity(16 * 1024);
    let _ = write!(
        s,
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Báo cáo ngày {d} — ioc-edge</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:720px;margin:2em auto;color:#222}}\
         h1{{font-size:1.4em}} h2{{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ccc}}\
         .en{{color:#777;font-weight:normal;font-size:.85em}} table{{border-collapse:collapse}}\
         td,th{{padding:2px 10px;border-bottom:1px solid #eee;text-align:left}}\
         td.n{{text-align:right}} .kpi{{display:flex;gap:1.5em;flex-wrap:wrap}}\
         .kpi div{{border:1px solid #ddd;padding:.5em 1em}} .kpi b{{font-size:1.4em;display:block}}\
         table.list{{width:100%;font-size:.9em}} table.list td{{vertical-align:top}}\
         table.list img{{width:120px;height:68px;object-fit:cover;display:block}}\
         .note{{color:#555;font-style:italic}} svg{{max-width:100%;height:auto}}\
         @media (max-width:600px){{body{{margin:.6em}} table.list img{{width:88px;height:50px}}\
         table.list{{font-size:.85em}} td,th{{padding:2px 4px}}}}\
         @page{{size:A4;margin:14mm}}\
         @media print{{body{{margin:0;max-width:none}} h2{{break-after:avoid}} svg{{break-inside:avoid}}\
         table.list tr{{break-inside:avoid}}}}\
         </style></head><body>\
         <h1>Báo cáo sự cố ngày {d} <span class=\"en\">Daily incident report</span></h1>\
         <p class=\"en\">UTC{off:+03}:{offm:02}</p><div class=\"kpi\">\
         <div><b>{total}</b>Tổng sự cố <span class=\"en\">incidents</span></div>\
         <div><b>{ack}</b>Thời gian xác nhận (trung vị) <span class=\"en\">median time to acknowledge</span></div>\
         <div><b>{res}</b>Thời gian xử lý (trung vị) <span class=\"en\">median time to resolve</span></div>\
         <div><b>{fa}</b>Báo động giả <span class=\"en\">false alarms</span></div>\
         <div><b>{over}</b>Quá hạn <span class=\"en\">overdue</span></div></div>",
        d = esc(&day_first(&r.date)),
        off = r.utc_offset_minutes / 60,
        offm = (r.utc_offset_minutes % 60).abs(),
        total = r.total,
        ack = secs(r.time_to_acknowledge.median_s),
        res = secs(r.time_to_resolve.median_s),
        fa = r
            .false_alarm_share
            .map_or("—".to_owned(), |f| format!("{:.0} %", f * 100.0)),
        over = r.overdue,
    );
    let _ = write!(
        s,
        "<h2>Theo loại <span class=\"en\">By kind</span></h2>{}\
         <h2>Theo giờ <span class=\"en\">By hour</span></h2>{}\
         <h2>Theo địa điểm <span class=\"en\">By site</span></h2>{}\
         <h2>Theo trạng thái <span class=\"en\">By state</span></h2>{}",
        bars(&named(&r.by_kind, crate::kinds::label)),
        hours(&r.by_hour),
        bars(&r.by_site),
        bars(&named(&r.by_state, state_name)),
    );
    let _ = write!(
        s,
        "<h2>Thời gian phản hồi <span class=\"en\">Response times</span></h2><table>\
         <tr><th></th><th>n</th><th>trung vị / median</th><th>p90</th></tr>\
         <tr><td>Xác nhận / acknowledge</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\
         <tr><td>Xử lý / resolve</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr></table>",
        r.time_to_acknowledge.n,
        secs(r.time_to_acknowledge.median_s),
        secs(r.time_to_acknowledge.p90_s),
        r.time_to_resolve.n,
        secs(r.time_to_resolve.median_s),
        secs(r.time_to_resolve.p90_s),
    );
    s.push_str(
        "<h2>Thời gian hoạt động camera <span class=\"en\">Camera uptime</span></h2><table>\
         <tr><th>Địa điểm / site</th><th>Camera</th><th>%</th><th>giờ theo dõi / hours observed</th></tr>",
    );
    for u in &r.uptime {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td></tr>",
            esc(&u.site),
            esc(&u.camera),
            u.uptime * 100.0,
            u.observed_s as f64 / 3600.0
        );
    }
    s.push_str(
        "</table><h2>Lưu lượng giao thông <span class=\"en\">Traffic counts</span></h2><table>\
         <tr><th>Địa điểm / site</th><th>Camera</th><th>Vạch / line</th><th>Loại / class</th>\
         <th>Hướng / direction</th><th>Số / count</th></tr>",
    );
    for (site, cam, line, class, dir, n) in &r.counts {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{n}</td></tr>",
            esc(site),
            esc(cam),
            esc(line),
            esc(class),
            esc(dir)
        );
    }
    s.push_str("</table>");
    incident_list(&mut s, r, pictures);
    s.push_str("</body></html>\n");
    s
}

fn named(rows: &[(String, i64)], name: fn(&str) -> String) -> Vec<(String, i64)> {
    rows.iter().map(|(k, n)| (name(k), *n)).collect()
}

/// The day's incidents: when, where, what, the picture, who handled it and their notes.
fn incident_list(s: &mut String, r: &DailyReport, pictures: &Pictures) {
    let _ = write!(
        s,
        "<h2>Danh sách sự cố <span class=\"en\">The day's incidents</span></h2>"
    );
    if r.incidents.is_empty() {
        s.push_str("<p class=\"none\">—</p>");
        return;
    }
    if (r.incidents.len() as i64) >= crate::store::REPORT_INCIDENTS {
        let _ = write!(
            s,
            "<p>{n} sự cố đầu tiên <span class=\"en\">the first {n}</span></p>",
            n = r.incidents.len()
        );
    }
    s.push_str(
        "<table class=\"list\"><tr><th>Giờ / time</th><th>Ảnh / picture</th>\
         <th>Sự cố / incident</th><th>Xử lý / handling</th></tr>",
    );
    for i in &r.incidents {
        let place = [
            i.site_name.as_deref().unwrap_or(&i.site),
            i.camera_name.as_deref().unwrap_or(&i.camera),
            &i.place,
        ]
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| esc(p))
        .collect::<Vec<_>>()
        .join(" / ");
        let picture = i
            .snapshot
            .as_ref()
            .and_then(|ev| pictures.get(&(i.site.clone(), ev.clone())))
            .map_or(String::new(), |uri| format!("<img src=\"{uri}\" alt=\"\">"));
        let notes: String = i
            .notes
            .iter()
            .map(|n| format!("<div class=\"note\">{}</div>", esc(n)))
            .collect();
        let _ = write!(
            s,
            "<tr><td>{time}<br>#{id}</td><td>{picture}</td><td><b>{kind}</b><br>{place}{rule}<br>{sev}</td>\
             <td>{state}{by}{notes}</td></tr>",
            time = clock(i.first_at_ms, r.utc_offset_minutes),
            id = i.id,
            kind = esc(&crate::kinds::label(&i.kind)),
            rule = i
                .rule
                .as_deref()
                .map_or(String::new(), |r| format!("<br><span class=\"en\">{}</span>", esc(r))),
            sev = esc(&severity_name(&i.severity)),
            state = esc(&state_name(&i.state)),
            by = i
                .handled_by
                .as_deref()
                .map_or(String::new(), |b| format!("<br>{}", esc(b))),
        );
    }
    s.push_str("</table>");
}

/// One CSV cell. A cell a spreadsheet would run as a formula (`= + - @`, or a tab or
/// carriage return first) gets a leading `'`: names come from agents' configs and are not
/// trusted (OWASP "CSV injection").
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The report as CSV: `section,key,value` rows (counts and uptime with more key columns).
pub fn csv(r: &DailyReport) -> String {
    let mut s = String::from("date,section,key,subkey,value\n");
    let d = csv_field(&r.date);
    let mut row = |section: &str, key: &str, sub: &str, value: String| {
        let _ = writeln!(
            s,
            "{d},{section},{},{},{value}",
            csv_field(key),
            csv_field(sub)
        );
    };
    row("total", "incidents", "", r.total.to_string());
    row("total", "overdue", "", r.overdue.to_string());
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
    row("total", "false_alarm_share", "", opt(r.false_alarm_share));
    row(
        "time_to_acknowledge_s",
        "median",
        "",
        opt(r.time_to_acknowledge.median_s),
    );
    row(
        "time_to_acknowledge_s",
        "p90",
        "",
        opt(r.time_to_acknowledge.p90_s),
    );
    row(
        "time_to_resolve_s",
        "median",
        "",
        opt(r.time_to_resolve.median_s),
    );
    row("time_to_resolve_s", "p90", "", opt(r.time_to_resolve.p90_s));
    for (k, n) in &r.by_kind {
        row("by_kind", k, "", n.to_string());
    }
    for (k, n) in &r.by_site {
        row("by_site", k, "", n.to_string());
    }
    for (k, n) in &r.by_state {
        row("by_state", k, "", n.to_string());
    }
    for (h, n) in r.by_hour.iter().enumerate() {
        row("by_hour", &format!("{h:02}"), "", n.to_string());
    }
    for u in &r.uptime {
        row(
            "camera_uptime",
            &u.site,
            &u.camera,
            format!("{:.4}", u.uptime),
        );
    }
    for (site, cam, line, class, dir, n) in &r.counts {
        row(
            "traffic",
            &format!("{site}/{cam}/{line}"),
            &format!("{class}/{dir}"),
            n.to_string(),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durations, ReportIncident};

    fn report_with(snapshot: Option<&str>) -> DailyReport {
        let none = Durations {
            n: 0,
            median_s: None,
            p90_s: None,
        };
        DailyReport {
            date: "2026-12-06".into(),
            utc_offset_minutes: 420,
            total: 1,
            by_kind: vec![("loitering".into(), 1)],
            by_site: vec![("north".into(), 1)],
            by_hour: vec![0; 24],
            by_state: vec![("new".into(), 1)],
            overdue: 0,
            time_to_acknowledge: none,
            time_to_resolve: none,
            false_alarm_share: None,
            uptime: Vec::new(),
            counts: Vec::new(),
            incidents: vec![ReportIncident {
                id: 7,
                first_at_ms: 0,
                site: "north".into(),
                site_name: None,
                camera: "gate".into(),
                camera_name: None,
                kind: "loitering".into(),
                place: "corner".into(),
                rule: None,
                severity: "warning".into(),
                state: "new".into(),
                handled_by: None,
                notes: Vec::new(),
                snapshot: snapshot.map(str::to_owned),
            }],
        }
    }

    #[test]
    fn the_page_carries_its_pictures_and_fits_a_phone() {
        // A real JPEG as an agent sends it (640 px wide).
        let img = image::RgbImage::from_fn(640, 360, |x, y| image::Rgb([x as u8, y as u8, 90]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
            .encode_image(&img)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.jpg");
        std::fs::write(&path, &jpeg).unwrap();
        let key = ("north".to_string(), "ev-1".to_string());
        let pics = pictures(vec![
            (key.clone(), path),
            (
                ("north".into(), "gone".into()),
                dir.path().join("missing.jpg"),
            ),
        ]);
        assert_eq!(pics.len(), 1, "an unreadable picture is left out");
        let uri = &pics[&key];
        let b64 = uri.strip_prefix("data:image/jpeg;base64,").expect(uri);
        let small = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let small = image::load_from_memory(&small).unwrap();
        assert_eq!((small.width(), small.height()), (240, 135));
        assert!(b64.len() < jpeg.len(), "smaller than the original");

        let page = html(&report_with(Some("ev-1")), &pics);
        assert!(
            page.contains(&format!("<img src=\"{uri}\"")),
            "picture inside"
        );
        assert!(
            !page.contains("/api/"),
            "nothing points back at the console"
        );
        assert!(page.contains("name=\"viewport\""), "laid out for a phone");
        // No picture stored: no image and no broken link.
        let page = html(&report_with(Some("ev-9")), &pics);
        assert!(!page.contains("<img"));
        assert!(thumbnail(b"not a jpeg").is_none());
        // Larger than a report decodes: left out, not decoded.
        let wide = image::RgbImage::new(5000, 8);
        let mut big = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut big)
            .encode_image(&wide)
            .unwrap();
        assert!(thumbnail(&big).is_none());
    }

    #[test]
    fn escapes_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("-1+2"), "'-1+2");
        assert_eq!(secs(Some(30.0)), "30 s");
        assert_eq!(secs(Some(600.0)), "10.0 min");
        assert_eq!(day_first("2026-12-01"), "01/12/2026");
        // 23:30 UTC is 06:30 the next morning in Viet Nam.
        assert_eq!(clock(84_600_000, 420), "06:30");
        assert_eq!(
            crate::kinds::label("line_crossing"),
            "Đi qua vạch đếm / Line crossing"
        );
        assert_eq!(crate::kinds::label("<x>"), "<x>");
    }
}
