//! What the two CSV formats share: the header is resolved once against the format's
//! columns (whole-file errors), then each record is checked for width and UTF-8 (per-record
//! rejections) before the format maps it.

use crate::text;
use crate::{Format, IngestError, RawIncident, Rejection};

/// The columns of one CSV format.
pub(crate) trait Schema: Copy + PartialEq + 'static {
    const FORMAT: Format;
    /// Every column the format defines, with its header name as documented.
    const COLUMNS: &'static [(Self, &'static str)];
    /// Columns the header must have.
    const REQUIRED: &'static [Self];
    /// Whether a column the format does not define fails the file (our own format: a typo
    /// must not pass) or is ignored with a warning (a third party's export may grow).
    const UNKNOWN_IS_ERROR: bool;

    fn name(self) -> &'static str {
        Self::COLUMNS
            .iter()
            .find(|(column, _)| *column == self)
            .map_or("?", |(_, name)| name)
    }
}

/// One record, UTF-8 checked, with its values by column.
pub(crate) struct Row<C: 'static> {
    pub(crate) line: usize,
    values: Vec<(C, String)>,
}

impl<C: Schema> Row<C> {
    /// The value as written, `""` when the header has no such column.
    pub(crate) fn raw(&self, column: C) -> &str {
        self.values
            .iter()
            .find(|(c, _)| *c == column)
            .map_or("", |(_, value)| value.as_str())
    }

    /// The trimmed value, `None` when empty or absent.
    pub(crate) fn text(&self, column: C) -> Option<String> {
        text::clean(self.raw(column))
    }

    /// A boolean column (`true/false/yes/no/1/0`, empty is `None`).
    pub(crate) fn boolean(&self, column: C) -> Result<Option<bool>, Rejection> {
        let value = self.raw(column);
        text::boolean(value).map_err(|()| {
            Rejection::field(
                self.line,
                column.name(),
                format!(
                    "column `{}` must be true/false, yes/no or 1/0, found {:?}",
                    column.name(),
                    value.trim()
                ),
            )
        })
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a CSV input of schema `C`, mapping each record with `to_incident`.
pub(crate) fn read<C: Schema>(
    bytes: &[u8],
    to_incident: impl Fn(&Row<C>) -> Result<RawIncident, Rejection>,
) -> Result<Vec<Result<RawIncident, Rejection>>, IngestError> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    // Not `has_headers`: the header is resolved here, and `flexible` turns a record of the
    // wrong width into that record's rejection instead of an error that ends the reading.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    if !read_record(&mut reader, &mut record)? {
        return Err(IngestError::MissingHeader { format: C::FORMAT });
    }
    let header = Header::<C>::resolve(&record)?;
    let mut results = Vec::new();
    while read_record(&mut reader, &mut record)? {
        let row = header.row(&record);
        results.push(row.and_then(|row| to_incident(&row)));
    }
    Ok(results)
}

fn read_record(
    reader: &mut csv::Reader<&[u8]>,
    record: &mut csv::ByteRecord,
) -> Result<bool, IngestError> {
    // Reading bytes from memory with `flexible` set, the csv crate has no error left to
    // report; should one appear it is about the input as a whole.
    reader
        .read_byte_record(record)
        .map_err(|err| IngestError::Read(err.into()))
}

fn line_of(record: &csv::ByteRecord) -> usize {
    record.position().map_or(0, |position| {
        usize::try_from(position.line()).unwrap_or(usize::MAX)
    })
}

struct Header<C: 'static> {
    /// Per header position: the column, or `None` for an ignored one.
    columns: Vec<Option<C>>,
    /// Per header position: the name as written (trimmed), for messages.
    names: Vec<String>,
}

impl<C: Schema> Header<C> {
    fn resolve(record: &csv::ByteRecord) -> Result<Self, IngestError> {
        let mut names = Vec::with_capacity(record.len());
        for field in record {
            let name = std::str::from_utf8(field).map_err(|_| IngestError::HeaderNotUtf8 {
                format: C::FORMAT,
                line: line_of(record),
            })?;
            names.push(name.trim().to_owned());
        }

        let mut duplicates = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let repeated = names[..index]
                .iter()
                .any(|earlier| earlier.eq_ignore_ascii_case(name));
            if repeated && !duplicates.contains(name) {
                duplicates.push(name.clone());
            }
        }
        if !duplicates.is_empty() {
            return Err(IngestError::DuplicateColumns {
                format: C::FORMAT,
                columns: duplicates,
            });
        }

        let columns: Vec<Option<C>> = names
            .iter()
            .map(|name| {
                C::COLUMNS
                    .iter()
                    .find(|(_, known)| known.eq_ignore_ascii_case(name))
                    .map(|(column, _)| *column)
            })
            .collect();

        let unknown: Vec<&String> = names
            .iter()
            .zip(&columns)
            .filter(|(_, column)| column.is_none())
            .map(|(name, _)| name)
            .collect();
        if !unknown.is_empty() {
            if C::UNKNOWN_IS_ERROR {
                let known: Vec<&'static str> = C::COLUMNS.iter().map(|(_, name)| *name).collect();
                return Err(IngestError::UnknownColumns {
                    format: C::FORMAT,
                    columns: unknown
                        .into_iter()
                        .map(|name| (name.clone(), text::suggest(name, &known)))
                        .collect(),
                });
            }
            tracing::warn!(
                format = %C::FORMAT,
                columns = ?unknown,
                "ignoring columns this format does not define"
            );
        }

        let missing: Vec<String> = C::REQUIRED
            .iter()
            .filter(|required| !columns.contains(&Some(**required)))
            .map(|required| required.name().to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(IngestError::MissingColumns {
                format: C::FORMAT,
                columns: missing,
            });
        }

        Ok(Header { columns, names })
    }

    fn row(&self, record: &csv::ByteRecord) -> Result<Row<C>, Rejection> {
        let line = line_of(record);
        if record.len() != self.columns.len() {
            return Err(Rejection::new(
                line,
                format!(
                    "expected {} fields (one per header column), found {}",
                    self.columns.len(),
                    record.len()
                ),
            ));
        }
        let mut values = Vec::with_capacity(record.len());
        for ((field, column), written) in record.iter().zip(&self.columns).zip(&self.names) {
            let name = column.map_or(written.as_str(), |column| column.name());
            let value = std::str::from_utf8(field).map_err(|err| {
                Rejection::field(
                    line,
                    name,
                    format!(
                        "column `{name}` is not valid UTF-8 (invalid byte at offset {})",
                        err.valid_up_to()
                    ),
                )
            })?;
            if let Some(column) = column {
                values.push((*column, value.to_owned()));
            }
        }
        Ok(Row { line, values })
    }
}
