//! `kamiyo incidents`: operations over all stored incidents (a remerge under the
//! current rules).

use std::process::ExitCode;

use anyhow::Context;
use kamiyo_store::{IncidentStore, RemergeReport};

use crate::cli::IncidentsAction;
use crate::settings::Settings;
use crate::startup::prepare_kamiyo_database;

pub async fn incidents(settings: Settings, action: IncidentsAction) -> anyhow::Result<ExitCode> {
    let database = prepare_kamiyo_database(&settings.database).await?;
    let store = IncidentStore::new(database.clone());
    match action {
        IncidentsAction::Remerge { dry_run, json } => {
            let report = store
                .remerge(dry_run)
                .await
                .context("cannot remerge the stored incidents")?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", remerge_text(&report, dry_run));
            }
        }
    }
    database.close();
    Ok(ExitCode::SUCCESS)
}

/// An id, or `new` for an incident a dry run would create.
fn id_text(id: Option<i64>) -> String {
    id.map_or_else(|| "new".to_owned(), |id| id.to_string())
}

/// The report for people: one line per merge and per split, then the totals.
fn remerge_text(report: &RemergeReport, dry_run: bool) -> String {
    let mut out = String::new();
    for merge in &report.merges {
        let from: Vec<String> = merge.from.iter().map(i64::to_string).collect();
        out.push_str(&format!(
            "merge  {} ({}) <- {}\n",
            id_text(merge.into),
            merge.protocol,
            from.join(", ")
        ));
    }
    for split in &report.splits {
        out.push_str(&format!("split  {}\n", split.from));
        for part in &split.parts {
            out.push_str(&format!(
                "         -> {} ({}): {}\n",
                id_text(part.id),
                part.protocol,
                part.claims.join(", ")
            ));
        }
    }
    let verb = if dry_run {
        "would change"
    } else if report.applied {
        "changed"
    } else {
        "changed nothing in"
    };
    out.push_str(&format!(
        "{} claims: {} incidents before, {} after; {} merges, {} splits, {} rewritten ({verb} the database)\n",
        report.claims,
        report.incidents_before,
        report.incidents_after,
        report.merges.len(),
        report.splits.len(),
        report.rewritten,
    ));
    out
}
