//! Thresholds of the monitor; every one configurable (`[database.monitor]`,
//! `KAMIYO_DATABASE_MONITOR_*`), every default finite.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Off: pool state is still read from the pool, but nothing is recorded (no
    /// statistics, no leak detection).
    pub enabled: bool,
    /// Distinct statements tracked; past it the least used is evicted.
    pub max_statements: usize,
    /// An execution at least this long is logged at WARN and kept in the slow ring.
    #[serde(with = "humantime_serde")]
    pub slow_query_threshold: Duration,
    /// How many recent slow executions are kept.
    pub slow_query_log_size: usize,
    /// Report connections held past `leak_threshold`.
    pub leak_detection: bool,
    #[serde(with = "humantime_serde")]
    pub leak_threshold: Duration,
    /// How often the leak watchdog looks.
    #[serde(with = "humantime_serde")]
    pub leak_check_interval: Duration,
    /// Health looks at this much recent history.
    #[serde(with = "humantime_serde")]
    pub health_window: Duration,
    /// Utilisation (in use / max, %) above which health warns.
    pub utilization_warn_pct: f64,
    /// Utilisation above which health is degraded.
    pub utilization_degraded_pct: f64,
    /// Mean acquisition wait over the window above which health is degraded.
    #[serde(with = "humantime_serde")]
    pub acquire_wait_degraded: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            enabled: true,
            max_statements: 1000,
            slow_query_threshold: Duration::from_millis(1000),
            slow_query_log_size: 100,
            leak_detection: true,
            leak_threshold: Duration::from_secs(30),
            leak_check_interval: Duration::from_secs(5),
            health_window: Duration::from_secs(300),
            utilization_warn_pct: 80.0,
            utilization_degraded_pct: 90.0,
            acquire_wait_degraded: Duration::from_millis(100),
        }
    }
}

impl MonitorConfig {
    /// The first invalid field's name and why.
    pub fn invalid_field(&self) -> Option<(&'static str, &'static str)> {
        if self.max_statements == 0 {
            return Some(("max_statements", "must be at least 1"));
        }
        for (field, value) in [
            ("slow_query_threshold", self.slow_query_threshold),
            ("leak_threshold", self.leak_threshold),
            ("leak_check_interval", self.leak_check_interval),
            ("health_window", self.health_window),
            ("acquire_wait_degraded", self.acquire_wait_degraded),
        ] {
            if value.is_zero() {
                return Some((field, "must be greater than zero"));
            }
        }
        let pct_ok = |p: f64| (0.0..=100.0).contains(&p);
        if !pct_ok(self.utilization_warn_pct) || !pct_ok(self.utilization_degraded_pct) {
            return Some(("utilization_warn_pct", "percentages must be within 0..=100"));
        }
        if self.utilization_warn_pct > self.utilization_degraded_pct {
            return Some((
                "utilization_warn_pct",
                "must not be above utilization_degraded_pct",
            ));
        }
        None
    }
}
