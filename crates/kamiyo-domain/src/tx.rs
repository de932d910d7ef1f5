//! Transaction hashes, each tied to a chain and checked against its chain family.

use serde::Serialize;

use crate::chain::{Chain, ChainFamily};
use crate::error::FieldError;
use crate::limits::MAX_TX_HASH_CHARS;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TxHash {
    pub chain: Chain,
    /// Normalised: EVM and hex hashes lower-cased; base58 kept as is.
    pub hash: String,
}

/// How many stored forms [`TxHash::lookup_forms`] gives (padded by repeating the first).
pub const LOOKUP_FORMS: usize = 3;

impl TxHash {
    /// Every stored form that `text`, a hash given without its chain (a lookup), can
    /// match: as written, since base58 and unknown families are case-sensitive; and when
    /// it is hex, with or without `0x`, the canonical forms of the hex families: `0x` and
    /// lower case (EVM), lower case without `0x` (Bitcoin, Tron, Cosmos). One rule for
    /// every backend: a mixed-case EVM hash finds its incident, a mixed-case Solana
    /// signature finds only itself.
    pub fn lookup_forms(text: &str) -> [String; LOOKUP_FORMS] {
        let text = text.trim();
        let bare = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        if !bare.is_empty() && bare.chars().all(|c| c.is_ascii_hexdigit()) {
            let lower = bare.to_ascii_lowercase();
            [text.to_owned(), format!("0x{lower}"), lower]
        } else {
            [text.to_owned(), text.to_owned(), text.to_owned()]
        }
    }

    pub fn parse(chain: Chain, text: &str) -> Result<TxHash, FieldError> {
        let text = text.trim();
        let invalid = |why: &str| {
            FieldError::new(
                "tx_hashes",
                format!(
                    "{text:?} is not a transaction hash on {}: {why}",
                    chain.display_name()
                ),
            )
        };
        // A hash on the unknown chain is normalised as its format's family would be, so
        // that it meets the same hash stored under a known chain.
        let family = match (chain.is_unknown(), ChainFamily::of_hash(text)) {
            (true, Some(family)) => family,
            _ => chain.family(),
        };
        let hash = match family {
            ChainFamily::Evm => {
                let hex = text
                    .strip_prefix("0x")
                    .or_else(|| text.strip_prefix("0X"))
                    .ok_or_else(|| invalid("expected 0x and 64 hex digits"))?;
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(invalid("expected 0x and 64 hex digits"));
                }
                format!("0x{}", hex.to_lowercase())
            }
            ChainFamily::Hex64 => {
                let hex = text.strip_prefix("0x").unwrap_or(text);
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(invalid("expected 64 hex digits"));
                }
                hex.to_lowercase()
            }
            ChainFamily::Solana => {
                if !crate::chain::is_base58_signature(text) {
                    return Err(invalid(
                        "expected a base58 signature of 64 to 88 characters",
                    ));
                }
                text.to_owned()
            }
            ChainFamily::Other => {
                // Control characters too: this family keeps the text as written.
                if text.is_empty()
                    || text.chars().nth(MAX_TX_HASH_CHARS).is_some()
                    || text.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(invalid(&format!(
                        "expected 1 to {MAX_TX_HASH_CHARS} characters without spaces or control characters"
                    )));
                }
                text.to_owned()
            }
        };
        Ok(TxHash { chain, hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(name: &str) -> Chain {
        Chain::parse(name).unwrap()
    }

    #[test]
    fn evm_hashes_are_checked_and_lower_cased() {
        let hash = format!("0x{}", "AB".repeat(32));
        let tx = TxHash::parse(chain("BSC"), &hash).unwrap();
        assert_eq!(tx.hash, format!("0x{}", "ab".repeat(32)));
        assert!(TxHash::parse(chain("ethereum"), "0x1234").is_err());
        assert!(TxHash::parse(chain("ethereum"), &"ab".repeat(32)).is_err());
    }

    #[test]
    fn other_families() {
        assert!(TxHash::parse(chain("bitcoin"), &"0f".repeat(32)).is_ok());
        let solana_sig = "5".repeat(87);
        assert!(TxHash::parse(chain("solana"), &solana_sig).is_ok());
        assert!(TxHash::parse(chain("solana"), "0OIl").is_err());
        assert!(TxHash::parse(chain("some new chain"), "abc def").is_err());
    }

    #[test]
    fn a_hash_on_an_unknown_chain_refuses_control_characters() {
        for text in ["abc\u{0}def", "abc\u{7f}", "\u{1b}abc"] {
            assert!(
                TxHash::parse(chain("some new chain"), text).is_err(),
                "{text:?}"
            );
        }
        let longest = "é".repeat(MAX_TX_HASH_CHARS);
        assert!(TxHash::parse(chain("some new chain"), &longest).is_ok());
        assert!(TxHash::parse(chain("some new chain"), &format!("{longest}x")).is_err());
    }
}

#[cfg(test)]
mod lookup_tests {
    use super::*;

    #[test]
    fn hex_hashes_are_looked_up_in_every_hex_familys_canonical_form_and_base58_as_written() {
        let [written, evm, hex64] = TxHash::lookup_forms(" 0xABcd ");
        assert_eq!(
            (written.as_str(), evm.as_str(), hex64.as_str()),
            ("0xABcd", "0xabcd", "abcd")
        );
        let [_, evm, hex64] = TxHash::lookup_forms("ABCD");
        assert_eq!((evm.as_str(), hex64.as_str()), ("0xabcd", "abcd"));
        let solana = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQ";
        assert_eq!(
            TxHash::lookup_forms(solana),
            [solana.to_owned(), solana.to_owned(), solana.to_owned()]
        );
    }
}
