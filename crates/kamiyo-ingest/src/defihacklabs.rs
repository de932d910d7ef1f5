//! The DeFiHackLabs README (`SunWeb3Sec/DeFiHackLabs`): one markdown section per
//! incident with a runnable proof of concept,
//!
//! ```text
//! ### 20211221 Visor Finance - Reentrancy
//! #### Lost: $8.2 million          (the live README writes `### Lost:`)
//! forge test --contracts ./src/test/2021-12/Visor_exp.sol -vv
//! [Visor_exp.sol](../../src/test/2021-12/Visor_exp.sol)
//! #### Link reference
//! https://etherscan.io/tx/0x6927...
//! ```
//!
//! Mapping: the heading's date (`YYYYMMDD`, the day of the hack) and name; the text after
//! ` - ` is the technique; the `Lost:` text is kept whole in the description and gives a
//! USD loss only when it states one (`loss_text`); explorer links give the chains and,
//! for `/tx/` links, the transaction hashes; the proof of concept's path is the record's
//! own id (stable across README edits) and its GitHub page the claim's URL.
//!
//! A record's line is its heading's. A body with no incident heading (an HTML page,
//! another file) fails whole, naming what was expected.

use crate::loss_text;
use crate::text::push_unique;
use crate::{Format, IngestError, RawIncident, RawTxHash, Rejection};

/// Where a proof of concept's path is shown to people.
const REPOSITORY: &str = "https://github.com/SunWeb3Sec/DeFiHackLabs/blob/main/";

const EXPECTED: &str =
    "the DeFiHackLabs README: markdown sections headed `### YYYYMMDD Name - Attack type`";

/// Block explorers by host, and the chain each serves.
const EXPLORERS: &[(&str, &str)] = &[
    ("etherscan.io", "ethereum"),
    ("etherscan.com", "ethereum"),
    ("bscscan.com", "bsc"),
    ("polygonscan.com", "polygon"),
    ("ftmscan.com", "fantom"),
    ("snowtrace.io", "avalanche"),
    ("snowscan.xyz", "avalanche"),
    ("arbiscan.io", "arbitrum"),
    ("optimistic.etherscan.io", "optimism"),
    ("basescan.org", "base"),
    ("cronoscan.com", "cronos"),
    ("moonriver.moonscan.io", "moonriver"),
    ("moonscan.io", "moonbeam"),
    ("hecoinfo.com", "heco"),
    ("blastscan.io", "blast"),
    ("lineascan.build", "linea"),
    ("scrollscan.com", "scroll"),
    ("era.zksync.network", "zksync"),
    ("gnosisscan.io", "gnosis"),
    ("celoscan.io", "celo"),
    ("mantlescan.xyz", "mantle"),
    ("solscan.io", "solana"),
];

/// Chain names in explorer paths that serve several chains (`/tx/eth/0x...`).
const PATH_CHAINS: &[(&str, &str)] = &[
    ("eth", "ethereum"),
    ("bsc", "bsc"),
    ("polygon", "polygon"),
    ("arbitrum", "arbitrum"),
    ("optimism", "optimism"),
    ("base", "base"),
    ("avalanche", "avalanche"),
    ("fantom", "fantom"),
];

pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Result<RawIncident, Rejection>>, IngestError> {
    let shape = |found: String| IngestError::Shape {
        format: Format::Defihacklabs,
        expected: EXPECTED,
        found,
    };
    let text =
        std::str::from_utf8(bytes).map_err(|e| shape(format!("bytes that are not UTF-8 ({e})")))?;
    let mut sections: Vec<Section> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if let Some(heading) = incident_heading(line) {
            sections.push(Section {
                line: number,
                heading,
                body: Vec::new(),
            });
        } else if line.starts_with("## ") || line.starts_with("# ") {
            // A new part of the README: the last section ended.
            if let Some(last) = sections.last_mut() {
                last.body.push(SECTION_END);
            }
        } else if let Some(section) = sections.last_mut() {
            if section.body.last() != Some(&SECTION_END) {
                section.body.push(line);
            }
        }
    }
    if sections.is_empty() {
        let start = text.trim_start();
        let found = if start.is_empty() {
            "an empty body".to_owned()
        } else if start.starts_with('<') {
            "HTML or XML, not markdown".to_owned()
        } else {
            "no incident section".to_owned()
        };
        return Err(shape(found));
    }
    Ok(sections.iter().map(Section::to_incident).collect())
}

const SECTION_END: &str = "\u{0}end";

struct Section<'a> {
    line: usize,
    /// The heading after `### `: `20211221 Visor Finance - Reentrancy`.
    heading: &'a str,
    body: Vec<&'a str>,
}

/// `### YYYYMMDD ...` (eight digits first): an incident, not `### Lost:` or `### Link
/// reference`.
fn incident_heading(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("###")?;
    if rest.starts_with('#') {
        return None;
    }
    let rest = rest.trim();
    let digits = rest.get(..8)?;
    (digits.bytes().all(|b| b.is_ascii_digit())
        && rest[8..].chars().next().is_none_or(char::is_whitespace))
    .then_some(rest)
}

impl Section<'_> {
    fn to_incident(&self) -> Result<RawIncident, Rejection> {
        let (digits, title) = self.heading.split_at(8);
        let date = format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..8]);
        if chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_err() {
            return Err(Rejection::field(
                self.line,
                "date",
                format!("{digits:?} in the heading is not a day (YYYYMMDD)"),
            ));
        }
        let title = title.trim();
        let (name, technique) = match title.split_once(" - ") {
            Some((name, technique)) => (name.trim(), Some(technique.trim())),
            None => (title, None),
        };
        if name.is_empty() {
            return Err(Rejection::field(
                self.line,
                "protocol",
                "the heading names no protocol after its date",
            ));
        }
        let lost = self.lost();
        let poc = self.proof_of_concept();
        let mut chains = Vec::new();
        let mut tx_hashes = Vec::new();
        for url in self.body.iter().flat_map(|line| urls(line)) {
            if let Some((chain, hash)) = explorer_link(url) {
                push_unique(&mut chains, chain.to_owned());
                if let Some(hash) = hash {
                    push_unique(
                        &mut tx_hashes,
                        RawTxHash {
                            chain: Some(chain.to_owned()),
                            hash: hash.to_owned(),
                        },
                    );
                }
            }
        }
        Ok(RawIncident {
            line: self.line,
            source: None, // the caller's default, or "defihacklabs"
            source_url: poc.as_ref().map(|path| format!("{REPOSITORY}{path}")),
            external_id: poc,
            protocol: Some(name.to_owned()),
            chains,
            date: Some(date),
            loss_usd: lost.and_then(loss_text::usd_figure),
            technique: technique.filter(|t| !t.is_empty()).map(str::to_owned),
            tx_hashes,
            description: lost.map(|text| format!("Lost: {text}")),
            ..RawIncident::default()
        })
    }

    /// The `Lost:` line's text (`#### Lost: ...` or `### Lost: ...`), when it says
    /// something.
    fn lost(&self) -> Option<&str> {
        self.body.iter().find_map(|line| {
            let line = line.trim_start_matches('#').trim();
            let text = line.strip_prefix("Lost:")?.trim();
            (!text.is_empty()).then_some(text)
        })
    }

    /// The proof of concept's path in the repository (`src/test/2021-12/Visor_exp.sol`),
    /// from the `forge test --contracts` line or the contract link.
    fn proof_of_concept(&self) -> Option<String> {
        self.body.iter().find_map(|line| {
            let at = line.find("src/test/")?;
            let path: String = line[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, ')' | ']' | '"' | '\''))
                .collect();
            path.ends_with(".sol").then_some(path)
        })
    }
}

/// The `http(s)://` URLs in a line (bare, or inside markdown links).
fn urls(line: &str) -> impl Iterator<Item = &str> {
    line.match_indices("http").filter_map(move |(at, _)| {
        let rest = &line[at..];
        if !(rest.starts_with("https://") || rest.starts_with("http://")) {
            return None;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | ']' | '>' | '"' | '\''))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    })
}

/// The chain an explorer link is on and, for a transaction's page, its hash.
fn explorer_link(url: &str) -> Option<(&'static str, Option<&str>)> {
    let rest = url.split_once("://")?.1;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.trim_start_matches("www.").to_ascii_lowercase();
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let tx_at = segments.iter().position(|s| *s == "tx");
    if let Some(&(_, chain)) = EXPLORERS.iter().find(|(h, _)| *h == host) {
        let hash = tx_at.and_then(|i| segments.get(i + 1)).copied();
        return Some((chain, hash));
    }
    // Explorers of many chains name the chain in the path: `/tx/eth/0x...`.
    let i = tx_at?;
    let chain = PATH_CHAINS
        .iter()
        .find(|(name, _)| segments.get(i + 1) == Some(name))?
        .1;
    Some((chain, segments.get(i + 2).copied()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "# DeFi Hacks Reproduce - Foundry\n\n[20211221 Visor Finance](#x)\n\n\
### 20211221 Visor Finance - Reentrancy\n\n#### Lost: $8.2 million\n\nTesting\n\n```sh\n\
forge test --contracts ./src/test/2021-12/Visor_exp.sol -vv\n```\n\n#### Contract\n\n\
[Visor_exp.sol](../../src/test/2021-12/Visor_exp.sol)\n\n#### Link reference\n\n\
https://twitter.com/example/status/1\n\n\
https://etherscan.io/tx/0x69272d8c84d67d1da2f6425b339192fa472898dce936f24818fda415c1c1ff3f\n\n---\n\n\
### 20211214 Nerve Bridge - Swap Metapool Attack\n\n### Lost: 900 BNB\n\n\
https://bscscan.com/address/0x1234\n\n\
### 20210916 SushiSwap Miso\n\n#### Lost: \n\n## Another part\n\nhttps://etherscan.io/tx/0xnot-this-one\n";

    #[test]
    fn sections_map_to_records() {
        let records: Vec<RawIncident> = parse(README.as_bytes())
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(records.len(), 3);
        let visor = &records[0];
        assert_eq!(visor.line, 5);
        assert_eq!(visor.protocol.as_deref(), Some("Visor Finance"));
        assert_eq!(visor.date.as_deref(), Some("2021-12-21"));
        assert_eq!(visor.technique.as_deref(), Some("Reentrancy"));
        assert_eq!(visor.loss_usd.as_deref(), Some("8200000"));
        assert_eq!(visor.description.as_deref(), Some("Lost: $8.2 million"));
        assert_eq!(visor.chains, ["ethereum"]);
        assert_eq!(
            visor.tx_hashes,
            [RawTxHash {
                chain: Some("ethereum".into()),
                hash: "0x69272d8c84d67d1da2f6425b339192fa472898dce936f24818fda415c1c1ff3f".into()
            }]
        );
        assert_eq!(
            visor.external_id.as_deref(),
            Some("src/test/2021-12/Visor_exp.sol")
        );
        assert_eq!(
            visor.source_url.as_deref(),
            Some("https://github.com/SunWeb3Sec/DeFiHackLabs/blob/main/src/test/2021-12/Visor_exp.sol")
        );
        let nerve = &records[1];
        assert_eq!(nerve.loss_usd, None, "900 BNB states no USD figure");
        assert_eq!(nerve.description.as_deref(), Some("Lost: 900 BNB"));
        assert_eq!(nerve.chains, ["bsc"], "an address link gives the chain");
        assert!(nerve.tx_hashes.is_empty());
        let miso = &records[2];
        assert_eq!(miso.technique, None);
        assert_eq!(
            (miso.loss_usd.as_ref(), miso.description.as_ref()),
            (None, None)
        );
        assert!(
            miso.tx_hashes.is_empty(),
            "links after the section's end are not its own"
        );
    }

    #[test]
    fn a_heading_with_an_impossible_day_is_rejected_by_name() {
        let rejection = parse(b"### 20211341 Oddfi - Typo\n")
            .unwrap()
            .remove(0)
            .unwrap_err();
        assert_eq!(
            (rejection.line, rejection.field.as_deref()),
            (1, Some("date"))
        );
    }

    #[test]
    fn a_body_without_incident_sections_fails_whole() {
        for (body, says) in [
            (&b"<html><body>rate limited</body></html>"[..], "HTML"),
            (b"", "empty body"),
            (
                b"# Some other README\n\n### Lost: $5\n",
                "no incident section",
            ),
        ] {
            let err = parse(body).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
            assert!(err.contains("### YYYYMMDD Name - Attack type"), "{err}");
        }
    }

    #[test]
    fn explorer_links_give_chain_and_hash() {
        assert_eq!(
            explorer_link("https://app.blocksec.com/explorer/tx/eth/0xabc"),
            Some(("ethereum", Some("0xabc")))
        );
        assert_eq!(
            explorer_link("https://bscscan.com/tx/0xdef?x=1"),
            Some(("bsc", Some("0xdef")))
        );
        assert_eq!(explorer_link("https://rekt.news/x-rekt/"), None);
    }
}
