//! A file imported in batches leaves exactly the incidents it leaves when imported one
//! claim at a time, on both backends: the batch path replays the dedup rule in memory,
//! and this is the test that it replays it faithfully (merges across sources and within
//! a batch, a hash pasted onto another protocol, repeated claims, claims updated by a
//! second file).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use kamiyo_db::RetryPolicy;
use kamiyo_domain::{IncidentDraft, IncidentInput};
use kamiyo_ingest::{import, parse_path, Format, ImportOptions, ImportReport};
use kamiyo_store::{Incident, IncidentStore, IngestAction};
use kamiyo_testkit::TestDatabase;

/// A small deterministic generator (no dependency, same file on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const CHAINS: [&str; 4] = ["Ethereum", "BSC", "Arbitrum", "Polygon"];
const SOURCES: [&str; 3] = ["alpha", "beta", "gamma"];

/// `hacks` hacks over a few protocols, each reported by one to three sources with
/// dates a day or two apart, varying names and amounts, sometimes a hash; a few hashes
/// pasted onto another protocol; some records repeated. `bump` changes the amounts of
/// every fifth record (a second file that updates claims).
fn synthetic_file(hacks: u64, bump: bool) -> String {
    let mut rng = Lcg(7);
    let mut out = String::new();
    let mut line = 0u64;
    for hack in 0..hacks {
        let protocol = rng.next(12);
        let chain = CHAINS[rng.next(4) as usize];
        // Hacks of one protocol are months apart, except a few a day or two apart.
        let day = 1 + (hack * 37 + rng.next(3)) % 3000;
        let base_loss = 1_000 + rng.next(5_000_000);
        let hash = (rng.next(3) == 0).then(|| format!("0x{:064x}", hack + 1));
        let reports = 1 + rng.next(3);
        for report in 0..reports {
            line += 1;
            let source = SOURCES[((hack + report) % 3) as usize];
            let name = match report {
                0 => format!("Proto {protocol}"),
                1 => format!("Proto{protocol}"),
                _ => format!("proto {protocol} "),
            };
            let date = chrono::NaiveDate::from_ymd_opt(2018, 1, 1).unwrap()
                + chrono::Duration::days((day + report) as i64);
            let mut loss = base_loss + report * 1000;
            if bump && line.is_multiple_of(5) {
                loss += 7;
            }
            let mut record = format!(
                r#"{{"source": "{source}", "protocol": "{name}", "chains": ["{chain}"], "date": "{date}", "loss_usd": "{loss}""#
            );
            if let Some(hash) = &hash {
                write!(record, r#", "tx_hashes": ["{hash}"]"#).unwrap();
            }
            if rng.next(4) == 0 {
                record.push_str(r#", "technique": "flash loan oracle manipulation""#);
            }
            record.push('}');
            out.push_str(&record);
            out.push('\n');
            if rng.next(15) == 0 {
                // The same record again, as sources repeat themselves (the importer
                // keeps it as the source's second record under that key).
                out.push_str(&record);
                out.push('\n');
            }
        }
        if let Some(hash) = &hash {
            if rng.next(6) == 0 {
                // The hash pasted onto an unrelated protocol's incident.
                out.push_str(&format!(
                    r#"{{"source": "gamma", "protocol": "Other {protocol}", "chains": ["{chain}"], "date": "2025-01-01", "tx_hashes": ["{hash}"]}}"#
                ));
                out.push('\n');
            }
        }
    }
    out
}

/// Every incident with every claim, in a canonical order, ids and times of writing
/// blanked (they differ by run).
async fn snapshot(store: &IncidentStore) -> Vec<Incident> {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let count = store.count().await.unwrap();
    let mut incidents = Vec::new();
    let mut id = 0;
    while incidents.len() < usize::try_from(count).unwrap() {
        id += 1;
        assert!(id < 100_000, "ids are not dense");
        if let Some(mut incident) = store.get(id).await.unwrap() {
            incident.created_at = epoch;
            incident.updated_at = epoch;
            for claim in &mut incident.sources {
                claim.first_seen_at = epoch;
                claim.last_seen_at = epoch;
                claim.id = 0;
            }
            for field in &mut incident.provenance {
                field.claim = 0;
            }
            // Parallel streams allocate ids (of incidents and claims) in commit order:
            // compare without them.
            incident.summary.id = 0;
            incidents.push(incident);
        }
    }
    incidents.sort_by_cached_key(|incident| serde_json::to_string(incident).unwrap());
    incidents
}

async fn import_with(
    store: &common::Stores,
    path: &Path,
    (batch_size, streams): (usize, usize),
) -> ImportReport {
    let retry = RetryPolicy::default();
    let options = ImportOptions {
        format: Format::Jsonl,
        default_source: None,
        batch_size,
        streams,
        fetch_log_keep: kamiyo_store::DEFAULT_SOURCE_FETCH_RETENTION,
    };
    import(
        &store.incidents,
        &store.sources,
        &retry,
        &options,
        path,
        |_, _| {},
    )
    .await
    .unwrap()
}

/// The reference: every record through `IncidentStore::ingest`, one transaction each,
/// with the importer's numbering of a source's repeated record. Returns (inserted,
/// merged, updated, unchanged) and the warned lines.
async fn one_at_a_time(
    store: &IncidentStore,
    path: &Path,
) -> ((usize, usize, usize, usize), Vec<usize>) {
    let now = Utc::now();
    let mut seen = std::collections::HashMap::new();
    let mut counts = (0, 0, 0, 0);
    let mut warned = Vec::new();
    for record in parse_path(Format::Jsonl, path, None).unwrap() {
        let raw = record.unwrap();
        let line = raw.line;
        let mut draft = IncidentDraft::from_input(IncidentInput::from(raw), now).unwrap();
        let occurrence = seen
            .entry(format!("{}|{}", draft.source.name, draft.claim_key()))
            .or_insert(0);
        *occurrence += 1;
        if *occurrence > 1 {
            let id = draft.source.external_id.take().unwrap_or_default();
            draft.source.external_id = Some(format!("{id}#{occurrence}"));
        }
        let outcome = store.ingest(&draft).await.unwrap();
        match outcome.action {
            IngestAction::Inserted => counts.0 += 1,
            IngestAction::Merged => counts.1 += 1,
            IngestAction::Updated => counts.2 += 1,
            IngestAction::Unchanged => counts.3 += 1,
        }
        warned.extend(outcome.warnings.iter().map(|_| line));
    }
    (counts, warned)
}

fn summary(report: &ImportReport) -> ((usize, usize, usize, usize), Vec<usize>) {
    (
        (
            report.inserted,
            report.merged,
            report.updated,
            report.unchanged,
        ),
        report.warnings.iter().map(|w| w.line).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_any_size_and_parallel_streams_decide_exactly_as_one_claim_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    let second = dir.path().join("second.jsonl");
    std::fs::write(&first, synthetic_file(150, false)).unwrap();
    std::fs::write(&second, synthetic_file(150, true)).unwrap();

    let pg = TestDatabase::create().await;
    let sqlite_dir = tempfile::tempdir().unwrap();
    let mut reference = Vec::new();
    for (
        name,
        common::Stores {
            incidents: store, ..
        },
    ) in common::open_stores(&pg, sqlite_dir.path()).await
    {
        let one = one_at_a_time(&store, &first).await;
        let two = one_at_a_time(&store, &second).await;
        // The reference must exercise every rule it is compared on.
        let ((inserted, merged, _, _), warned) = &one;
        assert!(*merged > 20 && *inserted > 100, "{name}: {one:?}");
        assert!(!warned.is_empty(), "{name}: a pasted hash must warn");
        assert!(
            two.0 .2 > 10,
            "{name}: the second file updates claims: {two:?}"
        );
        reference.push((one, two, snapshot(&store).await));
    }

    // (claims per batch, parallel streams)
    for shape in [(1, 1), (7, 1), (1_000, 1), (7, 2), (1_000, 3)] {
        let batch_size = format!("{shape:?}");
        let pg = TestDatabase::create().await;
        let sqlite_dir = tempfile::tempdir().unwrap();
        for ((name, store), (ref_one, ref_two, ref_state)) in
            common::open_stores(&pg, sqlite_dir.path())
                .await
                .into_iter()
                .zip(&reference)
        {
            let one = import_with(&store, &first, shape).await;
            assert!(one.rejected.is_empty(), "{name}: {:?}", one.rejected);
            let two = import_with(&store, &second, shape).await;
            let state = snapshot(&store.incidents).await;
            assert_eq!(
                &summary(&one),
                ref_one,
                "{name}, batches and streams {batch_size}: first file"
            );
            assert_eq!(
                &summary(&two),
                ref_two,
                "{name}, batches and streams {batch_size}: second file"
            );
            assert_eq!(
                state.len(),
                ref_state.len(),
                "{name}, batches and streams {batch_size}"
            );
            for (got, want) in state.iter().zip(ref_state) {
                assert_eq!(got, want, "{name}, batches and streams {batch_size}");
            }
            // Importing the second file again changes nothing, in batches too.
            let again = import_with(&store, &second, shape).await;
            assert_eq!(
                (again.inserted, again.merged, again.updated),
                (0, 0, 0),
                "{name}: {again:?}"
            );
        }
    }
    // Both backends reach the same incidents.
    assert_eq!(reference[0].2.len(), reference[1].2.len());
}
