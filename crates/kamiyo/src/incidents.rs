//! `kamiyo incidents` (a remerge of every stored incident under the current rules),
//! `kamiyo incident` (a curator's merge or split) and `kamiyo protocol alias`.

use std::process::ExitCode;

use anyhow::Context;
use kamiyo_store::{Curate, DecisionKind, IncidentStore, RemergeReport};

use crate::cli::{AliasAction, IncidentAction, IncidentsAction, ProtocolAction};
use crate::settings::Settings;
use crate::startup::prepare_kamiyo_database;

pub async fn incidents(settings: Settings, action: IncidentsAction) -> anyhow::Result<ExitCode> {
    let database = prepare_kamiyo_database(&settings.database).await?;
    let store = IncidentStore::new(database.clone());
    match action {
        IncidentsAction::Candidates {
            limit,
            min_score,
            window_days,
            json,
        } => {
            let found = store
                .candidates(window_days, min_score, limit)
                .await
                .context("cannot read the incidents")?;
            if json {
                println!("{}", serde_json::to_string(&found)?);
            } else {
                for pair in &found {
                    println!(
                        "{:>3}  {} {} ({})  ~  {} {} ({}): {}",
                        pair.score,
                        pair.a.id,
                        pair.a.protocol,
                        pair.a.occurred_at.date_naive(),
                        pair.b.id,
                        pair.b.protocol,
                        pair.b.occurred_at.date_naive(),
                        pair.evidence.join(", ")
                    );
                }
                println!(
                    "{} pairs (merge with `kamiyo incident merge A B --reason ...`)",
                    found.len()
                );
            }
        }
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

/// Who decides at the console: the operating-system user.
fn console_user() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

pub async fn incident(settings: Settings, action: IncidentAction) -> anyhow::Result<ExitCode> {
    let database = prepare_kamiyo_database(&settings.database).await?;
    let store = IncidentStore::new(database.clone());
    let (request, json) = match action {
        IncidentAction::Merge { ids, reason, json } => (
            Curate {
                kind: DecisionKind::Merge,
                incidents: ids,
                claims: Vec::new(),
                reason,
                decided_by: console_user(),
            },
            json,
        ),
        IncidentAction::Split {
            id,
            claims,
            reason,
            json,
        } => (
            Curate {
                kind: DecisionKind::Split,
                incidents: vec![id],
                claims,
                reason,
                decided_by: console_user(),
            },
            json,
        ),
    };
    let done = store
        .curate(request)
        .await
        .context("the decision was not taken")?;
    if json {
        println!("{}", serde_json::to_string(&done)?);
    } else {
        println!("decision {} stored", done.decision);
        print!("{}", remerge_text(&done.report, false));
    }
    database.close();
    Ok(ExitCode::SUCCESS)
}

pub async fn protocol(settings: Settings, action: ProtocolAction) -> anyhow::Result<ExitCode> {
    let database = prepare_kamiyo_database(&settings.database).await?;
    let store = IncidentStore::new(database.clone());
    let ProtocolAction::Alias { action } = action;
    let remerge = match action {
        AliasAction::Add {
            name,
            alias,
            reason,
            no_remerge,
        } => {
            let added = store
                .add_alias(&name, &alias, &reason, &console_user())
                .await
                .context("the alias was not added")?;
            println!("`{}` is now a name of `{}`", added.alias, added.name);
            !no_remerge
        }
        AliasAction::Remove { alias, no_remerge } => {
            if !store
                .remove_alias(&alias)
                .await
                .context("the alias was not removed")?
            {
                anyhow::bail!("no alias `{alias}` was added by an operator (shipped aliases change with a release)");
            }
            println!("`{alias}` removed");
            !no_remerge
        }
        AliasAction::List { json } => {
            let (added, shipped) = store.aliases().await.context("cannot read the aliases")?;
            if json {
                println!("{}", serde_json::to_string(&added)?);
            } else {
                println!(
                    "{:<28} {:<28} {:<24} {:<25} REASON",
                    "NAME", "ALIAS", "ADDED BY", "ADDED AT"
                );
                for a in &added {
                    println!(
                        "{:<28} {:<28} {:<24} {:<25} {}",
                        a.name,
                        a.alias,
                        a.added_by,
                        a.added_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        a.reason
                    );
                }
                println!("({} added here; {shipped} groups shipped in crates/kamiyo-domain/data/protocol_aliases.txt)", added.len());
            }
            false
        }
    };
    if remerge {
        let report = store
            .remerge(false)
            .await
            .context("cannot remerge the stored incidents under the new aliases")?;
        print!("{}", remerge_text(&report, false));
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
    if !report.removed.is_empty() {
        let ids: Vec<String> = report.removed.iter().map(i64::to_string).collect();
        out.push_str(&format!("removed (no claim left): {}\n", ids.join(", ")));
    }
    out.push_str(&format!(
        "{} claims: {} incidents before, {} after; {} merges, {} splits, {} rewritten, {} removed ({verb} the database)\n",
        report.claims,
        report.incidents_before,
        report.incidents_after,
        report.merges.len(),
        report.splits.len(),
        report.rewritten,
        report.removed.len(),
    ));
    out
}
