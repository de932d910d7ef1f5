//! `kamiyo submission` and `kamiyo bounty`: the community review queue at the console
//! (docs/COMMUNITY.md, "Operators"). An operator's decision is the service's own: it is
//! recorded with no reviewer, under the same rules (`[community]`) as a reviewer's.

use anyhow::Context;
use kamiyo_db::Database;
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::community::{CommunityStore, Decision, Rewards, Submission};
use kamiyo_store::{IncidentStore, IngestAction};

use crate::cli::{BountyAction, ReviewDecision, SubmissionAction};
use crate::settings::Settings;
use crate::startup::prepare_kamiyo_database;

fn community(database: &Database) -> (CommunityStore, IncidentStore) {
    let incidents = IncidentStore::new(database.clone());
    (
        CommunityStore::new(database.clone(), incidents.clone()),
        incidents,
    )
}

fn decision(chosen: ReviewDecision) -> Decision {
    match chosen {
        ReviewDecision::Verify => Decision::Verify,
        ReviewDecision::Reject => Decision::Reject,
        ReviewDecision::Duplicate => Decision::Duplicate,
        ReviewDecision::Reverse => Decision::Reverse,
    }
}

/// The protocol as the submitter wrote it in the claim.
fn protocol(submission: &Submission) -> &str {
    submission.claim["protocol"].as_str().unwrap_or("-")
}

pub async fn submission(settings: Settings, action: SubmissionAction) -> anyhow::Result<()> {
    let database = prepare_kamiyo_database(&settings.database).await?;
    let (store, incidents) = community(&database);
    match action {
        SubmissionAction::List { limit, json } => {
            let pending = store
                .pending(limit)
                .await
                .context("cannot read the review queue")?;
            if json {
                println!("{}", serde_json::to_string(&pending)?);
            } else {
                println!(
                    "{:<6} {:<9} {:<32} {:<10} {:<8} CREATED",
                    "ID", "SUBMITTER", "PROTOCOL", "MATCHED", "INCIDENT"
                );
                for s in &pending {
                    println!(
                        "{:<6} {:<9} {:<32} {:<10} {:<8} {}",
                        s.id,
                        s.submitted_by.map_or_else(|| "-".into(), |u| u.to_string()),
                        protocol(s),
                        s.matched,
                        s.exploit_id.map_or_else(|| "-".into(), |e| e.to_string()),
                        s.created_at.to_rfc3339()
                    );
                }
            }
        }
        SubmissionAction::Show { id } => {
            let found = store
                .get(id)
                .await
                .context("cannot read the submission")?
                .ok_or_else(|| anyhow::anyhow!("no submission {id}"))?;
            println!("{}", serde_json::to_string_pretty(&found)?);
        }
        SubmissionAction::Review {
            id,
            decision: chosen,
            reason,
        } => {
            let reason = reason.trim();
            if reason.is_empty()
                || reason.chars().count() > 2_000
                || reason.chars().any(char::is_control)
            {
                anyhow::bail!(
                    "--reason: 1 to 2000 characters without control characters (it is stored with the decision)"
                );
            }
            let found = store
                .get(id)
                .await
                .context("cannot read the submission")?
                .ok_or_else(|| anyhow::anyhow!("no submission {id}"))?;
            // The bounty for evidence depends on how well reported the incident it matched
            // already was; a submission that matched none would be a new incident.
            let sources_before = match found.exploit_id {
                Some(exploit_id) => incidents
                    .get_fresh(exploit_id)
                    .await
                    .context("cannot read the matched incident")?
                    .map_or(0, |incident| incident.sources_count),
                None => 0,
            };
            let decision = decision(chosen);
            let rewards = Rewards::for_decision(&settings.community, decision, sources_before);
            let reviewed = store
                .review(
                    id,
                    None,
                    decision,
                    reason,
                    rewards,
                    database.clock().now_utc(),
                )
                .await
                .with_context(|| format!("cannot review submission {id}"))?;
            if let Some(ingest) = &reviewed.ingest {
                let what = match ingest.action {
                    IngestAction::Inserted => "a new incident",
                    _ => "evidence for incident",
                };
                eprintln!("submission {id} verified: {what} {}", ingest.exploit_id);
                for warning in &ingest.warnings {
                    eprintln!("warning: {warning}");
                }
            }
            println!("{}", serde_json::to_string_pretty(&reviewed.submission)?);
        }
    }
    database.close();
    Ok(())
}

pub async fn bounty(settings: Settings, action: BountyAction) -> anyhow::Result<()> {
    let database = prepare_kamiyo_database(&settings.database).await?;
    let (store, _) = community(&database);
    let (user, json) = match action {
        BountyAction::List { user, json } => (user, json),
        BountyAction::Pay { id, reference } => {
            let reference = reference.trim();
            if reference.is_empty() {
                anyhow::bail!("--reference: give the payment's reference");
            }
            let now = database.clock().now_utc();
            let paid = store
                .pay_bounty(id, None, reference, now)
                .await
                .with_context(|| format!("cannot mark bounty {id} paid"))?;
            println!("{}", serde_json::to_string(&paid)?);
            database.close();
            return Ok(());
        }
    };
    let user_id = match user {
        Some(user) => Some(
            AccountStore::new(database.clone())
                .find_user(&user)
                .await
                .context("cannot list the user's bounties")?
                .id,
        ),
        None => None,
    };
    let bounties = store
        .bounties(user_id)
        .await
        .context("cannot read the bounties")?;
    if json {
        println!("{}", serde_json::to_string(&bounties)?);
    } else {
        println!(
            "{:<6} {:<10} {:<8} {:<6} {:>12} {:<9} CREATED",
            "ID", "SUBMISSION", "INCIDENT", "USER", "AMOUNT_USD", "STATUS"
        );
        let dash = |n: Option<i64>| n.map_or_else(|| "-".into(), |n| n.to_string());
        for b in &bounties {
            println!(
                "{:<6} {:<10} {:<8} {:<6} {:>12} {:<9} {}",
                b.id,
                b.submission_id,
                dash(b.exploit_id),
                dash(b.user_id),
                b.amount_usd,
                b.status,
                b.created_at.to_rfc3339()
            );
        }
    }
    database.close();
    Ok(())
}
