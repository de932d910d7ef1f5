//! The values an account is made of, each validated once, where it enters: an email
//! address, a role, and a payment's currency and status. A stored value that no longer
//! parses is corrupt data, not a value to guess.

use serde::Serialize;

use crate::FieldError;

/// An email address as accounts use it: trimmed, at most 254 characters, one `@` with a
/// local part and a dotted domain, no whitespace. Compared case-insensitively by the
/// store (the address is kept as written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Email, FieldError> {
        let email = text.trim();
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !email.chars().any(char::is_whitespace);
        if valid {
            Ok(Email(email.to_owned()))
        } else {
            Err(FieldError::new(
                "email",
                format!("{email:?} is not an email address"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// What a user may do beyond their tier: `admin` manages users, keys and sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Role, FieldError> {
        match text {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(FieldError::new(
                "role",
                format!("{other:?} is not a role: expected user or admin"),
            )),
        }
    }
}

/// An ISO 4217 currency code: three letters, upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(text: &str) -> Result<Currency, FieldError> {
        let code = text.trim().to_uppercase();
        if code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Currency(code))
        } else {
            Err(FieldError::new(
                "currency",
                "must be a three-letter ISO 4217 code",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a payment stands with its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Result<PaymentStatus, FieldError> {
        match text {
            "pending" => Ok(PaymentStatus::Pending),
            "succeeded" => Ok(PaymentStatus::Succeeded),
            "failed" => Ok(PaymentStatus::Failed),
            "refunded" => Ok(PaymentStatus::Refunded),
            _ => Err(FieldError::new(
                "status",
                "must be pending, succeeded, failed or refunded",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_malformed_ones_name_the_field() {
        assert_eq!(
            Email::parse("  a@example.com ").map(Email::into_string),
            Ok("a@example.com".to_owned())
        );
        for bad in [
            "not-an-email",
            "@example.com",
            "a@example",
            "a@.com",
            "a b@x.io",
            "a@b@c.io",
        ] {
            let error = Email::parse(bad).err().map(|e| e.field);
            assert_eq!(error.as_deref(), Some("email"), "{bad}");
        }
    }

    #[test]
    fn currencies_are_three_letters_and_statuses_and_roles_are_closed_lists() {
        assert_eq!(
            Currency::parse(" usd").map(|c| c.as_str().to_owned()),
            Ok("USD".into())
        );
        assert!(Currency::parse("US").is_err() && Currency::parse("U5D").is_err());
        for status in ["pending", "succeeded", "failed", "refunded"] {
            assert_eq!(
                PaymentStatus::parse(status).map(PaymentStatus::as_str),
                Ok(status)
            );
        }
        assert!(PaymentStatus::parse("paid").is_err());
        assert_eq!(Role::parse("admin"), Ok(Role::Admin));
        assert!(Role::parse("root").is_err());
    }
}
