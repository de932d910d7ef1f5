//! Numbers and times as people read them: `$1.44B`, `2024-03-01`; the exact value goes
//! in a `title` (shown on hover) and in the CSV export.

use chrono::{DateTime, Utc};
use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// `$1.44B`, `$12.3M`, `$450K`, `$999`: three significant digits at most.
pub fn usd_short(value: Decimal) -> String {
    let amount = value.to_f64().unwrap_or(0.0);
    let magnitude = amount.abs();
    let (scaled, suffix) = if magnitude >= 1e12 {
        (amount / 1e12, "T")
    } else if magnitude >= 1e9 {
        (amount / 1e9, "B")
    } else if magnitude >= 1e6 {
        (amount / 1e6, "M")
    } else if magnitude >= 1e3 {
        (amount / 1e3, "K")
    } else {
        return format!("${}", amount.round());
    };
    let digits = if scaled.abs() >= 100.0 {
        0
    } else if scaled.abs() >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{scaled:.digits$}");
    // `1.50` reads better as `1.5`, `2.00` as `2`.
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("${text}{suffix}")
}

/// `$1,440,000,000.00`: every digit, with thousands separators.
pub fn usd_exact(value: Decimal) -> String {
    let text = format!("{:.2}", value.round_dp(2));
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (whole, cents) = digits.split_once('.').unwrap_or((digits, "00"));
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}${grouped}.{cents}")
}

/// An amount for a table cell: short, exact on hover; `unknown` when absent.
pub fn usd(value: Option<Decimal>) -> Markup {
    match value {
        Some(v) => html! { span title=(usd_exact(v)) { (usd_short(v)) } },
        None => html! { span.muted { "unknown" } },
    }
}

/// Decimal text from the store (`"123.45"`), as a number; zero when it is not one.
pub fn decimal(text: &str) -> Decimal {
    text.parse().unwrap_or_default()
}

/// `2024-03-01`.
pub fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// `2024-03-01 14:05 UTC`, exact to the second on hover.
pub fn instant(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) title=(at.format("%Y-%m-%d %H:%M:%S UTC").to_string()) {
            (at.format("%Y-%m-%d %H:%M UTC").to_string())
        }
    }
}

/// An RFC 3339 text from the store, as [`instant`]; `never` when absent.
pub fn instant_text(text: Option<&str>) -> Markup {
    match text.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
        Some(at) => instant(at.with_timezone(&Utc)),
        None => match text {
            Some(raw) => html! { (raw) },
            None => html! { span.muted { "never" } },
        },
    }
}

/// `24 hours`, `7 days`, `90 seconds`: a tier's delay or history, for the notice that
/// says what is hidden.
pub fn span(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs >= 86_400 && secs.is_multiple_of(86_400) {
        plural(secs / 86_400, "day")
    } else if secs >= 3600 && secs.is_multiple_of(3600) {
        plural(secs / 3600, "hour")
    } else if secs >= 60 && secs.is_multiple_of(60) {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

/// `1,234`.
pub fn count(n: i64) -> String {
    usd_exact(Decimal::from(n))
        .trim_start_matches('$')
        .trim_end_matches(".00")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap_or_default()
    }

    #[test]
    fn amounts_read_short_and_exact() {
        assert_eq!(usd_short(d("1440000000")), "$1.44B");
        assert_eq!(usd_short(d("12345678")), "$12.3M");
        assert_eq!(usd_short(d("450000")), "$450K");
        assert_eq!(usd_short(d("1500000")), "$1.5M");
        assert_eq!(usd_short(d("2000000000")), "$2B");
        assert_eq!(usd_short(d("999")), "$999");
        assert_eq!(usd_short(d("0")), "$0");
        assert_eq!(usd_exact(d("1440000000")), "$1,440,000,000.00");
        assert_eq!(usd_exact(d("999.5")), "$999.50");
        assert_eq!(usd_exact(d("1234567.891")), "$1,234,567.89");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(12), "12");
    }

    #[test]
    fn spans_read_in_the_largest_whole_unit() {
        use std::time::Duration;
        assert_eq!(span(Duration::from_secs(86_400)), "1 day");
        assert_eq!(span(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(span(Duration::from_secs(2 * 3600)), "2 hours");
        assert_eq!(span(Duration::from_secs(90)), "90 seconds");
    }
}
