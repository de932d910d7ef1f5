//! Query-string parameters, validated one by one: a bad value is a 400 that names its
//! parameter, and so is a parameter the endpoint does not know.
//!
//! An empty value (`?limit=`, `?sort=`) is refused like any other bad value, except for
//! the free-text filters of [`FREE_TEXT`], where it means "no filter" (a search form
//! sends its empty fields). The OpenAPI document marks exactly those with
//! `allowEmptyValue`.

use std::collections::HashMap;

use axum::extract::RawQuery;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};

use crate::error::{ApiError, Result};

/// Free-text filters: an empty (or blank) value is the same as leaving the parameter out.
pub const FREE_TEXT: &[&str] = &["chain", "protocol", "q"];

/// Longest value accepted, in characters after trimming.
pub const MAX_VALUE_CHARS: usize = 200;

pub struct Params(HashMap<String, String>);

impl Params {
    /// Refuses a malformed query string (bad percent-encoding, text that is not UTF-8,
    /// a repeated parameter) and any parameter not in `known`. Decoded here rather than
    /// by serde: its decoder replaces invalid UTF-8 silently, and a search for garbled
    /// text should be told so, not answered.
    pub fn from_query(query: RawQuery, known: &[&'static str]) -> Result<Params> {
        let mut map = HashMap::new();
        for pair in query
            .0
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(raw_name).ok_or_else(|| {
                bad(
                    "query",
                    "a parameter name is not valid percent-encoded UTF-8",
                )
            })?;
            let Some(&known_name) = known.iter().find(|k| **k == name) else {
                return Err(ApiError::BadParameter {
                    parameter: "query",
                    message: format!("unknown parameter {name:?}; accepted: {}", known.join(", ")),
                });
            };
            let value = decode(raw_value)
                .ok_or_else(|| bad(known_name, "is not valid percent-encoded UTF-8"))?;
            // NUL and other control characters have no place in a search or a name, and
            // PostgreSQL refuses NUL in text outright.
            if value.chars().any(char::is_control) {
                return Err(bad(known_name, "contains control characters"));
            }
            if map.insert(name, value).is_some() {
                return Err(bad(known_name, "is given more than once"));
            }
        }
        Ok(Params(map))
    }

    /// The trimmed value. Blank is absent for a [`FREE_TEXT`] filter and refused for any
    /// other parameter: a client that sends `?limit=` meant something, and a silent
    /// default would hide its bug.
    pub fn text(&self, name: &'static str) -> Result<Option<String>> {
        match self.0.get(name).map(|v| v.trim()) {
            None => Ok(None),
            Some("") if FREE_TEXT.contains(&name) => Ok(None),
            Some("") => Err(bad(
                name,
                "is empty; give a value or leave the parameter out",
            )),
            Some(value) if value.chars().count() > MAX_VALUE_CHARS => Err(bad(
                name,
                &format!("is longer than {MAX_VALUE_CHARS} characters"),
            )),
            Some(value) => Ok(Some(value.to_owned())),
        }
    }

    /// Parses with `parse`, whose error message is shown after the parameter's name.
    pub fn parsed<T, E: std::fmt::Display>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> std::result::Result<T, E>,
    ) -> Result<Option<T>> {
        match self.text(name)? {
            None => Ok(None),
            Some(text) => parse(&text)
                .map(Some)
                .map_err(|e| bad(name, &e.to_string())),
        }
    }

    pub fn integer(&self, name: &'static str, min: i64, max: i64) -> Result<Option<i64>> {
        self.parsed(name, |text| match text.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "{text:?} is not a whole number from {min} to {max}"
            )),
        })
    }

    /// `YYYY-MM-DD` (the start of that day, or its end with `end_of_day`) or RFC 3339,
    /// between the years 1970 and 9999 once in UTC (both backends store that range).
    pub fn time(&self, name: &'static str, end_of_day: bool) -> Result<Option<DateTime<Utc>>> {
        let time = self.parsed(name, |text| {
            if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                return Ok::<_, String>(at.with_timezone(&Utc));
            }
            let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD or RFC 3339)"))?;
            let time = if end_of_day {
                NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap_or(NaiveTime::MIN)
            } else {
                NaiveTime::MIN
            };
            Ok(Utc.from_utc_datetime(&day.and_time(time)))
        })?;
        match time {
            Some(at) if !(1970..=9999).contains(&chrono::Datelike::year(&at)) => {
                Err(bad(name, "must be between the years 1970 and 9999"))
            }
            other => Ok(other),
        }
    }
}

fn bad(parameter: &'static str, message: &str) -> ApiError {
    ApiError::BadParameter {
        parameter,
        message: message.to_owned(),
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; `None`
/// for a malformed escape or bytes that are not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::{decode, Params};
    use axum::extract::RawQuery;

    fn params(query: &str) -> Params {
        Params::from_query(RawQuery(Some(query.to_owned())), &["q", "limit"])
            .unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    #[test]
    fn an_empty_value_is_absent_for_free_text_and_refused_by_name_otherwise() {
        assert!(matches!(params("q=").text("q"), Ok(None)));
        assert!(matches!(params("q=+").text("q"), Ok(None)));
        assert!(matches!(params("").integer("limit", 1, 5), Ok(None)));
        for query in ["limit=", "limit=+"] {
            match params(query).integer("limit", 1, 5) {
                Err(crate::ApiError::BadParameter { parameter, .. }) => {
                    assert_eq!(parameter, "limit")
                }
                other => panic!("{query}: {:?}", other.map_err(|e| e.to_string())),
            }
        }
    }

    #[test]
    fn form_decoding() {
        assert_eq!(decode("a+b%20c%2B").as_deref(), Some("a b c+"));
        assert_eq!(decode("%E2%82%AC").as_deref(), Some("€"));
        assert_eq!(decode("%FF%FE"), None);
        assert_eq!(decode("%G1"), None);
        assert_eq!(decode("%4"), None);
    }
}
