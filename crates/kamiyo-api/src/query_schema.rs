//! The JSON Schema of the query and path parameters that are text, for the OpenAPI
//! document: exactly the values `params.rs` and the handlers accept, as far as JSON Schema
//! can say it. Values are trimmed of whitespace before they are read, and control
//! characters are refused in any value, so every pattern allows surrounding spaces and
//! admits no control character. Lengths are characters; the server counts UTF-8 bytes
//! for chain names and hashes (the descriptions say so).

use kamiyo_domain::input_schema::{chain_name_pattern, trimmed_plain_pattern, CONTROL, SPACES};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, SchemaType, Type};

use kamiyo_store::incidents::PageLimit;

use crate::params::MAX_VALUE_CHARS;

fn string(pattern: String) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(pattern))
}

/// A free-text filter (`protocol`, `q`).
pub fn free_text() -> Schema {
    string(trimmed_plain_pattern(MAX_VALUE_CHARS, false))
        .build()
        .into()
}

/// A chain name, alias or numeric id, or blank (any chain).
pub fn chain() -> Schema {
    AllOfBuilder::new()
        .item(string(trimmed_plain_pattern(
            kamiyo_domain::limits::MAX_CHAIN_CHARS,
            false,
        )))
        .item(string(chain_name_pattern()))
        .build()
        .into()
}

/// A non-negative amount in US dollars, to the cent.
pub fn amount() -> Schema {
    string(format!(
        r"^[{SPACES}]*[0-9]{{1,18}}(\.[0-9]{{1,2}})?[{SPACES}]*$"
    ))
    .build()
    .into()
}

/// A day (`YYYY-MM-DD`) between the years 1970 and 9999, or an RFC 3339 instant whose
/// year stays within them once in UTC (hence 1971 to 9989 there: an offset can move an
/// instant of 1970 or 9999 across).
pub fn day_or_instant() -> Schema {
    const LEAP: &str = "19(7[26]|8[048]|9[26])|[2-9][0-9](0[48]|[2468][048]|[13579][26])|([2468][048]|[3579][26])00";
    let day = |years: &str| {
        format!(
            "({years})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)|({LEAP})-02-29"
        )
    };
    let date = day("19[7-9][0-9]|[2-9][0-9]{3}");
    let instant = format!(
        "({})T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{{1,9}})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])",
        day("197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}")
    );
    string(format!("^[{SPACES}]*({date}|{instant})[{SPACES}]*$"))
        .build()
        .into()
}

/// A listing's cursor: hex, as `next_cursor` gives it.
pub fn cursor() -> Schema {
    string(format!(
        "^[{SPACES}]*([0-9a-fA-F]{{2}}){{1,200}}[{SPACES}]*$"
    ))
    .build()
    .into()
}

/// A transaction hash in a path: no whitespace or control character inside.
pub fn tx_hash() -> Schema {
    string(format!(
        "^[{SPACES}]*[^{CONTROL}{SPACES}]{{1,128}}[{SPACES}]*$"
    ))
    .build()
    .into()
}

/// Items per page: the store's bounds ([`PageLimit`]), not a copy of them.
pub fn page_limit() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .minimum(Some(1))
        .maximum(Some(PageLimit::MAX as f64))
        .build()
        .into()
}

/// `min_sources`: 1 to `exploits::MAX_MIN_SOURCES`.
pub fn min_sources() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .minimum(Some(1))
        .maximum(Some(f64::from(crate::exploits::MAX_MIN_SOURCES)))
        .build()
        .into()
}
