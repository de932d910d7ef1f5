//! A loss written as free text (`~$118.7K`, `$.8 million`, `11 Million $`, `900 BNB`,
//! `178 BNB (~45,715 US$)`, `158.28 WETH and 535,706 USDT`): the USD figure in it, only
//! when the text gives one.
//!
//! The rule, so that a loss is never guessed:
//! - an amount marked as dollars (`$` before or after it, `US$`, `USD`) is a USD figure,
//!   and the first one wins (`153,037 ETH (~$30M)` is $30M: the text's own conversion);
//! - without one, amounts of USD stablecoins (`USDT`, `USDC`, `DAI`, ...) are a USD
//!   figure (added up) unless the text also names an amount of another token, which
//!   would make them only a part of the loss;
//! - anything else (a token amount alone, a bare `11M` with no currency, `All funds
//!   returned`) is an unknown loss. The text itself stays in the claim.
//!
//! `$ETH` is a ticker, not dollars. A comma followed by one or two digits and then no
//! digit is a decimal comma (`~6,5M`); otherwise commas group thousands.

use rust_decimal::Decimal;

/// Stablecoins pegged to the US dollar, as tickers are written in loss texts.
const USD_STABLECOINS: &[&str] = &[
    "usdt", "usdc", "dai", "busd", "tusd", "usdp", "frax", "lusd", "usde", "usdd", "gusd", "susd",
    "musd", "usdc.e", "fdusd", "pyusd", "crvusd", "mim", "ust", "usdb", "usd+",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Dollars,
    Stablecoin,
    Token,
    /// A number with no currency: `11M`, `28.25%`.
    Bare,
}

/// The USD figure of `text`, as decimal text (`8200000`, `118700.0`), or `None`.
pub(crate) fn usd_figure(text: &str) -> Option<String> {
    let amounts = amounts(text);
    if let Some((value, _)) = amounts.iter().find(|(_, unit)| *unit == Unit::Dollars) {
        return Some(value.normalize().to_string());
    }
    let token = amounts.iter().any(|(_, unit)| *unit == Unit::Token);
    let stable: Vec<Decimal> = amounts
        .iter()
        .filter(|(_, unit)| *unit == Unit::Stablecoin)
        .map(|(value, _)| *value)
        .collect();
    if token || stable.is_empty() {
        return None;
    }
    stable
        .into_iter()
        .try_fold(Decimal::ZERO, |sum, value| sum.checked_add(value))
        .map(|sum| sum.normalize().to_string())
}

/// Every amount in `text` with the unit around it.
fn amounts(text: &str) -> Vec<(Decimal, Unit)> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_number = chars[i].is_ascii_digit()
            || (chars[i] == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        // A digit inside a word (`0x12`, `V2`) is not an amount.
        let inside_word = i > 0 && chars[i - 1].is_alphanumeric();
        if !starts_number || inside_word {
            i += 1;
            continue;
        }
        let (number, end) = number_at(&chars, i);
        let (multiplier, end) = suffix_at(&chars, end);
        let before = preceding(&chars, i);
        let (after, end) = following(&chars, end);
        i = end.max(i + 1);
        let Some(value) = number.and_then(|n| n.checked_mul(multiplier)) else {
            continue;
        };
        let unit = match (before, after) {
            (_, After::Percent) => Unit::Bare,
            (Before::Dollars, After::Ticker(_)) => Unit::Dollars,
            (Before::Dollars, _) | (_, After::Dollars) => Unit::Dollars,
            (_, After::Ticker(ticker)) if USD_STABLECOINS.contains(&ticker.as_str()) => {
                Unit::Stablecoin
            }
            (_, After::Ticker(_)) => Unit::Token,
            _ => Unit::Bare,
        };
        found.push((value, unit));
    }
    found
}

/// The number starting at `start`: digits with `,` and `.`; returns the value (if it
/// reads as one) and where it ends.
fn number_at(chars: &[char], start: usize) -> (Option<Decimal>, usize) {
    let mut end = start;
    while end < chars.len()
        && (chars[end].is_ascii_digit()
            || ((chars[end] == ',' || chars[end] == '.')
                && chars.get(end + 1).is_some_and(char::is_ascii_digit)))
    {
        end += 1;
    }
    let written: String = chars[start..end].iter().collect();
    (read_number(&written), end)
}

fn read_number(written: &str) -> Option<Decimal> {
    let decimal_comma = !written.contains('.')
        && written
            .rsplit_once(',')
            .is_some_and(|(_, tail)| (1..=2).contains(&tail.len()));
    let plain: String = if decimal_comma {
        written.replace(',', ".")
    } else {
        written.replace(',', "")
    };
    let plain = if plain.starts_with('.') {
        format!("0{plain}")
    } else {
        plain
    };
    plain.parse::<Decimal>().ok()
}

/// A magnitude word or letter right after the number (`K`, `M`, `B`, `million`, ...).
fn suffix_at(chars: &[char], start: usize) -> (Decimal, usize) {
    let mut at = start;
    while at < chars.len() && chars[at] == ' ' {
        at += 1;
    }
    let word_end = (at..chars.len())
        .find(|&j| !chars[j].is_ascii_alphabetic())
        .unwrap_or(chars.len());
    let word: String = chars[at..word_end]
        .iter()
        .collect::<String>()
        .to_ascii_lowercase();
    let multiplier = match word.as_str() {
        "k" | "thousand" => 1_000u64,
        "m" | "mn" | "mm" | "million" | "millions" => 1_000_000,
        "b" | "bn" | "billion" | "billions" => 1_000_000_000,
        _ => return (Decimal::ONE, start),
    };
    (Decimal::from(multiplier), word_end)
}

#[derive(Debug, PartialEq)]
enum Before {
    Dollars,
    Other,
}

/// Whether the amount is written after a dollar mark (`$`, `US$`, `USD `), skipping
/// `~`, `≈` and spaces.
fn preceding(chars: &[char], start: usize) -> Before {
    let mut at = start;
    while at > 0 && matches!(chars[at - 1], '~' | '≈' | ' ' | '>' | '<' | '+') {
        at -= 1;
    }
    let before: String = chars[at.saturating_sub(4)..at]
        .iter()
        .collect::<String>()
        .to_ascii_lowercase();
    if before.ends_with('$') || before.ends_with("usd") {
        Before::Dollars
    } else {
        Before::Other
    }
}

#[derive(Debug, PartialEq)]
enum After {
    Dollars,
    Percent,
    /// A token's ticker, lower-cased (`bnb`, `usdt`; `$eth` without the `$`).
    Ticker(String),
    Nothing,
}

fn following(chars: &[char], start: usize) -> (After, usize) {
    let mut at = start;
    while at < chars.len() && chars[at] == ' ' {
        at += 1;
    }
    match chars.get(at) {
        Some('%') => return (After::Percent, at + 1),
        Some('$') if !chars.get(at + 1).is_some_and(|c| c.is_ascii_alphabetic()) => {
            return (After::Dollars, at + 1)
        }
        _ => {}
    }
    let ticker_start = if chars.get(at) == Some(&'$') {
        at + 1
    } else {
        at
    };
    let end = (ticker_start..chars.len())
        .find(|&j| !(chars[j].is_ascii_alphanumeric() || matches!(chars[j], '.' | '+')))
        .unwrap_or(chars.len());
    let word: String = chars[ticker_start..end]
        .iter()
        .collect::<String>()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    match word.as_str() {
        "" => (After::Nothing, start),
        "usd" | "us" | "dollars" | "dollar" => {
            // `US$`
            let end = if word == "us" && chars.get(end) == Some(&'$') {
                end + 1
            } else if word == "us" {
                return (After::Nothing, start);
            } else {
                end
            };
            (After::Dollars, end)
        }
        // Words that follow an amount without naming what it is.
        "in" | "of" | "and" | "from" | "worth" | "drained" | "stolen" | "lost" | "reported"
        | "total" | "approx" | "approximately" | "was" | "were" | "to" | "at" => {
            (After::Nothing, start)
        }
        _ => (After::Ticker(word), end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_marked_as_dollars_is_taken() {
        for (text, usd) in [
            ("$8.2 million", "8200000"),
            ("~$118.7K", "118700"),
            ("$.8 million", "800000"),
            ("11 Million $", "11000000"),
            ("20M USD", "20000000"),
            ("$25,000,000", "25000000"),
            ("$30.5M", "30500000"),
            ("178 BNB (~45,715 US$)", "45715"),
            ("153,037 ETH (~$30M)", "30000000"),
            ("~$6,5M", "6500000"),
            ("USD 1.2 billion", "1200000000"),
            ("~112,976.12 USDC (~$118.7K reported)", "118700"),
        ] {
            assert_eq!(usd_figure(text).as_deref(), Some(usd), "{text}");
        }
    }

    #[test]
    fn stablecoin_amounts_count_unless_another_token_is_lost_too() {
        assert_eq!(usd_figure("~29,984.27 USDC").as_deref(), Some("29984.27"));
        assert_eq!(
            usd_figure("1,000 USDT and 500 DAI").as_deref(),
            Some("1500")
        );
        assert_eq!(usd_figure("158.28 WETH and 535,706 USDT"), None);
    }

    #[test]
    fn a_loss_without_a_usd_figure_is_unknown() {
        for text in [
            "900 BNB",
            "155 $ETH",
            "~6,5M",
            "11M",
            "140M",
            "365K",
            "All funds returned",
            "",
            "~0.5453 WETH drained (28.25% of reward pool reserve); attacker net profit ~0.4285 ETH",
            "514k ETH",
        ] {
            assert_eq!(usd_figure(text), None, "{text}");
        }
    }
}
