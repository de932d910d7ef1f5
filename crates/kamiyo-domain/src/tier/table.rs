//! The tier table: what anonymous callers and each tier may do, as configured
//! (`tiers.<name>.*`, `KAMIYO_TIERS_<NAME>_<KEY>`; docs/TIERS.md).
//!
//! It is configuration, not code, so that a private deployment can show everything to
//! its own anonymous visitors and a public one can tune its limits. [`DEFAULT_TIERS`] is
//! the public service's table. The service reads one table, resolved once at start-up and
//! checked by [`TierTable::validate`]: the API, the exports and the alerts then apply the
//! same limits, and a table that cannot work stops start-up instead of surfacing as a
//! tier that sees nothing or a rate limit that admits nothing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Tier, TierLimits};

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// Longest `tiers.<name>.delay`. Past a year an alert would arrive long after anyone
/// could act on it; the bound also keeps `occurred_at + delay` far from the end of the
/// calendar the visibility rule computes in.
pub const MAX_DELAY: Duration = Duration::from_secs(365 * DAY);

/// Longest finite `tiers.<name>.history`. A century holds every incident there is: a
/// longer window is `"all"` written the hard way, so it is refused with that advice.
pub const MAX_HISTORY: Duration = Duration::from_secs(100 * 365 * DAY);

const FREE: TierLimits = TierLimits {
    per_minute: 30,
    per_hour: 500,
    per_day: 2_000,
    delay: Duration::from_secs(DAY),
    history: Some(Duration::from_secs(7 * DAY)),
    subscriptions: 1,
};

/// The public service's table, the default of every `tiers.*` key. Anonymous callers get
/// the free tier's view of the data, fewer requests, and no alerts.
pub const DEFAULT_TIERS: TierTable = TierTable {
    anonymous: TierLimits {
        per_minute: 10,
        per_hour: 100,
        per_day: 500,
        subscriptions: 0,
        ..FREE
    },
    free: FREE,
    pro: TierLimits {
        per_minute: 300,
        per_hour: 10_000,
        per_day: 100_000,
        delay: Duration::ZERO,
        history: None,
        subscriptions: 10,
    },
    team: TierLimits {
        per_minute: 1_000,
        per_hour: 40_000,
        per_day: 500_000,
        delay: Duration::ZERO,
        history: None,
        subscriptions: 50,
    },
    enterprise: TierLimits {
        per_minute: 3_000,
        per_hour: 150_000,
        per_day: 2_000_000,
        delay: Duration::ZERO,
        history: None,
        subscriptions: 200,
    },
};

/// The limits of anonymous callers and of each tier. Written in the settings as
/// `[tiers.<name>]` tables; a key left out keeps that tier's default (see `setting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    from = "super::setting::TierTableSetting",
    into = "super::setting::TierTableSetting"
)]
pub struct TierTable {
    /// Callers without a key (and the metrics token, which reads no incidents).
    pub anonymous: TierLimits,
    pub free: TierLimits,
    pub pro: TierLimits,
    pub team: TierLimits,
    pub enterprise: TierLimits,
}

impl Default for TierTable {
    fn default() -> Self {
        DEFAULT_TIERS
    }
}

/// A tier table that cannot work, naming the setting (`tiers.pro.per_minute`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} {reason}")]
pub struct TierTableError {
    pub key: String,
    pub reason: String,
}

impl TierTable {
    /// The limits of a user of `tier`.
    pub fn of(&self, tier: Tier) -> &TierLimits {
        match tier {
            Tier::Free => &self.free,
            Tier::Pro => &self.pro,
            Tier::Team => &self.team,
            Tier::Enterprise => &self.enterprise,
        }
    }

    /// Every row with the name its settings are written under.
    pub fn rows(&self) -> [(&'static str, &TierLimits); 5] {
        [
            ("anonymous", &self.anonymous),
            (Tier::Free.as_str(), &self.free),
            (Tier::Pro.as_str(), &self.pro),
            (Tier::Team.as_str(), &self.team),
            (Tier::Enterprise.as_str(), &self.enterprise),
        ]
    }

    /// Refuses a table that cannot work; the error names the first key at fault.
    pub fn validate(&self) -> Result<(), TierTableError> {
        for (name, limits) in self.rows() {
            validate_row(name, limits)?;
        }
        if self.anonymous.subscriptions != 0 {
            // Subscriptions belong to users: a non-zero value would promise something
            // no anonymous caller can have.
            return Err(refused(
                "anonymous",
                "subscriptions",
                "must be 0: anonymous callers cannot hold alert subscriptions",
            ));
        }
        // Signing in must never hide what an anonymous caller sees: a private deployment
        // that opens `tiers.anonymous` and forgets `tiers.free` would otherwise show its
        // free users less than its visitors.
        let open = &self.anonymous;
        for (name, limits) in self.rows().into_iter().skip(1) {
            if limits.delay > open.delay {
                return Err(refused(
                    name,
                    "delay",
                    format!(
                        "({}) must be at most tiers.anonymous.delay ({}): signing in would hide incidents anonymous callers see",
                        humantime::format_duration(limits.delay),
                        humantime::format_duration(open.delay)
                    ),
                ));
            }
            let narrower = match (limits.history, open.history) {
                (Some(_), None) => true,
                (Some(tier), Some(anonymous)) => tier < anonymous,
                (None, _) => false,
            };
            if narrower {
                return Err(refused(
                    name,
                    "history",
                    "must be at least tiers.anonymous.history: signing in would hide incidents anonymous callers see",
                ));
            }
        }
        Ok(())
    }
}

fn refused(tier: &str, key: &str, reason: impl Into<String>) -> TierTableError {
    TierTableError {
        key: format!("tiers.{tier}.{key}"),
        reason: reason.into(),
    }
}

fn validate_row(name: &str, limits: &TierLimits) -> Result<(), TierTableError> {
    // A zero bucket admits nothing and has no refill rate to compute a Retry-After from.
    if limits.per_minute == 0 {
        return Err(refused(name, "per_minute", "must be at least 1"));
    }
    // A longer window allowing fewer requests than a shorter one makes the shorter
    // limit a lie (`X-RateLimit-Limit` shows the minute's): most likely a slip of a digit.
    for (shorter, longer, fewer, more) in [
        ("per_minute", "per_hour", limits.per_minute, limits.per_hour),
        ("per_hour", "per_day", limits.per_hour, limits.per_day),
    ] {
        if more < fewer {
            return Err(refused(
                name,
                longer,
                format!("({more}) must be at least tiers.{name}.{shorter} ({fewer})"),
            ));
        }
    }
    if limits.delay > MAX_DELAY {
        return Err(refused(
            name,
            "delay",
            format!(
                "({}) must be at most {}",
                humantime::format_duration(limits.delay),
                humantime::format_duration(MAX_DELAY)
            ),
        ));
    }
    if let Some(history) = limits.history {
        if history > MAX_HISTORY {
            return Err(refused(
                name,
                "history",
                format!(
                    "({}) must be at most {}; write \"all\" for no window",
                    humantime::format_duration(history),
                    humantime::format_duration(MAX_HISTORY)
                ),
            ));
        }
        // Visible means older than the delay and younger than the history: a window no
        // longer than the delay is empty, and the tier would see nothing at all.
        if history <= limits.delay {
            return Err(refused(
                name,
                "history",
                format!(
                    "({}) must be longer than tiers.{name}.delay ({}): the tier would see no incident",
                    humantime::format_duration(history),
                    humantime::format_duration(limits.delay)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(table: TierTable) -> String {
        table
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_tier_may_not_see_less_than_anonymous_callers() {
        let mut table = TierTable::default();
        table.anonymous.delay = Duration::ZERO;
        table.anonymous.history = None;
        let err = table.validate().map_err(|e| e.to_string()).unwrap_err();
        assert!(err.contains("tiers.free.delay"), "{err}");
        table.free.delay = Duration::ZERO;
        let err = table.validate().map_err(|e| e.to_string()).unwrap_err();
        assert!(err.contains("tiers.free.history"), "{err}");
        table.free.history = None;
        assert_eq!(table.validate(), Ok(()));
    }

    #[test]
    fn the_default_table_is_valid_and_is_the_public_services() {
        assert_eq!(TierTable::default().validate(), Ok(()));
        let table = TierTable::default();
        assert_eq!(
            [
                table.anonymous.per_minute,
                table.free.per_minute,
                table.pro.per_minute
            ],
            [10, 30, 300]
        );
        assert_eq!(table.of(Tier::Enterprise).per_day, 2_000_000);
        assert_eq!(table.of(Tier::Team).subscriptions, 50);
        assert_eq!(table.anonymous.history, Some(Duration::from_secs(7 * DAY)));
    }

    #[test]
    fn a_table_that_cannot_work_is_refused_naming_the_key() {
        let mut zero = DEFAULT_TIERS;
        zero.pro.per_minute = 0;
        assert_eq!(error_of(zero), "tiers.pro.per_minute must be at least 1");

        let mut slipped = DEFAULT_TIERS;
        slipped.team.per_hour = 100;
        let error = error_of(slipped);
        assert!(
            error.starts_with("tiers.team.per_hour (100) must be at least tiers.team.per_minute"),
            "{error}"
        );

        let mut daily = DEFAULT_TIERS;
        daily.free.per_day = 499;
        assert!(error_of(daily).starts_with("tiers.free.per_day"));

        let mut late = DEFAULT_TIERS;
        late.enterprise.delay = MAX_DELAY + Duration::from_secs(1);
        assert!(error_of(late).starts_with("tiers.enterprise.delay"));

        let mut forever = DEFAULT_TIERS;
        forever.pro.history = Some(MAX_HISTORY * 2);
        let error = error_of(forever);
        assert!(
            error.starts_with("tiers.pro.history") && error.contains("\"all\""),
            "{error}"
        );

        let mut blind = DEFAULT_TIERS;
        blind.anonymous.history = Some(Duration::from_secs(DAY));
        let error = error_of(blind);
        assert!(
            error.starts_with("tiers.anonymous.history") && error.contains("tiers.anonymous.delay"),
            "{error}"
        );

        let mut subscribing = DEFAULT_TIERS;
        subscribing.anonymous.subscriptions = 1;
        assert!(error_of(subscribing).starts_with("tiers.anonymous.subscriptions"));
    }

    #[test]
    fn an_open_anonymous_tier_is_valid_with_an_open_free_tier() {
        let mut open = DEFAULT_TIERS;
        for limits in [&mut open.anonymous, &mut open.free] {
            limits.delay = Duration::ZERO;
            limits.history = None;
        }
        assert_eq!(open.validate(), Ok(()));
    }
}
