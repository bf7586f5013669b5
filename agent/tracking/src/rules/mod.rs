//! Incident rules of one camera: config ([`config`]), schedules ([`schedule`]), the engine
//! ([`engine`]), tamper measures ([`tamper`]) and what comes out ([`event`]).

pub mod config;
pub mod engine;
pub mod event;
pub mod schedule;
pub mod tamper;

pub use config::{
    AnalyticsConfig, ConfigError, ConfigErrors, CrossDirection, LineConfig, Need, RuleConfig,
    RuleKind, Severity, TamperCause, TamperConfig, ZoneConfig,
};
pub use engine::{Engine, FrameInfo};
pub use event::{
    CountsReport, EngineOutput, EventDetails, EventObject, LineCount, Phase, RuleEvent,
};
pub use schedule::{LocalTime, ScheduleConfig, Weekday};
pub use tamper::{LumaError, LumaFrame};
