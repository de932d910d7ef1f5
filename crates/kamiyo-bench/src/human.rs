//! Human-readable output: one line per figure with its unit, and the target
//! beside it when there is one, marked `ok` or `MISS`.

use crate::copy;
use crate::monitor;
use crate::pool;

#[derive(Debug, Clone, Copy)]
enum Goal {
    None,
    AtMost(f64),
    AtLeast(f64),
    Exactly(f64),
}

struct Line {
    label: String,
    value: f64,
    unit: &'static str,
    goal: Goal,
    note: &'static str,
}

fn line(label: impl Into<String>, value: f64, unit: &'static str, goal: Goal) -> Line {
    Line {
        label: label.into(),
        value,
        unit,
        goal,
        note: "",
    }
}

fn render(lines: &[Line]) -> String {
    let mut out = String::new();
    for l in lines {
        let value = if l.value.abs() >= 100.0 || l.value == l.value.trunc() {
            format!("{:.0}", l.value)
        } else {
            format!("{:.2}", l.value)
        };
        let target = match l.goal {
            Goal::None => String::new(),
            Goal::AtMost(t) => format!(
                "target <= {t} {}  {}",
                l.unit,
                if l.value <= t { "ok" } else { "MISS" }
            ),
            Goal::AtLeast(t) => format!(
                "target >= {t} {}  {}",
                l.unit,
                if l.value >= t { "ok" } else { "MISS" }
            ),
            Goal::Exactly(t) => {
                format!("must be {t}  {}", if l.value == t { "ok" } else { "MISS" })
            }
        };
        let text = format!(
            "{:<52} {:>10} {:<4} {target}{}{}",
            l.label,
            value,
            l.unit,
            if l.note.is_empty() || target.is_empty() {
                ""
            } else {
                "  "
            },
            l.note
        );
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// `other / on` in percent: the throughput `on` would reach relative to `other` on a
/// machine whose CPU is the limit, whatever else runs on it. Zero without figures.
fn cpu_ratio(on: f64, other: f64) -> f64 {
    if on > 0.0 && other > 0.0 {
        other / on * 100.0
    } else {
        0.0
    }
}

pub fn pool(r: &pool::Report) -> String {
    let on_cpu = r.stress_cpu_us_per_query_monitored + r.stress_server_cpu_us_per_query_monitored;
    let off_cpu =
        r.stress_cpu_us_per_query_unmonitored + r.stress_server_cpu_us_per_query_unmonitored;
    let raw_cpu = r.raw_deadpool_cpu_us_per_query + r.raw_deadpool_server_cpu_us_per_query;
    let mut bare = line(
        "acquire + release, idle pool, bare deadpool-postgres",
        r.raw_deadpool_acquire_release_ns,
        "ns",
        Goal::None,
    );
    bare.note = "(for comparison)";
    let mut monitored = line(
        "stress throughput, monitor on",
        r.stress_qps_monitored,
        "q/s",
        Goal::None,
    );
    monitored.note = "(target: >= 80 % of pgbench at 16 clients; bench/pool.sh)";
    let lines = [
        line(
            "acquire + release, idle pool, monitor on",
            r.uncontended_acquire_release_ns,
            "ns",
            Goal::AtMost(1000.0),
        ),
        line(
            "acquire + release, idle pool, monitor off",
            r.uncontended_acquire_release_unmonitored_ns,
            "ns",
            Goal::None,
        ),
        bare,
        line(
            format!(
                "hand-off to a waiting task, p50 ({} trials)",
                r.handoff_trials
            ),
            r.handoff_p50_us,
            "us",
            Goal::None,
        ),
        line(
            "hand-off to a waiting task, p99",
            r.handoff_p99_us,
            "us",
            Goal::AtMost(1000.0),
        ),
        line(
            format!(
                "timeout overshoot past {} ms, p50 ({} trials)",
                r.timeout_deadline_ms, r.timeout_trials
            ),
            r.timeout_overshoot_p50_ms,
            "ms",
            Goal::None,
        ),
        line(
            "timeout overshoot, p99",
            r.timeout_overshoot_p99_ms,
            "ms",
            Goal::AtMost(10.0),
        ),
        monitored,
        line(
            "stress throughput, monitor off",
            r.stress_qps_unmonitored,
            "q/s",
            Goal::None,
        ),
        line(
            "stress throughput, bare deadpool-postgres",
            r.raw_deadpool_qps,
            "q/s",
            Goal::None,
        ),
        line(
            "client CPU per query, monitor on",
            r.stress_cpu_us_per_query_monitored,
            "us",
            Goal::None,
        ),
        line(
            "client CPU per query, monitor off",
            r.stress_cpu_us_per_query_unmonitored,
            "us",
            Goal::None,
        ),
        line(
            "client CPU per query, bare deadpool-postgres",
            r.raw_deadpool_cpu_us_per_query,
            "us",
            Goal::None,
        ),
        line(
            "server CPU per query, monitor on",
            r.stress_server_cpu_us_per_query_monitored,
            "us",
            Goal::None,
        ),
        line(
            "server CPU per query, monitor off",
            r.stress_server_cpu_us_per_query_unmonitored,
            "us",
            Goal::None,
        ),
        line(
            "server CPU per query, bare deadpool-postgres",
            r.raw_deadpool_server_cpu_us_per_query,
            "us",
            Goal::None,
        ),
        line(
            "monitor on / bare deadpool-postgres (paired by round)",
            r.monitored_vs_raw_pct,
            "%",
            Goal::AtLeast(95.0),
        ),
        line(
            "monitoring overhead, 1 - on/off (paired by round)",
            r.monitoring_overhead_pct,
            "%",
            Goal::AtMost(3.0),
        ),
        line(
            "CPU-bound estimate: bare / on, client + server CPU",
            cpu_ratio(on_cpu, raw_cpu),
            "%",
            Goal::AtLeast(95.0),
        ),
        line(
            "CPU-bound estimate: monitoring overhead, 1 - off/on",
            100.0 - cpu_ratio(on_cpu, off_cpu),
            "%",
            Goal::AtMost(3.0),
        ),
        line(
            "failed stress queries",
            r.stress_errors as f64,
            "",
            Goal::Exactly(0.0),
        ),
    ];
    format!(
        "stress: {} workers, pool of {}, {} x SELECT 1 per run, median of {} round(s)\n{}",
        r.stress_workers,
        r.stress_pool_size,
        r.stress_queries,
        r.stress_rounds,
        render(&lines)
    )
}

pub fn monitor(r: &monitor::Report) -> String {
    let lines = [
        line(
            "record_query, statement already seen",
            r.record_query_ns,
            "ns",
            Goal::AtMost(1000.0),
        ),
        line(
            "fingerprint of a new statement",
            r.fingerprint_new_statement_us,
            "us",
            Goal::None,
        ),
        line(
            "record one acquisition and its release",
            r.record_acquisition_ns,
            "ns",
            Goal::None,
        ),
        line(
            "record_query, new statement, registry full",
            r.record_new_statement_at_bound_us,
            "us",
            Goal::None,
        ),
        line(
            format!("statements tracked after {} distinct", r.flood_statements),
            r.tracked_statements_after_flood as f64,
            "",
            Goal::Exactly(r.max_statements as f64),
        ),
    ];
    render(&lines)
}

pub fn copy(r: &copy::Report) -> String {
    let mut out = format!(
        "copy of {} incidents ({} rows) from a {:.1} MB SQLite file built in {:.2} s\n\
         target: {}\n",
        r.incidents,
        r.source_rows,
        r.source_bytes as f64 / 1e6,
        r.source_build_seconds,
        match r.target_mode {
            "scratch" => format!(
                "a database created for each run (schema included in the time) on {}",
                r.target
            ),
            _ => format!(
                "{}, migrated before the first run, emptied between runs",
                r.target
            ),
        }
    );
    out.push_str(&format!(
        "{:<7} {:>9} {:>9} {:>10} {:>12}  verified\n",
        "run", "seconds", "rows", "rows/s", "incidents/s"
    ));
    for run in &r.runs {
        out.push_str(&format!(
            "{:<7} {:>9.3} {:>9} {:>10.0} {:>12.0}  {}\n",
            run.run,
            run.seconds,
            run.rows_copied,
            run.rows_per_second,
            run.incidents_per_second,
            if run.verified { "yes" } else { "NO" }
        ));
        let stages: Vec<String> = run
            .stages
            .iter()
            .map(|s| format!("{} {:.3}", s.stage, s.seconds))
            .collect();
        out.push_str(&format!("        stages (s): {}\n", stages.join(", ")));
    }
    out.push_str(&format!(
        "{:<7} {:>9.3} {:>9} {:>10.0} {:>12.0}  {}\n",
        "median",
        r.median_seconds,
        "",
        r.median_rows_per_second,
        r.median_incidents_per_second,
        if r.all_verified { "all" } else { "NOT ALL" }
    ));
    out
}
