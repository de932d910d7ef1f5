//! The JSON Schema of [`IncidentInput`](crate::IncidentInput)'s fields, for the OpenAPI
//! document of `POST /api/exploits`.
//!
//! Each field's schema admits every value [`IncidentDraft::from_input`](crate::IncidentDraft::from_input)
//! can accept, so that a value outside it is always refused (400 for the wrong JSON type,
//! 422 for a rule). Rules JSON Schema cannot state stay 422 answers and are named in the
//! descriptions: a hash must suit its chain's family, a date must lie between 2009-01-03
//! and tomorrow, lengths are counted in UTF-8 bytes. Where a field accepts many spellings,
//! a first `anyOf` branch gives the usual one, so that generated examples are often
//! valid.
//!
//! Patterns use explicit character ranges, never `\s` or `\w`: those differ between the
//! regex dialects of the document's readers.

use crate::limits::{
    MAX_AMOUNT_CHARS, MAX_CHAINS_PER_CLAIM, MAX_CHAIN_CHARS, MAX_DATE_CHARS, MAX_DESCRIPTION_CHARS,
    MAX_EXTERNAL_ID_CHARS, MAX_LABEL_CHARS, MAX_PROTOCOL_CHARS, MAX_SOURCE_CHARS,
    MAX_TECHNIQUE_CHARS, MAX_TX_HASHES_PER_CLAIM, MAX_TX_HASH_CHARS, MAX_URL_CHARS,
};
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Ref, Schema, SchemaType, Type,
};

/// `char::is_control` (Unicode category Cc), as the inside of a character class.
pub const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// The characters of `char::is_whitespace` (Unicode White_Space, which `str::trim`
/// removes) that are not control characters, as the inside of a character class.
pub const SPACES: &str = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// All of `char::is_whitespace`, as the inside of a character class.
const WHITESPACE: &str = r"\x09-\x0d\x85\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// Text without control characters.
pub fn plain_pattern() -> String {
    format!("^[^{CONTROL}]*$")
}

/// `CONTROL` less tab, line feed and carriage return: what a description may not hold.
const CONTROL_BUT_LINES: &str = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f";

/// Text without control characters that is at most `max_chars` characters once trimmed
/// of whitespace (any whitespace, control or not, is trimmed before the rules apply);
/// blank too unless `required`. (`maxLength` would count the whitespace that the server
/// trims.)
pub fn trimmed_pattern(max_chars: usize, required: bool) -> String {
    trimmed(CONTROL, WHITESPACE, max_chars, required)
}

/// As [`trimmed_pattern`], with tab, line feed and carriage return allowed inside.
pub fn multiline_pattern(max_chars: usize, required: bool) -> String {
    trimmed(CONTROL_BUT_LINES, WHITESPACE, max_chars, required)
}

/// As [`trimmed_pattern`] for a value refused whole when it holds any control character,
/// even as surrounding whitespace (query parameters).
pub fn trimmed_plain_pattern(max_chars: usize, required: bool) -> String {
    trimmed(CONTROL, SPACES, max_chars, required)
}

fn trimmed(refused: &str, edges: &str, max_chars: usize, required: bool) -> String {
    let core = format!(
        "[^{CONTROL}{SPACES}]([^{refused}]{{0,{}}}[^{CONTROL}{SPACES}])?",
        max_chars.saturating_sub(2)
    );
    let core = if required { core } else { format!("({core})?") };
    format!("^[{edges}]*{core}[{edges}]*$")
}

/// Blank, or with something besides whitespace, `-` and `_` (a chain name).
pub fn chain_name_pattern() -> String {
    format!("^([{SPACES}]*|[^{CONTROL}]*[^{CONTROL}{SPACES}_-][^{CONTROL}]*)$")
}

/// Whitespace only (or nothing): the same as an absent optional field.
fn blank_pattern() -> String {
    format!("^[{WHITESPACE}]*$")
}

fn string(pattern: String, max_chars: Option<usize>, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(pattern))
        .max_length(max_chars)
        .description(Some(description))
}

fn null() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null))
}

fn optional_text(max_chars: usize, description: &str) -> Schema {
    let pattern = trimmed_pattern(max_chars, false);
    let description = format!(
        "{description} No control characters; at most {max_chars} characters once trimmed (422 otherwise). Blank is the same as absent."
    );
    AnyOfBuilder::new()
        .item(string(pattern, None, &description))
        .item(null())
        .build()
        .into()
}

pub fn source() -> Schema {
    string(
        trimmed_pattern(MAX_SOURCE_CHARS, true),
        None,
        &format!("Who makes the claim (e.g. `defillama`, `rekt`). Not blank, no control characters, at most {MAX_SOURCE_CHARS} characters once trimmed (422 otherwise)."),
    )
    .build()
    .into()
}

pub fn source_url() -> Schema {
    // A host without brackets: an unbalanced one (`http://[x`) is no URL, and only an
    // IPv6 host has a balanced pair. Surrounding whitespace is trimmed by the server.
    let url = format!(
        r"^[{WHITESPACE}]*https?://[^{CONTROL}{WHITESPACE}\[\]/?#]+([/?#][^{CONTROL}{WHITESPACE}]*)?[{WHITESPACE}]*$"
    );
    AnyOfBuilder::new()
        .description(Some(format!(
            "Where the source tells of it: an http or https URL with a host, at most {MAX_URL_CHARS} characters (422 otherwise). Blank is the same as absent."
        )))
        .item(string(url, Some(MAX_URL_CHARS), "An http or https URL."))
        .item(string(blank_pattern(), None, "Blank: no URL."))
        .item(null())
        .build()
        .into()
}

pub fn external_id() -> Schema {
    optional_text(
        MAX_EXTERNAL_ID_CHARS,
        "The source's own id for the record; makes re-imports recognisable.",
    )
}

pub fn protocol() -> Schema {
    string(
        trimmed_pattern(MAX_PROTOCOL_CHARS, true),
        None,
        &format!("The protocol's name as the source writes it. At most {MAX_PROTOCOL_CHARS} characters once trimmed, with at least one letter or digit, no control characters (422 otherwise)."),
    )
    .build()
    .into()
}

pub fn chains() -> Schema {
    ArrayBuilder::new()
        .description(Some(format!(
            "Chain names, aliases or numeric ids (`ethereum`, `BNB Chain`, `56`); the first is the primary chain. A claim that names none, here or in `tx_hashes`, is stored on the chain `unknown` (filterable as `chain=unknown`), which merges by name and date with any chain; at most {MAX_CHAINS_PER_CLAIM} counting both (422 otherwise). A name is at most {MAX_CHAIN_CHARS} characters (and UTF-8 bytes once lower-cased), with something besides `-`, `_` and whitespace (422 otherwise)."
        )))
        .max_items(Some(MAX_CHAINS_PER_CLAIM))
        .items(
            AllOfBuilder::new()
                .item(string(trimmed_pattern(MAX_CHAIN_CHARS, true), None, "A chain name, alias or numeric id."))
                .item(string(chain_name_pattern(), None, "Not only `-` and `_`.")),
        )
        .build()
        .into()
}

pub fn date() -> Schema {
    let usual = r"^20(1[0-9]|2[0-5])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$";
    AnyOfBuilder::new()
        .description(Some(
            "When it happened: YYYY-MM-DD, RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), M/D/YY or M/D/YYYY; a date alone is midnight UTC. Between 2009-01-03 and tomorrow (422 otherwise).",
        ))
        .item(string(usual.to_owned(), None, "A day, e.g. `2023-03-13`."))
        .item(string(
            trimmed_pattern(MAX_DATE_CHARS, true),
            None,
            "Any other of the accepted forms.",
        ))
        .build()
        .into()
}

/// A JSON number or decimal text, kept as text.
pub fn amount() -> Schema {
    let usual = r"^[0-9]{1,18}(\.[0-9]{1,2})?$";
    AnyOfBuilder::new()
        .description(Some(
            "US dollars: a JSON number or decimal text (`\"197000000\"`, `\"$1,250.50\"`, `\"1.5e6\"`), not negative, at most 18 digits before the point once rounded to cents (422 otherwise). Absent, null or blank when unknown; never 0 for unknown.",
        ))
        .item(string(usual.to_owned(), None, "Decimal text."))
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Number))
                .minimum(Some(0))
                .maximum(Some(999_999_999_999_999_999_u64)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .pattern(Some(trimmed_pattern(MAX_AMOUNT_CHARS, false)))
                .description(Some("Any other spelling of an amount, or blank.")),
        )
        .item(null())
        .build()
        .into()
}

/// A taxonomy name (`schema`, a component of the document), blank, or null.
fn taxonomy(schema: &str, description: &str) -> Schema {
    AnyOfBuilder::new()
        .description(Some(format!(
            "{description} Case, spaces and `-` for `_` do not matter (`Oracle Manipulation`)."
        )))
        .item(Ref::from_schema_name(schema))
        .item(string(blank_pattern(), None, "Blank: the same as absent."))
        .item(null())
        .build()
        .into()
}

pub fn attack_type() -> Schema {
    taxonomy(
        "AttackType",
        "The taxonomy's type; derived from `technique` and `attack_class` when absent.",
    )
}

pub fn status() -> Schema {
    taxonomy("IncidentStatus", "`confirmed` when absent.")
}

pub fn attack_class() -> Schema {
    optional_text(
        MAX_LABEL_CHARS,
        "The source's own category (DeFiLlama's `classification`), kept as written.",
    )
}

pub fn technique() -> Schema {
    optional_text(
        MAX_TECHNIQUE_CHARS,
        "The source's technique text (one line), kept as written.",
    )
}

pub fn description() -> Schema {
    let description = format!(
        "What happened. At most {MAX_DESCRIPTION_CHARS} characters once trimmed; no control characters but tab, line feed and carriage return (422 otherwise). Blank is the same as absent."
    );
    AnyOfBuilder::new()
        .item(string(
            multiline_pattern(MAX_DESCRIPTION_CHARS, false),
            None,
            &description,
        ))
        .item(null())
        .build()
        .into()
}

pub fn tx_chain() -> Schema {
    AnyOfBuilder::new()
        .description(Some(
            "The hash's chain. Absent or null: the incident's one chain; with several, the one whose hash format it fits (EVM `0x` and 64 hex digits, 64 hex digits, base58 signatures); else the chain `unknown`, where it matches the same hash on any chain of its format's family. A hash that does not fit its chain is refused (422); an import drops it from the record's claim with a warning instead.",
        ))
        .item(string(trimmed_pattern(MAX_CHAIN_CHARS, true), None, "A chain name, alias or numeric id."))
        .item(null())
        .build()
        .into()
}

pub fn tx_hash() -> Schema {
    let evm = r"^0x[0-9a-f]{64}$";
    AnyOfBuilder::new()
        .description(Some(
            "A transaction hash in its chain's form (422 otherwise): `0x` and 64 hex digits on EVM chains, 64 hex digits on Bitcoin, Tron and Cosmos, base58 of 64 to 88 characters on Solana, 1 to 128 characters without whitespace elsewhere.",
        ))
        .item(string(evm.to_owned(), None, "An EVM hash."))
        .item(string(trimmed_pattern(MAX_TX_HASH_CHARS, true), None, "Any other hash."))
        .build()
        .into()
}

pub fn tx_hashes() -> Schema {
    ArrayBuilder::new()
        .description(Some(format!(
            "Transaction hashes, at most {MAX_TX_HASHES_PER_CLAIM} (422 otherwise)."
        )))
        .max_items(Some(MAX_TX_HASHES_PER_CLAIM))
        .items(Ref::from_schema_name("TxHashInput"))
        .build()
        .into()
}
