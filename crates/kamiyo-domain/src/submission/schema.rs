//! The JSON Schema of the fields a submission adds to a claim's, for the OpenAPI document
//! of `POST /api/submissions`; the claim's own fields use [`crate::input_schema`]. As
//! there, each schema admits the usual form of every accepted value, and the rules a
//! pattern cannot state (no credentials in a URL) are named in the descriptions.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};

use crate::input_schema::{CONTROL, SPACES};

use super::evidence::{
    MAX_ADDRESSES, MAX_ADDRESS_CHARS, MAX_EVIDENCE_URLS, MAX_EVIDENCE_URL_CHARS,
};

/// All of `char::is_whitespace`, which the server trims: the control ones and the rest.
const WHITESPACE: &str = r"\x09-\x0d\x85";

fn string(pattern: String, max_chars: Option<usize>, description: String) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(pattern))
        .max_length(max_chars)
        .description(Some(description))
}

pub fn evidence_urls() -> Schema {
    // A host without `@` (no credentials) nor brackets; any case of the scheme.
    let url = format!(
        r"^[{WHITESPACE}{SPACES}]*[hH][tT][tT][pP][sS]?://[^{CONTROL}{SPACES}\[\]/?#@]+([/?#][^{CONTROL}{SPACES}]*)?[{WHITESPACE}{SPACES}]*$"
    );
    ArrayBuilder::new()
        .description(Some(format!(
            "Where the incident or the evidence for it can be seen (an explorer, a post-mortem, a write-up): 1 to {MAX_EVIDENCE_URLS} http or https URLs with a host and without credentials (`user:password@`), each at most {MAX_EVIDENCE_URL_CHARS} characters (422 otherwise). The first becomes the claim's `source_url`. Shown as text and links; the server never fetches them."
        )))
        .min_items(Some(1))
        .max_items(Some(MAX_EVIDENCE_URLS))
        .items(string(
            url,
            Some(MAX_EVIDENCE_URL_CHARS),
            "An http or https URL.".to_owned(),
        ))
        .build()
        .into()
}

fn addresses(whose: &str) -> Schema {
    let address =
        format!("^[{WHITESPACE}{SPACES}]*[!-~]{{1,{MAX_ADDRESS_CHARS}}}[{WHITESPACE}{SPACES}]*$");
    ArrayBuilder::new()
        .description(Some(format!(
            "{whose} addresses, in any chain's form, at most {MAX_ADDRESSES}: each 1 to {MAX_ADDRESS_CHARS} printable ASCII characters, no whitespace (422 otherwise). EVM addresses are kept lower-cased."
        )))
        .max_items(Some(MAX_ADDRESSES))
        .items(string(address, None, "An address.".to_owned()))
        .build()
        .into()
}

pub fn attacker_addresses() -> Schema {
    addresses("The attacker's (exploit contracts, funding and receiving wallets)")
}

pub fn victim_addresses() -> Schema {
    addresses("The victims' (drained contracts, pools, treasuries)")
}
