//! One problem in a config file, the same shape everywhere: which key, what is wrong.

/// A config key and what is wrong with it (with the bad value). Shown as `key: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Problem {
    /// The key path, e.g. `mqtt.port` or `cameras[2].analytics.rules[0].zone`.
    pub key: String,
    /// What is wrong, with the bad value.
    pub message: String,
}

impl Problem {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The same problem one table down: `mqtt.` + `port`.
    pub fn under(mut self, prefix: &str) -> Self {
        self.key = format!("{prefix}.{}", self.key);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_as_key_and_message_and_nested_under_a_table() {
        let p = Problem::new("rules[0].zone", "no zone \"gate\"").under("cameras[1].analytics");
        assert_eq!(
            p.to_string(),
            "cameras[1].analytics.rules[0].zone: no zone \"gate\""
        );
    }
}
