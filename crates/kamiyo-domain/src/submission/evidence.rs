//! Evidence URLs and addresses: what a submission adds to a claim. Each refusal names the
//! entry (`evidence_urls[1]`), counted from 0 as in the JSON body.

use crate::error::FieldError;
use crate::input_rules::{at_most_entries, no_control_characters};

use super::fingerprint;

/// Evidence URLs one submission may give: enough for an explorer link per chain, a
/// post-mortem and a few write-ups; past that, a list is padding that reviewers must read.
pub const MAX_EVIDENCE_URLS: usize = 10;

/// One evidence URL, once trimmed. Below a claim's `source_url` maximum
/// ([`crate::limits::MAX_URL_CHARS`]), so that the first one is always a valid
/// `source_url`.
pub const MAX_EVIDENCE_URL_CHARS: usize = 2_000;

/// Addresses per list (`attacker_addresses`, `victim_addresses`): an exploit's attacker
/// contracts and funding wallets, its drained pools.
pub const MAX_ADDRESSES: usize = 20;

/// One address, once trimmed: an EVM address is 42, a Solana one 44, a Cosmos bech32
/// address about 65; room for any chain's form.
pub const MAX_ADDRESS_CHARS: usize = 128;

/// The evidence URLs, trimmed, each at most once (as the fingerprint reads a URL), in the
/// order given: at least one, each an absolute `http` or `https` URL with a host and no
/// credentials. Shown as text and links by clients, never fetched.
pub(super) fn urls(given: &[String]) -> Result<Vec<String>, FieldError> {
    if given.is_empty() {
        return Err(FieldError::new(
            "evidence_urls",
            "is required: at least one URL where the incident or its evidence can be seen",
        ));
    }
    at_most_entries("evidence_urls", given.len(), MAX_EVIDENCE_URLS)?;
    let mut kept: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for (i, text) in given.iter().enumerate() {
        let field = format!("evidence_urls[{i}]");
        let text = text.trim();
        if text.chars().nth(MAX_EVIDENCE_URL_CHARS).is_some() {
            return Err(FieldError::new(
                field,
                format!("is longer than the maximum of {MAX_EVIDENCE_URL_CHARS} characters"),
            ));
        }
        no_control_characters(&field, text)?;
        web_url(text).map_err(|why| FieldError::new(field, why))?;
        let key = fingerprint::url_key(text);
        if !keys.contains(&key) {
            keys.push(key);
            kept.push(text.to_owned());
        }
    }
    Ok(kept)
}

fn web_url(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let url = url::Url::parse(text).map_err(|e| format!("is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http or https URL, not {}:",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_owned());
    }
    // A link shown to reviewers must not carry someone's password, nor dress one host up
    // as another (`https://etherscan.io@evil.example/`).
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold credentials (user:password@)".to_owned());
    }
    Ok(())
}

/// The addresses of one list, trimmed, each at most once: 1 to [`MAX_ADDRESS_CHARS`]
/// printable ASCII characters. Every chain writes its addresses in ASCII (hex, base58,
/// bech32, base64url, `name.near`); anything else, invisible format characters such as
/// U+200B or U+202E included, would make one address look like another. An EVM address (`0x` and 40 hex
/// digits) is lower-cased, as its checksum case carries no meaning; any other is kept as
/// written (base58 is case-sensitive).
pub(super) fn addresses(field: &str, given: &[String]) -> Result<Vec<String>, FieldError> {
    at_most_entries(field, given.len(), MAX_ADDRESSES)?;
    let mut kept: Vec<String> = Vec::new();
    for (i, text) in given.iter().enumerate() {
        let refused = |why: String| FieldError::new(format!("{field}[{i}]"), why);
        let text = text.trim();
        if text.is_empty() {
            return Err(refused("must not be empty".to_owned()));
        }
        if text.chars().nth(MAX_ADDRESS_CHARS).is_some() {
            return Err(refused(format!(
                "is longer than the maximum of {MAX_ADDRESS_CHARS} characters"
            )));
        }
        if let Some(c) = text.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(refused(format!(
                "must be printable ASCII without whitespace (found U+{:04X})",
                c as u32
            )));
        }
        let address = if is_evm_address(text) {
            text.to_ascii_lowercase()
        } else {
            text.to_owned()
        };
        if !kept.contains(&address) {
            kept.push(address);
        }
    }
    Ok(kept)
}

fn is_evm_address(text: &str) -> bool {
    text.strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .is_some_and(|hex| hex.len() == 40 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}
