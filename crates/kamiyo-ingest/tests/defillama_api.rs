//! The `defillama-api` format (DeFiLlama's JSON hacks endpoint) on our own fixtures:
//! the same records as the CSV export fixture give the same claims, malformed records
//! are rejected one by one naming their field, and a changed format fails whole. An
//! extra check runs on the real files in `../shared/data/raw/` when they are present.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use chrono::Utc;
use kamiyo_domain::{IncidentDraft, IncidentInput};
use kamiyo_ingest::{parse_path, Format, IngestError, RawIncident};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Claims as the store would hold them, but for the date text each format writes its
/// own way (`3/22/24` in the CSV export, unix seconds in the API): both must mean the
/// same instant.
fn claims(format: Format, path: &Path) -> Vec<Result<IncidentDraft, String>> {
    let now = Utc::now();
    parse_path(format, path, None)
        .unwrap()
        .into_iter()
        .map(|raw| {
            let raw: RawIncident = raw.map_err(|r| r.to_string())?;
            IncidentDraft::from_input(IncidentInput::from(raw), now)
                .map(|mut draft| {
                    draft.source.reported_date = draft.occurred_at.to_rfc3339();
                    draft
                })
                .map_err(|e| e.to_string())
        })
        .collect()
}

#[test]
fn the_api_fixture_gives_the_claims_of_the_csv_export_fixture() {
    let api = claims(Format::DefillamaApi, &fixture("defillama_api_sample.json"));
    let csv = claims(Format::Defillama, &fixture("defillama_sample.csv"));
    assert_eq!(api.len(), 3);
    assert_eq!(api, csv);
    // One record in either shape is one claim: its key names the day, not the text.
    let keys = |claims: &[Result<IncidentDraft, String>]| -> Vec<String> {
        claims.iter().flatten().map(|c| c.claim_key()).collect()
    };
    assert_eq!(keys(&api), keys(&csv));
    assert_eq!(keys(&api)[0], "id:examplefi:9001@2024-03-22");
    let first = api[0].as_ref().unwrap();
    assert_eq!(first.source.name, "defillama");
    assert_eq!(first.source.external_id.as_deref(), Some("9001"));
    assert_eq!(first.loss_usd.unwrap().to_string(), "4800000.00");
    // Samplswap names no chain, in both: kept on the unknown chain.
    assert_eq!(
        api[2].as_ref().unwrap().chains,
        [kamiyo_domain::Chain::unknown()]
    );
}

#[test]
fn malformed_records_are_rejected_one_by_one_naming_their_field() {
    let results = parse_path(
        Format::DefillamaApi,
        &fixture("defillama_api_malformed.json"),
        None,
    )
    .unwrap();
    let outcome: Vec<(usize, Option<String>)> = results
        .iter()
        .map(|r| match r {
            Ok(raw) => (raw.line, None),
            Err(rejection) => (rejection.line, rejection.field.clone()),
        })
        .collect();
    assert_eq!(
        outcome,
        [
            (1, None),
            (2, Some("date".into())),
            (3, Some("chain".into())),
            (4, Some("amount".into())),
            (5, None),
            (6, None),
        ]
    );
    assert!(results[4].is_err(), "a record that is not an object");
    assert_eq!(results[5].as_ref().unwrap().bridge, None, "null is unknown");
}

#[test]
fn html_in_place_of_json_fails_the_whole_answer_naming_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hacks.json");
    std::fs::write(
        &path,
        "<!DOCTYPE html><html><title>Cloudflare</title></html>",
    )
    .unwrap();
    let err = parse_path(Format::DefillamaApi, &path, None).unwrap_err();
    assert!(matches!(err, IngestError::Shape { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("HTML"), "{message}");
    assert!(
        message.contains("JSON array of DeFiLlama hack records"),
        "{message}"
    );
}

const REAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/raw/");

/// The real 448 records in both shapes give the same claims (an extra check: the files
/// are not part of the repository).
#[test]
fn the_real_api_shape_and_csv_export_give_the_same_claims() {
    let api = Path::new(REAL).join("defillama_hacks_api_shape.json");
    let csv = Path::new(REAL).join("defillama_hacks_export.csv");
    if !api.exists() || !csv.exists() {
        eprintln!("note: the real DeFiLlama files are absent; the fixture tests cover the format");
        return;
    }
    let (api, csv) = (
        claims(Format::DefillamaApi, &api),
        claims(Format::Defillama, &csv),
    );
    assert_eq!(api.len(), 448);
    let differing: Vec<usize> = api
        .iter()
        .zip(&csv)
        .enumerate()
        .filter(|(_, (a, c))| a != c)
        .map(|(i, _)| i)
        .collect();
    if let Some(&first) = differing.first() {
        panic!(
            "{} records differ; record {}: API {:#?} vs CSV {:#?}",
            differing.len(),
            first + 1,
            api[first],
            csv[first]
        );
    }
    assert_eq!(api.iter().filter(|c| c.is_ok()).count(), 448);
    let unknown = api
        .iter()
        .flatten()
        .filter(|c| c.chains == [kamiyo_domain::Chain::unknown()])
        .count();
    assert_eq!(unknown, 13, "the records that name no chain");
}
