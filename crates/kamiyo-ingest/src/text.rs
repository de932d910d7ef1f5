//! Helpers shared by the formats. They trim and split, nothing more: deciding what a
//! value means is `kamiyo-domain`'s job.

use crate::RawTxHash;

/// The trimmed text, or `None` when nothing is left. `str::trim` also removes Unicode
/// spaces such as U+00A0, which real exports carry at the end of values.
pub(crate) fn clean(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Splits a list written in one field on `,` or `;`, trimming entries and dropping empty
/// ones.
pub(crate) fn split_list(value: &str) -> impl Iterator<Item = String> + '_ {
    value.split([',', ';']).filter_map(clean)
}

/// Appends `value` unless an identical entry is already there, keeping the given order.
pub(crate) fn push_unique<T: PartialEq>(list: &mut Vec<T>, value: T) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// Reads `hash` or `chain:hash`. Returns `Ok(None)` for empty text.
///
/// A value containing `://` is a URL (an explorer link), not `chain:hash`: it is kept
/// whole for the domain layer to judge.
pub(crate) fn tx_hash(value: &str) -> Result<Option<RawTxHash>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match value.split_once(':') {
        Some((chain, hash)) if !value.contains("://") => match clean(hash) {
            Some(hash) => Ok(Some(RawTxHash {
                chain: clean(chain),
                hash,
            })),
            None => Err(format!(
                "transaction hash {value:?} has no hash after the ':'"
            )),
        },
        _ => Ok(Some(RawTxHash {
            chain: None,
            hash: value.to_owned(),
        })),
    }
}

/// `true/false/yes/no/1/0` in any case; empty is `Ok(None)`; anything else is an error.
pub(crate) fn boolean(value: &str) -> Result<Option<bool>, ()> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "true" | "yes" | "1" => Ok(Some(true)),
        "false" | "no" | "0" => Ok(Some(false)),
        _ => Err(()),
    }
}

/// The known name closest to a misspelt one, if it is close enough to be a typo.
pub(crate) fn suggest(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    let unknown = unknown.to_ascii_lowercase();
    known
        .iter()
        .map(|candidate| {
            (
                edit_distance(&unknown, &candidate.to_ascii_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_trims_unicode_spaces_and_drops_empty_text() {
        assert_eq!(clean("  Examplefi\u{a0}"), Some("Examplefi".to_owned()));
        assert_eq!(clean(" \t"), None);
    }

    #[test]
    fn lists_split_on_commas_and_semicolons() {
        let chains: Vec<_> = split_list("Ethereum, BSC;;Arbitrum ,").collect();
        assert_eq!(chains, ["Ethereum", "BSC", "Arbitrum"]);
    }

    #[test]
    fn tx_hash_reads_an_optional_chain_prefix() {
        assert_eq!(
            tx_hash(" ethereum : 0xabc ").unwrap(),
            Some(RawTxHash {
                chain: Some("ethereum".into()),
                hash: "0xabc".into()
            })
        );
        assert_eq!(tx_hash("0xabc").unwrap().unwrap().chain, None);
        assert_eq!(tx_hash(":0xabc").unwrap().unwrap().chain, None);
        assert_eq!(tx_hash("").unwrap(), None);
        assert!(tx_hash("ethereum:").is_err());
    }

    #[test]
    fn tx_hash_keeps_explorer_urls_whole() {
        let hash = tx_hash("https://etherscan.io/tx/0xabc").unwrap().unwrap();
        assert_eq!(hash.chain, None);
        assert_eq!(hash.hash, "https://etherscan.io/tx/0xabc");
    }

    #[test]
    fn booleans_accept_the_documented_spellings_only() {
        for (text, expected) in [
            ("TRUE", Some(true)),
            ("yes", Some(true)),
            ("1", Some(true)),
            ("False", Some(false)),
            ("NO", Some(false)),
            ("0", Some(false)),
            (" ", None),
        ] {
            assert_eq!(boolean(text), Ok(expected), "{text:?}");
        }
        assert!(boolean("maybe").is_err());
        assert!(boolean("y").is_err());
    }

    #[test]
    fn suggest_finds_typos_but_not_unrelated_names() {
        let known = ["protocol", "loss_usd", "chains"];
        assert_eq!(suggest("protocl", &known), Some("protocol"));
        assert_eq!(suggest("Loss_USD", &known), Some("loss_usd"));
        assert_eq!(suggest("severity", &known), None);
    }
}
