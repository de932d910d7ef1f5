//! A submission's claim, validated as every claim is, with each refusal named as the
//! submission names the field.
//!
//! [`IncidentDraft::from_input_with_warnings`] names a list's field (`tx_hashes`,
//! `chains`) but not which entry: an importer reports a record, not an entry. A person
//! correcting a form needs the entry (`tx_hashes[3].hash`). The entry is found by
//! validating the claim with the list cut short: the claim's rules are not repeated
//! here, so they cannot drift apart.
//!
//! A cut list, not each entry alone: a hash without a chain takes the chain of the claim,
//! which hashes before it can name, so an entry is judged in the context of those before
//! it. The shortest cut that is refused ends with the refused entry. Bisection finds a
//! cut whose last entry is refused with at most about log2(n) + 1 validations, and only
//! for a claim already refused.

use chrono::{DateTime, Utc};

use crate::error::FieldError;
use crate::incident::{IncidentDraft, IncidentInput};
use crate::limits::{MAX_CHAINS_PER_CLAIM, MAX_TX_HASHES_PER_CLAIM};

/// The claim validated; a hash that does not suit its chain is refused, as
/// `POST /api/exploits` refuses it (an importer would drop it and keep the record).
pub(super) fn validate(
    claim: &IncidentInput,
    now: DateTime<Utc>,
) -> Result<IncidentDraft, FieldError> {
    let refusal = match IncidentDraft::from_input_with_warnings(claim.clone(), now) {
        Ok((draft, dropped)) => match dropped.into_iter().next() {
            None => return Ok(draft),
            Some(dropped) => dropped,
        },
        Err(refusal) => refusal,
    };
    Err(name_entry(claim, refusal, now))
}

/// `refusal` with its field named down to the entry, when it is about one entry.
fn name_entry(claim: &IncidentInput, refusal: FieldError, now: DateTime<Utc>) -> FieldError {
    let entry = match refusal.field.as_str() {
        // Past the maximum, the refusal is about the list's length.
        "tx_hashes" if claim.tx_hashes.len() <= MAX_TX_HASHES_PER_CLAIM => hash_entry(claim, now),
        "chains" if claim.chains.len() <= MAX_CHAINS_PER_CLAIM => chain_entry(claim, now),
        // The first evidence URL; its own rules are stricter than a claim's, so this is
        // not expected.
        "source_url" => Some(FieldError::new("evidence_urls[0]", refusal.message.clone())),
        _ => None,
    };
    entry.unwrap_or(refusal)
}

/// The first refused entry of `claim.tx_hashes`: `tx_hashes[i].chain` when its chain is
/// refused, else `tx_hashes[i].hash`.
fn hash_entry(claim: &IncidentInput, now: DateTime<Utc>) -> Option<FieldError> {
    let validate_cut = |len: usize| {
        let cut = IncidentInput {
            tx_hashes: claim.tx_hashes.get(..len).unwrap_or_default().to_vec(),
            ..claim.clone()
        };
        match IncidentDraft::from_input_with_warnings(cut, now) {
            // A hash that does not suit its chain: a refusal of the hash.
            Ok((_, dropped)) => dropped.into_iter().last().map(|d| (d.message, false)),
            // The list's own rules (`entry 3: its chain ...`), or its chain's name.
            Err(refused) if refused.field == "tx_hashes" => {
                let of_chain = !refused.message.starts_with("entry ")
                    || refused.message.contains(": its chain ");
                Some((refused.message, of_chain))
            }
            Err(_) => None,
        }
    };
    let (index, (message, of_chain)) = first_refused(claim.tx_hashes.len(), validate_cut)?;
    let part = if of_chain { "chain" } else { "hash" };
    let message = without_entry_prefix(&message, index);
    let message = message.strip_prefix("its chain ").unwrap_or(message);
    Some(FieldError::new(
        format!("tx_hashes[{index}].{part}"),
        message,
    ))
}

/// The first refused entry of `claim.chains`. Hashes are left out of the cut claims: they
/// are read after the chains, and can only add refusals of their own.
fn chain_entry(claim: &IncidentInput, now: DateTime<Utc>) -> Option<FieldError> {
    let validate_cut = |len: usize| {
        let cut = IncidentInput {
            chains: claim.chains.get(..len).unwrap_or_default().to_vec(),
            tx_hashes: Vec::new(),
            ..claim.clone()
        };
        match IncidentDraft::from_input(cut, now) {
            Err(refused) if refused.field == "chains" => Some(refused.message),
            _ => None,
        }
    };
    let (index, message) = first_refused(claim.chains.len(), validate_cut)?;
    Some(FieldError::new(
        format!("chains[{index}]"),
        without_entry_prefix(&message, index),
    ))
}

/// The claim rules' own entry numbering (`entry 1: `, counted from 1) is dropped: the
/// field names the entry.
fn without_entry_prefix(message: &str, index: usize) -> &str {
    let prefix = format!("entry {}: ", index + 1);
    message.strip_prefix(prefix.as_str()).unwrap_or(message)
}

/// The index of an entry that ends a refused cut of a list of `len` entries while the cut
/// one shorter is accepted, with that refusal. `refused(n)` validates the list cut to its
/// first `n` entries. `None` when the whole list is accepted: the refusal is then not
/// about one entry (the number of chains the hashes name, say).
fn first_refused<T>(len: usize, refused: impl Fn(usize) -> Option<T>) -> Option<(usize, T)> {
    let mut refusal = refused(len)?;
    // The empty list has no entry to refuse.
    let (mut accepted, mut refused_len) = (0, len);
    while refused_len - accepted > 1 {
        let middle = accepted + (refused_len - accepted) / 2;
        match refused(middle) {
            Some(found) => {
                refusal = found;
                refused_len = middle;
            }
            None => accepted = middle,
        }
    }
    Some((refused_len.checked_sub(1)?, refusal))
}

#[cfg(test)]
mod tests {
    use super::first_refused;

    #[test]
    fn bisection_finds_the_entry_that_ends_the_shortest_refused_cut() {
        for len in 1..40 {
            for bad in 0..len {
                let found = first_refused(len, |n| (n > bad).then_some(n));
                assert_eq!(found.map(|(i, _)| i), Some(bad), "len {len}, bad {bad}");
            }
        }
        assert_eq!(first_refused(5, |_| None::<()>), None);
        assert_eq!(first_refused(0, |_| Some(())), None);
    }
}
