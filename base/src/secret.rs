//! A value that must not appear in logs or `Debug` output: passwords in config files.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A password or key. `Debug` and `Display` print `***`; [`Secret::expose`] is the one way
/// to read it, for the place that sends it (the MQTT CONNECT, a database login).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct WithPassword {
        #[allow(dead_code)]
        password: Secret,
    }

    #[test]
    fn never_printed_but_read_from_config() {
        let w: WithPassword = toml::from_str("password = \"hunter2\"").unwrap();
        assert_eq!(w.password.expose(), "hunter2");
        let shown = format!("{w:?} {}", w.password);
        assert!(!shown.contains("hunter2"), "{shown}");
        // Written back as itself (config files made by tools).
        assert_eq!(serde_json::to_string(&w.password).unwrap(), "\"hunter2\"");
    }
}
