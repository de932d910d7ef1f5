use chrono::TimeZone;

use super::*;
use crate::limits::{MAX_CHAINS_PER_CLAIM, MAX_DESCRIPTION_CHARS, MAX_TX_HASHES_PER_CLAIM};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

const EVM_HASH: &str = "0xc310a0affe2169d1f6feec1c63dbc7f7c62a887fa48795d327d4d2da2d6b111d";

fn solana_signature() -> String {
    "5".repeat(80)
}

fn hash(chain: Option<&str>, hash: &str) -> TxHashInput {
    TxHashInput {
        chain: chain.map(str::to_owned),
        hash: hash.to_owned(),
    }
}

fn euler() -> SubmissionInput {
    SubmissionInput {
        protocol: Some("Euler Finance".into()),
        chains: vec!["ethereum".into()],
        date: Some("2023-03-13".into()),
        loss_usd: Some("197000000".into()),
        tx_hashes: vec![hash(Some("ethereum"), EVM_HASH)],
        description: Some("Donation to reserves, then a self-liquidation.".into()),
        attack_type: None,
        technique: Some("flash loan, donation".into()),
        evidence_urls: vec![
            format!("https://etherscan.io/tx/{EVM_HASH}"),
            "https://rekt.news/euler-rekt/".into(),
        ],
        attacker_addresses: vec!["0x5F259D0b76665c337c6104145894F4D1D2758B8c".into()],
        victim_addresses: Vec::new(),
    }
}

fn refusal(input: SubmissionInput) -> FieldError {
    input.validate(now()).unwrap_err()
}

fn fingerprint(input: SubmissionInput) -> String {
    input.validate(now()).unwrap().fingerprint
}

#[test]
fn a_valid_submission_becomes_a_claim_of_the_community() {
    let valid = euler().validate(now()).unwrap();
    assert_eq!(valid.claim.source.as_deref(), Some("community"));
    assert_eq!(
        valid.claim.source_url.as_deref(),
        Some(format!("https://etherscan.io/tx/{EVM_HASH}").as_str())
    );
    assert_eq!(valid.claim.external_id, None);
    assert_eq!(valid.claim.status, None);
    assert_eq!(valid.claim.protocol.as_deref(), Some("Euler Finance"));
    assert_eq!(valid.draft.protocol.key(), "euler");
    assert_eq!(valid.draft.source.name, "community");
    assert!(valid.draft.flash_loan);
    assert_eq!(valid.evidence_urls.len(), 2);
    assert_eq!(
        valid.attacker_addresses,
        ["0x5f259d0b76665c337c6104145894f4d1d2758b8c"]
    );
    assert_eq!(valid.fingerprint.len(), 64);
    assert!(valid.fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn the_claim_of_a_verified_submission_is_named_by_the_submission() {
    let valid = euler().validate(now()).unwrap();
    let claim = valid.claim_for(42);
    assert_eq!(claim.external_id.as_deref(), Some("submission-42"));
    assert_eq!(claim.source.as_deref(), Some("community"));
    let draft = IncidentDraft::from_input(claim, now()).unwrap();
    assert_eq!(draft.source.external_id.as_deref(), Some("submission-42"));
}

#[test]
fn each_claim_field_is_refused_naming_the_submission_field() {
    type Breaker = fn(&mut SubmissionInput);
    let cases: Vec<(Breaker, &str)> = vec![
        (|s| s.protocol = None, "protocol"),
        (|s| s.protocol = Some("  ".into()), "protocol"),
        (|s| s.protocol = Some("Euler\u{0}".into()), "protocol"),
        (|s| s.date = None, "date"),
        (|s| s.date = Some("someday".into()), "date"),
        (|s| s.date = Some("2031-01-01".into()), "date"),
        (|s| s.loss_usd = Some("-1".into()), "loss_usd"),
        (|s| s.loss_usd = Some("lots".into()), "loss_usd"),
        (|s| s.attack_type = Some("rumour".into()), "attack_type"),
        (|s| s.technique = Some("a\u{7}b".into()), "technique"),
        (
            |s| s.description = Some("é".repeat(MAX_DESCRIPTION_CHARS + 1)),
            "description",
        ),
        (|s| s.description = Some("a\u{0}b".into()), "description"),
        (
            |s| s.chains = vec!["ethereum".into(), "bad\u{1b}chain".into()],
            "chains[1]",
        ),
        (|s| s.chains = vec![" - ".into()], "chains[0]"),
        (|s| s.tx_hashes[0].hash = "0x12".into(), "tx_hashes[0].hash"),
        (
            |s| s.tx_hashes[0].hash = "x".repeat(200),
            "tx_hashes[0].hash",
        ),
        (
            |s| s.tx_hashes[0].chain = Some("eth\u{0}".into()),
            "tx_hashes[0].chain",
        ),
        (
            |s| s.tx_hashes[0].chain = Some("_".into()),
            "tx_hashes[0].chain",
        ),
    ];
    for (break_it, field) in cases {
        let mut input = euler();
        break_it(&mut input);
        let refused = refusal(input);
        assert_eq!(refused.field, field, "{refused}");
        assert!(!refused.message.starts_with("entry "), "{refused}");
    }
}

#[test]
fn a_solana_signature_on_an_evm_chain_is_refused_as_a_claim_would_be() {
    let mut input = euler();
    input.tx_hashes = vec![
        hash(Some("ethereum"), EVM_HASH),
        hash(Some("ethereum"), &solana_signature()),
    ];
    let refused = refusal(input);
    assert_eq!(refused.field, "tx_hashes[1].hash");
    assert!(refused.message.contains("Ethereum"), "{refused}");
    // The same refusal as POST /api/exploits gives the claim (there, without the entry).
    let mut claim = euler().validate(now()).unwrap().claim;
    claim.tx_hashes = vec![hash(Some("ethereum"), &solana_signature())];
    let (_, dropped) = IncidentDraft::from_input_with_warnings(claim, now()).unwrap();
    assert_eq!(dropped[0].message, refused.message);
}

#[test]
fn an_evm_hash_on_solana_is_refused() {
    let mut input = euler();
    input.chains = vec!["solana".into()];
    input.tx_hashes = vec![hash(None, EVM_HASH)];
    assert_eq!(refusal(input).field, "tx_hashes[0].hash");
}

#[test]
fn a_hash_is_judged_on_the_chain_the_hashes_before_it_name() {
    // No chain in `chains`: the first hash names Solana, which the second, without a
    // chain of its own, takes; an EVM hash does not suit it.
    let mut input = euler();
    input.chains = Vec::new();
    input.tx_hashes = vec![
        hash(Some("solana"), &solana_signature()),
        hash(None, EVM_HASH),
    ];
    let refused = refusal(input);
    assert_eq!(refused.field, "tx_hashes[1].hash", "{refused}");
    assert!(refused.message.contains("Solana"), "{refused}");
}

#[test]
fn the_first_refused_of_many_hashes_is_named() {
    let mut input = euler();
    input.tx_hashes = (0..300)
        .map(|i| hash(Some("ethereum"), &format!("0x{i:064x}")))
        .collect();
    input.tx_hashes[217].hash = solana_signature();
    input.tx_hashes[250].hash = "0x1".into();
    assert_eq!(refusal(input).field, "tx_hashes[217].hash");
}

#[test]
fn a_list_past_its_maximum_is_refused_naming_the_list() {
    let mut input = euler();
    input.tx_hashes = (0..=MAX_TX_HASHES_PER_CLAIM)
        .map(|i| hash(None, &format!("0x{i:064x}")))
        .collect();
    assert_eq!(refusal(input).field, "tx_hashes");
    let mut input = euler();
    input.tx_hashes.clear();
    input.chains = (0..=MAX_CHAINS_PER_CLAIM)
        .map(|i| format!("chain{i}"))
        .collect();
    assert_eq!(refusal(input).field, "chains");
    // Chains named by hashes past the maximum: no one entry is at fault.
    let mut input = euler();
    input.chains = (1..MAX_CHAINS_PER_CLAIM)
        .map(|i| format!("chain{i}"))
        .collect();
    input.tx_hashes = (0..2)
        .map(|i| hash(Some(&format!("other{i}")), &format!("hash{i}")))
        .collect();
    assert_eq!(refusal(input).field, "chains");
}

#[test]
fn evidence_urls_are_required() {
    let mut input = euler();
    input.evidence_urls.clear();
    let refused = refusal(input);
    assert_eq!(refused.field, "evidence_urls");
    assert!(refused.message.contains("at least one"), "{refused}");
}

#[test]
fn at_most_ten_evidence_urls() {
    let urls =
        |n: usize| -> Vec<String> { (0..n).map(|i| format!("https://example.com/{i}")).collect() };
    let mut input = euler();
    input.evidence_urls = urls(MAX_EVIDENCE_URLS + 1);
    let refused = refusal(input);
    assert_eq!(refused.field, "evidence_urls");
    assert!(refused.message.contains("maximum of 10"), "{refused}");
    let mut input = euler();
    input.evidence_urls = urls(MAX_EVIDENCE_URLS);
    assert!(input.validate(now()).is_ok());
}

#[test]
fn each_evidence_url_that_is_not_a_plain_web_link_is_refused_naming_its_entry() {
    for url in [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "ftp://example.com/report.txt",
        "//example.com/relative",
        "example.com/no-scheme",
        "https://",
        "",
        "   ",
        "https://user:secret@example.com/report",
        "https://user@example.com/report",
        "https://etherscan.io@evil.example/tx",
        "https://example.com/a\u{0}b",
        "https://example.com/a\u{85}b",
    ] {
        let mut input = euler();
        input.evidence_urls = vec!["https://rekt.news/".into(), url.into()];
        let refused = refusal(input);
        assert_eq!(refused.field, "evidence_urls[1]", "{url:?}: {refused}");
    }
    let mut input = euler();
    input.evidence_urls = vec!["https://user:secret@example.com/".into()];
    assert!(refusal(input).message.contains("credentials"));
}

#[test]
fn an_evidence_url_is_at_most_two_thousand_characters() {
    let url = |len: usize| format!("https://example.com/{}", "a".repeat(len - 20));
    let mut input = euler();
    input.evidence_urls = vec![format!("  {}  ", url(MAX_EVIDENCE_URL_CHARS))];
    let valid = input.validate(now()).unwrap();
    assert_eq!(valid.evidence_urls[0].len(), MAX_EVIDENCE_URL_CHARS);
    let mut input = euler();
    input.evidence_urls = vec![url(MAX_EVIDENCE_URL_CHARS + 1)];
    let refused = refusal(input);
    assert_eq!(refused.field, "evidence_urls[0]");
    assert!(refused.message.contains("2000"), "{refused}");
}

#[test]
fn evidence_urls_are_trimmed_and_kept_once() {
    let mut input = euler();
    input.evidence_urls = vec![
        " https://Rekt.news/euler-rekt/ ".into(),
        "https://rekt.news/euler-rekt".into(),
        "HTTPS://rekt.news/euler-rekt//".into(),
        "https://rekt.news/Euler-Rekt".into(),
    ];
    let valid = input.validate(now()).unwrap();
    assert_eq!(
        valid.evidence_urls,
        [
            "https://Rekt.news/euler-rekt/",
            "https://rekt.news/Euler-Rekt"
        ]
    );
    assert_eq!(
        valid.claim.source_url.as_deref(),
        Some("https://Rekt.news/euler-rekt/")
    );
}

#[test]
fn each_address_is_refused_naming_its_list_and_entry() {
    type Setter = fn(&mut SubmissionInput, Vec<String>);
    let lists: [(&str, Setter); 2] = [
        ("attacker_addresses", |s, v| s.attacker_addresses = v),
        ("victim_addresses", |s, v| s.victim_addresses = v),
    ];
    for (field, set) in lists {
        for bad in [
            "",
            "  ",
            "0xabc def",
            "0xabc\u{a0}def",
            "0xabc\u{0}",
            "0xabc\u{85}def",
            "0xabc\u{200b}def",
            "0xabc\u{202e}fed",
            "0xаbc",
        ] {
            let mut input = euler();
            set(&mut input, vec!["0xabc".into(), bad.into()]);
            let refused = refusal(input);
            assert_eq!(refused.field, format!("{field}[1]"), "{bad:?}: {refused}");
        }
        let mut input = euler();
        set(&mut input, vec!["a".repeat(MAX_ADDRESS_CHARS + 1)]);
        let refused = refusal(input);
        assert_eq!(refused.field, format!("{field}[0]"));
        assert!(refused.message.contains("128"), "{refused}");
        let mut input = euler();
        set(&mut input, vec!["a".repeat(MAX_ADDRESS_CHARS)]);
        assert!(input.validate(now()).is_ok());
        let mut input = euler();
        set(
            &mut input,
            (0..=MAX_ADDRESSES).map(|i| format!("addr{i}")).collect(),
        );
        let refused = refusal(input);
        assert_eq!(refused.field, field);
        assert!(refused.message.contains("maximum of 20"), "{refused}");
    }
}

#[test]
fn addresses_are_trimmed_and_kept_once_with_evm_ones_lower_cased() {
    let mut input = euler();
    input.victim_addresses = vec![
        " 0x27182842E098f60e3D576794A5bFFb0777E025d3 ".into(),
        "0x27182842e098f60e3d576794a5bffb0777e025d3".into(),
        "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v".into(),
        "epjfwdd5aufqssqem2qn1xzybapc8g4weggkzwytdt1v".into(),
    ];
    let valid = input.validate(now()).unwrap();
    assert_eq!(
        valid.victim_addresses,
        [
            "0x27182842e098f60e3d576794a5bffb0777e025d3",
            "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
            "epjfwdd5aufqssqem2qn1xzybapc8g4weggkzwytdt1v",
        ]
    );
}

#[test]
fn the_same_submission_in_other_case_order_whitespace_or_slashes_has_the_same_fingerprint() {
    let original = fingerprint(euler());
    let mut retyped = euler();
    retyped.protocol = Some("  EulerFinance v1 ".into());
    retyped.chains = vec!["ETH".into()];
    retyped.date = Some("2023-03-13T17:45:00Z".into());
    retyped.loss_usd = Some("$197,000,000.40".into());
    retyped.tx_hashes = vec![hash(
        None,
        &format!(" {} ", EVM_HASH.to_uppercase().replace("0X", "0x")),
    )];
    retyped.evidence_urls = vec![
        " HTTPS://Rekt.News/euler-rekt ".into(),
        format!("https://etherscan.io/tx/{EVM_HASH}/"),
    ];
    // What tells the story is not part of it.
    retyped.description = Some("Another telling.".into());
    retyped.technique = None;
    retyped.attacker_addresses.clear();
    assert_eq!(fingerprint(retyped), original);
}

#[test]
fn the_order_of_chains_and_hashes_does_not_matter() {
    let second_hash = format!("0x{}", "ab".repeat(32));
    let mut one = euler();
    one.chains = vec!["ethereum".into(), "arbitrum".into()];
    one.tx_hashes = vec![
        hash(Some("ethereum"), EVM_HASH),
        hash(Some("arbitrum"), &second_hash),
    ];
    let mut other = one.clone();
    other.chains.reverse();
    other.tx_hashes.reverse();
    assert_eq!(fingerprint(one), fingerprint(other));
}

#[test]
fn a_difference_of_substance_makes_another_fingerprint() {
    let original = fingerprint(euler());
    type Breaker = fn(&mut SubmissionInput);
    let changes: Vec<(Breaker, &str)> = vec![
        (
            |s| s.tx_hashes[0].hash = format!("0x{}", "ab".repeat(32)),
            "hash",
        ),
        (|s| s.date = Some("2023-03-14".into()), "date"),
        (|s| s.protocol = Some("Aave".into()), "protocol"),
        (|s| s.chains = vec!["arbitrum".into()], "chain"),
        (|s| s.loss_usd = Some("197000002".into()), "loss"),
        (|s| s.loss_usd = None, "unknown loss"),
        (
            |s| s.evidence_urls = vec!["https://rekt.news/euler-rekt/".into()],
            "fewer URLs",
        ),
        (
            |s| s.evidence_urls[1] = "https://rekt.news/Euler-Rekt/".into(),
            "a URL's path in another case",
        ),
    ];
    for (change, what) in changes {
        let mut input = euler();
        change(&mut input);
        assert_ne!(fingerprint(input), original, "{what}");
    }
}

#[test]
fn a_submission_is_read_from_json_and_refuses_the_fields_the_service_sets() {
    let json = format!(
        r#"{{"protocol": "Euler", "date": "2023-03-13", "loss_usd": 197000000,
            "tx_hashes": [{{"chain": "ethereum", "hash": "{EVM_HASH}"}}],
            "evidence_urls": ["https://rekt.news/euler-rekt/"]}}"#
    );
    let input: SubmissionInput = serde_json::from_str(&json).unwrap();
    assert_eq!(input.loss_usd.as_deref(), Some("197000000"));
    assert!(input.victim_addresses.is_empty());
    assert!(input.validate(now()).is_ok());
    for field in ["source", "source_url", "external_id", "status"] {
        let json = format!(r#"{{"protocol": "Euler", "{field}": "x"}}"#);
        let err = serde_json::from_str::<SubmissionInput>(&json).unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn the_schema_requires_evidence_and_bounds_the_lists() {
    use utoipa::PartialSchema;
    let schema = serde_json::to_value(SubmissionInput::schema()).unwrap();
    let required = schema["required"].as_array().unwrap();
    for field in ["protocol", "date", "evidence_urls"] {
        assert!(required.iter().any(|r| r == field), "{field}: {schema}");
    }
    let evidence = &schema["properties"]["evidence_urls"];
    assert_eq!(evidence["minItems"], 1);
    assert_eq!(evidence["maxItems"], MAX_EVIDENCE_URLS);
    assert_eq!(
        schema["properties"]["victim_addresses"]["maxItems"],
        MAX_ADDRESSES
    );
}

#[test]
fn the_fingerprint_recipe_is_pinned() {
    // Stored fingerprints are compared with new ones: a change of recipe must be
    // deliberate (and change its version line). The SHA-256, computed outside this
    // code, of "kamiyo-submission-fingerprint-v1\nprotocol euler\nday 2023-03-13\n
    // loss 197000000\nchain ethereum\nhash 0xc310...\nurl https://etherscan.io/tx/0xc310...
    // \nurl https://rekt.news/euler-rekt\n".
    assert_eq!(
        fingerprint(euler()),
        "dd098cf45fa700370e41d4e5eec6335915a02daff7c2a182c133b3af70e4b5c2"
    );
}
