//! The alias table the rules decide with: the shipped one (`kamiyo_domain::Aliases`)
//! plus the aliases operators add at run time (`protocol_aliases`, migration 0010).
//!
//! The stored aliases are read again when the copy in memory is older than the refresh
//! interval, and at once after a change through this store: another instance's change
//! is seen within the interval.

use std::sync::Arc;

use parking_lot::RwLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kamiyo_db::Database;
use kamiyo_domain::identity::alias_key;
use kamiyo_domain::Aliases;
use serde::Serialize;

use crate::error::StoreError;
use crate::row::{DriverRow, Fields};
use crate::statement::{self, Param, Sql};

/// How long the stored aliases read are used before being read again.
pub const DEFAULT_ALIAS_REFRESH: Duration = Duration::from_secs(10);

/// An alias an operator added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProtocolAlias {
    /// The protocol's name, as the operator gave it.
    pub name: String,
    pub alias: String,
    pub reason: String,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

fn alias_row(row: &dyn DriverRow) -> Result<ProtocolAlias, StoreError> {
    let f = Fields::of("protocol_aliases", row);
    Ok(ProtocolAlias {
        name: f.text("name")?,
        alias: f.text("alias")?,
        reason: f.text("reason")?,
        added_by: f.text("added_by")?,
        added_at: f.time("added_at")?,
    })
}

const LIST: &str = "SELECT name, alias, reason, added_by, added_at FROM protocol_aliases ORDER BY added_at, alias_key";

#[derive(Debug)]
pub(crate) struct AliasTable {
    /// Shared, not cloned: importers ask for a lock key once per claim.
    base: Arc<Aliases>,
    refresh: Duration,
    /// The table with the stored aliases, and when they were read.
    loaded: RwLock<Option<(Arc<Aliases>, Instant)>>,
}

impl AliasTable {
    pub fn new(base: Aliases, refresh: Duration) -> AliasTable {
        AliasTable {
            base: Arc::new(base),
            refresh,
            loaded: RwLock::new(None),
        }
    }

    /// The same base table, read again every `refresh`.
    pub fn with_refresh(&self, refresh: Duration) -> AliasTable {
        AliasTable {
            base: Arc::clone(&self.base),
            refresh,
            loaded: RwLock::new(None),
        }
    }

    /// The table without operators' aliases.
    pub fn base(&self) -> &Aliases {
        &self.base
    }

    /// The table as last read (the shipped one before the first read).
    pub fn snapshot(&self) -> Arc<Aliases> {
        self.read_lock()
            .as_ref()
            .map_or_else(|| Arc::clone(&self.base), |(table, _)| Arc::clone(table))
    }

    /// The table, with the stored aliases read again when the copy is stale.
    pub async fn current(&self, db: &Database) -> Result<Arc<Aliases>, StoreError> {
        if let Some((table, at)) = self.read_lock().as_ref() {
            if at.elapsed() < self.refresh {
                return Ok(Arc::clone(table));
            }
        }
        let stored = list(db).await?;
        let table = Arc::new(self.with(&stored));
        *self.loaded.write() = Some((Arc::clone(&table), Instant::now()));
        Ok(table)
    }

    /// The base table with `stored` added; an alias that no longer fits (the shipped
    /// table took it since) is left out and logged.
    fn with(&self, stored: &[ProtocolAlias]) -> Aliases {
        let mut table = Aliases::clone(&self.base);
        for alias in stored {
            if let Err(reason) = table.add(&alias.name, &alias.alias) {
                tracing::warn!(name = %alias.name, alias = %alias.alias, %reason, "a stored protocol alias is not used");
            }
        }
        table
    }

    /// Read the stored aliases again on next use.
    pub fn forget(&self) {
        *self.loaded.write() = None;
    }

    fn read_lock(&self) -> parking_lot::RwLockReadGuard<'_, Option<(Arc<Aliases>, Instant)>> {
        self.loaded.read()
    }

    /// Adds `alias` to `name`'s protocol, when the table allows it.
    pub async fn add(
        &self,
        db: &Database,
        name: &str,
        alias: &str,
        reason: &str,
        added_by: &str,
    ) -> Result<ProtocolAlias, StoreError> {
        if reason.trim().is_empty() {
            return Err(StoreError::refused(
                "reason",
                "must say why the names are one protocol",
            ));
        }
        let mut table = self.with(&list(db).await?);
        table
            .add(name, alias)
            .map_err(|reason| StoreError::refused("alias", reason))?;
        const INSERT: Sql = Sql {
            postgres: "INSERT INTO protocol_aliases (alias_key, name, alias, reason, added_by) \
                       VALUES ($1, $2, $3, $4, $5) \
                       RETURNING name, alias, reason, added_by, added_at",
            sqlite: "INSERT INTO protocol_aliases (alias_key, name, alias, reason, added_by) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     RETURNING name, alias, reason, added_by, added_at",
        };
        let pool = db.primary();
        let added = statement::query_one(
            pool,
            INSERT.for_pool(pool),
            vec![
                Param::Text(alias_key(alias)),
                Param::Text(name.trim().to_owned()),
                Param::Text(alias.trim().to_owned()),
                Param::Text(reason.trim().to_owned()),
                Param::Text(added_by.to_owned()),
            ],
            alias_row,
        )
        .await
        .map_err(|error| {
            if error.is_conflict() {
                StoreError::refused(
                    "alias",
                    format!("`{alias}` was added by someone else just now"),
                )
            } else {
                error
            }
        })?;
        self.forget();
        Ok(added)
    }

    /// Removes an alias an operator added; whether there was one.
    pub async fn remove(&self, db: &Database, alias: &str) -> Result<bool, StoreError> {
        const DELETE: Sql = Sql {
            postgres: "DELETE FROM protocol_aliases WHERE alias_key = $1",
            sqlite: "DELETE FROM protocol_aliases WHERE alias_key = ?1",
        };
        let pool = db.primary();
        let removed = statement::execute(
            pool,
            DELETE.for_pool(pool),
            vec![Param::Text(alias_key(alias))],
        )
        .await?;
        self.forget();
        Ok(removed > 0)
    }
}

/// Every alias operators added, oldest first.
pub(crate) async fn list(db: &Database) -> Result<Vec<ProtocolAlias>, StoreError> {
    statement::query(db.primary(), LIST, Vec::new(), alias_row).await
}
