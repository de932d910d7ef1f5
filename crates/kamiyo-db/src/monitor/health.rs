//! Health from what the monitor saw in its window, never cumulative since start. Each
//! warning says what, how much, and the threshold.

use serde::Serialize;

use super::config::MonitorConfig;
use super::window::WindowTotals;
use crate::pool_state::PoolState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

impl HealthStatus {
    /// Exit code of `kamiyo db health`: 0 healthy, 1 degraded, 2 unhealthy.
    pub fn exit_code(self) -> u8 {
        match self {
            HealthStatus::Healthy => 0,
            HealthStatus::Degraded => 1,
            HealthStatus::Unhealthy => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthWarning {
    pub pool: String,
    /// `utilization`, `acquire_timeouts`, `acquire_wait`, `leaks` or `unreachable`.
    pub check: &'static str,
    /// The status this warning alone implies.
    pub severity: HealthStatus,
    pub message: String,
    pub value: f64,
    pub threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    pub status: HealthStatus,
    /// The highest utilisation among the pools, in percent.
    pub utilization_pct: f64,
    pub warnings: Vec<HealthWarning>,
}

/// What one pool contributes to health.
pub(crate) struct PoolEvidence<'a> {
    pub pool: &'a str,
    pub state: PoolState,
    pub window: WindowTotals,
    pub leaks: usize,
}

pub(crate) fn utilization_pct(state: &PoolState) -> f64 {
    if state.max_size == 0 {
        return 0.0;
    }
    state.in_use as f64 * 100.0 / state.max_size as f64
}

pub(crate) fn evaluate(
    config: &MonitorConfig,
    pools: &[PoolEvidence<'_>],
    unreachable: Option<&str>,
) -> HealthReport {
    let mut warnings = Vec::new();
    let mut utilization_max: f64 = 0.0;
    for evidence in pools {
        let pool = evidence.pool;
        let utilization = utilization_pct(&evidence.state);
        utilization_max = utilization_max.max(utilization);
        if utilization > config.utilization_warn_pct {
            let (severity, threshold) = if utilization > config.utilization_degraded_pct {
                (HealthStatus::Degraded, config.utilization_degraded_pct)
            } else {
                (HealthStatus::Healthy, config.utilization_warn_pct)
            };
            warnings.push(HealthWarning {
                pool: pool.to_owned(),
                check: "utilization",
                severity,
                message: format!(
                    "pool \"{pool}\" utilisation is {utilization:.1}% ({} of {} in use, {} waiting), above {threshold}%",
                    evidence.state.in_use, evidence.state.max_size, evidence.state.waiting
                ),
                value: utilization,
                threshold,
            });
        }
        let window = &evidence.window;
        if window.timeouts > 0 {
            warnings.push(HealthWarning {
                pool: pool.to_owned(),
                check: "acquire_timeouts",
                severity: HealthStatus::Degraded,
                message: format!(
                    "{} acquisition timeout(s) on pool \"{pool}\" in the last {}s (threshold 0)",
                    window.timeouts, window.window_seconds
                ),
                value: window.timeouts as f64,
                threshold: 0.0,
            });
        }
        let threshold_ms = config.acquire_wait_degraded.as_secs_f64() * 1e3;
        if window.acquisitions > 0 && window.mean_wait_ms > threshold_ms {
            warnings.push(HealthWarning {
                pool: pool.to_owned(),
                check: "acquire_wait",
                severity: HealthStatus::Degraded,
                message: format!(
                    "mean acquisition wait on pool \"{pool}\" is {:.1} ms over the last {}s, above {threshold_ms} ms",
                    window.mean_wait_ms, window.window_seconds
                ),
                value: window.mean_wait_ms,
                threshold: threshold_ms,
            });
        }
        if evidence.leaks > 0 {
            warnings.push(HealthWarning {
                pool: pool.to_owned(),
                check: "leaks",
                severity: HealthStatus::Degraded,
                message: format!(
                    "{} connection(s) of pool \"{pool}\" held longer than {}s (leak threshold)",
                    evidence.leaks,
                    config.leak_threshold.as_secs_f64()
                ),
                value: evidence.leaks as f64,
                threshold: config.leak_threshold.as_secs_f64(),
            });
        }
    }
    if let Some(reason) = unreachable {
        warnings.push(HealthWarning {
            pool: crate::PRIMARY_POOL.to_owned(),
            check: "unreachable",
            severity: HealthStatus::Unhealthy,
            message: format!("the database does not answer: {reason}"),
            value: 1.0,
            threshold: 0.0,
        });
    }
    HealthReport {
        status: warnings
            .iter()
            .map(|w| w.severity)
            .max()
            .unwrap_or(HealthStatus::Healthy),
        utilization_pct: utilization_max,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(in_use: usize, max: usize, waiting: usize) -> PoolState {
        PoolState {
            max_size: max,
            open: in_use,
            idle: 0,
            in_use,
            waiting,
        }
    }

    fn quiet_window() -> WindowTotals {
        WindowTotals {
            window_seconds: 300.0,
            acquisitions: 0,
            timeouts: 0,
            failures: 0,
            mean_wait_ms: 0.0,
        }
    }

    fn evaluate_one(state: PoolState, window: WindowTotals, leaks: usize) -> HealthReport {
        let evidence = [PoolEvidence {
            pool: "primary",
            state,
            window,
            leaks,
        }];
        evaluate(&MonitorConfig::default(), &evidence, None)
    }

    #[test]
    fn utilisation_warns_above_80_and_degrades_above_90() {
        assert_eq!(
            evaluate_one(state(8, 10, 0), quiet_window(), 0)
                .warnings
                .len(),
            0
        );
        let warn = evaluate_one(state(17, 20, 0), quiet_window(), 0);
        assert_eq!(warn.status, HealthStatus::Healthy);
        assert_eq!(warn.warnings[0].threshold, 80.0);
        let degraded = evaluate_one(state(10, 10, 7), quiet_window(), 0);
        assert_eq!(degraded.status, HealthStatus::Degraded);
        assert!(
            degraded.warnings[0].message.contains("100.0%"),
            "{:?}",
            degraded.warnings
        );
        assert!(degraded.warnings[0].message.contains("7 waiting"));
    }

    #[test]
    fn timeouts_slow_acquisitions_and_leaks_degrade() {
        let mut window = quiet_window();
        window.timeouts = 2;
        window.acquisitions = 10;
        window.mean_wait_ms = 250.0;
        let report = evaluate_one(state(0, 10, 0), window, 1);
        let checks: Vec<&str> = report.warnings.iter().map(|w| w.check).collect();
        assert_eq!(checks, vec!["acquire_timeouts", "acquire_wait", "leaks"]);
        assert_eq!(report.status, HealthStatus::Degraded);
    }

    #[test]
    fn unreachable_is_unhealthy() {
        let report = evaluate(&MonitorConfig::default(), &[], Some("connection refused"));
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.status.exit_code(), 2);
    }
}
