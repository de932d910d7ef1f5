//! The source: a Kamiyo SQLite file, opened read-only, read inside one read transaction
//! so that every table, count and sample comes from the same snapshot even if a process
//! still writes to the file (in WAL mode writers go on; what they commit after the
//! snapshot is not copied). Blocking code: it runs on a blocking thread and hands rows
//! to the async writer through a bounded channel, so reading and writing overlap and
//! memory holds at most a few batches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kamiyo_db::migrate::MIGRATIONS_TABLE;
use kamiyo_db::{DatabaseUrl, Migration};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::mpsc;

use super::error::{CopyError, Side};
use super::fields::NamedRow;
use super::tables::{quote, Plan, SourceColumn, SourceTable, Table};
use super::value::Cell;

/// An open source, its read transaction started.
pub(crate) struct Source {
    conn: Connection,
    pub path: PathBuf,
}

/// What the snapshot holds, read before any row is copied.
#[derive(Debug, Clone)]
pub(crate) struct SourceInfo {
    pub schema_version: i64,
    pub tables: Vec<SourceTable>,
    pub counts: BTreeMap<String, u64>,
    /// `sqlite_sequence`: the highest id each AUTOINCREMENT table ever handed out.
    pub sequences: BTreeMap<String, i64>,
}

/// Rows on their way to the writer, table by table in plan order.
pub(crate) enum Message {
    Rows { table: usize, rows: Vec<Vec<Cell>> },
    End { table: usize },
}

/// The rows sampled per table (plan order), converted as they were written.
pub(crate) type Samples = Vec<Vec<Vec<Cell>>>;

/// `sqlite://path`, `sqlite:path` or a plain path.
pub(crate) fn resolve(given: &str) -> Result<PathBuf, CopyError> {
    if given.starts_with("sqlite:") {
        return DatabaseUrl::new(given)
            .sqlite_target()
            .map(|target| target.path)
            .map_err(|_| CopyError::SourceUrl {
                given: DatabaseUrl::new(given).redacted(),
            });
    }
    if given.contains("://") || given.is_empty() {
        return Err(CopyError::SourceUrl {
            given: DatabaseUrl::new(given).redacted(),
        });
    }
    Ok(PathBuf::from(given))
}

/// Opens the file read-only, starts the snapshot, checks that it is a Kamiyo database
/// at the schema version this binary knows, and reads its catalog and counts.
pub(crate) fn open(
    path: PathBuf,
    busy_timeout: Duration,
    known: &[Migration],
) -> Result<(Source, SourceInfo), CopyError> {
    if !path.is_file() {
        return Err(CopyError::SourceMissing { path });
    }
    let failed = |e: rusqlite::Error| classify(&path, e);
    // Read-only: the source is never written, not even to switch its journal mode.
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&path, flags).map_err(failed)?;
    conn.busy_timeout(busy_timeout).map_err(failed)?;
    conn.execute_batch("PRAGMA query_only = ON; BEGIN DEFERRED")
        .map_err(failed)?;
    // The first read fixes the snapshot; everything below reads from it.
    let has_migrations = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1) AS present",
            [MIGRATIONS_TABLE],
            |row| Ok(NamedRow::of(Side::Source, "sqlite_schema", row).boolean("present")),
        )
        .map_err(failed)??;
    if !has_migrations {
        return Err(CopyError::NotKamiyo {
            path,
            reason: format!("it has no {MIGRATIONS_TABLE} table"),
        });
    }
    let applied = read_applied(&conn, &path)?;
    let schema_version = check_versions(&path, &applied, known)?;
    let tables = catalog(&conn, &path)?;
    let mut counts = BTreeMap::new();
    for table in &tables {
        let n = conn
            .query_row(
                &format!("SELECT count(*) AS row_count FROM {}", quote(&table.name)),
                [],
                |row| Ok(NamedRow::of(Side::Source, &table.name, row).int("row_count")),
            )
            .map_err(failed)??;
        counts.insert(table.name.clone(), u64::try_from(n).unwrap_or_default());
    }
    let sequences = read_sequences(&conn, &path)?;
    let info = SourceInfo {
        schema_version,
        tables,
        counts,
        sequences,
    };
    Ok((Source { conn, path }, info))
}

fn classify(path: &Path, e: rusqlite::Error) -> CopyError {
    if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
        CopyError::NotKamiyo {
            path: path.to_owned(),
            reason: "it is not a SQLite database".into(),
        }
    } else {
        CopyError::source_read(path)(e)
    }
}

fn read_applied(conn: &Connection, path: &Path) -> Result<Vec<(i64, String, String)>, CopyError> {
    let failed = |e| classify(path, e);
    let mut statement = conn
        .prepare(&format!(
            "SELECT version, name, checksum FROM {MIGRATIONS_TABLE} ORDER BY version"
        ))
        .map_err(failed)?;
    let mut rows = statement.query([]).map_err(failed)?;
    let mut applied = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        let fields = NamedRow::of(Side::Source, MIGRATIONS_TABLE, row);
        applied.push((
            fields.int("version")?,
            fields.text("name")?,
            fields.text("checksum")?,
        ));
    }
    Ok(applied)
}

/// The source must have exactly the migrations this binary embeds, unedited: the copy
/// maps columns one to one, and the target is migrated by this binary.
pub(crate) fn check_versions(
    path: &Path,
    applied: &[(i64, String, String)],
    known: &[Migration],
) -> Result<i64, CopyError> {
    let expected = known.iter().map(|m| m.version).max().unwrap_or_default();
    let found = applied.iter().map(|(version, _, _)| *version).max();
    let refuse = |reason: String| CopyError::SchemaVersion {
        path: path.to_owned(),
        found,
        expected,
        reason,
    };
    if applied.is_empty() {
        return Err(CopyError::NotKamiyo {
            path: path.to_owned(),
            reason: "no migration was ever applied to it".into(),
        });
    }
    for (version, name, checksum) in applied {
        match known.iter().find(|m| m.version == *version) {
            None => {
                return Err(refuse(format!(
                    "migration {version} ({name}) was applied by a newer Kamiyo; copy with that release"
                )))
            }
            Some(migration) if migration.checksum() != *checksum => {
                return Err(refuse(format!(
                    "migration {} was changed after it was applied to the source",
                    migration.label()
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(missing) = known
        .iter()
        .find(|m| !applied.iter().any(|(version, _, _)| *version == m.version))
    {
        return Err(refuse(format!(
            "migration {} is not applied to it; run `kamiyo migrate` on the source with this release first",
            missing.label()
        )));
    }
    Ok(expected)
}

fn catalog(conn: &Connection, path: &Path) -> Result<Vec<SourceTable>, CopyError> {
    let failed = |e| classify(path, e);
    let mut statement = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> ?1 AND name <> ?2 ORDER BY name",
        )
        .map_err(failed)?;
    let mut rows = statement
        .query([MIGRATIONS_TABLE, super::tables::NOT_COPIED])
        .map_err(failed)?;
    let mut names = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        names.push(NamedRow::of(Side::Source, "sqlite_schema", row).text("name")?);
    }
    let mut statement = conn
        .prepare("SELECT name, upper(type) AS declared, pk FROM pragma_table_info(?1) ORDER BY cid")
        .map_err(failed)?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let mut rows = statement.query([&name]).map_err(failed)?;
        let mut columns = Vec::new();
        while let Some(row) = rows.next().map_err(failed)? {
            let fields = NamedRow::of(Side::Source, "pragma_table_info", row);
            columns.push(SourceColumn {
                name: fields.text("name")?,
                declared: fields.text("declared")?,
                pk: fields.int("pk")?,
            });
        }
        tables.push(SourceTable { name, columns });
    }
    Ok(tables)
}

fn read_sequences(conn: &Connection, path: &Path) -> Result<BTreeMap<String, i64>, CopyError> {
    let failed = |e| classify(path, e);
    let exists = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence') AS present",
            [],
            |row| Ok(NamedRow::of(Side::Source, "sqlite_schema", row).boolean("present")),
        )
        .map_err(failed)??;
    if !exists {
        return Ok(BTreeMap::new());
    }
    let mut statement = conn
        .prepare("SELECT name, seq FROM sqlite_sequence")
        .map_err(failed)?;
    let mut rows = statement.query([]).map_err(failed)?;
    let mut sequences = BTreeMap::new();
    while let Some(row) = rows.next().map_err(failed)? {
        let fields = NamedRow::of(Side::Source, "sqlite_sequence", row);
        sequences.insert(fields.text("name")?, fields.int("seq")?);
    }
    Ok(sequences)
}

impl Source {
    /// Sends every row of every table in plan order, `batch_rows` at a time, and keeps
    /// up to `sample_rows` rows per table, spread evenly over the key order (the same
    /// rows on every run of the same data). Ends the read transaction.
    pub(crate) fn stream(
        self,
        plan: &Plan,
        counts: &BTreeMap<String, u64>,
        batch_rows: usize,
        sample_rows: usize,
        sender: &mpsc::Sender<Message>,
    ) -> Result<Samples, CopyError> {
        let mut samples = Vec::with_capacity(plan.tables.len());
        for (index, table) in plan.tables.iter().enumerate() {
            let total = counts.get(&table.name).copied().unwrap_or_default();
            samples.push(self.stream_table(
                index,
                table,
                total,
                batch_rows,
                sample_rows,
                sender,
            )?);
        }
        self.conn
            .execute_batch("COMMIT")
            .map_err(CopyError::source_read(&self.path))?;
        Ok(samples)
    }

    fn stream_table(
        &self,
        index: usize,
        table: &Table,
        total: u64,
        batch_rows: usize,
        sample_rows: usize,
        sender: &mpsc::Sender<Message>,
    ) -> Result<Vec<Vec<Cell>>, CopyError> {
        let read = CopyError::source_read(&self.path);
        let send = |message| {
            sender
                .blocking_send(message)
                .map_err(|_| CopyError::Reader("the writer stopped taking rows".into()))
        };
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            table.column_list(),
            table.quoted(),
            table.order_by()
        );
        let mut statement = self.conn.prepare(&sql).map_err(&read)?;
        let mut rows = statement.query([]).map_err(&read)?;
        let mut picker = Picker::new(total, if table.key.is_empty() { 0 } else { sample_rows });
        let mut sampled = Vec::new();
        let mut batch = Vec::with_capacity(batch_rows);
        while let Some(row) = rows.next().map_err(&read)? {
            let mut cells = Vec::with_capacity(table.columns.len());
            // By position, checked: the SELECT lists exactly `table.columns` in this
            // order, and this runs once per copied value, where a lookup by name would
            // scan the column names every time. The value's type is checked below.
            for (i, column) in table.columns.iter().enumerate() {
                let value = row.get_ref(i).map_err(&read)?;
                let cell = Cell::from_sqlite(column.kind, value).map_err(|message| {
                    CopyError::BadValue {
                        table: table.name.clone(),
                        column: column.name.clone(),
                        key: describe_key(table, row),
                        message,
                    }
                })?;
                cells.push(cell);
            }
            if picker.take() {
                sampled.push(cells.clone());
            }
            batch.push(cells);
            if batch.len() >= batch_rows {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_rows));
                send(Message::Rows {
                    table: index,
                    rows: full,
                })?;
            }
        }
        if !batch.is_empty() {
            send(Message::Rows {
                table: index,
                rows: batch,
            })?;
        }
        send(Message::End { table: index })?;
        Ok(sampled)
    }
}

/// `id=42` (or every column, for a table without a key), for error messages.
fn describe_key(table: &Table, row: &rusqlite::Row<'_>) -> String {
    let positions: Vec<usize> = if table.key.is_empty() {
        (0..table.columns.len()).collect()
    } else {
        table.key.clone()
    };
    positions
        .iter()
        .map(|&i| {
            let value = match row.get_ref(i) {
                Ok(ValueRef::Integer(v)) => v.to_string(),
                Ok(ValueRef::Text(t)) => format!("{:?}", String::from_utf8_lossy(t)),
                Ok(ValueRef::Null) => "NULL".into(),
                Ok(ValueRef::Real(r)) => r.to_string(),
                Ok(ValueRef::Blob(_)) => "<blob>".into(),
                Err(_) => "?".into(),
            };
            format!("{}={value}", table.columns[i].name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Chooses `wanted` of `total` rows at evenly spaced positions (all when fewer).
struct Picker {
    total: u64,
    wanted: u64,
    seen: u64,
    taken: u64,
}

impl Picker {
    fn new(total: u64, wanted: usize) -> Self {
        Picker {
            total,
            wanted: u64::try_from(wanted).unwrap_or(u64::MAX),
            seen: 0,
            taken: 0,
        }
    }

    fn take(&mut self) -> bool {
        let position = self.seen;
        self.seen += 1;
        if self.taken >= self.wanted {
            return false;
        }
        let next = if self.total <= self.wanted {
            self.taken
        } else {
            // u128: total × taken overflows u64 only for absurd sizes, but cannot here.
            u64::try_from(u128::from(self.taken) * u128::from(self.total) / u128::from(self.wanted))
                .unwrap_or(u64::MAX)
        };
        if position == next {
            self.taken += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_spread_over_the_table_and_deterministic() {
        let pick = |total: u64, wanted: usize| {
            let mut picker = Picker::new(total, wanted);
            (0..total).filter(|_| picker.take()).count()
        };
        assert_eq!(pick(10, 100), 10);
        assert_eq!(pick(1000, 100), 100);
        assert_eq!(pick(1001, 100), 100);
        assert_eq!(pick(1000, 0), 0);
        let mut picker = Picker::new(1000, 4);
        let chosen: Vec<u64> = (0..1000).filter(|_| picker.take()).collect();
        assert_eq!(chosen, [0, 250, 500, 750]);
    }

    #[test]
    fn source_urls_and_paths() {
        assert_eq!(
            resolve("sqlite:///var/lib/k.db").unwrap(),
            PathBuf::from("/var/lib/k.db")
        );
        assert_eq!(resolve("k.db").unwrap(), PathBuf::from("k.db"));
        let err = resolve("postgres://u:secret@h/db").unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn the_source_must_have_exactly_the_known_migrations() {
        const KNOWN: &[Migration] = &[
            Migration::new(1, "one", "SELECT 1"),
            Migration::new(2, "two", "SELECT 2"),
        ];
        let path = Path::new("k.db");
        let row = |m: &Migration| (m.version, m.name.to_owned(), m.checksum());
        let all: Vec<_> = KNOWN.iter().map(row).collect();
        assert_eq!(check_versions(path, &all, KNOWN).unwrap(), 2);
        let older = check_versions(path, &all[..1], KNOWN)
            .unwrap_err()
            .to_string();
        assert!(
            older.contains("version 1") && older.contains("0002_two"),
            "{older}"
        );
        let mut newer = all.clone();
        newer.push((3, "three".into(), "x".into()));
        let newer = check_versions(path, &newer, KNOWN).unwrap_err().to_string();
        assert!(newer.contains("newer Kamiyo"), "{newer}");
        let mut edited = all.clone();
        edited[0].2 = "0".repeat(64);
        let edited = check_versions(path, &edited, KNOWN)
            .unwrap_err()
            .to_string();
        assert!(edited.contains("changed"), "{edited}");
    }
}
