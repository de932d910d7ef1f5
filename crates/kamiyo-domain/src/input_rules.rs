//! The rules every text field of a claim obeys, checked before any field is parsed so
//! that a refusal never has to echo an oversized or unprintable value:
//!
//! - no control characters: PostgreSQL refuses NUL in text (the write would fail as a
//!   server error instead of a refusal), and the others garble logs, terminals and CSV
//!   exports. Descriptions may keep tab, line feed and carriage return: real write-ups
//!   have paragraphs. Surrounding whitespace is trimmed before the check, as it is before
//!   the value is kept.
//! - at most [`crate::limits`] characters per field and entries per list.
//! - `source_url` an `http` or `https` URL with a host: clients show it as a link, and a
//!   `javascript:` or `data:` link runs in the reader's browser.

use crate::error::FieldError;
use crate::incident::IncidentInput;
use crate::limits::{
    MAX_AMOUNT_CHARS, MAX_CHAINS_PER_CLAIM, MAX_CHAIN_CHARS, MAX_DATE_CHARS, MAX_DESCRIPTION_CHARS,
    MAX_EXTERNAL_ID_CHARS, MAX_LABEL_CHARS, MAX_PROTOCOL_CHARS, MAX_SOURCE_CHARS,
    MAX_TECHNIQUE_CHARS, MAX_TX_HASHES_PER_CLAIM, MAX_TX_HASH_CHARS, MAX_URL_CHARS,
};

/// Which control characters a field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lines {
    /// None at all: names, labels, identifiers, URLs.
    One,
    /// Tab, line feed and carriage return, nothing else.
    Many,
}

/// Checks every text field of `input` against the rules above; the first refusal names
/// its field. List lengths come first, so an oversized list costs nothing more.
pub(crate) fn check_claim(input: &IncidentInput) -> Result<(), FieldError> {
    at_most_entries("chains", input.chains.len(), MAX_CHAINS_PER_CLAIM)?;
    at_most_entries("tx_hashes", input.tx_hashes.len(), MAX_TX_HASHES_PER_CLAIM)?;
    let fields = [
        ("source", &input.source, MAX_SOURCE_CHARS, Lines::One),
        ("source_url", &input.source_url, MAX_URL_CHARS, Lines::One),
        (
            "external_id",
            &input.external_id,
            MAX_EXTERNAL_ID_CHARS,
            Lines::One,
        ),
        ("protocol", &input.protocol, MAX_PROTOCOL_CHARS, Lines::One),
        ("date", &input.date, MAX_DATE_CHARS, Lines::One),
        ("loss_usd", &input.loss_usd, MAX_AMOUNT_CHARS, Lines::One),
        (
            "recovered_usd",
            &input.recovered_usd,
            MAX_AMOUNT_CHARS,
            Lines::One,
        ),
        (
            "attack_type",
            &input.attack_type,
            MAX_LABEL_CHARS,
            Lines::One,
        ),
        (
            "attack_class",
            &input.attack_class,
            MAX_LABEL_CHARS,
            Lines::One,
        ),
        (
            "technique",
            &input.technique,
            MAX_TECHNIQUE_CHARS,
            Lines::One,
        ),
        ("status", &input.status, MAX_LABEL_CHARS, Lines::One),
        (
            "description",
            &input.description,
            MAX_DESCRIPTION_CHARS,
            Lines::Many,
        ),
    ];
    for (field, value, max, lines) in fields {
        if let Some(value) = value {
            text(value, max, lines).map_err(|why| FieldError::new(field, why))?;
        }
    }
    if let Some(url) = input.source_url.as_deref().map(str::trim) {
        if !url.is_empty() {
            web_url(url).map_err(|why| FieldError::new("source_url", why))?;
        }
    }
    for (i, chain) in input.chains.iter().enumerate() {
        text(chain, MAX_CHAIN_CHARS, Lines::One).map_err(|why| entry("chains", i, &why))?;
    }
    for (i, tx) in input.tx_hashes.iter().enumerate() {
        if let Some(chain) = &tx.chain {
            text(chain, MAX_CHAIN_CHARS, Lines::One)
                .map_err(|why| entry("tx_hashes", i, &format!("its chain {why}")))?;
        }
        text(&tx.hash, MAX_TX_HASH_CHARS, Lines::One).map_err(|why| entry("tx_hashes", i, &why))?;
    }
    Ok(())
}

/// Refuses every control character; for the value types (`Chain`, `ProtocolName`) that
/// are parsed outside a claim too.
pub(crate) fn no_control_characters(field: &str, text: &str) -> Result<(), FieldError> {
    controls(text, Lines::One).map_err(|why| FieldError::new(field, why))
}

/// Refuses a list of `len` entries when that is past `max`.
pub(crate) fn at_most_entries(field: &str, len: usize, max: usize) -> Result<(), FieldError> {
    if len > max {
        return Err(FieldError::new(
            field,
            format!("has {len} entries, more than the maximum of {max}"),
        ));
    }
    Ok(())
}

fn entry(field: &str, index: usize, why: &str) -> FieldError {
    FieldError::new(field, format!("entry {}: {why}", index + 1))
}

fn text(value: &str, max_chars: usize, lines: Lines) -> Result<(), String> {
    let value = value.trim();
    // `nth` stops at the limit: an oversized value is not walked to its end.
    if value.chars().nth(max_chars).is_some() {
        return Err(format!(
            "is longer than the maximum of {max_chars} characters"
        ));
    }
    controls(value, lines)
}

fn controls(value: &str, lines: Lines) -> Result<(), String> {
    let allowed = |c: char| lines == Lines::Many && matches!(c, '\t' | '\n' | '\r');
    match value.chars().find(|&c| c.is_control() && !allowed(c)) {
        None => Ok(()),
        Some(c) => Err(match lines {
            Lines::One => format!(
                "must not hold control characters (found U+{:04X})",
                c as u32
            ),
            Lines::Many => format!(
                "must not hold control characters other than tab, line feed and carriage \
                 return (found U+{:04X})",
                c as u32
            ),
        }),
    }
}

fn web_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http or https URL, not {}:",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{IncidentDraft, TxHashInput};
    use chrono::{DateTime, TimeZone, Utc};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn euler() -> IncidentInput {
        IncidentInput {
            source: Some("defillama".into()),
            source_url: Some("https://rekt.news/euler-rekt/".into()),
            external_id: Some("1336".into()),
            protocol: Some("Euler Finance".into()),
            chains: vec!["Ethereum".into()],
            date: Some("3/13/23".into()),
            loss_usd: Some("197000000".into()),
            recovered_usd: Some("177000000".into()),
            attack_type: Some("oracle_manipulation".into()),
            attack_class: Some("Protocol Logic".into()),
            technique: Some("Flashloan donation attack".into()),
            tx_hashes: vec![TxHashInput {
                chain: Some("ethereum".into()),
                hash: format!("0x{}", "c3".repeat(32)),
            }],
            status: Some("confirmed".into()),
            description: Some("Donation to a reserve.\r\n\tThen a liquidation.".into()),
            ..IncidentInput::default()
        }
    }

    fn refusal(input: IncidentInput) -> FieldError {
        IncidentDraft::from_input(input, now()).unwrap_err()
    }

    type Setter = fn(&mut IncidentInput, String);

    /// Every text field of a claim, with how to put a value in it.
    const FIELDS: &[(&str, Setter)] = &[
        ("source", |i, v| i.source = Some(v)),
        ("source_url", |i, v| i.source_url = Some(v)),
        ("external_id", |i, v| i.external_id = Some(v)),
        ("protocol", |i, v| i.protocol = Some(v)),
        ("chains", |i, v| i.chains = vec![v]),
        ("date", |i, v| i.date = Some(v)),
        ("loss_usd", |i, v| i.loss_usd = Some(v)),
        ("recovered_usd", |i, v| i.recovered_usd = Some(v)),
        ("attack_type", |i, v| i.attack_type = Some(v)),
        ("attack_class", |i, v| i.attack_class = Some(v)),
        ("technique", |i, v| i.technique = Some(v)),
        ("tx_hashes", |i, v| i.tx_hashes[0].hash = v),
        ("tx_hashes", |i, v| i.tx_hashes[0].chain = Some(v)),
        ("status", |i, v| i.status = Some(v)),
        ("description", |i, v| i.description = Some(v)),
    ];

    #[test]
    fn the_claim_holding_every_field_is_accepted() {
        let draft = IncidentDraft::from_input(euler(), now()).unwrap();
        assert_eq!(
            draft.description.as_deref(),
            Some("Donation to a reserve.\r\n\tThen a liquidation.")
        );
    }

    #[test]
    fn a_nul_in_the_protocol_is_refused_naming_the_field() {
        let mut input = euler();
        input.protocol = Some("Euler\u{0}Finance".into());
        let refused = refusal(input);
        assert_eq!(refused.field, "protocol");
        assert!(refused.message.contains("U+0000"), "{refused}");
    }

    #[test]
    fn a_nul_in_any_text_field_is_refused_naming_that_field() {
        for (field, set) in FIELDS {
            let mut input = euler();
            set(&mut input, "abc\u{0}def".into());
            let refused = refusal(input);
            assert_eq!(refused.field, *field, "{refused}");
            assert!(refused.message.contains("control characters"), "{refused}");
        }
    }

    #[test]
    fn every_control_character_is_refused_outside_the_description() {
        let controls = (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32);
        for c in controls {
            for (field, set) in FIELDS.iter().filter(|(f, _)| *f != "description") {
                let mut input = euler();
                set(&mut input, format!("abc{c}def"));
                assert_eq!(refusal(input).field, *field, "U+{:04X}", c as u32);
            }
        }
    }

    #[test]
    fn a_description_keeps_tabs_and_line_breaks_and_refuses_other_controls() {
        let mut input = euler();
        input.description = Some("one\ttwo\nthree\r\nfour".into());
        assert!(IncidentDraft::from_input(input, now()).is_ok());
        for c in ['\u{0}', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}'] {
            let mut input = euler();
            input.description = Some(format!("before{c}after"));
            let refused = refusal(input);
            assert_eq!(refused.field, "description", "U+{:04X}", c as u32);
            assert!(refused.message.contains("other than tab"), "{refused}");
        }
    }

    #[test]
    fn surrounding_whitespace_is_trimmed_before_the_control_check() {
        let mut input = euler();
        input.protocol = Some("\tEuler Finance\r\n".into());
        let draft = IncidentDraft::from_input(input, now()).unwrap();
        assert_eq!(draft.protocol.display(), "Euler Finance");
    }

    #[test]
    fn a_tab_inside_a_name_is_refused() {
        let mut input = euler();
        input.protocol = Some("Euler\tFinance".into());
        assert_eq!(refusal(input).field, "protocol");
    }

    #[test]
    fn each_text_field_past_its_maximum_is_refused_naming_field_and_maximum() {
        let cases: &[(&str, Setter, usize)] = &[
            ("source", |i, v| i.source = Some(v), MAX_SOURCE_CHARS),
            (
                "external_id",
                |i, v| i.external_id = Some(v),
                MAX_EXTERNAL_ID_CHARS,
            ),
            ("protocol", |i, v| i.protocol = Some(v), MAX_PROTOCOL_CHARS),
            ("chains", |i, v| i.chains = vec![v], MAX_CHAIN_CHARS),
            ("date", |i, v| i.date = Some(v), MAX_DATE_CHARS),
            ("loss_usd", |i, v| i.loss_usd = Some(v), MAX_AMOUNT_CHARS),
            (
                "recovered_usd",
                |i, v| i.recovered_usd = Some(v),
                MAX_AMOUNT_CHARS,
            ),
            (
                "attack_type",
                |i, v| i.attack_type = Some(v),
                MAX_LABEL_CHARS,
            ),
            (
                "attack_class",
                |i, v| i.attack_class = Some(v),
                MAX_LABEL_CHARS,
            ),
            (
                "technique",
                |i, v| i.technique = Some(v),
                MAX_TECHNIQUE_CHARS,
            ),
            (
                "tx_hashes",
                |i, v| i.tx_hashes[0].hash = v,
                MAX_TX_HASH_CHARS,
            ),
            (
                "tx_hashes",
                |i, v| i.tx_hashes[0].chain = Some(v),
                MAX_CHAIN_CHARS,
            ),
            ("status", |i, v| i.status = Some(v), MAX_LABEL_CHARS),
            (
                "description",
                |i, v| i.description = Some(v),
                MAX_DESCRIPTION_CHARS,
            ),
        ];
        for (field, set, max) in cases {
            let mut input = euler();
            // Multi-byte characters: the maximum counts characters, not bytes.
            set(&mut input, "é".repeat(max + 1));
            let refused = refusal(input);
            assert_eq!(refused.field, *field, "{refused}");
            assert!(
                refused
                    .message
                    .contains(&format!("maximum of {max} characters")),
                "{refused}"
            );
        }
        let mut input = euler();
        let long_url = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        input.source_url = Some(long_url);
        let refused = refusal(input);
        assert_eq!(refused.field, "source_url");
        assert!(
            refused.message.contains(&MAX_URL_CHARS.to_string()),
            "{refused}"
        );
    }

    #[test]
    fn a_description_at_its_maximum_is_accepted() {
        let mut input = euler();
        input.description = Some("é".repeat(MAX_DESCRIPTION_CHARS));
        assert!(IncidentDraft::from_input(input, now()).is_ok());
    }

    #[test]
    fn a_claim_with_more_chains_than_the_maximum_is_refused_naming_field_and_maximum() {
        let mut input = euler();
        input.tx_hashes.clear();
        input.chains = (0..=MAX_CHAINS_PER_CLAIM)
            .map(|i| format!("chain{i}"))
            .collect();
        let refused = refusal(input);
        assert_eq!(refused.field, "chains");
        assert!(
            refused
                .message
                .contains(&format!("maximum of {MAX_CHAINS_PER_CLAIM}")),
            "{refused}"
        );
        let mut input = euler();
        input.tx_hashes.clear();
        input.chains = (0..MAX_CHAINS_PER_CLAIM)
            .map(|i| format!("chain{i}"))
            .collect();
        assert!(IncidentDraft::from_input(input, now()).is_ok());
    }

    #[test]
    fn chains_named_only_by_hashes_count_towards_the_maximum() {
        let mut input = euler();
        input.chains = (1..MAX_CHAINS_PER_CLAIM)
            .map(|i| format!("chain{i}"))
            .collect();
        input.tx_hashes = (0..2)
            .map(|i| TxHashInput {
                chain: Some(format!("other{i}")),
                hash: format!("hash{i}"),
            })
            .collect();
        let refused = refusal(input);
        assert_eq!(refused.field, "chains", "{refused}");
    }

    #[test]
    fn a_claim_with_more_hashes_than_the_maximum_is_refused_naming_field_and_maximum() {
        let hashes = |n: usize| -> Vec<TxHashInput> {
            (0..n)
                .map(|i| TxHashInput {
                    chain: None,
                    hash: format!("0x{i:064x}"),
                })
                .collect()
        };
        let mut input = euler();
        input.tx_hashes = hashes(MAX_TX_HASHES_PER_CLAIM + 1);
        let refused = refusal(input);
        assert_eq!(refused.field, "tx_hashes");
        assert!(
            refused
                .message
                .contains(&format!("maximum of {MAX_TX_HASHES_PER_CLAIM}")),
            "{refused}"
        );
        let mut input = euler();
        input.tx_hashes = hashes(MAX_TX_HASHES_PER_CLAIM);
        assert!(IncidentDraft::from_input(input, now()).is_ok());
    }

    #[test]
    fn a_source_url_other_than_http_or_https_is_refused_naming_the_field() {
        for url in [
            "javascript:alert(1)",
            "JavaScript:alert(document.cookie)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "ftp://example.com/report.txt",
            "vbscript:msgbox(1)",
            "mailto:security@example.com",
            "//example.com/relative",
            "example.com/no-scheme",
            "https://",
            "http://",
        ] {
            let mut input = euler();
            input.source_url = Some(url.into());
            let refused = refusal(input);
            assert_eq!(refused.field, "source_url", "{url}: {refused}");
        }
    }

    #[test]
    fn http_and_https_source_urls_with_a_host_are_kept_as_written() {
        for url in [
            "https://rekt.news/euler-rekt/",
            "http://example.com",
            "HTTPS://Example.com/a b?q=1#frag",
            "https://www.google.com/search?q=aperocketfi+hack&oq=aperocketfi+hack",
        ] {
            let mut input = euler();
            input.source_url = Some(url.into());
            let draft = IncidentDraft::from_input(input, now()).unwrap();
            assert_eq!(draft.source.url.as_deref(), Some(url));
        }
    }
}
