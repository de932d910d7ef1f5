//! Importing a file end to end into both backends: dedup, rejections with their lines,
//! idempotent re-import.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::Path;
use std::time::Duration;

use kamiyo_db::RetryPolicy;
use kamiyo_ingest::{import_file, Format};

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/import.jsonl"
    ))
}

type Backend = common::Backend<common::Stores>;

kamiyo_testkit::per_backend! {
    common::Stores::on => [
        a_file_with_bad_lines_imports_the_rest_reports_each_line_and_re_imports_as_unchanged,
        an_import_is_a_fetch_of_each_source_it_names_and_an_unreadable_file_a_failed_one,
        records_refused_by_the_claim_rules_are_rejected_lines_in_every_format,
        a_record_the_source_corrects_updates_its_claim_and_a_new_record_stays_new,
        a_news_feed_imported_again_is_unchanged,
    ],
}

async fn a_file_with_bad_lines_imports_the_rest_reports_each_line_and_re_imports_as_unchanged(
    b: Backend,
) {
    let retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(10),
    };
    let (name, store, sources) = (b.name, &b.store.incidents, &b.store.sources);
    let mut last = (0, 0);
    let report = import_file(
        store,
        sources,
        &retry,
        Format::Jsonl,
        fixture(),
        None,
        |done, total| {
            assert!(done >= last.0 && done <= total);
            last = (done, total);
        },
    )
    .await
    .unwrap();
    assert_eq!(report.records, 12, "{name}");
    assert_eq!(last, (12, 12), "progress ends at the last record");
    let rejected: Vec<(usize, Option<&str>)> = report
        .rejected
        .iter()
        .map(|r| (r.line, r.field.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (8, None),
            (9, Some("loss_usd")),
            (10, Some("date")),
            (11, Some("protocol")),
        ],
        "{name}: {:?}",
        report.rejected
    );
    // Examplefi: one incident from two sources (shared hash); Samplebridge: merged by
    // name, chain and date, then a separate hack a month later; Otherswap: same hash
    // pasted onto another protocol, not merged; Mysteryfi: unknown amount; Badhash: a
    // hash that is no Ethereum hash, dropped from its claim and the record kept.
    assert_eq!(
        (report.inserted, report.merged),
        (6, 2),
        "{name}: {report:?}"
    );
    let warned: Vec<usize> = report.warnings.iter().map(|w| w.line).collect();
    assert_eq!(warned, [6, 12], "{name}: {:?}", report.warnings);
    assert!(
        report.warnings[1]
            .message
            .contains("dropped from this claim"),
        "{:?}",
        report.warnings[1]
    );
    assert_eq!(store.count().await.unwrap(), 6, "{name}");

    let again = import_file(
        store,
        sources,
        &retry,
        Format::Jsonl,
        fixture(),
        None,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (again.inserted, again.merged, again.updated, again.unchanged),
        (0, 0, 0, 8),
        "{name}"
    );
    assert_eq!(store.count().await.unwrap(), 6, "{name}");
}

async fn an_import_is_a_fetch_of_each_source_it_names_and_an_unreadable_file_a_failed_one(
    b: Backend,
) {
    let retry = RetryPolicy::default();
    let window = kamiyo_store::DEFAULT_SOURCE_HEALTH_WINDOW;
    let (name, store, sources) = (b.name, &b.store.incidents, &b.store.sources);
    import_file(
        store,
        sources,
        &retry,
        Format::Jsonl,
        fixture(),
        None,
        |_, _| {},
    )
    .await
    .unwrap();
    let health = |report: &[kamiyo_store::SourceReport], source: &str| {
        report
            .iter()
            .find(|r| r.source == source)
            .map(|r| (r.active, r.fetches_in_window, r.success_rate_pct))
    };
    let report = sources.report(window, None, None).await.unwrap();
    for source in ["alpha-feed", "beta-feed"] {
        assert_eq!(
            health(&report, source),
            Some((Some(true), 1, Some(100.0))),
            "{name}: {source}"
        );
    }

    let missing = Path::new("/nonexistent/kamiyo/gamma.jsonl");
    let failure = import_file(
        store,
        sources,
        &retry,
        Format::Jsonl,
        missing,
        Some("gamma-feed"),
        |_, _| {},
    )
    .await;
    assert!(failure.is_err(), "{name}: {failure:?}");
    let report = sources.report(window, None, None).await.unwrap();
    assert_eq!(
        health(&report, "gamma-feed"),
        Some((Some(true), 1, Some(0.0))),
        "{name}: the file could not be read"
    );
    assert_eq!(
        health(&report, "alpha-feed"),
        Some((Some(true), 1, Some(100.0))),
        "{name}: other sources are untouched"
    );

    // No valid record at all: the fetch is the default source's.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{not json\n{\"protocol\": \"\"}\n").unwrap();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    for (file, source) in [(&broken, "delta-feed"), (&empty, "empty-feed")] {
        import_file(
            store,
            sources,
            &retry,
            Format::Jsonl,
            file,
            Some(source),
            |_, _| {},
        )
        .await
        .unwrap();
    }
    let report = sources.report(window, None, None).await.unwrap();
    assert_eq!(
        (health(&report, "delta-feed"), health(&report, "empty-feed")),
        (
            Some((Some(true), 1, Some(0.0))),
            Some((Some(true), 1, Some(100.0)))
        ),
        "{name}: every record rejected is a failed fetch, an empty file a successful one"
    );
}

/// The claim rules of `kamiyo_domain` (control characters, maximums, web URLs only) apply
/// to every format: a refused record is a rejected line with its field and reason, and
/// the records around it are imported.
async fn records_refused_by_the_claim_rules_are_rejected_lines_in_every_format(b: Backend) {
    use kamiyo_domain::limits::MAX_CHAINS_PER_CLAIM;

    let too_many: Vec<String> = (0..=MAX_CHAINS_PER_CLAIM)
        .map(|i| format!("chain{i}"))
        .collect();
    let jsonl = format!(
        "{{\"source\":\"s\",\"protocol\":\"Firstfi\",\"date\":\"2024-01-02\",\"chains\":[\"Ethereum\"]}}\n\
         {{\"source\":\"s\",\"protocol\":\"Nul\\u0000fi\",\"date\":\"2024-01-02\",\"chains\":[\"Ethereum\"]}}\n\
         {{\"source\":\"s\",\"protocol\":\"Linkfi\",\"date\":\"2024-01-02\",\"chains\":[\"Ethereum\"],\"source_url\":\"javascript:alert(1)\"}}\n\
         {{\"source\":\"s\",\"protocol\":\"Widefi\",\"date\":\"2024-01-02\",\"chains\":{}}}\n\
         {{\"source\":\"s\",\"protocol\":\"Lastfi\",\"date\":\"2024-01-02\",\"chains\":[\"Ethereum\"]}}\n",
        serde_json_list(&too_many)
    );
    let csv = format!(
        "protocol,date,chains,source,source_url\n\
         Firstfi,2024-01-02,Ethereum,s,\n\
         Nul\u{0}fi,2024-01-02,Ethereum,s,\n\
         Linkfi,2024-01-02,Ethereum,s,javascript:alert(1)\n\
         Widefi,2024-01-02,\"{}\",s,\n\
         Lastfi,2024-01-02,Ethereum,s,\n",
        too_many.join(";")
    );
    let defillama = format!(
        "name,exploit_date,classification,technique,loss_usd,chain,bridgeHack,targetType,returnedFunds,defillamaId,source_url\n\
         Firstfi,1/2/24,,,,Ethereum,FALSE,,,,\n\
         Nul\u{0}fi,1/2/24,,,,Ethereum,FALSE,,,,\n\
         Linkfi,1/2/24,,,,Ethereum,FALSE,,,,javascript:alert(1)\n\
         Widefi,1/2/24,,,,\"{}\",FALSE,,,,\n\
         Lastfi,1/2/24,,,,Ethereum,FALSE,,,,\n",
        too_many.join(",")
    );
    let retry = RetryPolicy::default();
    let (name, store, sources) = (b.name, &b.store.incidents, &b.store.sources);
    for (format, text, first_line) in [
        (Format::Jsonl, &jsonl, 1),
        (Format::Csv, &csv, 2),
        (Format::Defillama, &defillama, 2),
    ] {
        let path = b.dir.path().join(format!("{format}.txt"));
        std::fs::write(&path, text).unwrap();
        let report = import_file(store, sources, &retry, format, &path, None, |_, _| {})
            .await
            .unwrap();
        let rejected: Vec<(usize, Option<&str>)> = report
            .rejected
            .iter()
            .map(|r| (r.line, r.field.as_deref()))
            .collect();
        assert_eq!(
            rejected,
            [
                (first_line + 1, Some("protocol")),
                (first_line + 2, Some("source_url")),
                (first_line + 3, Some("chains")),
            ],
            "{name} {format}: {:?}",
            report.rejected
        );
        let messages: Vec<&str> = report.rejected.iter().map(|r| r.message.as_str()).collect();
        assert!(messages[0].contains("control characters"), "{messages:?}");
        assert!(messages[1].contains("http or https"), "{messages:?}");
        assert!(
            messages[2].contains(&format!("maximum of {MAX_CHAINS_PER_CLAIM}")),
            "{messages:?}"
        );
        assert_eq!(report.records, 5, "{name} {format}");
        assert_eq!(
            report.inserted + report.merged + report.updated + report.unchanged,
            2,
            "{name} {format}: the first and last records are imported: {report:?}"
        );
    }
}

fn serde_json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(","))
}

/// A source that corrects a record (its date and amount) between two imports of its whole
/// list: the claim is updated, not doubled. A second record of the same id the list
/// gives beside the first is a record of its own.
async fn a_record_the_source_corrects_updates_its_claim_and_a_new_record_stays_new(b: Backend) {
    let (name, store, sources) = (b.name, &b.store.incidents, &b.store.sources);
    let dir = tempfile::tempdir().unwrap();
    let record = |date: &str, loss: u64| {
        format!(
            "{{\"source\": \"feed\", \"external_id\": \"9001\", \"protocol\": \"Examplefi\", \"chain\": \"Ethereum\", \"date\": \"{date}\", \"loss_usd\": {loss}}}\n"
        )
    };
    let later_hack = record("2024-05-01", 100_000);
    let import = |lines: Vec<String>| {
        let path = dir.path().join("list.jsonl");
        std::fs::write(&path, lines.concat()).unwrap();
        async move {
            import_file(
                store,
                sources,
                &RetryPolicy::default(),
                Format::Jsonl,
                &path,
                None,
                |_, _| {},
            )
            .await
            .unwrap()
        }
    };
    let first = import(vec![record("2024-03-22", 4_800_000), later_hack.clone()]).await;
    assert_eq!(first.inserted, 2, "{name}: {first:?}");

    let corrected = import(vec![record("2024-03-23", 5_000_000), later_hack.clone()]).await;
    assert_eq!(
        (corrected.inserted, corrected.updated, corrected.unchanged),
        (0, 1, 1),
        "{name}: {corrected:?}"
    );
    assert_eq!(store.count().await.unwrap(), 2, "{name}");
    let claims = sources
        .report(kamiyo_store::DEFAULT_SOURCE_HEALTH_WINDOW, None, None)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.source == "feed")
        .unwrap()
        .claims;
    assert_eq!(
        claims, 2,
        "{name}: one claim per record, the corrected one updated"
    );

    // The list now gives the corrected record and, beside it, another two days later
    // under the same id: both listed, so the new one is a record of its own.
    let grown = import(vec![
        record("2024-03-23", 5_000_000),
        record("2024-03-25", 40_000),
        later_hack,
    ])
    .await;
    assert_eq!(
        (grown.inserted, grown.updated, grown.unchanged),
        (1, 0, 2),
        "{name}: {grown:?}"
    );
}

/// Claims keyed by their article alone (`inc:<slug>`) read back as what they were: a
/// second import of the same feed changes nothing.
async fn a_news_feed_imported_again_is_unchanged(b: Backend) {
    let (name, store, sources) = (b.name, &b.store.incidents, &b.store.sources);
    let feed = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rekt_feed.xml"
    ));
    let retry = RetryPolicy::default();
    let import = || {
        import_file(
            store,
            sources,
            &retry,
            Format::RektRss,
            feed,
            None,
            |_, _| {},
        )
    };
    let first = import().await.unwrap();
    assert_eq!(first.inserted, 2, "{name}: {first:?}");
    let again = import().await.unwrap();
    assert_eq!(
        (again.inserted, again.updated, again.unchanged),
        (0, 0, 2),
        "{name}: {again:?}"
    );
}
