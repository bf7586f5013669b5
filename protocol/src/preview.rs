//! Camera previews for commissioning from the center: the collector asks, the agent answers
//! with a current frame of the camera.
//!
//! - Request, schema `ioc.preview-request/1`, collector → agent on
//!   `{root}/v1/agents/{agent}/preview-requests` (the ACL lets only the collector write it):
//!   `{"schema":"ioc.preview-request/1","camera":"gate","request_id":"r-17"}`.
//! - Preview, schema `ioc.preview/1`, agent → collector on
//!   `{root}/v1/agents/{agent}/previews/{camera}`: one JSON header line (at most
//!   [`MAX_HEADER_LEN`] bytes: when, size, the detections of that frame, the request it
//!   answers), a newline, then the JPEG:
//!
//! ```text
//! {"schema":"ioc.preview/1","camera":"gate","taken_at":"2026-12-01T10:00:00.000Z",
//!  "width":960,"height":540,"request_id":"r-17","objects":[{"class":"car","score":0.8,
//!  "bbox":[0.1,0.5,0.3,0.7]}]}\n
//! <JPEG bytes>
//! ```
//!
//! Both are QoS 0 and never retained: a preview is worth something only now, so one lost on
//! the way is asked for again rather than queued (a queued request would be answered with a
//! picture of a later moment anyway).

use serde::{Deserialize, Serialize};

use crate::decode::ProtocolError;
use crate::time::Timestamp;
use crate::topics::validate_camera_id;
use crate::validate::{Checker, Invalid};

/// The `schema` value of [`PreviewRequest`].
pub const PREVIEW_REQUEST_SCHEMA: &str = "ioc.preview-request/1";
/// The `schema` value of [`Preview`].
pub const PREVIEW_SCHEMA: &str = "ioc.preview/1";
/// Longest preview header line (it carries up to [`MAX_PREVIEW_OBJECTS`] objects).
pub const MAX_HEADER_LEN: usize = 64 * 1024;
/// Largest preview JPEG the contract allows (the agent's `preview.max_bytes` is at most this).
pub const MAX_PREVIEW_BYTES: usize = 4 * 1024 * 1024;
/// Most objects a preview lists.
pub const MAX_PREVIEW_OBJECTS: usize = 256;
/// Longest request id.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The collector asks an agent for a current frame of one camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(title = "ioc.preview-request/1")]
pub struct PreviewRequest {
    /// Always `"ioc.preview-request/1"`.
    #[schemars(extend("const" = "ioc.preview-request/1"))]
    pub schema: String,
    /// The camera wanted.
    #[schemars(pattern(crate::topics::ID_PATTERN))]
    pub camera: String,
    /// Echoed in the answer, so the asker knows which preview is its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl PreviewRequest {
    /// A request for `camera`.
    pub fn new(camera: &str, request_id: Option<String>) -> Self {
        Self {
            schema: PREVIEW_REQUEST_SCHEMA.into(),
            camera: camera.into(),
            request_id,
        }
    }

    /// Checks what serde does not.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new(PREVIEW_REQUEST_SCHEMA);
        c.schema(&self.schema);
        c.id("camera", validate_camera_id(&self.camera));
        check_request_id(&mut c, self.request_id.as_deref());
        c.finish()
    }
}

fn check_request_id(c: &mut Checker, id: Option<&str>) {
    if let Some(id) = id {
        if id.is_empty()
            || id.len() > MAX_REQUEST_ID_LEN
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            c.push(
                "request_id",
                format!(
                    "must be 1..={MAX_REQUEST_ID_LEN} of A-Z a-z 0-9 - _ . : (got {:?})",
                    id.chars().take(80).collect::<String>()
                ),
            );
        }
    }
}

/// One detection on the preview's frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PreviewObject {
    /// The detector's class label, e.g. `person`, `car`.
    pub class: String,
    /// Detection confidence, 0..=1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub score: f32,
    /// Box `[x1, y1, x2, y2]` in normalised image coordinates (0..=1, origin top left).
    #[schemars(inner(range(min = 0.0, max = 1.0)))]
    pub bbox: [f32; 4],
}

/// The header of a preview: what the JPEG after it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(title = "ioc.preview/1")]
pub struct Preview {
    /// Always `"ioc.preview/1"`.
    #[schemars(extend("const" = "ioc.preview/1"))]
    pub schema: String,
    /// The camera shown.
    #[schemars(pattern(crate::topics::ID_PATTERN))]
    pub camera: String,
    /// When the frame was captured.
    pub taken_at: Timestamp,
    /// JPEG width in pixels.
    pub width: u32,
    /// JPEG height in pixels.
    pub height: u32,
    /// The request this answers; none for the periodic preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What the detector found on this frame (or on the latest frame it ran on, when motion
    /// gating held this one).
    #[serde(default)]
    pub objects: Vec<PreviewObject>,
}

impl Preview {
    /// Checks the header alone (see [`decode_preview`] for the bytes).
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::new(PREVIEW_SCHEMA);
        c.schema(&self.schema);
        c.id("camera", validate_camera_id(&self.camera));
        if !(16..=8192).contains(&self.width) || !(16..=8192).contains(&self.height) {
            c.push(
                "width",
                format!(
                    "{}x{} is not within 16..=8192 on each side",
                    self.width, self.height
                ),
            );
        }
        check_request_id(&mut c, self.request_id.as_deref());
        if self.objects.len() > MAX_PREVIEW_OBJECTS {
            c.push(
                "objects",
                format!(
                    "{} objects is more than {MAX_PREVIEW_OBJECTS}",
                    self.objects.len()
                ),
            );
        }
        for (i, o) in self.objects.iter().enumerate() {
            c.label(&format!("objects[{i}].class"), &o.class);
            c.range(&format!("objects[{i}].score"), o.score.into(), 0.0, 1.0);
            for (j, v) in o.bbox.iter().enumerate() {
                c.range(&format!("objects[{i}].bbox[{j}]"), (*v).into(), 0.0, 1.0);
            }
            let [x1, y1, x2, y2] = o.bbox;
            if x1 > x2 || y1 > y2 {
                c.push(
                    format!("objects[{i}].bbox"),
                    format!("{:?} has x1 > x2 or y1 > y2", o.bbox),
                );
            }
        }
        c.finish()
    }
}

/// A preview's payload: the header line, a newline, then the JPEG.
pub fn encode_preview(header: &Preview, jpeg: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    header.validate()?;
    let mut out = serde_json::to_vec(header).map_err(|source| ProtocolError::Encode {
        schema: PREVIEW_SCHEMA,
        source,
    })?;
    out.push(b'\n');
    out.extend_from_slice(jpeg);
    Ok(out)
}

/// Splits a preview's payload into its checked header and its JPEG (which must start like
/// one and be at most [`MAX_PREVIEW_BYTES`]).
pub fn decode_preview(payload: &[u8]) -> Result<(Preview, &[u8]), ProtocolError> {
    let invalid = |field: &str, message: String| {
        ProtocolError::Invalid(Invalid {
            schema: PREVIEW_SCHEMA,
            problems: vec![crate::Problem {
                field: field.into(),
                message,
            }],
        })
    };
    let nl = payload
        .iter()
        .take(MAX_HEADER_LEN + 1)
        .position(|&b| b == b'\n')
        .ok_or_else(|| {
            invalid(
                "header",
                format!(
                    "no newline within the first {MAX_HEADER_LEN} bytes (a preview is a JSON \
                     header line, a newline, then the JPEG)"
                ),
            )
        })?;
    let header: Preview = crate::decode::parse(&payload[..nl])?;
    let jpeg = &payload[nl + 1..];
    if jpeg.len() > MAX_PREVIEW_BYTES {
        return Err(invalid(
            "data",
            format!("{} bytes is more than {MAX_PREVIEW_BYTES}", jpeg.len()),
        ));
    }
    if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(invalid("data", "is not a JPEG (no FF D8 FF start)".into()));
    }
    Ok((header, jpeg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Preview {
        Preview {
            schema: PREVIEW_SCHEMA.into(),
            camera: "gate".into(),
            taken_at: Timestamp::from_unix(1_700_000_000, 0),
            width: 960,
            height: 540,
            request_id: Some("r-1".into()),
            objects: vec![PreviewObject {
                class: "car".into(),
                score: 0.8,
                bbox: [0.1, 0.5, 0.3, 0.7],
            }],
        }
    }

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3];

    #[test]
    fn a_preview_round_trips() {
        let p = encode_preview(&header(), JPEG).unwrap();
        let (h, jpeg) = decode_preview(&p).unwrap();
        assert_eq!(h, header());
        assert_eq!(jpeg, JPEG);
    }

    #[test]
    fn broken_previews_name_what_is_wrong() {
        let err = |p: &[u8]| decode_preview(p).unwrap_err().to_string();
        assert!(err(b"no newline").contains("no newline"), "{}", err(b"x"));
        let mut h = serde_json::to_vec(&header()).unwrap();
        h.extend_from_slice(b"\nPNG...");
        assert!(err(&h).contains("not a JPEG"), "{}", err(&h));
        let mut bad = header();
        bad.objects[0].bbox = [0.5, 0.5, 0.3, 1.5];
        bad.camera = "bad camera".into();
        let mut p = serde_json::to_vec(&bad).unwrap();
        p.push(b'\n');
        p.extend_from_slice(JPEG);
        let e = err(&p);
        for field in ["camera", "objects[0].bbox[3]", "objects[0].bbox"] {
            assert!(e.contains(field), "{field} in {e}");
        }
        assert!(encode_preview(&bad, JPEG).is_err());
    }

    #[test]
    fn requests_check_their_camera_and_id() {
        let ok = PreviewRequest::new("gate", Some("r-1".into()));
        ok.validate().unwrap();
        let back: PreviewRequest = crate::decode::parse(&crate::encode(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
        let bad = PreviewRequest::new("../etc", Some("a b".into()));
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("camera") && e.contains("request_id"), "{e}");
    }
}
