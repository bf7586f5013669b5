//! `ioc-agent`: the site box's side of ioc-edge.
//!
//! Modules follow one frame's way through the agent:
//! [`source`] (RTSP with retina; files) → [`decode`] (GStreamer, scaled once
//! to the model's input) → [`detect`] (shared ONNX Runtime session behind a
//! bounded queue) → [`analytics`] (tracking and rules of crate `ioc-tracking`)
//! → events.
//! [`camera`] runs one camera's connect/stream/reconnect loop; [`agent`]
//! wires every camera to the detector; [`config`] is the `agent.toml` file.

pub mod agent;
pub mod analytics;
pub mod annotate;
pub mod camera;
pub mod config;
pub mod decode;
pub mod delivery;
pub mod detect;
pub mod events;
pub mod offline;
pub mod probe;
pub mod snapshot;
pub mod source;
