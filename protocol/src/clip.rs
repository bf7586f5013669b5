//! Event clips, schema `ioc.clip-part/1`, on `{root}/v1/agents/{agent}/clips/{event_id}`.
//!
//! A clip (an MP4 of the camera's own encoded stream around an incident) is larger than a
//! broker may accept in one message, so the agent sends it in parts, each self-describing:
//!
//! ```text
//! {"schema":"ioc.clip-part/1","camera":"gate","part":0,"parts":3,"offset":0,"size":600000,
//!  "sha256":"…","duration_s":10.2,"start":"2026-12-01T10:00:00.000Z","content_type":"video/mp4"}\n
//! <the part's bytes>
//! ```
//!
//! one line of JSON (at most [`MAX_HEADER_LEN`] bytes), a newline, then bytes
//! `offset .. offset + len` of the whole clip. `size` and `sha256` describe the whole clip, so
//! the collector can put the parts together in any order, from any number of collectors, and
//! check the result. Parts are acknowledged one by one (`Ack::clip_parts`); a replayed part
//! is a no-op.

use serde::{Deserialize, Serialize};

use crate::decode::ProtocolError;
use crate::time::Timestamp;
use crate::topics::validate_camera_id;
use crate::validate::{Checker, Invalid};

/// The `schema` value of [`ClipPart`].
pub const CLIP_PART_SCHEMA: &str = "ioc.clip-part/1";
/// Longest header line.
pub const MAX_HEADER_LEN: usize = 4096;
/// Largest clip the contract allows (the agent's `clips.max_bytes` is at most this, 8 MiB
/// by default).
pub const MAX_CLIP_BYTES: u64 = 64 * 1024 * 1024;
/// Most parts in one clip.
pub const MAX_CLIP_PARTS: u32 = 4096;
/// Longest clip.
pub const MAX_CLIP_SECONDS: f64 = 600.0;

/// The header of one part of a clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(title = "ioc.clip-part/1")]
pub struct ClipPart {
    /// Always `"ioc.clip-part/1"`.
    #[schemars(extend("const" = "ioc.clip-part/1"))]
    pub schema: String,
    /// The camera the clip comes from.
    #[schemars(pattern(crate::topics::ID_PATTERN))]
    pub camera: String,
    /// This part's number, from 0.
    pub part: u32,
    /// How many parts the clip has.
    pub parts: u32,
    /// Where this part's bytes start in the clip.
    pub offset: u64,
    /// The whole clip's size in bytes.
    pub size: u64,
    /// SHA-256 of the whole clip, 64 lower-case hex digits.
    #[schemars(pattern("^[0-9a-f]{64}$"))]
    pub sha256: String,
    /// Length of the video in seconds.
    pub duration_s: f64,
    /// Capture time of the clip's first frame.
    pub start: Timestamp,
    /// The container: `video/mp4`.
    pub content_type: String,
}

impl ClipPart {
    /// Checks the header alone (see [`decode_clip_part`] for the checks against the bytes).
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new(CLIP_PART_SCHEMA);
        c.schema(&self.schema);
        c.id("camera", validate_camera_id(&self.camera));
        if self.parts == 0 || self.parts > MAX_CLIP_PARTS {
            c.push(
                "parts",
                format!("{} is not within 1..={MAX_CLIP_PARTS}", self.parts),
            );
        }
        if self.part >= self.parts {
            c.push(
                "part",
                format!("{} is not below parts ({})", self.part, self.parts),
            );
        }
        if self.size == 0 || self.size > MAX_CLIP_BYTES {
            c.push(
                "size",
                format!("{} is not within 1..={MAX_CLIP_BYTES}", self.size),
            );
        }
        if self.offset >= self.size.max(1) {
            c.push(
                "offset",
                format!("{} is not below size ({})", self.offset, self.size),
            );
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            c.push("sha256", "must be 64 lower-case hex digits");
        }
        if !(self.duration_s.is_finite() && (0.0..=MAX_CLIP_SECONDS).contains(&self.duration_s)) {
            c.push(
                "duration_s",
                format!("{} is not within 0..={MAX_CLIP_SECONDS}", self.duration_s),
            );
        }
        if self.content_type != "video/mp4" {
            c.push(
                "content_type",
                format!("{:?} is not \"video/mp4\"", self.content_type),
            );
        }
        c.finish()
    }
}

/// Splits the clip `mp4` (whose SHA-256 is `sha256`, lower-case hex) of camera `camera` into
/// parts of at most `part_bytes` (at least 1): each part's header (the whole clip's size and
/// hash, the part's offset) and its bytes.
pub fn split_clip<'a>(
    camera: &str,
    mp4: &'a [u8],
    sha256: &str,
    part_bytes: usize,
    duration_s: f64,
    start: Timestamp,
) -> Vec<(ClipPart, &'a [u8])> {
    let chunk = part_bytes.max(1);
    let parts = mp4.len().div_ceil(chunk) as u32;
    mp4.chunks(chunk)
        .enumerate()
        .map(|(i, data)| {
            let header = ClipPart {
                schema: CLIP_PART_SCHEMA.to_owned(),
                camera: camera.to_owned(),
                part: i as u32,
                parts,
                offset: (i * chunk) as u64,
                size: mp4.len() as u64,
                sha256: sha256.to_owned(),
                duration_s,
                start: start.clone(),
                content_type: "video/mp4".to_owned(),
            };
            (header, data)
        })
        .collect()
}

/// One part's payload: the header line, a newline, then `data`.
pub fn encode_clip_part(header: &ClipPart, data: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    header.validate()?;
    let mut out = serde_json::to_vec(header).map_err(|source| ProtocolError::Encode {
        schema: CLIP_PART_SCHEMA,
        source,
    })?;
    out.push(b'\n');
    out.extend_from_slice(data);
    Ok(out)
}

/// Splits a part's payload into its checked header and its bytes. The bytes must be
/// non-empty and lie within the clip (`offset + len <= size`).
pub fn decode_clip_part(payload: &[u8]) -> Result<(ClipPart, &[u8]), ProtocolError> {
    let nl = payload
        .iter()
        .take(MAX_HEADER_LEN + 1)
        .position(|&b| b == b'\n')
        .ok_or_else(|| {
            ProtocolError::Invalid(Invalid {
                schema: CLIP_PART_SCHEMA,
                problems: vec![crate::Problem {
                    field: "header".into(),
                    message: format!(
                        "no newline within the first {MAX_HEADER_LEN} bytes (a clip part is a \
                         JSON header line, a newline, then the bytes)"
                    ),
                }],
            })
        })?;
    let header: ClipPart = crate::decode::parse(&payload[..nl])?;
    let data = &payload[nl + 1..];
    let mut c = Checker::new(CLIP_PART_SCHEMA);
    if data.is_empty() {
        c.push("data", "a part carries no bytes");
    } else if header.offset.saturating_add(data.len() as u64) > header.size {
        c.push(
            "data",
            format!(
                "{} bytes at offset {} run past the clip's size {}",
                data.len(),
                header.offset,
                header.size
            ),
        );
    }
    c.finish()?;
    Ok((header, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ClipPart {
        ClipPart {
            schema: CLIP_PART_SCHEMA.into(),
            camera: "gate".into(),
            part: 1,
            parts: 2,
            offset: 4,
            size: 7,
            sha256: "ab".repeat(32),
            duration_s: 9.5,
            start: Timestamp::from_unix(1_700_000_000, 0),
            content_type: "video/mp4".into(),
        }
    }

    #[test]
    fn a_split_clip_is_every_byte_once_in_valid_parts() {
        let mp4: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let sha = "ab".repeat(32);
        let parts = split_clip("gate", &mp4, &sha, 300, 4.0, Timestamp::from_unix(1, 0));
        assert_eq!(parts.len(), 4);
        let mut joined = Vec::new();
        for (h, data) in &parts {
            h.validate().unwrap();
            assert_eq!(h.offset as usize, joined.len());
            assert_eq!((h.parts, h.size), (4, 1000));
            joined.extend_from_slice(data);
            let wire = encode_clip_part(h, data).unwrap();
            assert_eq!(decode_clip_part(&wire).unwrap().1, *data);
        }
        assert_eq!(joined, mp4);
    }

    #[test]
    fn round_trips_with_binary_bytes() {
        let data = [0u8, b'\n', 255];
        let wire = encode_clip_part(&header(), &data).unwrap();
        let (h, d) = decode_clip_part(&wire).unwrap();
        assert_eq!(h, header());
        assert_eq!(d, data);
    }

    #[test]
    fn refuses_what_cannot_be_put_together() {
        let fields = |wire: &[u8]| match decode_clip_part(wire).unwrap_err() {
            ProtocolError::Invalid(i) => i.problems.into_iter().map(|p| p.field).collect(),
            e => vec![format!("{e}")],
        };
        // Past the end of the clip.
        let wire = encode_clip_part(&header(), b"1234").unwrap();
        assert_eq!(fields(&wire), ["data"]);
        // No bytes.
        let wire = encode_clip_part(&header(), b"").unwrap();
        assert_eq!(fields(&wire), ["data"]);
        // No header line.
        assert_eq!(fields(&[b'x'; 5000]), ["header"]);
        // A bad header: every problem named.
        let mut h = header();
        h.part = 2;
        h.sha256 = "XY".into();
        h.content_type = "video/avi".into();
        h.duration_s = -1.0;
        assert_eq!(
            h.validate()
                .unwrap_err()
                .problems
                .into_iter()
                .map(|p| p.field)
                .collect::<Vec<_>>(),
            ["part", "sha256", "duration_s", "content_type"]
        );
        let mut bad = serde_json::to_vec(&h).unwrap();
        bad.extend_from_slice(b"\nabc");
        assert!(matches!(
            decode_clip_part(&bad),
            Err(ProtocolError::Invalid(_))
        ));
        assert!(matches!(
            decode_clip_part(b"{not json\nabc"),
            Err(ProtocolError::MalformedJson(_))
        ));
    }
}
