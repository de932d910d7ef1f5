//! The `defihacklabs` format (the DeFiHackLabs README) on our own fixture, and on the
//! real 2021 archive and live excerpt in `../shared/data/raw/` as an extra check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use chrono::Utc;
use kamiyo_domain::{IncidentDraft, IncidentInput};
use kamiyo_ingest::{parse_path, Format};

const REAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/raw/");

#[test]
fn the_fixture_maps_each_section_and_never_guesses_a_loss() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/defihacklabs_sample.md");
    let results = parse_path(Format::Defihacklabs, &path, None).unwrap();
    let summary: Vec<(usize, String, Option<String>, Vec<String>)> = results
        .iter()
        .map(|r| {
            let r = r.as_ref().unwrap();
            (
                r.line,
                r.protocol.clone().unwrap(),
                r.loss_usd.clone(),
                r.chains.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                9,
                "Examplefi".into(),
                Some("118700".into()),
                vec!["ethereum".to_owned()]
            ),
            (23, "Demobridge".into(), None, vec!["bsc".to_owned()]),
            (31, "Samplswap".into(), Some("6500000".into()), vec![]),
            (
                37,
                "Tokenvault".into(),
                Some("45715".into()),
                vec!["polygon".to_owned()]
            ),
        ]
    );
    let first = results[0].as_ref().unwrap();
    assert_eq!(first.source.as_deref(), Some("defihacklabs"));
    assert_eq!(
        first.technique.as_deref(),
        Some("Price Oracle Manipulation")
    );
    assert_eq!(first.tx_hashes.len(), 1);
    let demobridge = results[1].as_ref().unwrap();
    assert_eq!(
        demobridge.description.as_deref(),
        Some("Lost: 900 BNB"),
        "a token amount is kept as text, never priced"
    );
}

/// Every section of the real README reads; the claims that validate are those naming a
/// chain (an explorer link), and every USD figure taken is one the text states.
#[test]
fn the_real_readmes_read_without_rejections() {
    let archive = Path::new(REAL).join("defihacklabs_readme_2021.md");
    let live = Path::new(REAL).join("defihacklabs_readme_live_excerpt.md");
    if !archive.exists() || !live.exists() {
        eprintln!(
            "note: the real DeFiHackLabs files are absent; the fixture test covers the format"
        );
        return;
    }
    let records: Vec<_> = parse_path(Format::Defihacklabs, &archive, None)
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(records.len(), 51, "every `### YYYYMMDD` section");
    let with_usd = records.iter().filter(|r| r.loss_usd.is_some()).count();
    let with_chain = records.iter().filter(|r| !r.chains.is_empty()).count();
    eprintln!(
        "2021 archive: {} sections, {with_usd} with a USD loss, {with_chain} with a chain",
        records.len()
    );
    for record in &records {
        if let Some(usd) = &record.loss_usd {
            let text = record.description.as_deref().unwrap();
            assert!(
                text.contains('$') || text.to_ascii_uppercase().contains("USD"),
                "{usd} taken from {text:?}"
            );
        }
    }
    let now = Utc::now();
    let valid = records
        .iter()
        .filter(|r| IncidentDraft::from_input(IncidentInput::from((*r).clone()), now).is_ok())
        .count();
    assert_eq!(
        valid,
        records.len(),
        "every section is a claim ({with_chain} name a chain, the others are kept on the unknown chain)"
    );
    let live: Vec<_> = parse_path(Format::Defihacklabs, &live, None)
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(live.len(), 5);
    assert_eq!(
        live[2].loss_usd.as_deref(),
        Some("118700"),
        "{:?}",
        live[2].description
    );
    assert!(live.iter().all(|r| r
        .external_id
        .as_deref()
        .is_some_and(|p| p.starts_with("src/test/2026-08/"))));
}
