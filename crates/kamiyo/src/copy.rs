//! `kamiyo db copy`: the command-line face of `kamiyo_store::copy` (progress bar, report,
//! exit code). The copy itself, its transaction and its checks live in the store.

use std::io::IsTerminal;
use std::process::ExitCode;

use kamiyo_store::copy::{self, CopyError, CopyOptions, CopyProgress, CopyReport};

use crate::cli::CopyArgs;
use crate::settings::Settings;

/// The target's sessions use the configured database settings (connect timeout,
/// keepalives, application name, migration timeouts) with `--to` as the URL.
pub async fn run(settings: Settings, args: CopyArgs) -> anyhow::Result<ExitCode> {
    let mut target = settings.database;
    target.url = args.to;
    let options = CopyOptions {
        force: args.force,
        batch_rows: args.batch_rows,
        sample_rows: args.sample_rows,
        lock_timeout: args.lock_timeout.into(),
        statement_timeout: args.statement_timeout.into(),
        ..CopyOptions::default()
    };
    let bar = Bar::new();
    let outcome = copy::sqlite_to_postgres(&args.from, &target, &options, &bar).await;
    bar.0.finish_and_clear();
    match outcome {
        Ok(report) => {
            print_report(&report, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            if let CopyError::Verification { report } = &error {
                print_report(report, args.json)?;
            } else if args.json {
                println!("{}", serde_json::json!({ "error": error.with_causes() }));
            }
            Err(error.into())
        }
    }
}

fn print_report(report: &CopyReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// One bar, reused per table: rows of the table being copied, or the current stage.
/// Hidden when stderr is not a terminal (a pipe, a log file, CI).
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Bar(indicatif::ProgressBar::hidden());
        }
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg:24} {bar:40} {pos}/{len} rows {elapsed}")
        {
            bar.set_style(style);
        }
        Bar(bar)
    }
}

impl CopyProgress for Bar {
    fn stage(&self, stage: &str) {
        self.0.set_length(0);
        self.0.set_message(stage.to_owned());
    }

    fn table_started(&self, table: &str, rows: u64) {
        self.0.set_length(rows);
        self.0.set_position(0);
        self.0.set_message(table.to_owned());
    }

    fn rows_copied(&self, rows: u64) {
        self.0.inc(rows);
    }
}
