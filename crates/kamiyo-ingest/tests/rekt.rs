//! The `rekt-rss` format (rekt.news's feed) and an article's front matter, on our own
//! fixtures, and the real articles in `../shared/data/raw/` as an extra check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use kamiyo_ingest::{parse_path, rekt, Format};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn feed_items_are_dated_by_their_article_and_carry_no_guessed_loss() {
    let results = parse_path(Format::RektRss, &fixture("rekt_feed.xml"), None).unwrap();
    assert_eq!(results.len(), 3);
    let examplefi = results[0].as_ref().unwrap();
    assert_eq!(examplefi.line, 7);
    assert_eq!(examplefi.source.as_deref(), Some("rekt"));
    assert_eq!(examplefi.protocol.as_deref(), Some("Examplefi"));
    assert_eq!(examplefi.date.as_deref(), Some("2024-03-25T12:00:00+00:00"));
    assert_eq!(examplefi.loss_usd, None, "the summary names two losses");
    assert_eq!(examplefi.external_id.as_deref(), Some("examplefi-rekt"));
    let demobridge = results[1].as_ref().unwrap();
    assert_eq!(demobridge.protocol.as_deref(), Some("Demobridge"));
    assert_eq!(
        demobridge.date.as_deref(),
        Some("2023-12-07T08:30:00+00:00")
    );
    let untitled = results[2].as_ref().unwrap_err();
    assert_eq!(untitled.field.as_deref(), Some("title"));
}

#[test]
fn the_article_gives_the_hack_s_own_date_and_loss() {
    let mut record = parse_path(Format::RektRss, &fixture("rekt_feed.xml"), None)
        .unwrap()
        .remove(0)
        .unwrap();
    let article = std::fs::read_to_string(fixture("rekt_article.md")).unwrap();
    rekt::apply_article(&mut record, &article).unwrap();
    assert_eq!(record.date.as_deref(), Some("03/22/2024"));
    assert_eq!(record.loss_usd.as_deref(), Some("4800000"));
}

const REAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/raw/");

#[test]
fn the_real_articles_front_matter_reads() {
    let orbit = Path::new(REAL).join("rekt-news-article_orbit-bridge-rekt.md");
    let xtoken = Path::new(REAL).join("rekt-news-article_xtoken-rekt-x2.md");
    if !orbit.exists() || !xtoken.exists() {
        eprintln!("note: the real rekt.news articles are absent; the fixture tests cover them");
        return;
    }
    for (path, date, amount) in [
        (orbit, "12/31/2023", "81500000"),
        (xtoken, "08/29/2021", "4500000"),
    ] {
        let mut record = kamiyo_ingest::RawIncident::default();
        rekt::apply_article(&mut record, &std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(record.date.as_deref(), Some(date), "{}", path.display());
        assert_eq!(record.loss_usd.as_deref(), Some(amount));
    }
}
