//! Listing incidents: every filter runs in SQL before pagination, `total` counts what the
//! filters match, and pages are cut with a keyset cursor (stable while rows are inserted:
//! a page never repeats or skips a row that existed when the walk started).

use chrono::{DateTime, Utc};
use kamiyo_domain::{AttackClass, AttackType, Chain, IncidentStatus, Usd};
use serde::Serialize;

pub const MAX_LIMIT: usize = 500;
pub const DEFAULT_LIMIT: usize = 50;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentFilter {
    /// Incidents that touched this chain (aliases resolved by `Chain::parse`).
    pub chain: Option<Chain>,
    /// Case-insensitive substring of the protocol name.
    pub protocol: Option<String>,
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
    /// What the caller's tier may see (history window and delay), applied like `from`
    /// and `to` but never shown to or set by the caller.
    pub visible_from: Option<DateTime<Utc>>,
    pub visible_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    #[default]
    Date,
    Amount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Desc,
    Asc,
}

/// Where the previous page ended: the sort value and id of its last row.
#[derive(Debug, Clone, PartialEq, Eq)]
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
            SortKey::Amount if value == "-1" => value.to_owned(),
            SortKey::Amount => Usd::parse("cursor", value).ok()?.to_string(),
        };
        Some(Cursor {
            sort,
            order,
            value,
            id: id.parse().ok().filter(|id: &i64| *id > 0)?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListRequest {
    pub filter: IncidentFilter,
    pub sort: SortKey,
    pub order: Order,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// One incident in a listing (`GET /api/exploits/{id}` has the sources too).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IncidentSummary {
    pub id: i64,
    pub protocol: String,
    pub chains: Vec<String>,
    pub occurred_at: DateTime<Utc>,
    pub loss_usd: Option<String>,
    pub recovered_usd: Option<String>,
    pub attack_class: String,
    pub attack_type: String,
    pub status: String,
    pub flash_loan: bool,
    pub bridge: bool,
    pub source_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub items: Vec<IncidentSummary>,
    /// How many incidents the filters match, over all pages.
    pub total: i64,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A SQL WHERE clause and its text parameters, for either dialect.
pub(crate) struct Where {
    pub clauses: Vec<String>,
    pub params: Vec<String>,
    postgres: bool,
}

impl Where {
    pub(crate) fn new(postgres: bool) -> Self {
        Where {
            clauses: Vec::new(),
            params: Vec::new(),
            postgres,
        }
    }

    /// The next placeholder, with the cast PostgreSQL needs for a text parameter.
    pub(crate) fn param(&mut self, value: String, pg_cast: &str) -> String {
        self.params.push(value);
        let n = self.params.len();
        match (self.postgres, pg_cast) {
            (true, "text") => format!("${n}::text"),
            // Cast through text: a parameter cast straight to timestamptz would be typed
            // timestamptz, and a Rust string cannot bind to that.
            (true, _) => format!("${n}::text::{pg_cast}"),
            (false, "bigint") => format!("CAST(?{n} AS INTEGER)"),
            (false, _) => format!("?{n}"),
        }
    }

    fn amount(&self) -> &'static str {
        if self.postgres {
            "e.amount_usd"
        } else {
            "CAST(e.amount_usd AS REAL)"
        }
    }

    fn amount_param(&mut self, value: String) -> String {
        let p = self.param(value, "numeric");
        if self.postgres {
            p
        } else {
            format!("CAST({p} AS REAL)")
        }
    }

    fn time_param(&mut self, at: DateTime<Utc>) -> String {
        let text = if self.postgres {
            at.to_rfc3339()
        } else {
            super::rows::sqlite_time(at)
        };
        self.param(text, "timestamptz")
    }

    pub(crate) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub(crate) fn filter(&mut self, f: &IncidentFilter) {
        if let Some(chain) = &f.chain {
            let p = self.param(chain.slug().to_owned(), "text");
            self.clauses.push(format!(
                "EXISTS (SELECT 1 FROM exploit_chains c WHERE c.exploit_id = e.id AND c.chain = {p})"
            ));
        }
        if let Some(protocol) = &f.protocol {
            let p = self.param(like_pattern(protocol), "text");
            self.clauses
                .push(format!("lower(e.protocol) LIKE {p} ESCAPE '\\'"));
        }
        if let Some(t) = f.attack_type {
            let p = self.param(t.as_str().to_owned(), "text");
            self.clauses.push(format!("e.attack_type = {p}"));
        }
        if let Some(c) = f.attack_class {
            let p = self.param(c.as_str().to_owned(), "text");
            self.clauses.push(format!("e.attack_class = {p}"));
        }
        if let Some(min) = f.min_amount {
            let p = self.amount_param(min.to_string());
            self.clauses.push(format!("{} >= {p}", self.amount()));
        }
        if let Some(max) = f.max_amount {
            let p = self.amount_param(max.to_string());
            self.clauses.push(format!("{} <= {p}", self.amount()));
        }
        if let Some(from) = f.from {
            let p = self.time_param(from);
            self.clauses.push(format!("e.occurred_at >= {p}"));
        }
        if let Some(to) = f.to {
            let p = self.time_param(to);
            self.clauses.push(format!("e.occurred_at <= {p}"));
        }
        for (bound, op) in [(f.visible_from, ">="), (f.visible_until, "<=")] {
            if let Some(at) = bound {
                let p = self.time_param(at);
                self.clauses.push(format!("e.occurred_at {op} {p}"));
            }
        }
        if let Some(status) = f.status {
            let p = self.param(status.as_str().to_owned(), "text");
            self.clauses.push(format!("e.status = {p}"));
        }
        if let Some(q) = &f.q {
            let p = self.param(like_pattern(q), "text");
            self.clauses.push(format!(
                "(lower(e.protocol) LIKE {p} ESCAPE '\\' OR lower(coalesce(e.description, '')) LIKE {p} ESCAPE '\\')"
            ));
        }
    }

    /// The ORDER BY expression of a sort, and the keyset condition after a cursor.
    pub(crate) fn order_by(
        &mut self,
        sort: SortKey,
        order: Order,
        cursor: Option<&Cursor>,
    ) -> String {
        let key = match sort {
            SortKey::Date => "e.occurred_at".to_owned(),
            SortKey::Amount => format!("COALESCE({}, -1)", self.amount()),
        };
        let (direction, comparison) = match order {
            Order::Desc => ("DESC", "<"),
            Order::Asc => ("ASC", ">"),
        };
        if let Some(cursor) = cursor {
            let value = match sort {
                SortKey::Date => DateTime::parse_from_rfc3339(&cursor.value)
                    .map(|d| self.time_param(d.with_timezone(&Utc)))
                    .unwrap_or_else(|_| self.param(cursor.value.clone(), "timestamptz")),
                SortKey::Amount => self.amount_param(cursor.value.clone()),
            };
            let id = self.param(cursor.id.to_string(), "bigint");
            self.clauses
                .push(format!("({key}, e.id) {comparison} ({value}, {id})"));
        }
        format!("ORDER BY {key} {direction}, e.id {direction}")
    }
}

/// `%text%`, lower-cased, with LIKE's own metacharacters escaped: a search for `50%`
/// finds "50%", not everything.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The cursor for the row a page ended on.
pub(crate) fn cursor_after(request: &ListRequest, last: &IncidentSummary) -> Cursor {
    let value = match request.sort {
        SortKey::Date => last.occurred_at.to_rfc3339(),
        SortKey::Amount => last.loss_usd.clone().unwrap_or_else(|| "-1".into()),
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
    fn like_metacharacters_are_escaped() {
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
    }
}
