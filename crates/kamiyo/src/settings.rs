//! Configuration layers, later ones winning: built-in defaults, the TOML file given with
//! `--config`, environment variables (`DATABASE_URL`, then `KAMIYO_DATABASE_*`,
//! `KAMIYO_SERVER_*`, `KAMIYO_LOG_*`, `KAMIYO_SOURCES_*`, `KAMIYO_ALERTS_*`,
//! `KAMIYO_TIERS_*`, `KAMIYO_WEB_*`, `KAMIYO_COMMUNITY_*`, `KAMIYO_RATE_LIMIT_*`), then
//! command-line flags.

use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use kamiyo_api::ServerConfig;
use kamiyo_db::DbConfig;
use serde::{Deserialize, Serialize};

use crate::cli::LogFormat;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database: DbConfig,
    pub server: ServerConfig,
    pub log: LogSettings,
    /// The sources `kamiyo serve` fetches and `kamiyo source fetch` can fetch.
    pub sources: kamiyo_ingest::sources::SourcesConfig,
    /// Alert dispatch and delivery in `kamiyo serve` (docs/ALERTS.md).
    pub alerts: kamiyo_alerts::config::AlertsConfig,
    /// What anonymous callers and each tier may do (docs/TIERS.md): the API's rate
    /// limits and visibility, the alerts' visibility, the number of subscriptions.
    pub tiers: kamiyo_domain::TierTable,
    /// The dashboard `kamiyo serve` serves at `/` (docs/DASHBOARD.md).
    pub web: kamiyo_web::WebConfig,
    /// Community submissions: reputation points, caps, thresholds, bounties
    /// (docs/COMMUNITY.md).
    pub community: kamiyo_domain::ReputationRules,
    /// Where request limits are kept: this process, or PostgreSQL or Redis for limits
    /// shared by every instance (docs/DEPLOYMENT.md).
    pub rate_limit: kamiyo_api::request_limits::RateLimitConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` for people, `json` for log shippers.
    pub format: LogFormat,
    /// Filter in `RUST_LOG` syntax; `RUST_LOG` itself wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub listen: Option<std::net::SocketAddr>,
    pub no_migrate: bool,
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration file {0} does not exist")]
    MissingFile(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// `KAMIYO_*` variables that are not settings: read by the command line and the tests.
const OTHER_VARIABLES: &[&str] = &[
    "KAMIYO_CONFIG",
    "KAMIYO_TEST_ADMIN_URL",
    "KAMIYO_PROMTOOL",
    "KAMIYO_SCHEMATHESIS",
    "KAMIYO_TEST_REDIS",
    "KAMIYO_PGBOUNCER",
];
const SETTING_PREFIXES: &[&str] = &[
    "KAMIYO_DATABASE_",
    "KAMIYO_SERVER_",
    "KAMIYO_LOG_",
    "KAMIYO_SOURCES_",
    "KAMIYO_ALERTS_",
    "KAMIYO_TIERS_",
    "KAMIYO_WEB_",
    "KAMIYO_COMMUNITY_",
    "KAMIYO_RATE_LIMIT_",
];

/// A source's settings, as the last part of a `KAMIYO_SOURCES_<NAME>_<SETTING>` variable
/// (a source's name may itself hold `_`).
const SOURCE_SETTINGS: &[&str] = &[
    "url",
    "format",
    "interval",
    "timeout",
    "max_body_bytes",
    "articles",
    "enabled",
];

/// `KAMIYO_SOURCES_ENABLED` → `sources.enabled`; `KAMIYO_SOURCES_DEFILLAMA_URL` →
/// `sources.defillama.url`.
fn source_key(variable: &str) -> String {
    let key = variable.to_ascii_lowercase();
    if key == "enabled" {
        return "sources.enabled".into();
    }
    SOURCE_SETTINGS
        .iter()
        .find_map(|setting| {
            let name = key.strip_suffix(setting)?.strip_suffix('_')?;
            (!name.is_empty()).then(|| format!("sources.{name}.{setting}"))
        })
        .unwrap_or_else(|| format!("sources.{key}"))
}

/// `KAMIYO_TIERS_ANONYMOUS_DELAY` → `tiers.anonymous.delay`; `KAMIYO_TIERS_PRO_PER_MINUTE`
/// → `tiers.pro.per_minute`. Tier names hold no `_`, so the first one ends the name.
fn tier_key(variable: &str) -> String {
    let key = variable.to_ascii_lowercase();
    match key.split_once('_') {
        Some((tier, setting)) => format!("tiers.{tier}.{setting}"),
        None => format!("tiers.{key}"),
    }
}

/// A misspelt section (`KAMIYO_DATABSE_URL`) would otherwise be ignored silently and
/// the service would run on its defaults.
fn reject_unknown_variables() -> Result<(), SettingsError> {
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|key| key.starts_with("KAMIYO_"))
        .filter(|key| {
            !OTHER_VARIABLES.contains(&key.as_str())
                && !SETTING_PREFIXES.iter().any(|p| key.starts_with(p))
        })
        .collect();
    unknown.sort();
    match unknown.first() {
        Some(key) => Err(SettingsError::Invalid(format!(
            "unknown environment variable {key}: settings are KAMIYO_DATABASE_*, KAMIYO_SERVER_*, KAMIYO_LOG_*, KAMIYO_SOURCES_*, KAMIYO_ALERTS_*, KAMIYO_TIERS_*, KAMIYO_WEB_*, KAMIYO_COMMUNITY_* and KAMIYO_RATE_LIMIT_*"
        ))),
        None => Ok(()),
    }
}

pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> Result<Settings, SettingsError> {
    reject_unknown_variables()?;
    let mut figment = Figment::new();
    if let Some(path) = config_file {
        if !path.is_file() {
            return Err(SettingsError::MissingFile(path.display().to_string()));
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment
        .merge(
            Env::raw()
                .only(&["DATABASE_URL"])
                .map(|_| "database.url".into()),
        )
        .merge(
            Env::raw()
                .only(&["DATABASE_READ_URL"])
                .map(|_| "database.read_url".into()),
        )
        .merge(Env::prefixed("KAMIYO_DATABASE_").map(|key| {
            // Nested tables: KAMIYO_DATABASE_RETRY_MAX_ATTEMPTS -> database.retry.max_attempts,
            // KAMIYO_DATABASE_MONITOR_LEAK_THRESHOLD -> database.monitor.leak_threshold.
            let key = key.as_str().to_ascii_lowercase();
            for table in ["retry", "monitor"] {
                if let Some(rest) = key.strip_prefix(&format!("{table}_")) {
                    return format!("database.{table}.{rest}").into();
                }
            }
            format!("database.{key}").into()
        }))
        .merge(Env::prefixed("KAMIYO_SERVER_").map(|key| format!("server.{key}").into()))
        .merge(Env::prefixed("KAMIYO_LOG_").map(|key| format!("log.{key}").into()))
        .merge(Env::prefixed("KAMIYO_SOURCES_").map(|key| source_key(key.as_str()).into()))
        .merge(Env::prefixed("KAMIYO_ALERTS_").map(|key| {
            // KAMIYO_ALERTS_SMTP_HOST -> alerts.smtp.host.
            let key = key.as_str().to_ascii_lowercase();
            match key.strip_prefix("smtp_") {
                Some(rest) => format!("alerts.smtp.{rest}").into(),
                None => format!("alerts.{key}").into(),
            }
        }))
        .merge(Env::prefixed("KAMIYO_TIERS_").map(|key| tier_key(key.as_str()).into()))
        .merge(Env::prefixed("KAMIYO_WEB_").map(|key| format!("web.{key}").into()))
        .merge(Env::prefixed("KAMIYO_COMMUNITY_").map(|key| format!("community.{key}").into()))
        .merge(Env::prefixed("KAMIYO_RATE_LIMIT_").map(|key| format!("rate_limit.{key}").into()));
    if let Some(url) = &overrides.database_url {
        figment = figment.merge(("database.url", url.as_str()));
    }
    if let Some(listen) = overrides.listen {
        figment = figment.merge(("server.listen", listen.to_string()));
    }
    if overrides.no_migrate {
        figment = figment.merge(("database.migrate_on_start", false));
    }
    if let Some(format) = overrides.log_format {
        figment = figment.merge(("log.format", format));
    }
    let settings: Settings = figment
        .extract()
        .map_err(|e| SettingsError::Invalid(describe(e)))?;
    settings
        .database
        .validate()
        .map_err(|e| SettingsError::Invalid(e.to_string()))?;
    settings.server.validate().map_err(SettingsError::Invalid)?;
    settings.alerts.validate().map_err(SettingsError::Invalid)?;
    settings.web.validate().map_err(SettingsError::Invalid)?;
    settings
        .rate_limit
        .validate()
        .map_err(SettingsError::Invalid)?;
    settings
        .community
        .validate()
        .map_err(SettingsError::Invalid)?;
    settings
        .tiers
        .validate()
        .map_err(|e| SettingsError::Invalid(e.to_string()))?;
    settings
        .sources
        .resolve()
        .map_err(|e| SettingsError::Invalid(e.to_string()))?;
    Ok(settings)
}

/// figment's errors name the key and where its value came from; for environment
/// variables it names only the prefix, so the full variable name is added.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let from_env = e
                .metadata
                .as_ref()
                .is_some_and(|m| m.name.contains("environment"));
            if from_env && !e.path.is_empty() {
                let variable = format!("KAMIYO_{}", e.path.join("_")).to_ascii_uppercase();
                format!("{e} (variable {variable})")
            } else {
                e.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;
    use std::time::Duration;

    fn load_in_jail(overrides: &Overrides, file: Option<&Path>) -> Result<Settings, String> {
        load(file, overrides).map_err(|e| e.to_string())
    }

    #[test]
    fn sources_are_set_by_file_and_by_environment_per_source_name() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "kamiyo.toml",
                r#"
                [sources.my_mirror]
                url = "http://127.0.0.1:9/hacks.jsonl"
                format = "jsonl"
                "#,
            )?;
            jail.set_env("KAMIYO_SOURCES_DEFILLAMA_INTERVAL", "2s");
            jail.set_env("KAMIYO_SOURCES_MY_MIRROR_ENABLED", "false");
            jail.set_env("KAMIYO_SOURCES_ENABLED", "false");
            let settings = load_in_jail(&Overrides::default(), Some(Path::new("kamiyo.toml")))?;
            assert!(!settings.sources.enabled);
            let sources = settings.sources.resolve().map_err(|e| e.to_string())?;
            assert_eq!(sources[0].interval, Duration::from_secs(2));
            assert_eq!(sources[0].url, "https://api.llama.fi/hacks", "kept");
            let mirror = sources
                .iter()
                .find(|s| s.name == "my_mirror")
                .ok_or("no mirror")?;
            assert!(!mirror.enabled);
            jail.set_env("KAMIYO_SOURCES_REKT_INTERVAL", "10ms");
            let err = load_in_jail(&Overrides::default(), None).unwrap_err();
            assert!(err.contains("sources.rekt.interval"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn tiers_are_set_by_file_and_by_environment_per_tier_and_key() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "kamiyo.toml",
                r#"
                [tiers.free]
                delay = "0s"
                history = "all"
                per_day = 5000
                [tiers.anonymous]
                delay = "1h"
                "#,
            )?;
            jail.set_env("KAMIYO_TIERS_ANONYMOUS_DELAY", "0s");
            jail.set_env("KAMIYO_TIERS_ANONYMOUS_HISTORY", "30days");
            jail.set_env("KAMIYO_TIERS_PRO_PER_MINUTE", "600");
            let settings = load_in_jail(&Overrides::default(), Some(Path::new("kamiyo.toml")))?;
            let tiers = settings.tiers;
            assert_eq!(
                tiers.anonymous.delay,
                Duration::ZERO,
                "the environment wins"
            );
            assert_eq!(
                tiers.anonymous.history,
                Some(Duration::from_secs(30 * 86_400))
            );
            assert_eq!(
                tiers.anonymous.per_minute, 10,
                "a key left out keeps its default"
            );
            assert_eq!(tiers.pro.per_minute, 600);
            assert_eq!(tiers.free.history, None);
            assert_eq!(tiers.free.per_day, 5000);
            assert_eq!(tiers.team, kamiyo_domain::TierTable::default().team);
            Ok(())
        });
    }

    #[test]
    fn shared_rate_limits_are_set_by_file_and_environment_and_checked() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "kamiyo.toml",
                r#"
                [rate_limit]
                backend = "redis"
                timeout = "250ms"
                "#,
            )?;
            let refused = load_in_jail(&Overrides::default(), Some(Path::new("kamiyo.toml")))
                .expect_err("redis without a URL");
            assert!(
                refused.to_string().contains("rate_limit.redis_url"),
                "{refused}"
            );
            jail.set_env(
                "KAMIYO_RATE_LIMIT_REDIS_URL",
                "redis://:s3cr3t@cache.example:6379",
            );
            jail.set_env("KAMIYO_RATE_LIMIT_RETRY_INTERVAL", "2s");
            let settings = load_in_jail(&Overrides::default(), Some(Path::new("kamiyo.toml")))?;
            let limits = &settings.rate_limit;
            assert_eq!(
                limits.backend,
                kamiyo_api::request_limits::LimiterBackend::Redis
            );
            assert_eq!(limits.timeout, Duration::from_millis(250));
            assert_eq!(limits.retry_interval, Duration::from_secs(2));
            let shown = serde_json::to_string(&settings).unwrap_or_default();
            assert!(!shown.contains("s3cr3t"), "{shown}");
            jail.set_env("KAMIYO_RATE_LIMIT_TIMEOUT", "0s");
            let refused = load_in_jail(&Overrides::default(), Some(Path::new("kamiyo.toml")))
                .expect_err("a zero timeout");
            assert!(
                refused.to_string().contains("rate_limit.timeout"),
                "{refused}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_tier_table_that_cannot_work_stops_start_up_naming_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("KAMIYO_TIERS_PRO_PER_MINUTE", "0");
            let err = load_in_jail(&Overrides::default(), None).unwrap_err();
            assert!(
                err.contains("tiers.pro.per_minute must be at least 1"),
                "{err}"
            );

            jail.set_env("KAMIYO_TIERS_PRO_PER_MINUTE", "300");
            jail.set_env("KAMIYO_TIERS_FREE_HISTORY", "12h");
            let err = load_in_jail(&Overrides::default(), None).unwrap_err();
            assert!(
                err.contains("tiers.free.history") && err.contains("tiers.free.delay"),
                "{err}"
            );

            jail.set_env("KAMIYO_TIERS_FREE_HISTORY", "forever");
            let err = load_in_jail(&Overrides::default(), None).unwrap_err();
            assert!(err.contains("KAMIYO_TIERS_FREE_HISTORY"), "{err}");

            jail.set_env("KAMIYO_TIERS_FREE_HISTORY", "all");
            jail.set_env("KAMIYO_TIERS_GOLD_PER_MINUTE", "5");
            let err = load_in_jail(&Overrides::default(), None).unwrap_err();
            assert!(err.contains("gold"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn defaults_use_sqlite_in_the_working_directory() {
        Jail::expect_with(|_jail| {
            let settings = load_in_jail(&Overrides::default(), None)?;
            assert_eq!(settings.database.url.expose(), "sqlite://kamiyo.db");
            assert_eq!(settings.server.listen.to_string(), "127.0.0.1:8080");
            Ok(())
        });
    }

    #[test]
    fn file_then_environment_then_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "kamiyo.toml",
                r#"
                [database]
                url = "postgres://file@localhost/kamiyo"
                pool_max_size = 7
                acquire_timeout = "750ms"
                [server]
                listen = "0.0.0.0:9000"
                "#,
            )?;
            let file = Some(Path::new("kamiyo.toml"));
            let settings = load_in_jail(&Overrides::default(), file)?;
            assert_eq!(settings.database.pool_max_size, 7);
            assert_eq!(
                settings.database.acquire_timeout,
                Duration::from_millis(750)
            );

            jail.set_env("DATABASE_URL", "postgres://env@localhost/kamiyo");
            jail.set_env("KAMIYO_DATABASE_POOL_MAX_SIZE", "9");
            jail.set_env("KAMIYO_DATABASE_RETRY_MAX_ATTEMPTS", "5");
            jail.set_env("KAMIYO_DATABASE_MONITOR_SLOW_QUERY_THRESHOLD", "250ms");
            let settings = load_in_jail(&Overrides::default(), file)?;
            assert_eq!(
                settings.database.url.expose(),
                "postgres://env@localhost/kamiyo"
            );
            assert_eq!(settings.database.pool_max_size, 9);
            assert_eq!(settings.database.retry.max_attempts, 5);
            assert_eq!(
                settings.database.monitor.slow_query_threshold,
                Duration::from_millis(250)
            );

            jail.set_env(
                "KAMIYO_DATABASE_URL",
                "postgres://kamiyo-env@localhost/kamiyo",
            );
            let settings = load_in_jail(&Overrides::default(), file)?;
            assert_eq!(
                settings.database.url.expose(),
                "postgres://kamiyo-env@localhost/kamiyo"
            );

            let flags = Overrides {
                database_url: Some("sqlite://flag.db".into()),
                listen: Some("127.0.0.1:7000".parse().map_err(|e| format!("{e}"))?),
                no_migrate: true,
                log_format: Some(LogFormat::Json),
            };
            let settings = load_in_jail(&flags, file)?;
            assert_eq!(settings.database.url.expose(), "sqlite://flag.db");
            assert_eq!(settings.server.listen.to_string(), "127.0.0.1:7000");
            assert!(!settings.database.migrate_on_start);
            assert_eq!(settings.log.format, LogFormat::Json);
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_its_key_and_source() {
        Jail::expect_with(|jail| {
            jail.set_env("KAMIYO_DATABASE_POOL_MAX_SIZE", "lots");
            let err = load_in_jail(&Overrides::default(), None).unwrap_err();
            assert!(err.to_lowercase().contains("pool_max_size"), "{err}");
            assert!(err.contains("KAMIYO_DATABASE_POOL_MAX_SIZE"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("KAMIYO_DATABASE_POOL_MAXSIZE", "3");
            let err = load_in_jail(&Overrides::default(), None).unwrap_err();
            assert!(err.contains("pool_maxsize"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_misspelt_section_is_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("KAMIYO_DATABSE_URL", "postgres://x@y/z");
            let err = load_in_jail(&Overrides::default(), None).unwrap_err();
            assert!(err.contains("KAMIYO_DATABSE_URL"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_zero_deadline_is_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("KAMIYO_DATABASE_ACQUIRE_TIMEOUT", "0s");
            let err = load_in_jail(&Overrides::default(), None).unwrap_err();
            assert!(err.contains("database.acquire_timeout"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        Jail::expect_with(|_jail| {
            let err =
                load_in_jail(&Overrides::default(), Some(Path::new("nope.toml"))).unwrap_err();
            assert!(err.contains("nope.toml"), "{err}");
            Ok(())
        });
    }
}
