//! Reads exploit-incident source files into raw, line-numbered records, and imports them
//! (`import`: validated drafts in batches through `kamiyo_store::IncidentStore`, one
//! fetch recorded per source in `SourceStore`).
//!
//! The parsers only *read*: every value stays the text the source gave (trimmed), and
//! validation and normalisation belong to `kamiyo-domain`. A bad record never aborts the
//! file: [`parse`] returns one `Result` per record, and a [`Rejection`] carries the line it
//! came from and the field at fault. [`IngestError`] is kept for problems with the whole
//! file (it cannot be read, or a CSV header is unusable).
//!
//! Layout:
//! - `format`: [`Format`], chosen by name or by file extension.
//! - `record`: the output types, [`RawIncident`], [`RawTxHash`], [`Rejection`].
//! - `jsonl`: Kamiyo's JSON Lines format.
//! - `table`: what the two CSV formats share (header resolution, UTF-8 and width checks);
//!   `kamiyo_csv` and `defillama` map their columns onto [`RawIncident`].
//! - `defillama_api`: DeFiLlama's JSON hacks endpoint, the same records as `defillama`.
//! - `defihacklabs`: the DeFiHackLabs README's incident sections; `loss_text` reads a USD
//!   figure out of a free-text loss, only when the text states one.
//! - `fetch`: one conditional, bounded, retried HTTP fetch of a source.
//! - `sources`: the sources the service fetches (`[sources]` of the configuration).
//! - `job`: one fetch of a source end to end: fetch, parse, ingest, record.
//! - `scheduler`: every enabled source on its interval, one fetch per slot among any
//!   number of instances (slots claimed in the database, no leader).
//! - `rekt`: rekt.news's RSS feed, and an article's front matter ([`rekt::apply_article`]).
//! - `text`: small helpers for trimming, lists, booleans and `chain:hash` pairs.
//!
//! - `import`: parse, validate and ingest a file through the incident store, with a
//!   line-by-line report.
//!
//! The formats are described for users in `docs/IMPORT_FORMATS.md`.

pub mod articles;
mod defihacklabs;
mod defillama;
mod defillama_api;
mod error;
pub mod fetch;
mod format;
pub mod import;
pub mod job;
mod jsonl;
mod kamiyo_csv;
mod loss_text;
mod record;
pub mod rekt;
mod rekt_article;
pub mod scheduler;
pub mod sources;
mod table;
mod text;

use std::io::Read;
use std::path::Path;

pub use error::IngestError;
pub use format::{format_names, Format, UnknownFormatError, FORMATS};
pub use import::{
    claims_of, default_shape, import, import_file, ImportError, ImportOptions, ImportReport,
    DEFAULT_BATCH_SIZE, DEFAULT_SQLITE_BATCH_SIZE, DEFAULT_SQLITE_STREAMS, DEFAULT_STREAMS,
};
pub use record::{RawIncident, RawTxHash, Rejection};

/// Source name used for DeFiLlama records when the caller gives none.
const DEFILLAMA_SOURCE: &str = "defillama";
/// Source name used for DeFiHackLabs records when the caller gives none.
const DEFIHACKLABS_SOURCE: &str = "defihacklabs";
/// Source name used for rekt.news records when the caller gives none.
const REKT_SOURCE: &str = "rekt";

/// Parses a whole input in `format`, one result per record, in file order.
///
/// `default_source` fills [`RawIncident::source`] for records that name none (for
/// [`Format::Defillama`] and [`Format::DefillamaApi`], which have no source field, it
/// defaults to `"defillama"`).
///
/// # Errors
///
/// [`IngestError`] only when the input cannot be read or, for the CSV formats, its header
/// is missing, not UTF-8, or has missing, unknown or duplicated columns.
pub fn parse(
    format: Format,
    mut input: impl Read,
    default_source: Option<&str>,
) -> Result<Vec<Result<RawIncident, Rejection>>, IngestError> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(IngestError::Read)?;
    parse_bytes(format, &bytes, default_source)
}

/// [`parse`] on the file at `path`.
///
/// # Errors
///
/// As [`parse`]; a file that cannot be read is reported with its path.
pub fn parse_path(
    format: Format,
    path: &Path,
    default_source: Option<&str>,
) -> Result<Vec<Result<RawIncident, Rejection>>, IngestError> {
    let bytes = std::fs::read(path).map_err(|source| IngestError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse_bytes(format, &bytes, default_source)
}

pub(crate) fn parse_bytes(
    format: Format,
    bytes: &[u8],
    default_source: Option<&str>,
) -> Result<Vec<Result<RawIncident, Rejection>>, IngestError> {
    let default_source = default_source.and_then(text::clean);
    let (mut results, default_source) = match format {
        Format::Jsonl => (jsonl::parse(bytes), default_source),
        Format::Csv => (kamiyo_csv::parse(bytes)?, default_source),
        Format::Defillama => (
            defillama::parse(bytes)?,
            default_source.or_else(|| Some(DEFILLAMA_SOURCE.to_owned())),
        ),
        Format::DefillamaApi => (
            defillama_api::parse(bytes)?,
            default_source.or_else(|| Some(DEFILLAMA_SOURCE.to_owned())),
        ),
        Format::Defihacklabs => (
            defihacklabs::parse(bytes)?,
            default_source.or_else(|| Some(DEFIHACKLABS_SOURCE.to_owned())),
        ),
        Format::RektRss => (
            rekt::parse(bytes)?,
            default_source.or_else(|| Some(REKT_SOURCE.to_owned())),
        ),
    };
    if let Some(default_source) = default_source {
        for incident in results.iter_mut().flatten() {
            if incident.source.is_none() {
                incident.source = Some(default_source.clone());
            }
        }
    }
    let rejected = results.iter().filter(|r| r.is_err()).count();
    tracing::debug!(
        %format,
        records = results.len() - rejected,
        rejected,
        "parsed import input"
    );
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_source_fills_only_records_without_one() {
        let input =
            "{\"protocol\":\"Examplefi\"}\n{\"protocol\":\"Samplswap\",\"source\":\"rekt\"}\n";
        let results = parse(Format::Jsonl, input.as_bytes(), Some("file.jsonl")).unwrap();
        let sources: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().unwrap().source.as_deref())
            .collect();
        assert_eq!(sources, [Some("file.jsonl"), Some("rekt")]);
    }

    #[test]
    fn defillama_source_defaults_to_defillama_unless_given() {
        let input = "name,exploit_date,classification,technique,loss_usd,chain,bridgeHack,targetType,returnedFunds,defillamaId,source_url\n\
                     Examplefi,1/2/24,,,,,FALSE,,,,\n";
        let results = parse(Format::Defillama, input.as_bytes(), None).unwrap();
        assert_eq!(
            results[0].as_ref().unwrap().source.as_deref(),
            Some("defillama")
        );
        let results = parse(Format::Defillama, input.as_bytes(), Some("llama-mirror")).unwrap();
        assert_eq!(
            results[0].as_ref().unwrap().source.as_deref(),
            Some("llama-mirror")
        );
    }

    #[test]
    fn unreadable_input_is_a_whole_file_error() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let err = parse(Format::Jsonl, Broken, None).unwrap_err();
        assert!(matches!(err, IngestError::Read(_)), "{err}");
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let path = Path::new("/nonexistent/kamiyo-ingest/incidents.jsonl");
        let err = parse_path(Format::Jsonl, path, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/kamiyo-ingest/incidents.jsonl"),
            "{err}"
        );
    }
}
