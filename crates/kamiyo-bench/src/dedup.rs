//! `kamiyo-bench dedup`: merge quality on real data. The real files in
//! `../shared/data/raw/` are ingested one record at a time, in a fixed order, into a
//! fresh SQLite database, exactly as imports would store them; then every hand-judged
//! pair of `eval/dedup_labels.txt` is checked: a `same` pair should have landed in one
//! incident (recall), a `different` pair (look-alikes) never (a wrong merge). Records
//! are named by file and the line their parser reports, so the labels hold no data.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use kamiyo_db::{Database, DbConfig};
use kamiyo_ingest::{claims_of, parse_path, Format, ImportReport};
use kamiyo_store::{IncidentStore, MIGRATIONS};
use serde::Serialize;

/// The files read, in the order they are ingested, with their formats.
const FILES: &[(&str, Format)] = &[
    ("defillama_hacks_export.csv", Format::Defillama),
    ("defihacklabs_readme_2021.md", Format::Defihacklabs),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub same: bool,
    pub a: (String, usize),
    pub b: (String, usize),
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct DedupReport {
    pub records: usize,
    pub rejected: usize,
    pub incidents: i64,
    pub same_pairs: usize,
    pub same_merged: usize,
    /// `same_merged / same_pairs`.
    pub recall: f64,
    pub different_pairs: usize,
    pub wrongly_merged: usize,
    /// The `same` pairs left apart and the `different` pairs merged, with their notes.
    pub misses: Vec<String>,
    pub wrong_merges: Vec<String>,
}

/// Reads the labels file: `same|different file:line file:line | note` per line.
pub fn read_labels(text: &str) -> anyhow::Result<Vec<Label>> {
    let mut labels = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("labels line {}", index + 1);
        let (pair, note) = line.split_once('|').unwrap_or((line, ""));
        let words: Vec<&str> = pair.split_whitespace().collect();
        let [kind, a, b] = words.as_slice() else {
            bail!(
                "{}: expected `same|different file:line file:line | note`",
                at()
            );
        };
        let same = match *kind {
            "same" => true,
            "different" => false,
            other => bail!("{}: `{other}` is neither same nor different", at()),
        };
        let record = |text: &str| -> anyhow::Result<(String, usize)> {
            let (file, line) = text
                .rsplit_once(':')
                .with_context(|| format!("{}: `{text}` is not file:line", at()))?;
            Ok((file.to_owned(), line.parse().with_context(at)?))
        };
        labels.push(Label {
            same,
            a: record(a)?,
            b: record(b)?,
            note: note.trim().to_owned(),
        });
    }
    Ok(labels)
}

/// Ingests the real files from `data_dir` and scores `labels`.
pub async fn run(data_dir: &Path, labels: &[Label]) -> anyhow::Result<DedupReport> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(DbConfig::for_url(format!(
        "sqlite://{}",
        dir.path().join("dedup.db").display()
    )))
    .await?;
    db.migrate(&MIGRATIONS).await?;
    let store = IncidentStore::new(db);
    let now = chrono::Utc::now();
    let mut incident_of: HashMap<(String, usize), i64> = HashMap::new();
    let (mut records, mut rejected) = (0, 0);
    for (file, format) in FILES {
        let path: PathBuf = data_dir.join(file);
        let parsed =
            parse_path(*format, &path, None).with_context(|| format!("{}", path.display()))?;
        records += parsed.len();
        // The import's own validation and same-key numbering, one claim at a time.
        let mut checked = ImportReport::default();
        let claims = claims_of(parsed, now, &mut checked, &mut BTreeMap::new());
        rejected += checked.rejected.len();
        for (line, draft) in claims {
            let outcome = store.ingest(&draft).await?;
            incident_of.insert(((*file).to_owned(), line), outcome.exploit_id);
        }
    }
    let mut report = DedupReport {
        records,
        rejected,
        incidents: store.count().await?,
        same_pairs: 0,
        same_merged: 0,
        recall: 0.0,
        different_pairs: 0,
        wrongly_merged: 0,
        misses: Vec::new(),
        wrong_merges: Vec::new(),
    };
    for label in labels {
        let find = |record: &(String, usize)| {
            incident_of.get(record).copied().with_context(|| {
                format!(
                    "no stored record at {}:{} (the labels name a line no record starts on)",
                    record.0, record.1
                )
            })
        };
        let together = find(&label.a)? == find(&label.b)?;
        let shown = format!(
            "{}:{} / {}:{} ({})",
            label.a.0, label.a.1, label.b.0, label.b.1, label.note
        );
        if label.same {
            report.same_pairs += 1;
            if together {
                report.same_merged += 1;
            } else {
                report.misses.push(shown);
            }
        } else {
            report.different_pairs += 1;
            if together {
                report.wrongly_merged += 1;
                report.wrong_merges.push(shown);
            }
        }
    }
    report.recall = if report.same_pairs == 0 {
        0.0
    } else {
        report.same_merged as f64 / report.same_pairs as f64
    };
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_and_a_bad_line_is_named() {
        let labels = read_labels(
            "# comment\nsame a.csv:2 b.md:10 | one hack\ndifferent a.csv:3 a.csv:4 | two\n",
        )
        .unwrap();
        assert_eq!(labels.len(), 2);
        assert!(labels[0].same && !labels[1].same);
        assert_eq!(labels[0].b, ("b.md".to_owned(), 10));
        for (text, says) in [
            ("maybe a:1 b:2 | x", "neither"),
            ("same a:1 | x", "expected"),
            ("same a:x b:2 | x", "line 1"),
            ("same a b:2 | x", "file:line"),
        ] {
            let err = read_labels(text).unwrap_err();
            assert!(format!("{err:#}").contains(says), "{text}: {err:#}");
        }
    }
}
