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

const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A Solana signature's form: base58, 64 to 88 characters.
pub(crate) fn is_base58_signature(text: &str) -> bool {
    (64..=88).contains(&text.len()) && text.chars().all(|c| BASE58.contains(c))
}

impl ChainFamily {
    /// The family whose format `text` has, when it has one of the three strict ones: a
    /// hash given without a chain is matched within that family.
    pub fn of_hash(text: &str) -> Option<ChainFamily> {
        let text = text.trim();
        let is_hex64 = |t: &str| t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit());
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            return is_hex64(hex).then_some(ChainFamily::Evm);
        }
        if is_hex64(text) {
            Some(ChainFamily::Hex64)
        } else if is_base58_signature(text) {
            Some(ChainFamily::Solana)
        } else {
            None
        }
    }

    /// Whether a hash in `text`'s format can be on a chain of this family (`Other`
    /// takes any format).
    pub fn fits(self, text: &str) -> bool {
        self == ChainFamily::Other || ChainFamily::of_hash(text) == Some(self)
    }
}

/// The slug of the chain a record without one is stored under (`chain=unknown` filters
/// it): the record is kept, and merges by name and date with any chain.
pub const UNKNOWN_CHAIN: &str = "unknown";

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
        slug: "sonic",
        name: "Sonic",
        family: ChainFamily::Evm,
        aliases: &["146", "sonic mainnet"],
    },
    KnownChain {
        slug: "pulsechain",
        name: "PulseChain",
        family: ChainFamily::Evm,
        aliases: &["pulse", "pls", "369"],
    },
    KnownChain {
        slug: "berachain",
        name: "Berachain",
        family: ChainFamily::Evm,
        aliases: &["bera", "80094"],
    },
    KnownChain {
        slug: "opbnb",
        name: "opBNB",
        family: ChainFamily::Evm,
        aliases: &["204"],
    },
    KnownChain {
        slug: "polygon-zkevm",
        name: "Polygon zkEVM",
        family: ChainFamily::Evm,
        aliases: &["polygon zk evm", "1101"],
    },
    KnownChain {
        slug: "zora",
        name: "Zora",
        family: ChainFamily::Evm,
        aliases: &["7777777"],
    },
    KnownChain {
        slug: "mode",
        name: "Mode",
        family: ChainFamily::Evm,
        aliases: &["34443"],
    },
    KnownChain {
        slug: "core",
        name: "Core",
        family: ChainFamily::Evm,
        aliases: &["core dao", "coredao", "1116"],
    },
    KnownChain {
        slug: "kaia",
        name: "Kaia",
        family: ChainFamily::Evm,
        aliases: &["klaytn", "klay", "8217"],
    },
    KnownChain {
        slug: "aurora",
        name: "Aurora",
        family: ChainFamily::Evm,
        aliases: &["1313161554"],
    },
    KnownChain {
        slug: "boba",
        name: "Boba",
        family: ChainFamily::Evm,
        aliases: &["boba network", "288"],
    },
    KnownChain {
        slug: "astar",
        name: "Astar",
        family: ChainFamily::Evm,
        aliases: &["592"],
    },
    KnownChain {
        slug: "iotex",
        name: "IoTeX",
        family: ChainFamily::Evm,
        aliases: &["4689"],
    },
    KnownChain {
        slug: "fuse",
        name: "Fuse",
        family: ChainFamily::Evm,
        aliases: &["122"],
    },
    KnownChain {
        slug: "telos",
        name: "Telos",
        family: ChainFamily::Evm,
        aliases: &["telos evm", "40"],
    },
    KnownChain {
        slug: "manta",
        name: "Manta Pacific",
        family: ChainFamily::Evm,
        aliases: &["manta", "169"],
    },
    KnownChain {
        slug: "taiko",
        name: "Taiko",
        family: ChainFamily::Evm,
        aliases: &["167000"],
    },
    KnownChain {
        slug: "abstract",
        name: "Abstract",
        family: ChainFamily::Evm,
        aliases: &["2741"],
    },
    KnownChain {
        slug: "unichain",
        name: "Unichain",
        family: ChainFamily::Evm,
        aliases: &["130"],
    },
    KnownChain {
        slug: "merlin",
        name: "Merlin",
        family: ChainFamily::Evm,
        aliases: &["merlin chain", "4200"],
    },
    KnownChain {
        slug: "bob",
        name: "BOB",
        family: ChainFamily::Evm,
        aliases: &["60808"],
    },
    KnownChain {
        slug: "ink",
        name: "Ink",
        family: ChainFamily::Evm,
        aliases: &["57073"],
    },
    KnownChain {
        slug: "apechain",
        name: "ApeChain",
        family: ChainFamily::Evm,
        aliases: &["33139"],
    },
    KnownChain {
        slug: "hyperevm",
        name: "HyperEVM",
        family: ChainFamily::Evm,
        aliases: &["hyperliquid evm", "999"],
    },
    KnownChain {
        slug: "okexchain",
        name: "OKTC",
        family: ChainFamily::Evm,
        aliases: &["oktc", "okc", "okx chain", "66"],
    },
    KnownChain {
        slug: "conflux",
        name: "Conflux eSpace",
        family: ChainFamily::Evm,
        aliases: &["conflux espace", "1030"],
    },
    KnownChain {
        slug: "flare",
        name: "Flare",
        family: ChainFamily::Evm,
        aliases: &["14"],
    },
    KnownChain {
        slug: "rootstock",
        name: "Rootstock",
        family: ChainFamily::Evm,
        aliases: &["rsk", "30"],
    },
    KnownChain {
        slug: "shibarium",
        name: "Shibarium",
        family: ChainFamily::Evm,
        aliases: &["109"],
    },
    KnownChain {
        slug: "xlayer",
        name: "X Layer",
        family: ChainFamily::Evm,
        aliases: &["x layer", "196"],
    },
    KnownChain {
        slug: "bitlayer",
        name: "Bitlayer",
        family: ChainFamily::Evm,
        aliases: &["200901"],
    },
    KnownChain {
        slug: "evmos",
        name: "Evmos",
        family: ChainFamily::Evm,
        aliases: &["9001"],
    },
    KnownChain {
        slug: "canto",
        name: "Canto",
        family: ChainFamily::Evm,
        aliases: &["7700"],
    },
    KnownChain {
        slug: "fraxtal",
        name: "Fraxtal",
        family: ChainFamily::Evm,
        aliases: &["252"],
    },
    KnownChain {
        slug: "sei-evm",
        name: "Sei EVM",
        family: ChainFamily::Evm,
        aliases: &["1329"],
    },
    KnownChain {
        slug: "arbitrum-nova",
        name: "Arbitrum Nova",
        family: ChainFamily::Evm,
        aliases: &["42170"],
    },
    KnownChain {
        slug: "polygon-zkevm-cardona",
        name: "Polygon zkEVM Cardona",
        family: ChainFamily::Evm,
        aliases: &["2442"],
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
    KnownChain {
        slug: "sui",
        name: "Sui",
        family: ChainFamily::Other,
        aliases: &[],
    },
    KnownChain {
        slug: "aptos",
        name: "Aptos",
        family: ChainFamily::Other,
        aliases: &[],
    },
    KnownChain {
        slug: "near",
        name: "NEAR",
        family: ChainFamily::Other,
        aliases: &["near protocol"],
    },
    KnownChain {
        slug: "starknet",
        name: "Starknet",
        family: ChainFamily::Other,
        aliases: &[],
    },
    KnownChain {
        slug: "ton",
        name: "TON",
        family: ChainFamily::Other,
        aliases: &["the open network"],
    },
    KnownChain {
        slug: "polkadot",
        name: "Polkadot",
        family: ChainFamily::Other,
        aliases: &["dot"],
    },
    KnownChain {
        slug: "cardano",
        name: "Cardano",
        family: ChainFamily::Other,
        aliases: &["ada"],
    },
    KnownChain {
        slug: "algorand",
        name: "Algorand",
        family: ChainFamily::Other,
        aliases: &["algo"],
    },
    KnownChain {
        slug: "stellar",
        name: "Stellar",
        family: ChainFamily::Other,
        aliases: &["xlm"],
    },
    KnownChain {
        slug: "hedera",
        name: "Hedera",
        family: ChainFamily::Other,
        aliases: &["hbar"],
    },
    KnownChain {
        slug: "eos",
        name: "EOS",
        family: ChainFamily::Other,
        aliases: &[],
    },
    KnownChain {
        slug: "waves",
        name: "Waves",
        family: ChainFamily::Other,
        aliases: &[],
    },
    KnownChain {
        slug: "elrond",
        name: "MultiversX",
        family: ChainFamily::Other,
        aliases: &["multiversx", "egld"],
    },
    KnownChain {
        slug: "terra",
        name: "Terra",
        family: ChainFamily::Hex64,
        aliases: &["terra classic", "luna"],
    },
    KnownChain {
        slug: "osmosis",
        name: "Osmosis",
        family: ChainFamily::Hex64,
        aliases: &["osmo"],
    },
    KnownChain {
        slug: "injective",
        name: "Injective",
        family: ChainFamily::Hex64,
        aliases: &["inj"],
    },
    KnownChain {
        slug: "thorchain",
        name: "THORChain",
        family: ChainFamily::Hex64,
        aliases: &["rune"],
    },
    KnownChain {
        slug: "sei",
        name: "Sei",
        family: ChainFamily::Hex64,
        aliases: &["sei network"],
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

    /// Every chain of the table in `family`.
    pub fn known_in(family: ChainFamily) -> impl Iterator<Item = Chain> {
        KNOWN
            .iter()
            .filter(move |c| c.family == family)
            .map(|c| Chain(c.slug.to_owned()))
    }

    /// The chain of a record that names none ([`UNKNOWN_CHAIN`]).
    pub fn unknown() -> Chain {
        Chain(UNKNOWN_CHAIN.to_owned())
    }

    pub fn is_unknown(&self) -> bool {
        self.0 == UNKNOWN_CHAIN
    }

    /// Whether a claim on `self` and one on `other` can be of one incident: the same
    /// chain, or either unknown.
    pub fn overlaps(&self, other: &Chain) -> bool {
        self == other || self.is_unknown() || other.is_unknown()
    }

    fn known(&self) -> Option<&'static KnownChain> {
        KNOWN.iter().find(|c| c.slug == self.0)
    }

    pub fn is_known(&self) -> bool {
        self.known().is_some()
    }

    pub fn display_name(&self) -> String {
        if self.is_unknown() {
            return "Unknown chain".to_owned();
        }
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
        let chain = Chain::parse("Examplechain Network").unwrap();
        assert_eq!(chain.slug(), "examplechain-network");
        assert!(!chain.is_known());
        assert_eq!(chain.family(), ChainFamily::Other);
        assert!(Chain::parse("  ").is_err());
    }

    #[test]
    fn a_chain_name_with_a_control_character_is_refused_not_kept_as_a_slug() {
        for text in ["xmpl\u{0}", "new\nchain", "\u{1b}[31mred"] {
            let refused = Chain::parse(text).unwrap_err();
            assert_eq!(refused.field, "chain", "{text:?}");
        }
        assert_eq!(
            Chain::parse("  Examplechain Network\n").unwrap().slug(),
            "examplechain-network"
        );
    }

    #[test]
    fn a_chain_name_past_its_maximum_is_refused_naming_the_maximum() {
        let refused = Chain::parse(&"x".repeat(MAX_CHAIN_CHARS + 1)).unwrap_err();
        assert!(refused.message.contains("64"), "{refused}");
        assert!(Chain::parse(&"é".repeat(MAX_CHAIN_CHARS)).is_ok());
    }
}
