//! DeFiLlama's JSON hacks endpoint (`GET https://api.llama.fi/hacks`): one JSON array of
//! hack records, `{date (unix seconds), name, classification, technique, amount, chain:
//! [..], bridgeHack, targetType, source, returnedFunds, defillamaId, language,
//! parentProtocolId}`, several of them null or absent.
//!
//! The same records as the CSV export (`defillama`), so the two map onto the same
//! [`RawIncident`] fields; only the date differs in form (unix seconds here, written as
//! the day `YYYY-MM-DD` when it is midnight UTC, as DeFiLlama's dates are, and as RFC
//! 3339 otherwise).
//!
//! A record is numbered by its position in the array (1-based), which is what
//! [`RawIncident::line`] holds for this format.
//!
//! An answer that is not this shape is an [`IngestError::Shape`] naming what was
//! expected: not JSON (an HTML error page), not an array, or an array in which no record
//! has a field the mapping reads (a renamed field). A missing or null field in one record
//! is an unknown value; a field of the wrong type rejects that record, naming the field.

use std::collections::BTreeMap;

use chrono::{DateTime, Timelike};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::text::{self, push_unique};
use crate::{Format, IngestError, RawIncident, Rejection};

/// The fields the mapping reads. Each may be null or absent in a record, but a field
/// that no record of a non-empty answer has is a format change.
const MAPPED: &[&str] = &[
    "date",
    "name",
    "classification",
    "technique",
    "amount",
    "chain",
    "bridgeHack",
    "targetType",
    "source",
    "returnedFunds",
    "defillamaId",
];

const EXPECTED: &str = "a JSON array of DeFiLlama hack records ([{\"date\": <unix seconds>, \"name\": ..., \"chain\": [...], \"amount\": ...}, ...])";

pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Result<RawIncident, Rejection>>, IngestError> {
    let shape = |found: String| IngestError::Shape {
        format: Format::DefillamaApi,
        expected: EXPECTED,
        found,
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| shape(describe_bad_json(bytes, &e)))?;
    let Value::Array(items) = value else {
        return Err(shape(format!("a JSON {}", kind(&value))));
    };
    // Read again keeping each value's text: an amount's digits go on as written, never
    // through a float. (The body parsed as JSON above, so this cannot fail; if it did,
    // every record would be refused as not an object.)
    let raw: Vec<Option<BTreeMap<String, Box<RawValue>>>> =
        serde_json::from_slice::<Vec<&RawValue>>(bytes)
            .map(|records| {
                records
                    .into_iter()
                    .map(|record| serde_json::from_str(record.get()).ok())
                    .collect()
            })
            .unwrap_or_default();
    if !items.is_empty() {
        let absent: Vec<&str> = MAPPED
            .iter()
            .copied()
            .filter(|field| {
                !items
                    .iter()
                    .any(|item| item.as_object().is_some_and(|o| o.contains_key(*field)))
            })
            .collect();
        if !absent.is_empty() {
            return Err(shape(format!(
                "{} record(s) none of which has the field(s) {}",
                items.len(),
                absent.join(", ")
            )));
        }
    }
    Ok(items
        .iter()
        .enumerate()
        .map(|(index, item)| to_incident(index + 1, item, raw.get(index).and_then(Option::as_ref)))
        .collect())
}

fn to_incident(
    number: usize,
    item: &Value,
    raw: Option<&BTreeMap<String, Box<RawValue>>>,
) -> Result<RawIncident, Rejection> {
    let (Some(record), Some(raw)) = (item.as_object(), raw) else {
        return Err(Rejection::new(
            number,
            format!("record {number} is a JSON {}, not an object", kind(item)),
        ));
    };
    let field = Field {
        number,
        record,
        raw,
    };
    let mut chains = Vec::new();
    for chain in field.text_list("chain")? {
        push_unique(&mut chains, chain);
    }
    Ok(RawIncident {
        line: number,
        source: None, // filled with the caller's default, or "defillama"
        source_url: field.text("source")?,
        external_id: field.text("defillamaId")?,
        protocol: field.text("name")?,
        chains,
        date: field.date("date")?,
        loss_usd: field.number("amount")?,
        recovered_usd: field.number("returnedFunds")?,
        attack_class: field.text("classification")?,
        technique: field.text("technique")?,
        bridge: field.boolean("bridgeHack")?,
        target_type: field.text("targetType")?,
        ..RawIncident::default()
    })
}

/// One record's fields, each read with the rejection that names it.
struct Field<'a> {
    number: usize,
    record: &'a serde_json::Map<String, Value>,
    /// The same fields as written, for numbers.
    raw: &'a BTreeMap<String, Box<RawValue>>,
}

impl Field<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.record.get(name).filter(|v| !v.is_null())
    }

    fn wrong(&self, name: &str, expected: &str, found: &Value) -> Rejection {
        Rejection::field(
            self.number,
            name,
            format!(
                "record {}: {name} must be {expected}, not a JSON {}",
                self.number,
                kind(found)
            ),
        )
    }

    /// Text, or a number's text (DeFiLlama ids are numbers).
    fn text(&self, name: &str) -> Result<Option<String>, Rejection> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(text::clean(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.wrong(name, "text", other)),
        }
    }

    /// An amount as the source wrote it: a number's exact text, or text.
    fn number(&self, name: &str) -> Result<Option<String>, Rejection> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(
                self.raw
                    .get(name)
                    .map_or_else(|| n.to_string(), |raw| raw.get().trim().to_owned()),
            )),
            Some(Value::String(s)) => Ok(text::clean(s)),
            Some(other) => Err(self.wrong(name, "a number", other)),
        }
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, Rejection> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(name, "true or false", other)),
        }
    }

    fn text_list(&self, name: &str) -> Result<Vec<String>, Rejection> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .filter(|item| !item.is_null())
                .map(|item| match item {
                    Value::String(s) => Ok(text::clean(s)),
                    other => Err(self.wrong(name, "a list of names", other)),
                })
                .filter_map(Result::transpose)
                .collect(),
            Some(other) => Err(self.wrong(name, "a list of names", other)),
        }
    }

    /// Unix seconds, as a day when it is midnight UTC and RFC 3339 otherwise.
    fn date(&self, name: &str) -> Result<Option<String>, Rejection> {
        let seconds = match self.get(name) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    .map(|f| f as i64)
            }),
            Some(other) => return Err(self.wrong(name, "unix seconds", other)),
        };
        let at = seconds
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or_else(|| {
                Rejection::field(
                    self.number,
                    name,
                    format!(
                        "record {}: {name} is not a time in unix seconds",
                        self.number
                    ),
                )
            })?;
        Ok(Some(if at.num_seconds_from_midnight() == 0 {
            at.format("%Y-%m-%d").to_string()
        } else {
            at.to_rfc3339()
        }))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What came instead of JSON, in words: an HTML page (a proxy's or a maintenance page)
/// is the usual case and is said so.
fn describe_bad_json(bytes: &[u8], error: &serde_json::Error) -> String {
    let start = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
    let start = start.trim_start();
    if start.is_empty() {
        "an empty body".to_owned()
    } else if start.starts_with('<') {
        "HTML or XML, not JSON".to_owned()
    } else {
        format!("text that is not JSON ({error})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_field_like_the_csv_export() {
        let input = br#"[{"date": 1711065600, "name": "Examplefi", "classification": "Protocol Logic",
            "technique": "Price Oracle Manipulation", "amount": 4800000, "chain": ["Ethereum", "BSC", "Ethereum"],
            "bridgeHack": true, "targetType": "DeFi Protocol", "source": "https://example.com/examplefi",
            "returnedFunds": 100000, "defillamaId": 9001, "language": "Solidity", "parentProtocolId": "parent#x"}]"#;
        let api = parse(input).unwrap().remove(0).unwrap();
        // The same record as the CSV export writes it: every field maps alike, but the
        // record's number and the date's form.
        let csv = crate::defillama::parse(
            b"name,exploit_date,classification,technique,loss_usd,chain,bridgeHack,targetType,returnedFunds,defillamaId,language,source_url,parentProtocolId\n\
              Examplefi,3/22/24,Protocol Logic,Price Oracle Manipulation,4800000,\"Ethereum,BSC\",TRUE,DeFi Protocol,100000,9001,Solidity,https://example.com/examplefi,parent#x\n",
        )
        .unwrap()
        .remove(0)
        .unwrap();
        assert_eq!((api.line, api.date.as_deref()), (1, Some("2024-03-22")));
        assert_eq!(
            api,
            RawIncident {
                line: 1,
                date: api.date.clone(),
                ..csv
            }
        );
    }

    #[test]
    fn nulls_and_absent_fields_are_unknown() {
        let input =
            br#"[{"date": 1711065600, "name": "A", "classification": null, "technique": null,
            "amount": null, "chain": null, "bridgeHack": false, "targetType": null, "source": "s",
            "returnedFunds": null, "defillamaId": null},
            {"date": 1711065601, "name": "B", "amount": 1234567890123.123456789}]"#;
        let results = parse(input).unwrap();
        let a = results[0].as_ref().unwrap();
        assert_eq!((a.loss_usd.as_ref(), a.chains.len()), (None, 0));
        assert_eq!(a.bridge, Some(false));
        let b = results[1].as_ref().unwrap();
        assert_eq!(b.date.as_deref(), Some("2024-03-22T00:00:01+00:00"));
        assert_eq!(
            b.loss_usd.as_deref(),
            Some("1234567890123.123456789"),
            "digits as written, never through a float"
        );
        assert_eq!(b.source_url, None);
    }

    #[test]
    fn a_field_of_the_wrong_type_rejects_its_record_by_name() {
        let input =
            br#"[{"date": "yesterday", "name": "A", "classification": null, "technique": null,
            "amount": 1, "chain": ["X"], "bridgeHack": false, "targetType": null, "source": null,
            "returnedFunds": null, "defillamaId": null},
            {"date": 1711065600, "name": "B", "chain": "Ethereum"},
            {"date": 1711065600, "name": "C", "bridgeHack": "yes"},
            7]"#;
        let results = parse(input).unwrap();
        let fields: Vec<Option<&str>> = results
            .iter()
            .map(|r| r.as_ref().unwrap_err().field.as_deref())
            .collect();
        assert_eq!(
            fields,
            [Some("date"), Some("chain"), Some("bridgeHack"), None]
        );
        assert_eq!(results[3].as_ref().unwrap_err().line, 4);
    }

    #[test]
    fn a_changed_format_is_a_whole_answer_error_that_names_what_was_expected() {
        for (input, says) in [
            (&b"<html><body>502 Bad Gateway</body></html>"[..], "HTML"),
            (b"", "empty body"),
            (br#"{"hacks": []}"#, "a JSON object"),
            (br#"[{"timestamp": 1, "name": "A", "classification": null, "technique": null, "amount": 1, "chain": [], "bridgeHack": false, "targetType": null, "source": null, "returnedFunds": null, "defillamaId": null}]"#, "date"),
            (b"[{\"date\": 1", "not JSON"),
        ] {
            let err = parse(input).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
            assert!(err.contains("JSON array of DeFiLlama hack records"), "{err}");
        }
        assert!(parse(b"[]").unwrap().is_empty(), "no hacks is an answer");
    }
}
