//! How the tier table is written in the settings:
//!
//! ```toml
//! [tiers.anonymous]
//! delay = "0s"        # a duration, humantime style ("24h", "7days")
//! history = "all"     # a duration, or "all" for no window
//! [tiers.pro]
//! per_minute = 600
//! ```
//!
//! Every key left out keeps that tier's default, so one environment variable
//! (`KAMIYO_TIERS_ANONYMOUS_DELAY=0s`) changes one value and not the whole tier. This is a
//! form of its own because [`TierLimits`]' serialisation is the API's (`/api/me` shows
//! durations in seconds and no window as `null`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::table::{TierTable, DEFAULT_TIERS};
use super::TierLimits;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct TierTableSetting {
    anonymous: TierSetting,
    free: TierSetting,
    pro: TierSetting,
    team: TierSetting,
    enterprise: TierSetting,
}

/// One tier's keys; `None`: not written, the default stays.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TierSetting {
    #[serde(skip_serializing_if = "Option::is_none")]
    per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_hour: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_day: Option<u32>,
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    delay: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<History>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions: Option<u32>,
}

/// `"all"`, or a window such as `"7days"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum History {
    All,
    Within(Duration),
}

const ALL: &str = "all";

impl TierSetting {
    fn over(&self, default: TierLimits) -> TierLimits {
        TierLimits {
            per_minute: self.per_minute.unwrap_or(default.per_minute),
            per_hour: self.per_hour.unwrap_or(default.per_hour),
            per_day: self.per_day.unwrap_or(default.per_day),
            delay: self.delay.unwrap_or(default.delay),
            history: match self.history {
                None => default.history,
                Some(History::All) => None,
                Some(History::Within(window)) => Some(window),
            },
            subscriptions: self.subscriptions.unwrap_or(default.subscriptions),
        }
    }
}

impl From<&TierLimits> for TierSetting {
    fn from(limits: &TierLimits) -> Self {
        TierSetting {
            per_minute: Some(limits.per_minute),
            per_hour: Some(limits.per_hour),
            per_day: Some(limits.per_day),
            delay: Some(limits.delay),
            history: Some(limits.history.map_or(History::All, History::Within)),
            subscriptions: Some(limits.subscriptions),
        }
    }
}

impl From<TierTableSetting> for TierTable {
    fn from(setting: TierTableSetting) -> Self {
        TierTable {
            anonymous: setting.anonymous.over(DEFAULT_TIERS.anonymous),
            free: setting.free.over(DEFAULT_TIERS.free),
            pro: setting.pro.over(DEFAULT_TIERS.pro),
            team: setting.team.over(DEFAULT_TIERS.team),
            enterprise: setting.enterprise.over(DEFAULT_TIERS.enterprise),
        }
    }
}

impl From<TierTable> for TierTableSetting {
    fn from(table: TierTable) -> Self {
        TierTableSetting {
            anonymous: (&table.anonymous).into(),
            free: (&table.free).into(),
            pro: (&table.pro).into(),
            team: (&table.team).into(),
            enterprise: (&table.enterprise).into(),
        }
    }
}

impl Serialize for History {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            History::All => serializer.serialize_str(ALL),
            History::Within(window) => serializer.collect_str(&humantime::format_duration(*window)),
        }
    }
}

impl<'de> Deserialize<'de> for History {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = History;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"7days\", or \"all\"")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<History, E> {
                let text = text.trim();
                if text.eq_ignore_ascii_case(ALL) {
                    return Ok(History::All);
                }
                humantime::parse_duration(text)
                    .map(History::Within)
                    .map_err(|e| E::custom(format!("{text:?} is not a duration or \"all\": {e}")))
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_left_out_keep_their_tiers_default() {
        let table: TierTable = serde_json::from_value(serde_json::json!({
            "anonymous": { "delay": "0s", "history": "all" },
            "pro": { "per_minute": 600, "history": "90days" }
        }))
        .unwrap();
        assert_eq!(table.anonymous.delay, Duration::ZERO);
        assert_eq!(table.anonymous.history, None);
        assert_eq!(
            table.anonymous.per_minute,
            DEFAULT_TIERS.anonymous.per_minute
        );
        assert_eq!(table.pro.per_minute, 600);
        assert_eq!(table.pro.history, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(table.pro.per_hour, DEFAULT_TIERS.pro.per_hour);
        assert_eq!(table.free, DEFAULT_TIERS.free);
    }

    #[test]
    fn the_table_reads_back_what_it_writes() {
        let written = serde_json::to_value(DEFAULT_TIERS).unwrap();
        assert_eq!(written["free"]["delay"], "1day");
        assert_eq!(written["free"]["history"], "7days");
        assert_eq!(written["pro"]["history"], "all");
        let read: TierTable = serde_json::from_value(written).unwrap();
        assert_eq!(read, DEFAULT_TIERS);
    }

    #[test]
    fn unknown_keys_and_tiers_and_bad_windows_are_refused() {
        for bad in [
            serde_json::json!({ "gold": { "per_minute": 1 } }),
            serde_json::json!({ "pro": { "per_minut": 1 } }),
            serde_json::json!({ "pro": { "history": "forever" } }),
            serde_json::json!({ "pro": { "delay": "soon" } }),
        ] {
            assert!(
                serde_json::from_value::<TierTable>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
