use std::path::PathBuf;

use crate::Format;

/// A problem with the whole input; problems with one record are [`crate::Rejection`]s.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input could not be read.
    #[error("cannot read the input: {0}")]
    Read(#[source] std::io::Error),

    /// The file at `path` could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A CSV input has no header row (it is empty).
    #[error("{format} input is empty: a header row is required")]
    MissingHeader { format: Format },

    /// The CSV header row is not valid UTF-8.
    #[error("{format} header (line {line}) is not valid UTF-8")]
    HeaderNotUtf8 { format: Format, line: usize },

    /// Required columns are absent from the CSV header.
    #[error("{format} header is missing required column(s): {}", columns.join(", "))]
    MissingColumns {
        format: Format,
        columns: Vec<String>,
    },

    /// The CSV header has columns the format does not define.
    #[error("{format} header has unknown column(s): {}", describe_unknown(columns))]
    UnknownColumns {
        format: Format,
        /// Each unknown column as written, with the known column it most resembles.
        columns: Vec<(String, Option<&'static str>)>,
    },

    /// The input is not the shape its format has (HTML instead of JSON, an object
    /// instead of an array, a field renamed in every record): the source's format
    /// changed, or something else answered in its place.
    #[error("{format} input is not {expected}: found {found}")]
    Shape {
        format: Format,
        expected: &'static str,
        found: String,
    },

    /// The CSV header names a column more than once.
    #[error("{format} header names column(s) more than once: {}", columns.join(", "))]
    DuplicateColumns {
        format: Format,
        columns: Vec<String>,
    },
}

fn describe_unknown(columns: &[(String, Option<&'static str>)]) -> String {
    columns
        .iter()
        .map(|(column, hint)| match hint {
            Some(hint) => format!("{column:?} (did you mean {hint:?}?)"),
            None => format!("{column:?}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
