//! Each format's happy path and a file of malformed lines, from the fixtures beside this
//! file (invented incidents).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use kamiyo_ingest::{parse, parse_path, Format, IngestError, RawIncident, RawTxHash, Rejection};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn parse_fixture(
    format: Format,
    name: &str,
    default_source: Option<&str>,
) -> Vec<Result<RawIncident, Rejection>> {
    parse_path(format, &fixture(name), default_source).unwrap()
}

fn accepted(results: Vec<Result<RawIncident, Rejection>>) -> Vec<RawIncident> {
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|rejection| panic!("unexpected rejection: {rejection}"))
        })
        .collect()
}

fn tx(chain: Option<&str>, hash: &str) -> RawTxHash {
    RawTxHash {
        chain: chain.map(str::to_owned),
        hash: hash.to_owned(),
    }
}

fn hash_of(digit: char) -> String {
    format!("0x{}", digit.to_string().repeat(64))
}

/// The first incident of both Kamiyo fixtures, field for field.
fn examplefi(line: usize, description: &str) -> RawIncident {
    RawIncident {
        line,
        source: Some("examplefeed".into()),
        source_url: Some("https://example.com/incidents/examplefi".into()),
        external_id: Some("17".into()),
        id_names_incident: false,
        protocol: Some("Examplefi".into()),
        chains: vec!["Ethereum".into(), "Arbitrum".into()],
        date: Some("2024-03-22".into()),
        loss_usd: Some("123456789012345678901234.56".into()),
        recovered_usd: Some("1500000".into()),
        attack_class: Some("oracle_manipulation".into()),
        technique: Some("Spot price read from a thin pool".into()),
        tx_hashes: vec![
            tx(Some("ethereum"), &hash_of('1')),
            tx(Some("arbitrum"), &hash_of('2')),
        ],
        status: Some("confirmed".into()),
        description: Some(description.into()),
        flash_loan: Some(true),
        bridge: Some(false),
        target_type: Some("DeFi Protocol".into()),
    }
}

#[test]
fn jsonl_fixture_parses_every_field_and_keeps_large_numbers_exact() {
    let incidents = accepted(parse_fixture(
        Format::Jsonl,
        "incidents.jsonl",
        Some("incidents.jsonl"),
    ));
    assert_eq!(incidents.len(), 3);

    assert_eq!(
        incidents[0],
        examplefi(
            2,
            "Price oracle read a pool an attacker could move in one block."
        )
    );

    let samplswap = &incidents[1];
    assert_eq!(samplswap.line, 4, "the blank line 3 still counts");
    assert_eq!(samplswap.chains, ["BSC"]);
    assert_eq!(samplswap.loss_usd.as_deref(), Some("250000"));
    assert_eq!(samplswap.tx_hashes, [tx(None, &hash_of('3'))]);
    assert_eq!(
        samplswap.source.as_deref(),
        Some("incidents.jsonl"),
        "default source"
    );

    let demobridge = &incidents[2];
    assert_eq!(demobridge.line, 5);
    assert_eq!(demobridge.chains, ["Ethereum", "Optimism"]);
    assert_eq!(demobridge.loss_usd, None, "null is absent");
    assert_eq!(demobridge.bridge, Some(true));
    assert_eq!(demobridge.external_id.as_deref(), Some("demo-1"));
}

#[test]
fn csv_fixture_parses_every_field_and_reports_the_line_a_record_starts_on() {
    let incidents = accepted(parse_fixture(Format::Csv, "incidents.csv", None));
    assert_eq!(incidents.len(), 3);

    assert_eq!(
        incidents[0],
        examplefi(
            2,
            "Price oracle read a pool an attacker could move\nin one block."
        )
    );

    let samplswap = &incidents[1];
    assert_eq!(samplswap.line, 4, "the previous record spans lines 2 and 3");
    assert_eq!(samplswap.tx_hashes, [tx(None, &hash_of('3'))]);
    assert_eq!(samplswap.recovered_usd, None);
    assert_eq!(samplswap.source, None, "no default source given");
    assert_eq!((samplswap.flash_loan, samplswap.bridge), (None, None));

    let demobridge = &incidents[2];
    assert_eq!(demobridge.line, 5);
    assert_eq!(demobridge.chains, ["Ethereum", "Optimism"]);
    assert_eq!(demobridge.bridge, Some(true));
}

#[test]
fn defillama_fixture_maps_the_export_columns() {
    let incidents = accepted(parse_fixture(
        Format::Defillama,
        "defillama_sample.csv",
        None,
    ));
    assert_eq!(incidents.len(), 3);

    assert_eq!(
        incidents[1],
        RawIncident {
            line: 3,
            source: Some("defillama".into()),
            source_url: Some("https://example.com/incidents/demobridge".into()),
            external_id: Some("9002".into()),
            protocol: Some("Demobridge".into()),
            chains: vec!["Ethereum".into(), "BSC".into(), "Polygon".into()],
            date: Some("12/5/23".into()),
            loss_usd: Some("81000000".into()),
            recovered_usd: Some("2500000".into()),
            attack_class: Some("Infrastructure".into()),
            technique: Some("Private Key Compromised".into()),
            bridge: Some(true),
            target_type: Some("Bridge".into()),
            ..RawIncident::default()
        }
    );

    let samplswap = &incidents[2];
    assert_eq!(samplswap.date.as_deref(), Some("1/9/21"));
    assert_eq!(samplswap.loss_usd, None);
    assert_eq!(samplswap.external_id, None);
    assert!(samplswap.chains.is_empty());
    assert_eq!(samplswap.bridge, Some(false));
}

/// (line, field) of each result, `None` for accepted records.
fn outcome(results: &[Result<RawIncident, Rejection>]) -> Vec<(usize, Option<Option<&str>>)> {
    results
        .iter()
        .map(|result| match result {
            Ok(incident) => (incident.line, None),
            Err(rejection) => (rejection.line, Some(rejection.field.as_deref())),
        })
        .collect()
}

#[test]
fn malformed_jsonl_lines_are_rejected_with_their_line_and_the_rest_parse() {
    let results = parse_fixture(Format::Jsonl, "malformed.jsonl", None);
    assert_eq!(
        outcome(&results),
        [
            (2, None),
            (3, Some(None)),             // malformed JSON
            (4, Some(Some("loss_usd"))), // wrong type
            (5, Some(Some("protocl"))),  // unknown key
            (6, Some(None)),             // not UTF-8
            (8, None),
        ]
    );
    let message = |index: usize| results[index].as_ref().unwrap_err().to_string();
    assert!(
        message(1).starts_with("line 3: malformed JSON"),
        "{}",
        message(1)
    );
    assert!(
        message(2).contains("`loss_usd` must be a number or a string, found a boolean"),
        "{}",
        message(2)
    );
    assert!(
        message(3).contains("unknown key `protocl` (did you mean `protocol`?)"),
        "{}",
        message(3)
    );
    assert!(message(4).contains("not valid UTF-8"), "{}", message(4));
    assert_eq!(
        results[5].as_ref().unwrap().protocol.as_deref(),
        Some("Samplswap")
    );
}

#[test]
fn malformed_csv_rows_are_rejected_with_their_line_and_the_rest_parse() {
    let results = parse_fixture(Format::Csv, "malformed.csv", None);
    assert_eq!(
        outcome(&results),
        [
            (2, None),
            (3, Some(Some("flash_loan"))), // bad boolean
            (4, Some(Some("protocol"))),   // not UTF-8
            (5, Some(None)),               // too few fields
            (6, None),
        ]
    );
    let rejection = results[1].as_ref().unwrap_err();
    assert!(rejection.message.contains("\"sometimes\""), "{rejection}");
    let last = results[4].as_ref().unwrap();
    assert_eq!((last.flash_loan, last.bridge), (Some(false), Some(true)));
}

#[test]
fn csv_header_with_unknown_or_missing_columns_fails_the_whole_file() {
    let err = parse(
        Format::Csv,
        "protocol,chain,loss\nExamplefi,Ethereum,1\n".as_bytes(),
        None,
    )
    .unwrap_err();
    match &err {
        IngestError::UnknownColumns { columns, .. } => {
            let names: Vec<_> = columns.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!(names, ["chain", "loss"]);
        }
        other => panic!("expected unknown columns, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("\"chain\" (did you mean \"chains\"?)"),
        "{err}"
    );

    let err = parse(Format::Csv, "chains,loss_usd\n".as_bytes(), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "csv header is missing required column(s): protocol, date"
    );
}

#[test]
fn formats_are_chosen_by_name_or_extension() {
    assert_eq!(
        Format::from_path(&fixture("incidents.jsonl")),
        Some(Format::Jsonl)
    );
    assert_eq!(
        Format::from_path(&fixture("defillama_sample.csv")),
        Some(Format::Csv)
    );
    assert_eq!("defillama".parse::<Format>().unwrap(), Format::Defillama);
}

#[test]
fn parse_and_parse_path_agree() {
    let bytes = std::fs::read(fixture("malformed.jsonl")).unwrap();
    assert_eq!(
        parse(Format::Jsonl, bytes.as_slice(), Some("x")).unwrap(),
        parse_path(Format::Jsonl, &fixture("malformed.jsonl"), Some("x")).unwrap()
    );
}
