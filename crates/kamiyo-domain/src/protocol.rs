//! Protocol names: the display name as reported, and a key under which `EulerFinance`,
//! `Euler Finance`, `Euler V1` and `euler` meet.

use serde::Serialize;

use crate::error::FieldError;

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
        let display = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if display.is_empty() {
            return Err(FieldError::new("protocol", "must not be empty"));
        }
        if display.chars().count() > 200 {
            return Err(FieldError::new("protocol", "longer than 200 characters"));
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
}
