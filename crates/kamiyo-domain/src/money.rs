//! US dollar amounts: decimal, never negative, two decimals. An unknown amount is
//! `None` where it is used, never zero.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::error::FieldError;

/// Largest accepted amount: the schema's NUMERIC(20,2) holds 18 integer digits.
const MAX_INTEGER_DIGITS: u32 = 18;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct Usd(Decimal);

impl Usd {
    /// Accepts `4800000`, `4,800,000.50`, `$1.2e6`; refuses negatives, words and values
    /// too large for the schema. Rounded half-even to cents.
    pub fn parse(field: &str, text: &str) -> Result<Usd, FieldError> {
        let cleaned: String = text
            .trim()
            .trim_start_matches('$')
            .chars()
            .filter(|c| *c != ',' && *c != '_')
            .collect();
        if cleaned.is_empty() {
            return Err(FieldError::new(field, "is empty"));
        }
        let value = Decimal::from_str(&cleaned)
            .or_else(|_| Decimal::from_scientific(&cleaned))
            .map_err(|_| FieldError::new(field, format!("{text:?} is not a number")))?;
        Usd::from_decimal(field, value)
    }

    /// `amount` whole dollars: every `u32` is within range, so this cannot fail.
    pub fn whole_dollars(amount: u32) -> Usd {
        let mut cents = Decimal::from(amount);
        cents.rescale(2);
        Usd(cents)
    }

    pub fn from_decimal(field: &str, value: Decimal) -> Result<Usd, FieldError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(FieldError::new(field, "must not be negative"));
        }
        let rounded = value.round_dp(2);
        if rounded.trunc().to_string().trim_start_matches('-').len() as u32 > MAX_INTEGER_DIGITS {
            return Err(FieldError::new(field, "is too large"));
        }
        let mut cents = rounded;
        cents.rescale(2);
        Ok(Usd(cents))
    }

    pub fn decimal(&self) -> Decimal {
        self.0
    }

    /// Whether two claims about one loss can be the same figure: within a factor of 2
    /// of each other (sources round, convert at different prices, report before and after
    /// recoveries), or both under $10,000.
    pub fn compatible_with(&self, other: &Usd) -> bool {
        let (low, high) = if self.0 <= other.0 {
            (self.0, other.0)
        } else {
            (other.0, self.0)
        };
        if high <= Decimal::from(10_000) {
            return true;
        }
        low * Decimal::from(2) >= high
    }

    /// Whether two claims give one figure: within 5 % of each other (a source listing
    /// one loss twice, once rounded). Stricter than [`Usd::compatible_with`]: two records
    /// of one source on one day whose amounts merely fit a factor of 2 are two hacks.
    pub fn agrees_with(&self, other: &Usd) -> bool {
        let (low, high) = if self.0 <= other.0 {
            (self.0, other.0)
        } else {
            (other.0, self.0)
        };
        (high - low) * Decimal::from(20) <= high
    }
}

impl fmt::Display for Usd {
    /// Canonical form: digits, a dot, two decimals (`197000000.00`), as both backends
    /// store it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<Usd> for String {
    fn from(usd: Usd) -> String {
        usd.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_two_decimals() {
        assert_eq!(
            Usd::parse("loss_usd", "4800000").unwrap().to_string(),
            "4800000.00"
        );
        assert_eq!(
            Usd::parse("loss_usd", "$4,800,000.555")
                .unwrap()
                .to_string(),
            "4800000.56"
        );
        assert_eq!(
            Usd::parse("loss_usd", "1.2e6").unwrap().to_string(),
            "1200000.00"
        );
        assert_eq!(Usd::parse("loss_usd", "0").unwrap().to_string(), "0.00");
    }

    #[test]
    fn refusals_name_the_field() {
        let err = Usd::parse("loss_usd", "-5").unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.message.as_str()),
            ("loss_usd", "must not be negative")
        );
        assert!(Usd::parse("recovered_usd", "lots")
            .unwrap_err()
            .to_string()
            .starts_with("recovered_usd"));
        assert!(Usd::parse("loss_usd", "1e30").is_err());
    }

    #[test]
    fn compatibility_is_within_a_factor_of_two() {
        let usd = |s: &str| Usd::parse("x", s).unwrap();
        assert!(usd("197000000").compatible_with(&usd("195000000")));
        assert!(!usd("197000000").compatible_with(&usd("19700000")));
        assert!(usd("5000").compatible_with(&usd("100")));
    }
}
