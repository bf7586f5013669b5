//! `ioc-agent`: the site box's side of ioc-edge.
//!
//! Modules follow one frame's way through the agent:
//! [`source`] (RTSP with retina; files) → [`decode`] (GStreamer, frames kept in the
//! decoder's YUV format, each with its capture time from [`clock`]) → [`motion`] (is
//! anything moving?) → [`detect`] (a pool of ONNX Runtime sessions behind a fair scheduler
//! that keeps each camera's newest frame) → [`analytics`] (tracking and rules of crate
//! `ioc-tracking`, in frame order and frame time) → [`events`] / [`delivery`] (outbox).
//! Beside the decoder, [`clip`] keeps each camera's encoded stream and cuts an MP4 around
//! each incident for the outbox; after the detector, [`preview`] keeps each camera's latest
//! picture and answers the center's preview requests, and [`pushed`] applies the analytics
//! the center pushes to a running camera.
//! [`camera`] runs one camera's connect/stream/reconnect loop; [`agent`] wires every camera
//! to the detectors and the rules; [`site`] is `ioc-agent run`: every stage started from one
//! place and stopped through one deadline, with [`health`] reports; [`config`] is the
//! `agent.toml` file.

pub mod agent;
pub mod analytics;
pub mod annotate;
pub mod camera;
pub mod clip;
pub mod clock;
pub mod config;
pub mod decode;
pub mod delivery;
pub mod detect;
pub mod events;
pub mod health;
pub mod metrics;
pub mod motion;
pub mod offline;
pub mod preview;
pub mod probe;
pub mod pushed;
pub mod site;
pub mod snapshot;
pub mod source;
