//! An extra check against a real DeFiLlama `/hacks` export, when one is present next to the
//! repository (`../shared/data/raw/`). It is not part of the repository, so without it this
//! test says so and passes; the fixtures in `fixtures.rs` are the core tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use kamiyo_domain::{IncidentDraft, IncidentInput};
use kamiyo_ingest::{parse_path, Format};

const EXPORT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/raw/defillama_hacks_export.csv"
);

#[test]
fn real_defillama_export_parses_without_rejections() {
    let path = Path::new(EXPORT);
    if !path.exists() {
        eprintln!(
            "note: {EXPORT} is absent; skipping the real DeFiLlama export check \
             (the fixture tests still cover the format)"
        );
        return;
    }
    let results = parse_path(Format::Defillama, path, None).unwrap();
    let rejected: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(rejected.is_empty(), "rejections: {rejected:#?}");
    assert_eq!(results.len(), 448);

    let incidents: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    let first = &incidents[0];
    assert_eq!(first.line, 2);
    assert_eq!(first.protocol.as_deref(), Some("Super Sushi Samurai"));
    assert_eq!(first.date.as_deref(), Some("3/22/24"));
    assert_eq!(first.loss_usd.as_deref(), Some("4800000"));
    assert_eq!(first.chains, ["Blast"]);
    assert_eq!(first.bridge, Some(false));
    assert_eq!(first.source.as_deref(), Some("defillama"));

    assert!(
        incidents.windows(2).all(|pair| pair[0].line < pair[1].line),
        "line numbers increase"
    );
    assert!(
        incidents.iter().any(|incident| incident.chains.len() > 1),
        "quoted chain lists are split"
    );
    assert!(incidents
        .iter()
        .all(|incident| incident.protocol.is_some() && incident.date.is_some()));
}

/// The claim limits and text rules (`kamiyo_domain::incident::limits`) are set from real
/// data; this keeps them from refusing any record of a real export. The 13 records
/// DeFiLlama lists without a chain are kept on the unknown chain.
#[test]
fn the_real_export_validates_as_claims_with_chainless_records_on_the_unknown_chain() {
    let path = Path::new(EXPORT);
    if !path.exists() {
        eprintln!("note: {EXPORT} is absent; skipping the real DeFiLlama claim check");
        return;
    }
    let now = chrono::Utc::now();
    let (mut accepted, mut unknown, mut refused) = (0, 0, Vec::new());
    for raw in parse_path(Format::Defillama, path, None).unwrap() {
        let raw = raw.unwrap();
        let line = raw.line;
        match IncidentDraft::from_input(IncidentInput::from(raw), now) {
            Ok(draft) if draft.chains.iter().any(|c| c.is_unknown()) => unknown += 1,
            Ok(_) => accepted += 1,
            Err(e) => refused.push((line, e)),
        }
    }
    assert!(refused.is_empty(), "refused: {refused:#?}");
    assert_eq!(
        (accepted, unknown),
        (435, 13),
        "the 13 records without a chain are kept on the unknown chain"
    );
}
