//! JSON Schemas (draft 2020-12) generated from the payload types.
//!
//! The generated files are committed under `protocol/schema/` for other systems of the center
//! to validate against; a test fails when they drift from the types
//! (`UPDATE_SCHEMA=1 cargo test -p ioc-protocol --test schema` rewrites them).

use schemars::{schema_for, Schema};

use crate::{
    Ack, AgentStatus, AnalyticsPush, AnalyticsState, CameraStatus, ClipPart, Counts, Event,
    Preview, PreviewRequest,
};

/// `(file name, schema)` for every payload, e.g. `("event-v1.schema.json", ...)`.
pub fn schemas() -> Vec<(&'static str, Schema)> {
    vec![
        ("event-v1.schema.json", schema_for!(Event)),
        ("agent-status-v1.schema.json", schema_for!(AgentStatus)),
        ("camera-status-v1.schema.json", schema_for!(CameraStatus)),
        ("counts-v1.schema.json", schema_for!(Counts)),
        ("ack-v1.schema.json", schema_for!(Ack)),
        ("clip-part-v1.schema.json", schema_for!(ClipPart)),
        ("preview-v1.schema.json", schema_for!(Preview)),
        (
            "preview-request-v1.schema.json",
            schema_for!(PreviewRequest),
        ),
        ("analytics-v1.schema.json", schema_for!(AnalyticsPush)),
        (
            "analytics-state-v1.schema.json",
            schema_for!(AnalyticsState),
        ),
    ]
}

/// The file contents of [`schemas`]: pretty JSON with a final newline.
pub fn schema_files() -> Vec<(&'static str, String)> {
    schemas()
        .into_iter()
        .map(|(name, s)| {
            let mut text = serde_json::to_string_pretty(&s).unwrap_or_default();
            text.push('\n');
            (name, text)
        })
        .collect()
}
