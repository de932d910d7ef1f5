//! Protocol names: the display name as reported, and a key under which `EulerFinance`,
//! `Euler Finance`, `Euler V1` and `euler` meet.

use serde::Serialize;

use crate::error::FieldError;
use crate::input_rules::no_control_characters;
use crate::limits::MAX_PROTOCOL_CHARS;

/// Words that sources add or drop freely; removed at the end of a key.
const NOISE_SUFFIXES: &[&str] = &[
    "finance", "protocol", "network", "labs", "dao", "exchange", "io", "app", "fi",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtocolName {
    display: String,
    key: String,
}

impl ProtocolName {
    pub fn parse(text: &str) -> Result<ProtocolName, FieldError> {
        // Before whitespace is folded: a tab or line break inside a name is refused, not
        // turned into a space.
        no_control_characters("protocol", text.trim())?;
        let display = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if display.is_empty() {
            return Err(FieldError::new("protocol", "must not be empty"));
        }
        if display.chars().count() > MAX_PROTOCOL_CHARS {
            return Err(FieldError::new(
                "protocol",
                format!("is longer than the maximum of {MAX_PROTOCOL_CHARS} characters"),
            ));
        }
        let key = protocol_key(&display);
        if key.is_empty() {
            return Err(FieldError::new("protocol", "has no letters or digits"));
        }
        Ok(ProtocolName { display, key })
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Lower-case letters and digits only, a version suffix (`v1`, `v2`) and noise words at
/// the end removed, as long as something remains.
pub fn protocol_key(name: &str) -> String {
    // Split CamelCase first so `EulerFinance` loses `finance` like `Euler Finance` does.
    let mut words: Vec<String> = Vec::new();
    for raw in name.split(|c: char| !c.is_alphanumeric()) {
        let mut current = String::new();
        let mut previous_lower = false;
        for c in raw.chars() {
            if c.is_uppercase() && previous_lower && !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
            current.extend(c.to_lowercase());
        }
        if !current.is_empty() {
            words.push(current);
        }
    }
    while let Some(last) = words.last() {
        let is_version = last.len() >= 2
            && last.starts_with('v')
            && last[1..].chars().all(|c| c.is_ascii_digit());
        if words.len() > 1 && (is_version || NOISE_SUFFIXES.contains(&last.as_str())) {
            words.pop();
        } else {
            break;
        }
    }
    words.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_protocol_meet() {
        for name in [
            "EulerFinance",
            "Euler Finance",
            "euler",
            "Euler V1",
            "EULER",
            "Euler Finance v2",
        ] {
            assert_eq!(ProtocolName::parse(name).unwrap().key(), "euler", "{name}");
        }
    }

    #[test]
    fn different_protocols_stay_apart_and_single_words_are_kept() {
        assert_eq!(protocol_key("Curve Finance"), "curve");
        assert_eq!(protocol_key("Finance"), "finance");
        assert_ne!(protocol_key("Euler"), protocol_key("Eulith"));
        assert_eq!(protocol_key("Super Sushi Samurai"), "supersushisamurai");
        assert_eq!(
            ProtocolName::parse("  Ronin   Bridge ").unwrap().display(),
            "Ronin Bridge"
        );
        assert!(ProtocolName::parse("   ").is_err());
    }

    #[test]
    fn a_protocol_name_with_a_control_character_is_refused() {
        for text in [
            "Euler\u{0}",
            "Euler\tFinance",
            "Euler\nFinance",
            "\u{9b}Euler",
        ] {
            assert_eq!(
                ProtocolName::parse(text).unwrap_err().field,
                "protocol",
                "{text:?}"
            );
        }
        assert!(ProtocolName::parse(&"é".repeat(MAX_PROTOCOL_CHARS)).is_ok());
        assert!(ProtocolName::parse(&"é".repeat(MAX_PROTOCOL_CHARS + 1)).is_err());
    }
}
