//! `kamiyo-bench`: tooling for the performance measurements in BENCHMARKS.md.
//!
//! `kamiyo-bench seed --database-url URL --incidents N [--seed S]` migrates a PostgreSQL
//! database with Kamiyo's schema and fills it with N synthetic incidents (see `synth`),
//! inserted in bulk straight into `exploits`, `exploit_chains`, `exploit_tx_hashes` and
//! `exploit_sources`. It bypasses the importer's dedup path on purpose: every synthetic
//! incident is distinct by construction, and going through `IncidentStore::ingest` (one
//! transaction and a dozen statements per claim) would take minutes instead of seconds.
//!
//! `kamiyo-bench pool [--json] [--quick] [--database-url URL]` measures the PostgreSQL
//! pool (`pool`, `stress`): acquire and release on an idle pool, the hand-off of a
//! released connection to a waiting task, how late a 200 ms acquisition deadline fires,
//! and `SELECT 1` throughput with many more tasks than connections, with the monitor on,
//! off, and through a bare deadpool-postgres pool for the wrapper's cost.
//!
//! `kamiyo-bench monitor [--json] [--quick]` measures the monitor alone (`monitor`): the
//! cost of recording a query, an acquisition, fingerprinting a new statement, and that a
//! flood of distinct statements stays within `max_statements`. It needs no database.
//!
//! `kamiyo-bench copy [--incidents N] [--repeat R] [--json] [--database-url URL |
//! --admin-url URL]` times `kamiyo db copy` (`copy`): a SQLite source of N synthetic
//! incidents copied onto PostgreSQL R times, each time into an empty target (a scratch
//! database it creates and drops, or a given empty one), with the median.
//!
//! `kamiyo-bench alerts [--json] [--quick]` measures alert delivery (`alerts`): latency
//! from an ingest's commit to a loopback receiver, with NOTIFY and polling, at 1 and 100
//! events/s; deliveries per second to 100 subscriptions and statements per delivery.
//!
//! `kamiyo-bench dedup [--data DIR] [--labels FILE] [--json]` scores merge quality on the
//! real files (`dedup`): recall over hand-judged pairs, and look-alike pairs merged.
//!
//! `pool` and `monitor` print one line per figure with the target beside it,
//! `copy` a line per run and the median; each prints one JSON object instead with
//! `--json`. `--quick` shrinks every trial count so that the tests can run them.
//! `kamiyo-bench stress --pool monitor-on|monitor-off|raw` runs one pool's stress alone,
//! for a profiler.
//! BENCHMARKS.md (sections 3 and 5) has the method and the figures.

mod alerts;
mod copy;
mod dedup;
mod fetch;
mod human;
mod monitor;
mod pool;
mod seed;
mod stats;
mod stress;
mod synth;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "kamiyo-bench", about = "Kamiyo benchmark tooling")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate a PostgreSQL database and fill it with synthetic incidents; prints JSON.
    Seed {
        /// postgres://... URL of the database to fill (it must exist).
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// How many incidents to insert.
        #[arg(long)]
        incidents: u32,
        /// RNG seed: the same seed and count give the same rows.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Distinct protocol names to draw from.
        #[arg(long, default_value_t = 300)]
        protocols: usize,
        /// Rows per INSERT statement.
        #[arg(long, default_value_t = 5_000)]
        batch_size: usize,
        /// Skip `VACUUM (ANALYZE)` after loading (planner statistics and the visibility
        /// map then wait for autovacuum).
        #[arg(long)]
        no_vacuum: bool,
    },
    /// Measure the PostgreSQL pool: acquisition, hand-off, deadline overshoot, throughput.
    Pool {
        /// postgres://... URL of a database to connect to (nothing is written).
        #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
        database_url: String,
        /// Print one JSON object instead of lines for people.
        #[arg(long)]
        json: bool,
        /// Few trials of each kind: seconds instead of minutes, for tests.
        #[arg(long)]
        quick: bool,
        /// Tasks issuing queries in the stress runs.
        #[arg(long, default_value_t = 50)]
        stress_workers: usize,
        /// Connections of each pool in the stress runs.
        #[arg(long, default_value_t = 16)]
        stress_pool_size: usize,
        /// `SELECT 1` executions per stress run [default: 200000, 2000 with --quick].
        #[arg(long)]
        stress_queries: Option<u64>,
        /// Rounds of the three stress runs (monitor on, off, bare deadpool) [default: 5,
        /// 1 with --quick].
        #[arg(long)]
        rounds: Option<usize>,
    },
    /// One stress run on one pool alone, for profiling (perf, valgrind --tool=callgrind).
    Stress {
        #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
        database_url: String,
        /// Which pool to drive.
        #[arg(long, value_enum)]
        pool: pool::Variant,
        #[arg(long, default_value_t = 50)]
        workers: usize,
        #[arg(long, default_value_t = 16)]
        pool_size: usize,
        #[arg(long, default_value_t = 200_000)]
        queries: u64,
    },
    /// Fetch a DeFiLlama API answer from a loopback server into a fresh SQLite database,
    /// then ask again with its ETag (304) `--repeat` times; time both and count the
    /// database statements. Prints JSON; `invalid` says when a run did not do what it
    /// measures.
    Fetch {
        /// A DeFiLlama API answer to serve (e.g. ../shared/data/raw/
        /// defillama_hacks_api_shape.json); without it, `--records` synthetic ones.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 450)]
        records: usize,
        /// Conditional (304) fetches after the first.
        #[arg(long, default_value_t = 20)]
        repeat: usize,
    },
    /// Merge quality on the real files: ingest them and score the hand-judged pairs of
    /// eval/dedup_labels.txt (recall, wrong merges). Exits 1 on a wrong merge.
    Dedup {
        /// The directory of the real files (../shared/data/raw from the repository).
        #[arg(long, default_value = "../shared/data/raw")]
        data: std::path::PathBuf,
        #[arg(long, default_value = "crates/kamiyo-bench/eval/dedup_labels.txt")]
        labels: std::path::PathBuf,
        /// Print one JSON object instead of lines for people.
        #[arg(long)]
        json: bool,
    },
    /// Alert delivery to a loopback receiver: latency from commit to delivery (with
    /// NOTIFY and polling), deliveries per second to 100 subscriptions, statements per
    /// delivery. PostgreSQL (KAMIYO_TEST_ADMIN_URL or the local server).
    Alerts {
        /// Print one JSON object instead of lines for people.
        #[arg(long)]
        json: bool,
        /// Small runs: seconds, for tests.
        #[arg(long)]
        quick: bool,
    },
    /// Measure the monitor alone (no database): recording costs and the statement bound.
    Monitor {
        /// Print one JSON object instead of lines for people.
        #[arg(long)]
        json: bool,
        /// Few trials: well under a second, for tests.
        #[arg(long)]
        quick: bool,
    },
    /// Time `kamiyo db copy`: build a SQLite source of synthetic incidents, copy it onto
    /// PostgreSQL `--repeat` times into an empty target, print each run and the median.
    Copy {
        /// Incidents in the source (each with a chain, a transaction hash and a claim).
        #[arg(long, default_value_t = 10_000)]
        incidents: u32,
        /// Copies to time; each goes into an empty target.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// postgres://... URL of an existing, EMPTY database to copy into: migrated before
        /// the first run, emptied between runs, left holding the last run's copy. Never
        /// taken from DATABASE_URL.
        #[arg(long)]
        database_url: Option<String>,
        /// postgres://... URL of a maintenance database: each run copies into a database
        /// created on that server for it (so the run also creates the schema) and dropped
        /// after it. When no target is given: the local test server's.
        #[arg(long, conflicts_with = "database_url")]
        admin_url: Option<String>,
        /// Print one JSON object instead of lines for people.
        #[arg(long)]
        json: bool,
    },
}

/// The local test server's maintenance database: `pool` only reads from it; `copy`
/// creates and drops its scratch databases there when given no target.
const DEFAULT_DATABASE_URL: &str = "postgres://root@127.0.0.1:5432/postgres";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Seed {
            database_url,
            incidents,
            seed,
            protocols,
            batch_size,
            no_vacuum,
        } => {
            let report = seed::run(seed::Options {
                database_url,
                incidents,
                seed,
                protocols,
                batch_size,
                vacuum: !no_vacuum,
            })
            .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Pool {
            database_url,
            json,
            quick,
            stress_workers,
            stress_pool_size,
            stress_queries,
            rounds,
        } => {
            let report = pool::run(pool::Options {
                database_url,
                quick,
                stress: stress::Setup {
                    workers: stress_workers,
                    pool_size: stress_pool_size,
                    queries: stress_queries.unwrap_or(if quick { 2_000 } else { 200_000 }),
                },
                rounds: rounds.unwrap_or(if quick { 1 } else { 5 }),
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", human::pool(&report));
            }
        }
        Command::Stress {
            database_url,
            pool,
            workers,
            pool_size,
            queries,
        } => {
            let setup = stress::Setup {
                workers,
                pool_size,
                queries,
            };
            let outcome = pool::stress_one(&database_url, setup, pool).await?;
            println!(
                "{pool:?}: {queries} queries, {:.0} q/s, CPU per query {:.2} us client \
                 {:.2} us server, {} failed",
                outcome.qps,
                outcome.cpu_per_query.as_secs_f64() * 1e6,
                outcome.server_cpu_per_query.as_secs_f64() * 1e6,
                outcome.errors
            );
        }
        Command::Fetch {
            file,
            records,
            repeat,
        } => {
            let body = match file {
                Some(path) => Some(
                    std::fs::read(&path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
                ),
                None => None,
            };
            let report = fetch::run(body, records, repeat).await?;
            println!("{}", serde_json::to_string(&report)?);
            if let Some(invalid) = &report.invalid {
                anyhow::bail!("invalid run: {invalid}");
            }
        }
        Command::Dedup { data, labels, json } => {
            let text = std::fs::read_to_string(&labels)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", labels.display()))?;
            let report = dedup::run(&data, &dedup::read_labels(&text)?).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} records ({} rejected) -> {} incidents",
                    report.records, report.rejected, report.incidents
                );
                println!(
                    "same pairs: {}/{} merged, recall {:.2}",
                    report.same_merged, report.same_pairs, report.recall
                );
                println!(
                    "look-alike pairs: {}/{} wrongly merged",
                    report.wrongly_merged, report.different_pairs
                );
                for miss in &report.misses {
                    println!("missed: {miss}");
                }
                for wrong in &report.wrong_merges {
                    println!("WRONG: {wrong}");
                }
            }
            if report.wrongly_merged > 0 {
                anyhow::bail!("{} look-alike pairs merged", report.wrongly_merged);
            }
        }
        Command::Alerts { json, quick } => {
            let report = alerts::run(quick).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for l in &report.latency {
                    println!(
                        "latency at {:>3} events/s, {:<7}: p50 {:>8.1} ms, p99 {:>8.1} ms, max {:>8.1} ms ({} events; target p99 <= {})",
                        l.rate_per_second,
                        if l.listen { "NOTIFY" } else { "polling" },
                        l.p50_ms,
                        l.p99_ms,
                        l.max_ms,
                        l.events,
                        if l.listen { "500 ms" } else { "poll interval (5 s) + 500 ms" }
                    );
                }
                let t = &report.throughput;
                println!(
                    "throughput: {} deliveries to {} subscriptions in {:.2} s = {:.0} deliveries/s (target >= 2,000), {:.2} statements per delivery",
                    t.deliveries, t.subscriptions, t.seconds, t.deliveries_per_second, t.statements_per_delivery
                );
            }
        }
        Command::Monitor { json, quick } => {
            let report = monitor::run(&monitor::Options { quick });
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", human::monitor(&report));
            }
        }
        Command::Copy {
            incidents,
            repeat,
            database_url,
            admin_url,
            json,
        } => {
            // Only an explicit --database-url names a database to write into: an exported
            // DATABASE_URL may well be a deployment's, and synthetic incidents must never
            // land there.
            let target = match (admin_url, database_url) {
                (Some(admin_url), _) => copy::Target::Scratch { admin_url },
                (None, Some(url)) => copy::Target::Existing { url },
                (None, None) => copy::Target::Scratch {
                    admin_url: DEFAULT_DATABASE_URL.to_owned(),
                },
            };
            let report = copy::run(copy::Options {
                incidents,
                repeat,
                target,
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", human::copy(&report));
            }
            anyhow::ensure!(
                report.all_verified,
                "a copy failed its verification (its report is on stderr above)"
            );
        }
    }
    Ok(())
}
