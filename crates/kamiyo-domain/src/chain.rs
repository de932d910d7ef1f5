//! Chains and their aliases: `BSC`, `BNB Chain`, `bsc` and `56` are one chain. A chain
//! the table does not know is kept under a normalised slug (real data names many small
//! chains), marked as not known, with the generic hash rule.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::input_rules::no_control_characters;
use crate::limits::MAX_CHAIN_CHARS;

/// How transaction hashes look on a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainFamily {
    /// `0x` and 64 hex digits.
    Evm,
    /// Base58, 64 to 88 characters.
    Solana,
    /// 64 hex digits, no prefix (Bitcoin, Tron, Cosmos chains).
    Hex64,
    /// Anything without spaces, up to 128 characters.
    Other,
}

struct KnownChain {
    slug: &'static str,
    name: &'static str,
    family: ChainFamily,
    aliases: &'static [&'static str],
}

const KNOWN: &[KnownChain] = &[
    KnownChain {
        slug: "ethereum",
        name: "Ethereum",
        family: ChainFamily::Evm,
        aliases: &["eth", "mainnet", "ethereum mainnet", "1"],
    },
    KnownChain {
        slug: "bsc",
        name: "BNB Chain",
        family: ChainFamily::Evm,
        aliases: &[
            "bnb chain",
            "bnb smart chain",
            "binance smart chain",
            "binance",
            "bnb",
            "bep20",
            "56",
        ],
    },
    KnownChain {
        slug: "polygon",
        name: "Polygon",
        family: ChainFamily::Evm,
        aliases: &["matic", "polygon pos", "137"],
    },
    KnownChain {
        slug: "arbitrum",
        name: "Arbitrum",
        family: ChainFamily::Evm,
        aliases: &["arbitrum one", "arb", "42161"],
    },
    KnownChain {
        slug: "optimism",
        name: "Optimism",
        family: ChainFamily::Evm,
        aliases: &["op mainnet", "op", "10"],
    },
    KnownChain {
        slug: "avalanche",
        name: "Avalanche",
        family: ChainFamily::Evm,
        aliases: &["avax", "avalanche c-chain", "avalanche c chain", "43114"],
    },
    KnownChain {
        slug: "fantom",
        name: "Fantom",
        family: ChainFamily::Evm,
        aliases: &["ftm", "250"],
    },
    KnownChain {
        slug: "base",
        name: "Base",
        family: ChainFamily::Evm,
        aliases: &["8453"],
    },
    KnownChain {
        slug: "gnosis",
        name: "Gnosis",
        family: ChainFamily::Evm,
        aliases: &["xdai", "gnosis chain", "100"],
    },
    KnownChain {
        slug: "cronos",
        name: "Cronos",
        family: ChainFamily::Evm,
        aliases: &["cro", "25"],
    },
    KnownChain {
        slug: "moonbeam",
        name: "Moonbeam",
        family: ChainFamily::Evm,
        aliases: &["1284"],
    },
    KnownChain {
        slug: "moonriver",
        name: "Moonriver",
        family: ChainFamily::Evm,
        aliases: &["1285"],
    },
    KnownChain {
        slug: "harmony",
        name: "Harmony",
        family: ChainFamily::Evm,
        aliases: &["one", "1666600000"],
    },
    KnownChain {
        slug: "heco",
        name: "HECO",
        family: ChainFamily::Evm,
        aliases: &["huobi eco chain", "128"],
    },
    KnownChain {
        slug: "blast",
        name: "Blast",
        family: ChainFamily::Evm,
        aliases: &["81457"],
    },
    KnownChain {
        slug: "linea",
        name: "Linea",
        family: ChainFamily::Evm,
        aliases: &["59144"],
    },
    KnownChain {
        slug: "zksync",
        name: "zkSync Era",
        family: ChainFamily::Evm,
        aliases: &["zksync era", "324"],
    },
    KnownChain {
        slug: "scroll",
        name: "Scroll",
        family: ChainFamily::Evm,
        aliases: &["534352"],
    },
    KnownChain {
        slug: "mantle",
        name: "Mantle",
        family: ChainFamily::Evm,
        aliases: &["5000"],
    },
    KnownChain {
        slug: "celo",
        name: "Celo",
        family: ChainFamily::Evm,
        aliases: &["42220"],
    },
    KnownChain {
        slug: "ronin",
        name: "Ronin",
        family: ChainFamily::Evm,
        aliases: &["2020"],
    },
    KnownChain {
        slug: "metis",
        name: "Metis",
        family: ChainFamily::Evm,
        aliases: &["1088"],
    },
    KnownChain {
        slug: "kava",
        name: "Kava",
        family: ChainFamily::Evm,
        aliases: &["2222"],
    },
    KnownChain {
        slug: "solana",
        name: "Solana",
        family: ChainFamily::Solana,
        aliases: &["sol"],
    },
    KnownChain {
        slug: "bitcoin",
        name: "Bitcoin",
        family: ChainFamily::Hex64,
        aliases: &["btc"],
    },
    KnownChain {
        slug: "tron",
        name: "Tron",
        family: ChainFamily::Hex64,
        aliases: &["trx"],
    },
    KnownChain {
        slug: "cosmos",
        name: "Cosmos",
        family: ChainFamily::Hex64,
        aliases: &["cosmos hub", "atom"],
    },
];

/// A chain under its canonical slug.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Chain(String);

impl Chain {
    /// Resolves names, aliases and numeric chain ids case-insensitively.
    /// Control characters are refused: an unknown chain is kept as its slug.
    pub fn parse(text: &str) -> Result<Chain, FieldError> {
        no_control_characters("chain", text.trim())?;
        let key = normalize(text);
        if key.is_empty() {
            return Err(FieldError::new("chain", "must not be empty"));
        }
        if key.chars().count() > MAX_CHAIN_CHARS {
            return Err(FieldError::new(
                "chain",
                format!("is longer than the maximum of {MAX_CHAIN_CHARS} characters"),
            ));
        }
        let slug = KNOWN
            .iter()
            .find(|c| {
                c.slug == key
                    || normalize(c.name) == key
                    || c.aliases.iter().any(|a| normalize(a) == key)
            })
            .map(|c| c.slug.to_owned())
            .unwrap_or_else(|| key.replace(' ', "-"));
        Ok(Chain(slug))
    }

    pub fn slug(&self) -> &str {
        &self.0
    }

    fn known(&self) -> Option<&'static KnownChain> {
        KNOWN.iter().find(|c| c.slug == self.0)
    }

    pub fn is_known(&self) -> bool {
        self.known().is_some()
    }

    pub fn display_name(&self) -> String {
        self.known()
            .map_or_else(|| self.0.clone(), |c| c.name.to_owned())
    }

    pub fn family(&self) -> ChainFamily {
        self.known().map_or(ChainFamily::Other, |c| c.family)
    }
}

/// Lower case, separators folded to single spaces.
fn normalize(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Chain {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, FieldError> {
        Chain::parse(&value)
    }
}

impl From<Chain> for String {
    fn from(chain: Chain) -> String {
        chain.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_names_and_ids_meet() {
        for text in [
            "BSC",
            "BNB Chain",
            "bsc",
            "56",
            "Binance Smart Chain",
            " bnb-chain ",
        ] {
            assert_eq!(Chain::parse(text).unwrap().slug(), "bsc", "{text}");
        }
        assert_eq!(Chain::parse("Ethereum").unwrap().slug(), "ethereum");
        assert_eq!(Chain::parse("ETH").unwrap().slug(), "ethereum");
        assert_eq!(
            Chain::parse("Arbitrum One").unwrap().display_name(),
            "Arbitrum"
        );
    }

    #[test]
    fn unknown_chains_are_kept_as_slugs() {
        let chain = Chain::parse("Sei Network").unwrap();
        assert_eq!(chain.slug(), "sei-network");
        assert!(!chain.is_known());
        assert_eq!(chain.family(), ChainFamily::Other);
        assert!(Chain::parse("  ").is_err());
    }

    #[test]
    fn a_chain_name_with_a_control_character_is_refused_not_kept_as_a_slug() {
        for text in ["sei\u{0}", "new\nchain", "\u{1b}[31mred"] {
            let refused = Chain::parse(text).unwrap_err();
            assert_eq!(refused.field, "chain", "{text:?}");
        }
        assert_eq!(
            Chain::parse("  Sei Network\n").unwrap().slug(),
            "sei-network"
        );
    }

    #[test]
    fn a_chain_name_past_its_maximum_is_refused_naming_the_maximum() {
        let refused = Chain::parse(&"x".repeat(MAX_CHAIN_CHARS + 1)).unwrap_err();
        assert!(refused.message.contains("64"), "{refused}");
        assert!(Chain::parse(&"é".repeat(MAX_CHAIN_CHARS)).is_ok());
    }
}
