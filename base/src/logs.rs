//! Logging, set up the same way by both binaries: to stderr (the journal under systemd),
//! plain text by default, coloured only on a terminal without `NO_COLOR`, or one JSON object a
//! line with `IOC_LOG_FORMAT=json` (for log shippers). `RUST_LOG` filters as usual.

use tracing_subscriber::EnvFilter;

/// The log format `IOC_LOG_FORMAT` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// From `IOC_LOG_FORMAT`'s value (`text`, `json`; unset is text).
    pub fn parse(value: Option<&str>) -> Result<Format, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(Format::Text),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(Format::Text),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(Format::Json),
            Some(v) => Err(format!(
                "IOC_LOG_FORMAT: {v:?} is not a log format (use text or json)"
            )),
        }
    }
}

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is unset. A
/// wrong `IOC_LOG_FORMAT` falls back to text and says so.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let asked = std::env::var("IOC_LOG_FORMAT").ok();
    let (format, problem) = match Format::parse(asked.as_deref()) {
        Ok(f) => (f, None),
        Err(e) => (Format::Text, Some(e)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        Format::Json => builder.json().flatten_event(true).init(),
        Format::Text => {
            // Colour codes only on a terminal, never in a log file or the journal.
            let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).init()
        }
    }
    if let Some(p) = problem {
        tracing::warn!("{p}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name_and_a_typo_is_named() {
        assert_eq!(Format::parse(None), Ok(Format::Text));
        assert_eq!(Format::parse(Some("JSON")), Ok(Format::Json));
        assert_eq!(Format::parse(Some("text")), Ok(Format::Text));
        let e = Format::parse(Some("jsno")).unwrap_err();
        assert!(e.contains("IOC_LOG_FORMAT") && e.contains("jsno"), "{e}");
    }
}
