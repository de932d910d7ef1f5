//! The most one claim may carry, field by field. A claim past any of these is refused,
//! naming the field and the maximum (see [`crate::incident::IncidentDraft::from_input`]).
//!
//! Each value sits well above the largest value found in real published exploit data
//! (DeFiLlama's `/hacks` export, the De.Fi REKT database, rekt.news articles,
//! DeFiHackLabs, DeFi-Hack-Chronicle; the largest is noted beside each constant), so no
//! real record is refused, and low enough that one claim cannot make every later read of
//! its incident slow or large. Lengths are counted in characters (Unicode scalar values)
//! after surrounding whitespace is trimmed, so a name in any script gets the same room.

/// `source`: a feed or file name. Largest seen: `defillama` (9).
pub const MAX_SOURCE_CHARS: usize = 100;

/// `external_id`: the source's own record id. Largest seen: `Penpie-20240903` (15); room
/// for UUIDs (36) and slugs.
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;

/// `source_url`: the longest URL browsers and crawlers commonly handle. Largest seen: a
/// 136-character Google search link in the DeFiLlama export.
pub const MAX_URL_CHARS: usize = 2_048;

/// `protocol`: a display name. Largest seen: `LeadBlock's Morpho Blue Market` (30).
pub const MAX_PROTOCOL_CHARS: usize = 200;

/// `chains`: distinct chains one claim names, its transaction hashes' chains included.
/// Largest seen: 13 (one exchange hack in the DeFiLlama export); a list five times
/// that long is a list gone wrong, not an incident.
pub const MAX_CHAINS_PER_CLAIM: usize = 64;

/// One chain name (in `chains`, or a hash's chain in `tx_hashes`). Largest seen:
/// `Hyperliquid L1` (14).
pub const MAX_CHAIN_CHARS: usize = 64;

/// `tx_hashes`: hashes one claim lists. Largest seen: 10 (Penpie in DeFi-Hack-Chronicle);
/// room for incidents exploited by hundreds of copycat transactions (Nomad, 2022).
pub const MAX_TX_HASHES_PER_CLAIM: usize = 500;

/// One transaction hash as written. Largest real form: a Solana signature (88); EVM
/// hashes are 66.
pub const MAX_TX_HASH_CHARS: usize = 128;

/// `date`. Largest seen: `03/22/2024` (10); an RFC 3339 time with nanoseconds and an
/// offset is 35.
pub const MAX_DATE_CHARS: usize = 64;

/// `loss_usd`, `recovered_usd` as text. Largest seen: `40000000000` (11); the largest
/// amount accepted, written with separators and cents, is 27.
pub const MAX_AMOUNT_CHARS: usize = 64;

/// `attack_type`, `attack_class`, `status`: short labels. Largest seen: `Borrowing and
/// Lending,Exchange (DEX)` (36, a De.Fi REKT category).
pub const MAX_LABEL_CHARS: usize = 100;

/// `technique`: the source's short description of how. Largest seen: 50 in the DeFiLlama
/// export; 1,636 for DeFi-Hack-Chronicle's longer `attackVector` text.
pub const MAX_TECHNIQUE_CHARS: usize = 2_000;

/// `description`. Largest seen: 11,430 (an HTML write-up in the De.Fi REKT database's
/// top 100); a whole rekt.news article is about 6,000.
pub const MAX_DESCRIPTION_CHARS: usize = 32_000;
