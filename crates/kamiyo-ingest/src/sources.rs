//! The sources the service fetches (`[sources]` in the configuration): three ship
//! configured, `defillama`, `defihacklabs` and `rekt`, at their real public URLs; an
//! operator may change any of their settings, turn one off, or add more of any format
//! under new names.
//!
//! ```toml
//! [sources]
//! enabled = true                       # false: `kamiyo serve` fetches nothing
//! [sources.defillama]
//! interval = "5m"
//! [sources.mirror]                     # a new source needs its url and format
//! url = "https://example.org/hacks.jsonl"
//! format = "jsonl"
//! ```
//!
//! Every timeout and limit has a finite default; an interval of at least 1 s is
//! accepted, so that tests can use short ones.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fetch::{FetchLimits, RetryPolicy};
use crate::Format;

/// The shortest lease of a claimed slot unless configured (`sources.min_lease`).
pub const DEFAULT_MIN_LEASE: Duration = Duration::from_secs(60);

/// The shortest interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// A source's interval unless configured: DeFiLlama's list changes often.
pub const DEFAULT_DEFILLAMA_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Every other source's interval unless configured.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// One attempt of a fetch, body included, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest body a fetch accepts unless configured (DeFiLlama's list is about 0.5 MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// How many of a `rekt-rss` feed's newest articles are read per fetch unless configured
/// (`crate::articles`): rekt.news publishes a few a week, so this covers weeks of news.
pub const DEFAULT_ARTICLES: usize = 20;

/// The built-in sources: name, URL, format, interval.
const BUILT_IN: &[(&str, &str, Format, Duration)] = &[
    (
        "defillama",
        "https://api.llama.fi/hacks",
        Format::DefillamaApi,
        DEFAULT_DEFILLAMA_INTERVAL,
    ),
    (
        "defihacklabs",
        "https://raw.githubusercontent.com/SunWeb3Sec/DeFiHackLabs/main/README.md",
        Format::Defihacklabs,
        DEFAULT_INTERVAL,
    ),
    (
        "rekt",
        "https://rekt.news/rss/feed.xml",
        Format::RektRss,
        DEFAULT_INTERVAL,
    ),
];

/// `[sources]`: whether fetching is on, and each source's settings by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourcesConfig {
    /// `false` turns the scheduler of `kamiyo serve` off (`--no-fetch` does too).
    pub enabled: bool,
    /// The shortest lease of a claimed slot (a slot's lease is twice its fetch's
    /// deadline, at least this): how long a slot whose instance died waits before
    /// another takes it over.
    #[serde(with = "humantime_serde")]
    pub min_lease: Duration,
    /// Settings by source name; a built-in source's unset values keep their defaults.
    #[serde(flatten)]
    pub sources: BTreeMap<String, SourceSettings>,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            enabled: true,
            min_lease: DEFAULT_MIN_LEASE,
            sources: BTreeMap::new(),
        }
    }
}

/// One source's settings as written; unset values take the built-in source's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSettings {
    pub url: Option<String>,
    pub format: Option<String>,
    #[serde(with = "humantime_serde")]
    pub interval: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    pub max_body_bytes: Option<usize>,
    /// `rekt-rss` only: how many of the feed's newest articles are read per fetch for
    /// the hack's own date and loss (0: none).
    pub articles: Option<usize>,
    pub enabled: Option<bool>,
}

/// A source ready to fetch: every value known and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub url: String,
    pub format: Format,
    pub interval: Duration,
    pub limits: FetchLimits,
    /// Articles read per fetch (`crate::articles`); 0 for every format but `rekt-rss`.
    pub articles: usize,
    pub enabled: bool,
}

impl Source {
    /// What its health sees of it (`kamiyo_store::sources::SourceSchedule`).
    pub fn schedule(&self) -> kamiyo_store::sources::SourceSchedule {
        kamiyo_store::sources::SourceSchedule {
            name: self.name.clone(),
            interval: self.interval,
            enabled: self.enabled,
        }
    }

    /// See [`kamiyo_store::sources::SourceSchedule::is_stale`].
    pub fn is_stale(
        &self,
        last_success: Option<chrono::DateTime<chrono::Utc>>,
        watching_since: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        self.schedule().is_stale(last_success, watching_since, now)
    }
}

/// A source setting that cannot be used, naming the source and the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sources.{source_name}.{setting}: {message}")]
pub struct SourceConfigError {
    pub source_name: String,
    pub setting: &'static str,
    pub message: String,
}

impl SourcesConfig {
    /// Every source, the built-in ones first with the settings given for them, then the
    /// added ones, by name.
    ///
    /// # Errors
    ///
    /// The first setting that cannot be used, by source and setting.
    pub fn resolve(&self) -> Result<Vec<Source>, SourceConfigError> {
        if self.min_lease < MIN_INTERVAL {
            return Err(SourceConfigError {
                source_name: "(all)".into(),
                setting: "min_lease",
                message: "must be at least 1s".into(),
            });
        }
        let mut resolved = Vec::new();
        for (name, url, format, interval) in BUILT_IN {
            let given = self.sources.get(*name).cloned().unwrap_or_default();
            resolved.push(source(name, &given, Some((url, *format, *interval)))?);
        }
        for (name, given) in &self.sources {
            if !BUILT_IN.iter().any(|(built_in, ..)| built_in == name) {
                resolved.push(source(name, given, None)?);
            }
        }
        Ok(resolved)
    }
}

fn source(
    name: &str,
    given: &SourceSettings,
    built_in: Option<(&str, Format, Duration)>,
) -> Result<Source, SourceConfigError> {
    let error = |setting, message: String| SourceConfigError {
        source_name: name.to_owned(),
        setting,
        message,
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(error(
            "name",
            "a source name is lower-case letters, digits, `-` and `_`".into(),
        ));
    }
    let url = match (&given.url, built_in) {
        (Some(url), _) => url.clone(),
        (None, Some((url, ..))) => url.to_owned(),
        (None, None) => return Err(error("url", "is required for a source of your own".into())),
    };
    let parsed = url::Url::parse(&url).map_err(|e| error("url", format!("{e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(error("url", "must be http or https".into()));
    }
    let format = match (&given.format, built_in) {
        (Some(text), _) => text
            .parse::<Format>()
            .map_err(|e| error("format", e.to_string()))?,
        (None, Some((_, format, _))) => format,
        (None, None) => {
            return Err(error(
                "format",
                format!(
                    "is required for a source of your own: one of {}",
                    crate::format_names(", ")
                ),
            ))
        }
    };
    let interval = given
        .interval
        .or(built_in.map(|(.., interval)| interval))
        .unwrap_or(DEFAULT_INTERVAL);
    if interval < MIN_INTERVAL {
        return Err(error("interval", "must be at least 1s".into()));
    }
    let timeout = given.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err(error("timeout", "must be more than 0s".into()));
    }
    let max_body_bytes = given.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        return Err(error("max_body_bytes", "must be at least 1".into()));
    }
    let articles = match (given.articles, format) {
        (Some(articles), Format::RektRss) => articles,
        (None, Format::RektRss) => DEFAULT_ARTICLES,
        (Some(0) | None, _) => 0,
        (Some(_), _) => {
            return Err(error(
                "articles",
                format!("only a rekt-rss source reads articles, not a {format} one"),
            ))
        }
    };
    Ok(Source {
        name: name.to_owned(),
        url,
        format,
        interval,
        limits: FetchLimits {
            timeout,
            max_body_bytes,
            // A fetch, retries included, ends before the next one is due.
            deadline: (timeout * 4).min(interval),
            retry: RetryPolicy {
                max_backoff: RetryPolicy::default().max_backoff.min(interval / 2),
                ..RetryPolicy::default()
            },
        },
        articles,
        enabled: given.enabled.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_real_sources_ship_configured() {
        let sources = SourcesConfig::default().resolve().unwrap();
        let names: Vec<(&str, Format, Duration)> = sources
            .iter()
            .map(|s| (s.name.as_str(), s.format, s.interval))
            .collect();
        assert_eq!(
            names,
            [
                ("defillama", Format::DefillamaApi, Duration::from_secs(900)),
                (
                    "defihacklabs",
                    Format::Defihacklabs,
                    Duration::from_secs(3600)
                ),
                ("rekt", Format::RektRss, Duration::from_secs(3600)),
            ]
        );
        assert!(sources
            .iter()
            .all(|s| s.enabled && s.url.starts_with("https://")));
        assert!(sources.iter().all(|s| s.limits.deadline <= s.interval));
    }

    #[test]
    fn a_built_in_source_keeps_the_defaults_it_is_not_given_and_new_ones_need_url_and_format() {
        let mut config = SourcesConfig::default();
        config.sources.insert(
            "defillama".into(),
            SourceSettings {
                interval: Some(Duration::from_secs(1)),
                ..SourceSettings::default()
            },
        );
        config.sources.insert(
            "mirror".into(),
            SourceSettings {
                url: Some("http://127.0.0.1:9/hacks.jsonl".into()),
                format: Some("jsonl".into()),
                ..SourceSettings::default()
            },
        );
        let sources = config.resolve().unwrap();
        assert_eq!(sources[0].url, "https://api.llama.fi/hacks");
        assert_eq!(sources[0].interval, Duration::from_secs(1));
        assert_eq!(sources[3].name, "mirror");
        assert_eq!(sources[3].format, Format::Jsonl);

        config
            .sources
            .insert("bare".into(), SourceSettings::default());
        let err = config.resolve().unwrap_err();
        assert_eq!((err.source_name.as_str(), err.setting), ("bare", "url"));
    }

    #[test]
    fn a_source_is_stale_after_three_intervals_without_a_success() {
        let source = SourcesConfig::default().resolve().unwrap().remove(0);
        let start = chrono::DateTime::parse_from_rfc3339("2026-12-03T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let minutes = |m| start + chrono::Duration::minutes(m);
        assert!(
            !source.is_stale(None, start, minutes(45)),
            "three intervals are allowed"
        );
        assert!(source.is_stale(None, start, minutes(46)));
        assert!(!source.is_stale(Some(minutes(40)), start, minutes(80)));
        assert!(source.is_stale(Some(minutes(40)), start, minutes(86)));
        let off = Source {
            enabled: false,
            ..source
        };
        assert!(
            !off.is_stale(None, start, minutes(1000)),
            "a source turned off is never stale"
        );
    }

    #[test]
    fn unusable_settings_are_refused_by_source_and_setting() {
        for (settings, setting) in [
            (
                SourceSettings {
                    interval: Some(Duration::from_millis(500)),
                    ..SourceSettings::default()
                },
                "interval",
            ),
            (
                SourceSettings {
                    url: Some("ftp://example.org/x".into()),
                    ..SourceSettings::default()
                },
                "url",
            ),
            (
                SourceSettings {
                    format: Some("xml".into()),
                    ..SourceSettings::default()
                },
                "format",
            ),
            (
                SourceSettings {
                    max_body_bytes: Some(0),
                    ..SourceSettings::default()
                },
                "max_body_bytes",
            ),
        ] {
            let mut config = SourcesConfig::default();
            config.sources.insert("rekt".into(), settings);
            let err = config.resolve().unwrap_err();
            assert_eq!(
                (err.source_name.as_str(), err.setting),
                ("rekt", setting),
                "{err}"
            );
        }
    }
}
