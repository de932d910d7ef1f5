//! Listing incidents: every filter runs in SQL before pagination, `total` counts what the
//! filters match, and pages are cut with a keyset cursor (stable while rows are inserted:
//! a page never repeats or skips a row that existed when the walk started).

use crate::dialect::Dialect;
use chrono::{DateTime, Utc};
use kamiyo_domain::{AttackClass, AttackType, Chain, IncidentStatus, Usd};
use serde::Serialize;

/// Items per page: between 1 and [`PageLimit::MAX`], [`PageLimit::DEFAULT`] unless asked.
/// The one place the bounds live: the API parses into it (and documents `MAX`), the
/// store takes it as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageLimit(usize);

impl PageLimit {
    pub const MAX: usize = 500;
    pub const DEFAULT: PageLimit = PageLimit(50);

    /// `None` outside 1..=MAX.
    pub fn new(items: usize) -> Option<PageLimit> {
        (1..=Self::MAX).contains(&items).then_some(PageLimit(items))
    }

    /// `items` cut to the bounds: a walk's last page asks for what is left.
    pub fn at_most(items: usize) -> PageLimit {
        PageLimit(items.clamp(1, Self::MAX))
    }

    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        PageLimit::DEFAULT
    }
}

/// An incident's independent sources, as a correlated subquery on `exploits e` (served
/// by `exploit_sources_exploit_id_idx`): a macro, so that the statements built from it
/// at compile time (`read::incident_sql`, `read::summary_columns`) stay literals.
macro_rules! sources_count_sql {
    () => {
        "(SELECT count(DISTINCT s.source_name) FROM exploit_sources s WHERE s.exploit_id = e.id)"
    };
}
pub(crate) use sources_count_sql;

const SOURCES_COUNT: &str = sources_count_sql!();

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct IncidentFilter {
    /// Incidents that touched this chain (aliases resolved by `Chain::parse`).
    pub chain: Option<Chain>,
    /// Case-insensitive substring of the protocol name.
    pub protocol: Option<String>,
    /// Exactly this protocol key (`kamiyo_domain::protocol::protocol_key`): one
    /// protocol's incidents, through `exploits_protocol_key_occurred_at_idx` (the
    /// dashboard's related incidents). Not an API parameter.
    pub protocol_key: Option<String>,
    pub attack_type: Option<AttackType>,
    pub attack_class: Option<AttackClass>,
    /// Inclusive bounds on the known loss; incidents with an unknown loss never match an
    /// amount bound.
    pub min_amount: Option<Usd>,
    pub max_amount: Option<Usd>,
    /// Inclusive bounds on when the incident occurred.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub status: Option<IncidentStatus>,
    /// Case-insensitive substring of the protocol name or the description.
    pub q: Option<String>,
    /// At least this many independent sources (`IncidentSummary::sources_count`).
    pub min_sources: Option<u32>,
    /// What the caller's tier may see (history window and delay), applied like `from`
    /// and `to` but never shown to or set by the caller.
    pub visible_from: Option<DateTime<Utc>>,
    pub visible_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    #[default]
    Date,
    Amount,
    /// By the number of independent sources (`sources_count`): counted for every match,
    /// so slower on a large listing than date or amount, which an index orders.
    Sources,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Desc,
    Asc,
}

/// Where the previous page ended: the sort value and id of its last row. Sent to clients
/// as its [`Cursor::encode`]d text (its `Serialize`), read back with [`Cursor::decode`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub sort: SortKey,
    pub order: Order,
    /// RFC 3339 time for date order; decimal text (`-1` for unknown) for amount order.
    pub value: String,
    pub id: i64,
}

impl Cursor {
    /// Opaque to clients: hex of `sort|order|value|id`.
    pub fn encode(&self) -> String {
        let sort = match self.sort {
            SortKey::Date => "d",
            SortKey::Amount => "a",
            SortKey::Sources => "s",
        };
        let order = match self.order {
            Order::Desc => "d",
            Order::Asc => "a",
        };
        let plain = format!("{sort}|{order}|{}|{}", self.value, self.id);
        plain.bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// `None` for anything this server did not produce, or produced for another sort.
    pub fn decode(text: &str, sort: SortKey, order: Order) -> Option<Cursor> {
        if !text.len().is_multiple_of(2) || text.len() > 400 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect();
        let plain = String::from_utf8(bytes?).ok()?;
        let mut parts = plain.splitn(4, '|');
        let (s, o, value, id) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let cursor_sort = match s {
            "d" => SortKey::Date,
            "a" => SortKey::Amount,
            "s" => SortKey::Sources,
            _ => return None,
        };
        let cursor_order = match o {
            "d" => Order::Desc,
            "a" => Order::Asc,
            _ => return None,
        };
        if cursor_sort != sort || cursor_order != order {
            return None;
        }
        // Only canonical values go into SQL: a crafted cursor cannot smuggle text the
        // database would refuse (`$5`, a year 10000).
        let value = match sort {
            SortKey::Date => {
                let at = DateTime::parse_from_rfc3339(value)
                    .ok()?
                    .with_timezone(&Utc);
                if !(1970..=9999).contains(&chrono::Datelike::year(&at)) {
                    return None;
                }
                at.to_rfc3339()
            }
            SortKey::Amount if value == UNKNOWN_AMOUNT => value.to_owned(),
            SortKey::Amount => Usd::parse("cursor", value).ok()?.to_string(),
            SortKey::Sources => value.parse::<u32>().ok()?.to_string(),
        };
        Some(Cursor {
            sort,
            order,
            value,
            id: id.parse().ok().filter(|id: &i64| *id > 0)?,
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ListRequest {
    pub filter: IncidentFilter,
    pub sort: SortKey,
    pub order: Order,
    pub limit: PageLimit,
    pub cursor: Option<Cursor>,
}

/// One incident in a listing (`GET /api/exploits/{id}` has the sources too).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IncidentSummary {
    pub id: i64,
    pub protocol: String,
    /// The primary chain first.
    #[schema(value_type = Vec<String>)]
    pub chains: Vec<Chain>,
    pub occurred_at: DateTime<Utc>,
    /// Decimal text with two decimals; absent when no source knows it.
    #[schema(value_type = Option<String>)]
    pub loss_usd: Option<Usd>,
    #[schema(value_type = Option<String>)]
    pub recovered_usd: Option<Usd>,
    pub attack_class: AttackClass,
    pub attack_type: AttackType,
    pub status: IncidentStatus,
    pub flash_loan: bool,
    pub bridge: bool,
    pub source_url: Option<String>,
    /// Independent sources behind the incident: distinct source names among its claims.
    pub sources_count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub items: Vec<IncidentSummary>,
    /// How many incidents the filters match, over all pages.
    pub total: i64,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[schema(value_type = Option<String>)]
    pub next_cursor: Option<Cursor>,
}

/// One statement of a listing and its text parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub sql: String,
    pub params: Vec<String>,
}

/// The statement counting every incident `filter` matches.
///
/// With a chain filter and nothing but dates and amounts besides, the count reads only
/// `exploit_chains_chain_occurred_at_idx` (chain, dates and the amount are in it; an
/// index-only scan, no join): the filtered total costs a range of one index.
pub(crate) fn count_statement(filter: &IncidentFilter, dialect: Dialect) -> Statement {
    let mut w = Where::new(dialect, filter);
    w.filter(filter);
    let from = if w.via_chain && !needs_exploits(filter) {
        "exploit_chains fc"
    } else {
        w.from()
    };
    Statement {
        sql: format!("SELECT count(*) AS count FROM {from} {}", w.sql()),
        params: w.params,
    }
}

/// The statements that make one page of `request`, each returning `columns` (over `e`,
/// the incident) in page order with at most `limit + 1` rows. Every row of a statement
/// sorts after every row of the statements before it, so a page is the first `limit + 1`
/// rows of their concatenation: run the next only while the page is not full.
///
/// There are two only for the amount sort, which puts unknown amounts last in both
/// orders. One statement cannot do that with a keyset over an index: `NULLS LAST` in
/// both directions needs two indexes, and a keyset condition that spans the NULL
/// boundary (`amount < $v OR amount IS NULL`) is a filter, not an index range. So known
/// amounts come first (`amount IS NOT NULL`, a range of `exploits_amount_usd_id_idx` in
/// either direction), then unknown ones (`amount IS NULL`, ordered by id within the same
/// index), and a cursor says which of the two it is in (value `-1`: unknown).
pub(crate) fn page_statements(
    request: &ListRequest,
    limit: usize,
    dialect: Dialect,
    columns: &str,
) -> Vec<Statement> {
    let regions: Vec<Region> = match request.sort {
        SortKey::Date | SortKey::Sources => vec![Region::All],
        SortKey::Amount => {
            // An amount bound never matches an unknown amount.
            let unknown_can_match =
                request.filter.min_amount.is_none() && request.filter.max_amount.is_none();
            match &request.cursor {
                Some(cursor) if cursor.value == UNKNOWN_AMOUNT => vec![Region::UnknownAmount],
                _ if unknown_can_match => vec![Region::KnownAmount, Region::UnknownAmount],
                _ => vec![Region::KnownAmount],
            }
        }
    };
    regions
        .into_iter()
        .enumerate()
        .map(|(i, region)| {
            let mut w = Where::new(dialect, &request.filter);
            w.filter(&request.filter);
            // Only the first statement continues after the cursor: the next ones start
            // at the beginning of their region.
            let cursor = if i == 0 {
                request.cursor.as_ref()
            } else {
                None
            };
            let order_by = w.order_by(request.sort, request.order, region, cursor);
            Statement {
                sql: format!(
                    "SELECT {columns} FROM {} {} {order_by} LIMIT {}",
                    w.from(),
                    w.sql(),
                    limit + 1
                ),
                params: w.params,
            }
        })
        .collect()
}

/// The cursor value of an unknown amount.
const UNKNOWN_AMOUNT: &str = "-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    All,
    KnownAmount,
    UnknownAmount,
}

/// Filters that only `exploits` can answer (the rest are also in `exploit_chains`);
/// `min_sources` counts claims by `e.id`.
fn needs_exploits(f: &IncidentFilter) -> bool {
    f.min_sources.is_some()
        || f.protocol.is_some()
        || f.protocol_key.is_some()
        || f.attack_type.is_some()
        || f.attack_class.is_some()
        || f.status.is_some()
        || f.q.is_some()
}

/// A SQL WHERE clause and its text parameters, for either dialect.
///
/// With a chain filter, a listing reads `exploit_chains fc` (its
/// `(chain, occurred_at, exploit_id)` index, `amount_usd` included) joined to `exploits
/// e`, and dates and amounts are compared on `fc`'s copies (kept equal to the incident's
/// by triggers, migration 0003). Rows then come out of one index range in date order,
/// however rare the chain: the `EXISTS` form walked `exploits_occurred_at_idx` and probed
/// every row's chains, 20,000 rows for a chain with 0.5 % of the incidents.
struct Where {
    clauses: Vec<String>,
    params: Vec<String>,
    dialect: Dialect,
    via_chain: bool,
}

impl Where {
    fn new(dialect: Dialect, filter: &IncidentFilter) -> Self {
        Where {
            clauses: Vec::new(),
            params: Vec::new(),
            dialect,
            via_chain: filter.chain.is_some(),
        }
    }

    fn from(&self) -> &'static str {
        if self.via_chain {
            "exploit_chains fc JOIN exploits e ON e.id = fc.exploit_id"
        } else {
            "exploits e"
        }
    }

    /// The next placeholder, with the cast PostgreSQL needs for a text parameter.
    fn param(&mut self, value: String, pg_cast: &str) -> String {
        self.params.push(value);
        let n = self.params.len();
        match (self.dialect, pg_cast) {
            (Dialect::Postgres, "text") => format!("${n}::text"),
            // Cast through text: a parameter cast straight to timestamptz would be typed
            // timestamptz, and a Rust string cannot bind to that.
            (Dialect::Postgres, _) => format!("${n}::text::{pg_cast}"),
            (Dialect::Sqlite, "bigint") => format!("CAST(?{n} AS INTEGER)"),
            (Dialect::Sqlite, _) => format!("?{n}"),
        }
    }

    /// When the incident occurred, for filters (and the date sort).
    fn occurred(&self) -> &'static str {
        if self.via_chain {
            "fc.occurred_at"
        } else {
            "e.occurred_at"
        }
    }

    /// The loss for amount filters: on SQLite as REAL, the expression its indexes use.
    fn amount_filtered(&self) -> &'static str {
        match (self.dialect, self.via_chain) {
            (Dialect::Postgres, true) => "fc.amount_usd",
            (Dialect::Postgres, false) => "e.amount_usd",
            (Dialect::Sqlite, true) => "CAST(fc.amount_usd AS REAL)",
            (Dialect::Sqlite, false) => "CAST(e.amount_usd AS REAL)",
        }
    }

    /// The loss for the amount sort: always the incident's, which
    /// `exploits_amount_usd_id_idx` orders.
    fn amount_sorted(&self) -> &'static str {
        self.dialect
            .pick("e.amount_usd", "CAST(e.amount_usd AS REAL)")
    }

    fn amount_param(&mut self, value: String) -> String {
        let p = self.param(value, "numeric");
        match self.dialect {
            Dialect::Postgres => p,
            Dialect::Sqlite => format!("CAST({p} AS REAL)"),
        }
    }

    fn time_param(&mut self, at: DateTime<Utc>) -> String {
        let text = match self.dialect {
            Dialect::Postgres => at.to_rfc3339(),
            Dialect::Sqlite => crate::row::sqlite_time(at),
        };
        self.param(text, "timestamptz")
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// Case folding that matches `like_pattern`'s Unicode `to_lowercase` on both backends.
    fn lower(&self) -> &'static str {
        self.dialect.pick("lower", kamiyo_db::sqlite::UNICODE_LOWER)
    }

    fn filter(&mut self, f: &IncidentFilter) {
        if let Some(chain) = &f.chain {
            let p = self.param(chain.slug().to_owned(), "text");
            self.clauses.push(format!("fc.chain = {p}"));
        }
        if let Some(protocol) = &f.protocol {
            let p = self.param(like_pattern(protocol), "text");
            let lower = self.lower();
            self.clauses
                .push(format!("{lower}(e.protocol) LIKE {p} ESCAPE '\\'"));
        }
        if let Some(key) = &f.protocol_key {
            let p = self.param(key.clone(), "text");
            self.clauses.push(format!("e.protocol_key = {p}"));
        }
        if let Some(t) = f.attack_type {
            let p = self.param(t.as_str().to_owned(), "text");
            self.clauses.push(format!("e.attack_type = {p}"));
        }
        if let Some(c) = f.attack_class {
            let p = self.param(c.as_str().to_owned(), "text");
            self.clauses.push(format!("e.attack_class = {p}"));
        }
        if let Some(min) = f.min_sources {
            let p = self.param(min.to_string(), "bigint");
            self.clauses.push(format!("{SOURCES_COUNT} >= {p}"));
        }
        if let Some(min) = f.min_amount {
            let p = self.amount_param(min.to_string());
            self.clauses
                .push(format!("{} >= {p}", self.amount_filtered()));
        }
        if let Some(max) = f.max_amount {
            let p = self.amount_param(max.to_string());
            self.clauses
                .push(format!("{} <= {p}", self.amount_filtered()));
        }
        let occurred = self.occurred();
        for (bound, op) in [
            (f.from, ">="),
            (f.to, "<="),
            (f.visible_from, ">="),
            (f.visible_until, "<="),
        ] {
            if let Some(at) = bound {
                let p = self.time_param(at);
                self.clauses.push(format!("{occurred} {op} {p}"));
            }
        }
        if let Some(status) = f.status {
            let p = self.param(status.as_str().to_owned(), "text");
            self.clauses.push(format!("e.status = {p}"));
        }
        if let Some(q) = &f.q {
            let p = self.param(like_pattern(q), "text");
            let lower = self.lower();
            self.clauses.push(format!(
                "({lower}(e.protocol) LIKE {p} ESCAPE '\\' OR {lower}(coalesce(e.description, '')) LIKE {p} ESCAPE '\\')"
            ));
        }
    }

    /// The ORDER BY of a sort within `region`, with the region's condition and the keyset
    /// condition after `cursor` added to the clauses.
    fn order_by(
        &mut self,
        sort: SortKey,
        order: Order,
        region: Region,
        cursor: Option<&Cursor>,
    ) -> String {
        let (direction, comparison) = match order {
            Order::Desc => ("DESC", "<"),
            Order::Asc => ("ASC", ">"),
        };
        let (key, id) = match sort {
            SortKey::Date if self.via_chain => ("fc.occurred_at", "fc.exploit_id"),
            SortKey::Date => ("e.occurred_at", "e.id"),
            SortKey::Amount => (self.amount_sorted(), "e.id"),
            SortKey::Sources => (SOURCES_COUNT, "e.id"),
        };
        match region {
            Region::All => {}
            Region::KnownAmount => self.clauses.push(format!("{key} IS NOT NULL")),
            Region::UnknownAmount => self.clauses.push(format!("{key} IS NULL")),
        }
        if let Some(cursor) = cursor {
            let id_param = |w: &mut Self| w.param(cursor.id.to_string(), "bigint");
            let condition = match region {
                // Within unknown amounts only the id orders.
                Region::UnknownAmount => format!("{id} {comparison} {}", id_param(self)),
                Region::All | Region::KnownAmount => {
                    let value = match sort {
                        SortKey::Date => DateTime::parse_from_rfc3339(&cursor.value)
                            .map(|d| self.time_param(d.with_timezone(&Utc)))
                            .unwrap_or_else(|_| self.param(cursor.value.clone(), "timestamptz")),
                        SortKey::Amount => self.amount_param(cursor.value.clone()),
                        SortKey::Sources => self.param(cursor.value.clone(), "bigint"),
                    };
                    format!("({key}, {id}) {comparison} ({value}, {})", id_param(self))
                }
            };
            self.clauses.push(condition);
        }
        // Within one amount region every key is known or every key is NULL, so NULL
        // placement does not matter; the default (NULLS FIRST descending on PostgreSQL)
        // is what `exploits_amount_usd_id_idx (amount_usd, id)` gives scanned backwards.
        format!("ORDER BY {key} {direction}, {id} {direction}")
    }
}

/// `%text%`, lower-cased, with LIKE's own metacharacters escaped: a search for `50%`
/// finds "50%", not everything.
fn like_pattern(text: &str) -> String {
    let escaped = kamiyo_db::sqlite::fold_case(text)
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The cursor for the row a page ended on.
pub(crate) fn cursor_after(request: &ListRequest, last: &IncidentSummary) -> Cursor {
    let value = match request.sort {
        SortKey::Date => last.occurred_at.to_rfc3339(),
        SortKey::Amount => last
            .loss_usd
            .map_or_else(|| UNKNOWN_AMOUNT.to_owned(), |usd| usd.to_string()),
        SortKey::Sources => last.sources_count.to_string(),
    };
    Cursor {
        sort: request.sort,
        order: request.order,
        value,
        id: last.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let cursor = Cursor {
            sort: SortKey::Amount,
            order: Order::Desc,
            value: "197000000.00".into(),
            id: 42,
        };
        let text = cursor.encode();
        assert_eq!(
            Cursor::decode(&text, SortKey::Amount, Order::Desc),
            Some(cursor)
        );
        assert_eq!(
            Cursor::decode(&text, SortKey::Date, Order::Desc),
            None,
            "another sort"
        );
        for bad in [
            "",
            "zz",
            "abc",
            "'; DROP TABLE exploits; --",
            &"00".repeat(300),
        ] {
            assert_eq!(
                Cursor::decode(bad, SortKey::Amount, Order::Desc),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_chain_count_without_other_incident_filters_reads_only_the_chain_index() {
        let chain = IncidentFilter {
            chain: Chain::parse("ethereum").ok(),
            min_amount: Usd::parse("x", "5").ok(),
            ..Default::default()
        };
        for dialect in [Dialect::Postgres, Dialect::Sqlite] {
            let alone = count_statement(&chain, dialect);
            assert!(
                alone.sql.contains("FROM exploit_chains fc WHERE"),
                "{}",
                alone.sql
            );
            assert!(!alone.sql.contains("JOIN"), "{}", alone.sql);
            let with_status = count_statement(
                &IncidentFilter {
                    status: Some(IncidentStatus::Confirmed),
                    ..chain.clone()
                },
                dialect,
            );
            assert!(
                with_status.sql.contains("JOIN exploits e"),
                "{}",
                with_status.sql
            );
        }
    }

    #[test]
    fn the_amount_sort_reads_unknown_amounts_only_after_known_ones_and_only_when_they_can_match() {
        let statements = |filter: IncidentFilter, cursor: Option<&str>| {
            let request = ListRequest {
                filter,
                sort: SortKey::Amount,
                limit: PageLimit::new(10).unwrap(),
                cursor: cursor.map(|value| Cursor {
                    sort: SortKey::Amount,
                    order: Order::Desc,
                    value: value.into(),
                    id: 7,
                }),
                ..ListRequest::default()
            };
            page_statements(&request, 10, Dialect::Postgres, "e.id")
                .into_iter()
                .map(|s| s.sql)
                .collect::<Vec<_>>()
        };
        let first = statements(IncidentFilter::default(), None);
        assert_eq!(first.len(), 2);
        assert!(
            first[0].contains("e.amount_usd IS NOT NULL"),
            "{}",
            first[0]
        );
        assert!(first[1].contains("e.amount_usd IS NULL"), "{}", first[1]);
        let known = statements(IncidentFilter::default(), Some("5.00"));
        assert!(known[0].contains("(e.amount_usd, e.id) < ($1::text::numeric, $2::text::bigint)"));
        assert!(
            !known[1].contains("e.id <"),
            "the unknown range starts at its beginning"
        );
        let unknown = statements(IncidentFilter::default(), Some(UNKNOWN_AMOUNT));
        assert_eq!(unknown.len(), 1);
        assert!(unknown[0].contains("e.amount_usd IS NULL AND e.id < $1::text::bigint"));
        let bounded = IncidentFilter {
            max_amount: Usd::parse("x", "5").ok(),
            ..Default::default()
        };
        assert_eq!(statements(bounded, None).len(), 1);
    }

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
    }
}
