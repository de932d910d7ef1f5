//! Payments: recorded against a user, validated by domain types, never deleted.

use kamiyo_domain::{Currency, FieldError, PaymentStatus, Usd};

use super::{AccountError, AccountStore};
use crate::row::Fields;
use crate::statement::{self, Param, Sql};

const INSERT: Sql = Sql {
    postgres: "INSERT INTO payments (user_id, amount, currency, status, provider, provider_ref) \
               VALUES ($1, $2::text::numeric, $3, $4, $5, $6) RETURNING id",
    sqlite: "INSERT INTO payments (user_id, amount, currency, status, provider, provider_ref) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
};

impl AccountStore {
    /// Records a payment; amounts are decimal and above zero, currencies ISO 4217.
    pub async fn record_payment(
        &self,
        user: &str,
        amount: &str,
        currency: &str,
        status: &str,
        provider: &str,
        provider_ref: Option<&str>,
    ) -> Result<i64, AccountError> {
        let found = self.find_user(user).await?;
        let amount = Usd::parse("amount", amount)?;
        if amount.decimal().is_zero() {
            return Err(FieldError::new("amount", "must be greater than zero").into());
        }
        let currency = Currency::parse(currency)?;
        let status = PaymentStatus::parse(status)?;
        let params = vec![
            Param::Int(found.id),
            Param::Text(amount.to_string()),
            Param::Text(currency.as_str().to_owned()),
            Param::Text(status.as_str().to_owned()),
            Param::Text(provider.to_owned()),
            Param::OptText(provider_ref.map(str::to_owned)),
        ];
        let id = statement::query_opt(
            self.db().primary(),
            INSERT.for_pool(self.db().primary()),
            params,
            |row| Fields::of("payments", row).int("id"),
        )
        .await?;
        id.ok_or_else(|| {
            AccountError::Store(crate::StoreError::Invariant(
                "INSERT ... RETURNING gave no row".into(),
            ))
        })
    }
}
