//! Where a transaction can be looked at: each chain's public block explorer. A chain not
//! listed here shows its hash without a link.

/// The explorer's address of transaction `hash` on the chain `slug`.
pub fn tx_url(slug: &str, hash: &str) -> Option<String> {
    let base = match slug {
        "ethereum" => "https://etherscan.io/tx/",
        "bsc" => "https://bscscan.com/tx/",
        "polygon" => "https://polygonscan.com/tx/",
        "arbitrum" => "https://arbiscan.io/tx/",
        "optimism" => "https://optimistic.etherscan.io/tx/",
        "avalanche" => "https://snowtrace.io/tx/",
        "fantom" => "https://ftmscan.com/tx/",
        "base" => "https://basescan.org/tx/",
        "gnosis" => "https://gnosisscan.io/tx/",
        "cronos" => "https://cronoscan.com/tx/",
        "moonbeam" => "https://moonscan.io/tx/",
        "moonriver" => "https://moonriver.moonscan.io/tx/",
        "celo" => "https://celoscan.io/tx/",
        "linea" => "https://lineascan.build/tx/",
        "blast" => "https://blastscan.io/tx/",
        "scroll" => "https://scrollscan.com/tx/",
        "zksync" => "https://explorer.zksync.io/tx/",
        "mantle" => "https://mantlescan.xyz/tx/",
        "sonic" => "https://sonicscan.org/tx/",
        "solana" => "https://solscan.io/tx/",
        "tron" => "https://tronscan.org/#/transaction/",
        "near" => "https://nearblocks.io/txns/",
        "aptos" => "https://explorer.aptoslabs.com/txn/",
        "sui" => "https://suiscan.xyz/mainnet/tx/",
        "bitcoin" => "https://mempool.space/tx/",
        "ronin" => "https://app.roninchain.com/tx/",
        "berachain" => "https://berascan.com/tx/",
        "pulsechain" => "https://scan.pulsechain.com/tx/",
        "harmony" => "https://explorer.harmony.one/tx/",
        "metis" => "https://andromeda-explorer.metis.io/tx/",
        "starknet" => "https://voyager.online/tx/",
        "ton" => "https://tonviewer.com/transaction/",
        _ => return None,
    };
    // A hash is hex or base58 on every chain listed: anything else is not linked, so a
    // crafted "hash" cannot turn into another address.
    (!hash.is_empty() && hash.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| format!("{base}{hash}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_chains_link_and_odd_hashes_do_not() {
        assert_eq!(
            tx_url("ethereum", "0xabc123").as_deref(),
            Some("https://etherscan.io/tx/0xabc123")
        );
        assert!(tx_url("solana", "5VERv8NMvzbJMEkV8xnrLkEaWRt").is_some());
        assert!(tx_url("ethereum", "0xabc/../../evil").is_none());
        assert!(tx_url("unknown", "0xabc").is_none());
    }
}
