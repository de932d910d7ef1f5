//! The monitor's numbers as Prometheus metrics, read at scrape time. Names follow the
//! OpenTelemetry database-client conventions (`db.client.connection.*`,
//! `db.client.operation.duration`) with dots as underscores; Kamiyo's own extras are
//! prefixed `kamiyo_db_`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::prometheus::Exposition;
use super::{CloseReason, PoolMonitor};
use crate::pool_state::PoolState;

const POOL: &str = "db_client_connection_pool_name";

pub(crate) fn write(e: &mut Exposition, pools: &[(Arc<PoolMonitor>, PoolState)]) {
    let per_pool =
        |value: &dyn Fn(&PoolMonitor, &PoolState) -> f64| -> Vec<(Vec<(&str, &str)>, f64)> {
            pools
                .iter()
                .map(|(m, s)| (vec![(POOL, m.pool())], value(m, s)))
                .collect()
        };

    let mut states = Vec::new();
    for (monitor, state) in pools {
        states.push((
            vec![
                (POOL, monitor.pool()),
                ("db_client_connection_state", "idle"),
            ],
            state.idle as f64,
        ));
        states.push((
            vec![
                (POOL, monitor.pool()),
                ("db_client_connection_state", "used"),
            ],
            state.in_use as f64,
        ));
    }
    gauge(
        e,
        "db_client_connection_count",
        "Connections open, by state (idle, used).",
        &states,
    );
    gauge(
        e,
        "db_client_connection_max",
        "Most connections the pool may open.",
        &per_pool(&|_, s| s.max_size as f64),
    );
    gauge(
        e,
        "db_client_connection_pending_requests",
        "Callers waiting for a connection.",
        &per_pool(&|_, s| s.waiting as f64),
    );
    counter(
        e,
        "db_client_connection_timeouts_total",
        "Acquisitions that ran out of time.",
        &per_pool(&|m, _| m.timeouts.load(Ordering::Relaxed) as f64),
    );
    counter(
        e,
        "kamiyo_db_acquisitions_total",
        "Connections handed out.",
        &per_pool(&|m, _| m.acquisitions.load(Ordering::Relaxed) as f64),
    );
    let mut failures = Vec::new();
    for (monitor, _) in pools {
        for (reason, counter) in [
            ("timeout", &monitor.timeouts),
            ("connect", &monitor.connect_errors),
            ("other", &monitor.other_failures),
        ] {
            failures.push((
                vec![(POOL, monitor.pool()), ("reason", reason)],
                counter.load(Ordering::Relaxed) as f64,
            ));
        }
    }
    counter(
        e,
        "kamiyo_db_acquisition_failures_total",
        "Failed acquisitions, by reason.",
        &failures,
    );
    counter(
        e,
        "kamiyo_db_connections_created_total",
        "Connections opened.",
        &per_pool(&|m, _| m.created.load(Ordering::Relaxed) as f64),
    );
    let mut closed = Vec::new();
    for (monitor, _) in pools {
        for (index, reason) in CloseReason::ALL.iter().enumerate() {
            closed.push((
                vec![(POOL, monitor.pool()), ("reason", reason.label())],
                monitor.closed[index].load(Ordering::Relaxed) as f64,
            ));
        }
    }
    counter(
        e,
        "kamiyo_db_connections_closed_total",
        "Connections closed, by reason.",
        &closed,
    );
    counter(
        e,
        "kamiyo_db_slow_queries_total",
        "Statement executions at or above the slow-query threshold.",
        &per_pool(&|m, _| m.queries.slow_total() as f64),
    );
    gauge(
        e,
        "kamiyo_db_leaked_connections",
        "Connections held longer than the leak threshold right now.",
        &per_pool(&|m, _| m.leaks().len() as f64),
    );
    gauge(
        e,
        "kamiyo_db_statements_tracked",
        "Distinct statements with statistics.",
        &per_pool(&|m, _| m.queries.tracked() as f64),
    );
    counter(
        e,
        "kamiyo_db_statement_evictions_total",
        "Statements dropped from the statistics to stay within the bound.",
        &per_pool(&|m, _| m.queries.evictions() as f64),
    );

    for (name, help, pick) in [
        (
            "db_client_connection_wait_time_seconds",
            "Time to obtain a connection from the pool.",
            0usize,
        ),
        (
            "db_client_connection_use_time_seconds",
            "Time a connection was held.",
            1,
        ),
        (
            "db_client_connection_create_time_seconds",
            "Time to open a connection.",
            2,
        ),
    ] {
        let snapshots: Vec<_> = pools
            .iter()
            .map(|(m, _)| {
                let histogram = match pick {
                    0 => m.wait.snapshot(),
                    1 => m.use_time.snapshot(),
                    _ => m.create_time.snapshot(),
                };
                (m.pool(), histogram)
            })
            .collect();
        let labels: Vec<[(&str, &str); 1]> =
            snapshots.iter().map(|(pool, _)| [(POOL, *pool)]).collect();
        let series: Vec<_> = labels
            .iter()
            .zip(&snapshots)
            .map(|(l, (_, h))| (&l[..], h))
            .collect();
        e.histogram(name, help, &series);
    }

    let operations: Vec<(&PoolMonitor, String, super::histogram::Histogram)> = pools
        .iter()
        .flat_map(|(m, _)| {
            m.queries
                .summaries()
                .into_iter()
                .map(move |(summary, histogram)| (m.as_ref(), summary, histogram))
        })
        .collect();
    let labels: Vec<[(&str, &str); 3]> = operations
        .iter()
        .map(|(m, summary, _)| {
            [
                (POOL, m.pool()),
                ("db_system_name", m.system),
                ("db_query_summary", summary.as_str()),
            ]
        })
        .collect();
    let series: Vec<_> = labels
        .iter()
        .zip(&operations)
        .map(|(l, (_, _, h))| (&l[..], h))
        .collect();
    e.histogram(
        "db_client_operation_duration_seconds",
        "Duration of database statements, by statement summary.",
        &series,
    );
}

fn gauge(e: &mut Exposition, name: &str, help: &str, rows: &[(Vec<(&str, &str)>, f64)]) {
    let samples: Vec<_> = rows.iter().map(|(labels, v)| (&labels[..], *v)).collect();
    e.gauge(name, help, &samples);
}

fn counter(e: &mut Exposition, name: &str, help: &str, rows: &[(Vec<(&str, &str)>, f64)]) {
    let samples: Vec<_> = rows
        .iter()
        .map(|(labels, v)| (&labels[..], *v as u64))
        .collect();
    e.counter(name, help, &samples);
}
