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

/// The 1-based line of byte `at` of `text`, for a parser's error span (a key at the very start
/// of a line is on that line, not the one before).
pub fn line_of(text: &str, at: usize) -> usize {
    let at = text.floor_char_boundary(at.min(text.len()));
    text[..at].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_count_from_one_and_a_line_start_is_that_line() {
        let text = "a = 1\nbb = 2\nccc = 3";
        assert_eq!(super::line_of(text, 0), 1);
        assert_eq!(super::line_of(text, 6), 2, "start of line 2");
        assert_eq!(super::line_of(text, 5), 1, "the newline ends line 1");
        assert_eq!(super::line_of(text, 99), 3, "past the end");
        assert_eq!(super::line_of("é\nx", 1), 1, "inside a character");
    }

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
