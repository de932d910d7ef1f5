//! What makes two submissions the same: a hex SHA-256 over their normalised content, so
//! that the same submission sent twice (retried, pasted again, reordered) is recognised
//! as one, while any difference of substance makes another.
//!
//! In it, each read from the validated claim:
//! - the protocol's key ([`crate::protocol::protocol_key`]: `Euler Finance`, `euler`);
//! - the day of the date (UTC): `2023-03-13` and `2023-03-13T08:00:00Z` are one report;
//! - the chains' slugs, sorted (`ETH` and `ethereum` are one chain);
//! - the transaction hashes as the claim normalises them (lower-cased where the chain's
//!   format ignores case: EVM and hex; base58 signatures, where case is meaningful, as
//!   written), sorted;
//! - the loss rounded to whole dollars, or nothing when unknown;
//! - the evidence URLs as [`url_key`] reads them, sorted.
//!
//! Left out: the description, the attack type and technique, and the addresses. A
//! submission that differs only in how it tells the story is the same report.
//!
//! Each value is written on a line of its own after its label; no value can hold a line
//! break (the claim's rules refuse control characters), so no two contents write the same
//! text. The first line names the version of this recipe: changing the recipe changes
//! every fingerprint, and the version says so.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::chain::Chain;
use crate::incident::IncidentDraft;

const VERSION: &str = "kamiyo-submission-fingerprint-v1";

pub(super) fn of(draft: &IncidentDraft, evidence_urls: &[String]) -> String {
    let mut chains: Vec<&str> = draft.chains.iter().map(Chain::slug).collect();
    let mut hashes: Vec<&str> = draft.tx_hashes.iter().map(|t| t.hash.as_str()).collect();
    let mut urls: Vec<String> = evidence_urls.iter().map(|u| url_key(u)).collect();
    for list in [&mut chains, &mut hashes] {
        list.sort_unstable();
        list.dedup();
    }
    urls.sort_unstable();
    urls.dedup();
    let loss = draft
        .loss_usd
        .map(|usd| usd.decimal().round().to_string())
        .unwrap_or_default();

    let mut content = format!(
        "{VERSION}\nprotocol {}\nday {}\nloss {loss}\n",
        draft.protocol.key(),
        draft.occurred_at.format("%Y-%m-%d"),
    );
    for (label, values) in [("chain", &chains), ("hash", &hashes)] {
        for value in values.iter() {
            let _ = writeln!(content, "{label} {value}");
        }
    }
    for url in &urls {
        let _ = writeln!(content, "url {url}");
    }
    hex(&Sha256::digest(content.as_bytes()))
}

/// A URL as the fingerprint reads it, and as evidence URLs are told apart: parsed (scheme
/// and host lower-cased, `https://a.example` and `https://a.example/` alike), without
/// trailing slashes. Path, query and fragment keep their case: servers may tell them
/// apart.
pub(super) fn url_key(text: &str) -> String {
    let text = text.trim();
    let parsed = url::Url::parse(text).map_or_else(|_| text.to_owned(), String::from);
    parsed.trim_end_matches('/').to_owned()
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}
