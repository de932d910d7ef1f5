//! Subscription tiers and what each may do (docs/TIERS.md).
//!
//! - [`Tier`]: the tiers a user can hold.
//! - [`TierLimits`]: what one tier may do, and the one visibility rule
//!   ([`TierLimits::visible_window`], [`TierLimits::visible_from`]).
//! - [`TierTable`]: the limits of every tier and of anonymous callers, as configured
//!   (`tiers.<name>.*`); its default is the public service's table.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

mod setting;
mod table;

pub use table::{TierTable, TierTableError, DEFAULT_TIERS, MAX_DELAY, MAX_HISTORY};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Pro,
    Team,
    Enterprise,
}

/// Requests allowed per window, and how much of the data a caller sees. Serialised as
/// `/api/me` shows it (durations in seconds); the settings write it as [`TierTable`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TierLimits {
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_day: u32,
    /// Incidents are visible only once this old (`0` = real time).
    #[serde(with = "seconds")]
    #[schema(value_type = u64)]
    pub delay: Duration,
    /// Only incidents that occurred within this window are visible (`None` = all).
    #[serde(with = "optional_seconds")]
    #[schema(value_type = Option<u64>)]
    pub history: Option<Duration>,
    /// Alert subscriptions a user of the tier may hold.
    pub subscriptions: u32,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Free, Tier::Pro, Tier::Team, Tier::Enterprise];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Pro => "pro",
            Tier::Team => "team",
            Tier::Enterprise => "enterprise",
        }
    }

    pub fn parse(text: &str) -> Result<Tier, FieldError> {
        let key = text.trim().to_lowercase();
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == key)
            .ok_or_else(|| {
                FieldError::new(
                    "tier",
                    format!("{text:?} is not one of free, pro, team, enterprise"),
                )
            })
    }
}

impl TierLimits {
    /// The occurred-at bounds of what this tier sees at `now`: `(not before, not
    /// after)`. The one visibility rule, for the API, the exports and the alerts.
    pub fn visible_window(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) {
        let ago = |d: Duration| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        };
        let until = (!self.delay.is_zero()).then(|| ago(self.delay));
        let from = self.history.map(ago);
        (from, until)
    }

    /// When an incident that occurred at `occurred_at` is first visible to this tier, no
    /// earlier than `now`; `None` when it never will be (older than the history window
    /// by the time its delay has passed).
    pub fn visible_from(
        &self,
        occurred_at: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let delay = chrono::Duration::from_std(self.delay).ok()?;
        let at = (occurred_at + delay).max(now);
        let (from, until) = self.visible_window(at);
        let visible =
            from.is_none_or(|f| occurred_at >= f) && until.is_none_or(|u| occurred_at <= u);
        visible.then_some(at)
    }
}

mod seconds {
    pub fn serialize<S: serde::Serializer>(
        value: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.as_secs())
    }
}

mod optional_seconds {
    pub fn serialize<S: serde::Serializer>(
        value: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn an_incident_becomes_visible_to_a_delayed_tier_once_its_delay_has_passed() {
        let free = DEFAULT_TIERS.free;
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
        let an_hour_ago = now - chrono::Duration::hours(1);
        assert_eq!(
            free.visible_from(an_hour_ago, now),
            Some(an_hour_ago + chrono::Duration::hours(24))
        );
        let two_days_ago = now - chrono::Duration::days(2);
        assert_eq!(
            free.visible_from(two_days_ago, now),
            Some(now),
            "already visible"
        );
        let a_month_ago = now - chrono::Duration::days(30);
        assert_eq!(
            free.visible_from(a_month_ago, now),
            None,
            "outside its history"
        );
        assert_eq!(DEFAULT_TIERS.pro.visible_from(a_month_ago, now), Some(now));
        let (from, until) = free.visible_window(now);
        assert_eq!(until, Some(now - chrono::Duration::hours(24)));
        assert_eq!(from, Some(now - chrono::Duration::days(7)));
    }

    #[test]
    fn tiers_parse_and_paid_tiers_see_everything_in_real_time_by_default() {
        assert_eq!(Tier::parse("PRO").unwrap(), Tier::Pro);
        assert_eq!(Tier::parse("gold").unwrap_err().field, "tier");
        let table = TierTable::default();
        assert_eq!(table.of(Tier::Free).delay, DAY);
        for paid in [Tier::Pro, Tier::Team, Tier::Enterprise] {
            assert!(table.of(paid).delay.is_zero() && table.of(paid).history.is_none());
        }
        assert!(table.anonymous.per_minute < table.free.per_minute);
    }
}
