//! Text rules shared by every format: values made single-line and bounded, limits
//! measured and met without splitting a character, money written for people.

use rust_decimal::{Decimal, RoundingStrategy};

/// The most characters one value taken from an incident (a protocol name, a chain list, a
/// changed field) keeps. Source data is scraped, so a name can be arbitrarily long; this
/// keeps every line far below the smallest platform limit, so limits cut whole lines and
/// never a value in the middle of an escape.
pub const MAX_VALUE_CHARS: usize = 200;

const ELLIPSIS: char = '…';

/// Length as the platforms count it. Discord and Telegram count UTF-16 code units (their
/// clients are JavaScript and entity offsets are UTF-16); counting units everywhere is
/// never less than counting characters, so it is safe for Slack too.
pub(crate) fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `s` cut to at most `limit` UTF-16 units at a character boundary, ending in `…` when
/// anything was cut.
pub(crate) fn truncate(s: &str, limit: usize) -> String {
    if units(s) <= limit {
        return s.to_owned();
    }
    let room = limit.saturating_sub(ELLIPSIS.len_utf16());
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() > room {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    if limit >= ELLIPSIS.len_utf16() {
        out.push(ELLIPSIS);
    }
    out
}

/// Escapes `s` with `escape` and cuts the result to `limit` units without splitting an
/// escape sequence (a cut `&amp;` would make Telegram reject the whole message).
pub(crate) fn escape_within(s: &str, limit: usize, escape: fn(char, &mut String)) -> String {
    let mut whole = String::new();
    for c in s.chars() {
        escape(c, &mut whole);
    }
    if units(&whole) <= limit {
        return whole;
    }
    let room = limit.saturating_sub(ELLIPSIS.len_utf16());
    let mut out = String::new();
    let mut piece = String::new();
    for c in s.chars() {
        piece.clear();
        escape(c, &mut piece);
        if units(&out) + units(&piece) > room {
            break;
        }
        out.push_str(&piece);
    }
    if limit >= ELLIPSIS.len_utf16() {
        out.push(ELLIPSIS);
    }
    out
}

/// Whether `c` must not reach a one-line value: control characters (newlines above all,
/// which would let a name forge extra lines), Unicode line separators, and the
/// bidirectional overrides that make text display in another order than it reads.
fn breaks_a_line(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A value from incident data made fit for one line: line breaks and other control
/// characters become spaces, runs of whitespace one space, and at most
/// [`MAX_VALUE_CHARS`] are kept.
pub fn one_line(s: &str) -> String {
    let spaced: String = s
        .chars()
        .map(|c| if breaks_a_line(c) { ' ' } else { c })
        .collect();
    let joined = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&joined, MAX_VALUE_CHARS)
}

/// Joins `lines` with newlines, stopping at the last whole line that fits in `limit`
/// units and marking the cut with a final `…` line. A first line longer than the limit
/// is itself truncated, so the result always fits.
pub(crate) fn pack_lines(lines: &[String], limit: usize) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let separator = usize::from(!out.is_empty());
        if units(&out) + separator + units(line) <= limit {
            if separator == 1 {
                out.push('\n');
            }
            out.push_str(line);
            continue;
        }
        if i == 0 {
            return truncate(line, limit);
        }
        // Drop lines from the end until the marker fits.
        let marker = "\n…";
        while units(&out) + units(marker) > limit {
            match out.rfind('\n') {
                Some(at) => out.truncate(at),
                None => return truncate(&out, limit),
            }
        }
        out.push_str(marker);
        break;
    }
    out
}

/// Money for people: `$1.44B`, `$12.5M`, `$830K`, `$950`; three significant digits from a
/// thousand up, whole dollars below; `unknown` when no amount is known.
pub fn format_usd(amount: Option<Decimal>) -> String {
    let Some(amount) = amount else {
        return "unknown".to_owned();
    };
    let sign = if amount.is_sign_negative() && !amount.is_zero() {
        "-"
    } else {
        ""
    };
    let amount = amount.abs();
    const UNITS: [(i64, &str); 4] = [
        (1_000_000_000_000, "T"),
        (1_000_000_000, "B"),
        (1_000_000, "M"),
        (1_000, "K"),
    ];
    // Rounding can carry into the next unit (999,999 is "$1M", not "$1000K"), so the unit
    // is chosen from the rounded value: largest first, the first whose rounding is ≥ 1.
    for (scale, suffix) in UNITS {
        let scaled = amount / Decimal::from(scale);
        let rounded = round_3_significant(scaled);
        if rounded >= Decimal::ONE {
            if rounded >= Decimal::from(1000) && suffix != "T" {
                continue;
            }
            return format!("{sign}${}{suffix}", rounded.normalize());
        }
    }
    let dollars = amount.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    format!("{sign}${}", dollars.normalize())
}

fn round_3_significant(value: Decimal) -> Decimal {
    let decimals = if value >= Decimal::from(100) {
        0
    } else if value >= Decimal::TEN {
        1
    } else if value >= Decimal::ONE {
        2
    } else {
        3
    };
    value.round_dp_with_strategy(decimals, RoundingStrategy::MidpointAwayFromZero)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn usd(text: &str) -> String {
        format_usd(Some(Decimal::from_str(text).unwrap()))
    }

    #[test]
    fn money_reads_as_people_write_it() {
        let cases = [
            ("1440000000", "$1.44B"),
            ("1439999999", "$1.44B"),
            ("12500000", "$12.5M"),
            ("830000", "$830K"),
            ("830499.99", "$830K"),
            ("950", "$950"),
            ("950.49", "$950"),
            ("0", "$0"),
            ("1000", "$1K"),
            ("1000000", "$1M"),
            ("999999", "$1M"),
            ("999.6", "$1K"),
            ("999.4", "$999"),
            ("999499", "$999K"),
            ("999500000", "$1B"),
            ("123456789", "$123M"),
            ("25000000000000", "$25T"),
            ("1234567000000000", "$1235T"),
            ("-2500", "-$2.5K"),
        ];
        for (amount, expected) in cases {
            assert_eq!(usd(amount), expected, "{amount}");
        }
        assert_eq!(format_usd(None), "unknown");
    }

    #[test]
    fn one_line_removes_line_breaks_controls_and_bidi_overrides() {
        assert_eq!(one_line("Evil\nLoss: $0\r\n\tok"), "Evil Loss: $0 ok");
        assert_eq!(one_line("a\u{2028}b\u{202e}c\u{0}d"), "a b c d");
        assert_eq!(one_line("   spaced    out  "), "spaced out");
    }

    #[test]
    fn one_line_bounds_a_value() {
        let long = "é".repeat(1000);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), MAX_VALUE_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn truncation_respects_character_boundaries_and_utf16_units() {
        // "😀" is one char but two UTF-16 units; 3 units leave room for the ellipsis only.
        assert_eq!(truncate("😀😀😀", 3), "😀…");
        assert_eq!(truncate("😀😀", 4), "😀😀");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 0), "");
        for limit in 0..12 {
            let cut = truncate("añ😀b€😀c", limit);
            assert!(units(&cut) <= limit, "{limit}: {cut}");
        }
    }

    #[test]
    fn escaping_within_a_limit_never_splits_an_escape() {
        fn html(c: char, out: &mut String) {
            match c {
                '&' => out.push_str("&amp;"),
                _ => out.push(c),
            }
        }
        assert_eq!(escape_within("a&b", 20, html), "a&amp;b");
        assert_eq!(escape_within("a&b&c", 8, html), "a&amp;b…");
        assert_eq!(escape_within("a&b&c", 7, html), "a&amp;…");
        assert_eq!(escape_within("a&b&c", 6, html), "a…");
    }

    #[test]
    fn packing_keeps_whole_lines_and_marks_the_cut() {
        let lines: Vec<String> = ["first", "second", "third"].map(String::from).into();
        assert_eq!(pack_lines(&lines, 100), "first\nsecond\nthird");
        assert_eq!(pack_lines(&lines, 14), "first\nsecond\n…");
        assert_eq!(pack_lines(&lines, 13), "first\n…");
        assert_eq!(pack_lines(&lines, 3), "fi…");
        for limit in 0..25 {
            assert!(units(&pack_lines(&lines, limit)) <= limit, "{limit}");
        }
    }
}
