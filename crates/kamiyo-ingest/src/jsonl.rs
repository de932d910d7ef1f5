//! Kamiyo's JSON Lines format: one object per line; blank lines and `#` comments skipped.
//!
//! Each value is taken as a [`RawValue`] (the exact text of the value in the line), so a
//! number such as `123456789012345678901234.56` is kept digit for digit instead of passing
//! through `f64`, and the type checks below see what was actually written.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::text::{self, push_unique};
use crate::{RawIncident, Rejection};

/// Every key a line may have.
const KEYS: &[&str] = &[
    "protocol",
    "chain",
    "chains",
    "date",
    "loss_usd",
    "recovered_usd",
    "attack_class",
    "technique",
    "tx_hashes",
    "tx_hash",
    "status",
    "description",
    "source",
    "source_url",
    "external_id",
    "flash_loan",
    "bridge",
    "target_type",
];

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

pub(crate) fn parse(bytes: &[u8]) -> Vec<Result<RawIncident, Rejection>> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let mut results = Vec::new();
    for (index, line) in bytes.split(|byte| *byte == b'\n').enumerate() {
        let number = index + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let content = line.trim_ascii();
        if content.is_empty() || content.starts_with(b"#") {
            continue;
        }
        let result = match std::str::from_utf8(line) {
            Ok(line) => parse_line(number, line),
            Err(err) => Err(Rejection::new(
                number,
                format!(
                    "line is not valid UTF-8 (invalid byte at column {})",
                    err.valid_up_to() + 1
                ),
            )),
        };
        results.push(result);
    }
    results
}

fn parse_line(line: usize, text: &str) -> Result<RawIncident, Rejection> {
    let Object(entries) =
        serde_json::from_str(text).map_err(|err| Rejection::new(line, json_error(&err)))?;
    let mut incident = RawIncident {
        line,
        ..RawIncident::default()
    };
    for (index, (key, raw)) in entries.iter().enumerate() {
        if entries[..index].iter().any(|(earlier, _)| earlier == key) {
            return Err(Rejection::field(
                line,
                key,
                format!("key `{key}` appears more than once"),
            ));
        }
        let field = Field { line, key, raw };
        match key.as_str() {
            "protocol" => incident.protocol = field.string()?,
            "chain" | "chains" => field.chains(&mut incident.chains)?,
            "date" => incident.date = field.string()?,
            "loss_usd" => incident.loss_usd = field.string_or_number()?,
            "recovered_usd" => incident.recovered_usd = field.string_or_number()?,
            "attack_class" => incident.attack_class = field.string()?,
            "technique" => incident.technique = field.string()?,
            "tx_hashes" => field.tx_hashes(&mut incident.tx_hashes)?,
            "tx_hash" => field.tx_hash(&mut incident.tx_hashes)?,
            "status" => incident.status = field.string()?,
            "description" => incident.description = field.string()?,
            "source" => incident.source = field.string()?,
            "source_url" => incident.source_url = field.string()?,
            "external_id" => incident.external_id = field.string_or_number()?,
            "flash_loan" => incident.flash_loan = field.boolean()?,
            "bridge" => incident.bridge = field.boolean()?,
            "target_type" => incident.target_type = field.string()?,
            _ => {
                let hint = text::suggest(key, KEYS)
                    .map(|known| format!(" (did you mean `{known}`?)"))
                    .unwrap_or_default();
                return Err(Rejection::field(
                    line,
                    key,
                    format!("unknown key `{key}`{hint}"),
                ));
            }
        }
    }
    Ok(incident)
}

/// serde_json's message without its "at line 1 column N" (every parse here is one line),
/// with the column kept.
fn json_error(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    let message = match full.strip_suffix(&position) {
        Some(message) => format!("{message} (column {})", err.column()),
        None => full,
    };
    match err.classify() {
        serde_json::error::Category::Data => format!("not a JSON object: {message}"),
        _ => format!("malformed JSON: {message}"),
    }
}

/// A JSON object's entries in the order written, duplicates included (serde_json's own
/// map types would silently keep only one of them).
struct Object<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    entries.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Object(entries))
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    /// The raw text is valid JSON, so its first byte tells the type.
    fn of(raw: &RawValue) -> Kind {
        match raw.get().as_bytes().first() {
            Some(b'n') => Kind::Null,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'"') => Kind::String,
            Some(b'[') => Kind::Array,
            Some(b'{') => Kind::Object,
            _ => Kind::Number,
        }
    }

    fn described(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// One key's value, with what is needed to reject it.
struct Field<'a> {
    line: usize,
    key: &'a str,
    raw: &'a RawValue,
}

impl Field<'_> {
    fn reject(&self, message: impl Into<String>) -> Rejection {
        Rejection::field(self.line, self.key, message)
    }

    fn wrong_type(&self, expected: &str, found: Kind) -> Rejection {
        self.reject(format!(
            "`{}` must be {expected}, found {}",
            self.key,
            found.described()
        ))
    }

    /// Decodes a JSON string (escapes resolved).
    fn decode(&self, raw: &RawValue) -> Result<String, Rejection> {
        serde_json::from_str(raw.get())
            .map_err(|err| self.reject(format!("`{}`: {}", self.key, json_error(&err))))
    }

    fn string(&self) -> Result<Option<String>, Rejection> {
        match Kind::of(self.raw) {
            Kind::Null => Ok(None),
            Kind::String => Ok(text::clean(&self.decode(self.raw)?)),
            other => Err(self.wrong_type("a string", other)),
        }
    }

    /// A number keeps its text exactly as written.
    fn string_or_number(&self) -> Result<Option<String>, Rejection> {
        match Kind::of(self.raw) {
            Kind::Null => Ok(None),
            Kind::String => Ok(text::clean(&self.decode(self.raw)?)),
            Kind::Number => Ok(Some(self.raw.get().to_owned())),
            other => Err(self.wrong_type("a number or a string", other)),
        }
    }

    fn boolean(&self) -> Result<Option<bool>, Rejection> {
        match Kind::of(self.raw) {
            Kind::Null => Ok(None),
            Kind::Bool => Ok(Some(self.raw.get() == "true")),
            other => Err(self.wrong_type("true or false", other)),
        }
    }

    fn array(&self) -> Result<Vec<&RawValue>, Rejection> {
        serde_json::from_str(self.raw.get())
            .map_err(|err| self.reject(format!("`{}`: {}", self.key, json_error(&err))))
    }

    /// A string (split on `,` or `;`) or an array of strings.
    fn chains(&self, chains: &mut Vec<String>) -> Result<(), Rejection> {
        match Kind::of(self.raw) {
            Kind::Null => {}
            Kind::String => text::split_list(&self.decode(self.raw)?)
                .for_each(|chain| push_unique(chains, chain)),
            Kind::Array => {
                for entry in self.array()? {
                    match Kind::of(entry) {
                        Kind::String => {
                            if let Some(chain) = text::clean(&self.decode(entry)?) {
                                push_unique(chains, chain);
                            }
                        }
                        other => {
                            return Err(self.reject(format!(
                                "`{}` entries must be strings, found {}",
                                self.key,
                                other.described()
                            )))
                        }
                    }
                }
            }
            other => return Err(self.wrong_type("a string or an array of strings", other)),
        }
        Ok(())
    }

    /// A single `hash` or `chain:hash` string.
    fn tx_hash(&self, hashes: &mut Vec<crate::RawTxHash>) -> Result<(), Rejection> {
        match Kind::of(self.raw) {
            Kind::Null => Ok(()),
            Kind::String => self.push_tx_text(self.raw, hashes),
            other => Err(self.wrong_type("a string", other)),
        }
    }

    /// An array of `hash` / `chain:hash` strings or `{"chain": ..., "hash": ...}` objects.
    fn tx_hashes(&self, hashes: &mut Vec<crate::RawTxHash>) -> Result<(), Rejection> {
        match Kind::of(self.raw) {
            Kind::Null => return Ok(()),
            Kind::Array => {}
            other => return Err(self.wrong_type("an array", other)),
        }
        for entry in self.array()? {
            match Kind::of(entry) {
                Kind::String => self.push_tx_text(entry, hashes)?,
                Kind::Object => push_unique(hashes, self.tx_object(entry)?),
                other => {
                    return Err(self.reject(format!(
                        "`{}` entries must be strings or {{\"chain\", \"hash\"}} objects, found {}",
                        self.key,
                        other.described()
                    )))
                }
            }
        }
        Ok(())
    }

    fn push_tx_text(
        &self,
        raw: &RawValue,
        hashes: &mut Vec<crate::RawTxHash>,
    ) -> Result<(), Rejection> {
        let value = self.decode(raw)?;
        match text::tx_hash(&value) {
            Ok(Some(hash)) => push_unique(hashes, hash),
            Ok(None) => {}
            Err(message) => return Err(self.reject(format!("`{}`: {message}", self.key))),
        }
        Ok(())
    }

    fn tx_object(&self, raw: &RawValue) -> Result<crate::RawTxHash, Rejection> {
        let Object(entries) = serde_json::from_str(raw.get())
            .map_err(|err| self.reject(format!("`{}`: {}", self.key, json_error(&err))))?;
        let (mut chain, mut hash) = (None, None);
        for (key, value) in &entries {
            let slot = match key.as_str() {
                "chain" => &mut chain,
                "hash" => &mut hash,
                _ => {
                    return Err(self.reject(format!(
                        "`{}` entry has unknown key `{key}` (expected `chain` and `hash`)",
                        self.key
                    )))
                }
            };
            *slot = match Kind::of(value) {
                Kind::Null => None,
                Kind::String => text::clean(&self.decode(value)?),
                other => {
                    return Err(self.reject(format!(
                        "`{}` entry's `{key}` must be a string, found {}",
                        self.key,
                        other.described()
                    )))
                }
            };
        }
        let Some(hash) = hash else {
            return Err(self.reject(format!("`{}` entry has no `hash`", self.key)));
        };
        Ok(crate::RawTxHash { chain, hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawTxHash;

    fn one(line: &str) -> Result<RawIncident, Rejection> {
        let mut results = parse(line.as_bytes());
        assert_eq!(results.len(), 1, "{results:?}");
        results.remove(0)
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        let incident = one(
            r#"{"loss_usd": 123456789012345678901234.56, "recovered_usd": 1e6, "external_id": 42}"#,
        )
        .unwrap();
        assert_eq!(
            incident.loss_usd.as_deref(),
            Some("123456789012345678901234.56")
        );
        assert_eq!(incident.recovered_usd.as_deref(), Some("1e6"));
        assert_eq!(incident.external_id.as_deref(), Some("42"));
    }

    #[test]
    fn strings_are_trimmed_and_empty_or_null_means_absent() {
        let incident = one(
            r#"{"protocol": "  Examplefi ", "loss_usd": " ", "date": null, "status": "\u0020ok"}"#,
        )
        .unwrap();
        assert_eq!(incident.protocol.as_deref(), Some("Examplefi"));
        assert_eq!(incident.loss_usd, None);
        assert_eq!(incident.date, None);
        assert_eq!(incident.status.as_deref(), Some("ok"));
    }

    #[test]
    fn chain_and_chains_combine_without_repeats() {
        let incident =
            one(r#"{"chain": "Ethereum", "chains": ["BSC", " ", "Ethereum", "Arbitrum"]}"#)
                .unwrap();
        assert_eq!(incident.chains, ["Ethereum", "BSC", "Arbitrum"]);
        let incident = one(r#"{"chains": "Ethereum, BSC"}"#).unwrap();
        assert_eq!(incident.chains, ["Ethereum", "BSC"]);
    }

    #[test]
    fn tx_hashes_accept_strings_pairs_and_objects() {
        let incident = one(
            r#"{"tx_hash": "0xaa", "tx_hashes": ["bsc:0xbb", {"chain": "ethereum", "hash": "0xcc"}, {"hash": "0xdd"}]}"#,
        )
        .unwrap();
        let hash = |chain: Option<&str>, hash: &str| RawTxHash {
            chain: chain.map(str::to_owned),
            hash: hash.to_owned(),
        };
        assert_eq!(
            incident.tx_hashes,
            [
                hash(None, "0xaa"),
                hash(Some("bsc"), "0xbb"),
                hash(Some("ethereum"), "0xcc"),
                hash(None, "0xdd"),
            ]
        );
    }

    #[test]
    fn unknown_key_is_rejected_with_a_suggestion() {
        let rejection = one(r#"{"protocl": "Examplefi"}"#).unwrap_err();
        assert_eq!(rejection.field.as_deref(), Some("protocl"));
        assert!(
            rejection.message.contains("did you mean `protocol`"),
            "{rejection}"
        );
    }

    #[test]
    fn duplicate_key_is_rejected() {
        let rejection = one(r#"{"loss_usd": 1, "loss_usd": 2}"#).unwrap_err();
        assert_eq!(rejection.field.as_deref(), Some("loss_usd"));
        assert!(rejection.message.contains("more than once"), "{rejection}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        for (line, field) in [
            (r#"{"protocol": 5}"#, "protocol"),
            (r#"{"loss_usd": true}"#, "loss_usd"),
            (r#"{"flash_loan": "yes"}"#, "flash_loan"),
            (r#"{"chains": [1]}"#, "chains"),
            (r#"{"tx_hashes": "0xaa"}"#, "tx_hashes"),
            (r#"{"tx_hashes": [{"chain": "bsc"}]}"#, "tx_hashes"),
            (
                r#"{"tx_hashes": [{"hash": "0x1", "block": 3}]}"#,
                "tx_hashes",
            ),
            (r#"{"tx_hashes": ["bsc:"]}"#, "tx_hashes"),
            (r#"{"external_id": [1]}"#, "external_id"),
        ] {
            let rejection = one(line).unwrap_err();
            assert_eq!(
                rejection.field.as_deref(),
                Some(field),
                "{line}: {rejection}"
            );
            assert!(rejection.message.contains(field), "{rejection}");
        }
    }

    #[test]
    fn malformed_json_reports_the_parser_message() {
        let rejection = one(r#"{"protocol": "Examplefi""#).unwrap_err();
        assert_eq!(rejection.field, None);
        assert!(
            rejection.message.starts_with("malformed JSON: "),
            "{rejection}"
        );
        assert!(!rejection.message.contains("line 1"), "{rejection}");
        let rejection = one("[1, 2]").unwrap_err();
        assert!(
            rejection.message.starts_with("not a JSON object"),
            "{rejection}"
        );
        let rejection = one(r#"{"protocol": "A"} trailing"#).unwrap_err();
        assert!(rejection.message.contains("trailing"), "{rejection}");
    }

    #[test]
    fn blank_comment_and_crlf_lines_keep_line_numbers() {
        let input =
            b"\xEF\xBB\xBF# comment\r\n\r\n  \n{\"protocol\":\"Examplefi\"}\r\n\xff\xfe\n{}";
        let results = parse(input);
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().unwrap().line, 4);
        assert_eq!(
            results[0].as_ref().unwrap().protocol.as_deref(),
            Some("Examplefi")
        );
        let rejection = results[1].as_ref().unwrap_err();
        assert_eq!(rejection.line, 5);
        assert!(rejection.message.contains("UTF-8"), "{rejection}");
        assert_eq!(results[2].as_ref().unwrap().line, 6);
    }
}
