//! Community submissions (docs/COMMUNITY.md): a user's report of an exploit, matched at
//! once against the incidents, reviewed, and once verified stored as a claim of the source
//! `community` through the ingest path, in one transaction with its review record, the
//! submitter's reputation and any bounty. The rules (points, cap, bounty amounts) are
//! `kamiyo_domain::reputation`'s; this store applies what the caller computed from them.

use chrono::{DateTime, Duration, Utc};
use kamiyo_db::Database;
use kamiyo_domain::{IncidentDraft, Usd};
use serde::Serialize;

use crate::error::StoreError;
use crate::incidents::{IncidentStore, IngestAction, IngestOutcome};
use crate::row::{DriverRow, Fields};
use crate::statement::{self, Param, Sql, Step};

pub use kamiyo_domain::submission::COMMUNITY_SOURCE;

/// How far apart in time another incident of the same protocol may be and still be
/// offered as a candidate for a submission that matched none.
const CANDIDATE_WINDOW_DAYS: i64 = 30;
/// Most candidates offered.
const MAX_CANDIDATES: usize = 10;

#[derive(Clone)]
pub struct CommunityStore {
    db: Database,
    incidents: IncidentStore,
}

/// A submission as its submitter and the reviewers see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Submission {
    pub id: i64,
    /// Absent once the submitter's account is deleted.
    pub submitted_by: Option<i64>,
    /// `pending`, `verified`, `rejected`, `duplicate` or `reversed`.
    pub status: String,
    /// What it matched when it arrived: `incident` (it is evidence for `exploit_id`),
    /// `candidates` (several possible, in `candidate_ids`) or `none` (a new incident).
    pub matched: String,
    pub candidate_ids: Vec<i64>,
    /// The incident it matched, or the one it became once verified.
    pub exploit_id: Option<i64>,
    /// The claim (`sources[].id` of the incident) a verification stored; cleared by a
    /// reversal.
    pub claim_id: Option<i64>,
    /// The claim as submitted (the fields of `POST /api/exploits`).
    #[schema(value_type = Object)]
    pub claim: serde_json::Value,
    pub evidence_urls: Vec<String>,
    pub attacker_addresses: Vec<String>,
    pub victim_addresses: Vec<String>,
    /// The reviewer's reason (a rejection's is shown to the submitter).
    pub review_note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

/// A submission to store: the validated claim (as JSON, and as the draft the ingest path
/// takes) and its evidence.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub user_id: i64,
    pub protocol: String,
    /// The claim as JSON, without the `external_id` a verification gives it.
    pub claim: serde_json::Value,
    pub draft: IncidentDraft,
    pub evidence_urls: Vec<String>,
    pub attacker_addresses: Vec<String>,
    pub victim_addresses: Vec<String>,
    pub fingerprint: String,
}

/// What submitting did.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// Stored, pending review.
    New(Submission),
    /// The same submission (by fingerprint) is already there: nothing new was stored.
    Duplicate(Submission),
}

/// A user's reputation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Reputation {
    pub score: i64,
    pub submissions_total: i64,
    pub submissions_verified: i64,
    pub submissions_rejected: i64,
    /// Points gained today (UTC), counted against the daily cap.
    pub gained_today: i64,
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Verify,
    Reject,
    Duplicate,
    /// Un-verify a verified submission: its claim, points and owed bounty taken back.
    Reverse,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Verify => "verify",
            Decision::Reject => "reject",
            Decision::Duplicate => "duplicate",
            Decision::Reverse => "reverse",
        }
    }

    fn status(self) -> &'static str {
        match self {
            Decision::Verify => "verified",
            Decision::Reject => "rejected",
            Decision::Duplicate => "duplicate",
            Decision::Reverse => "reversed",
        }
    }

    /// The status a submission must have for this decision: a reversal undoes a
    /// verification; every other decision is taken on a pending submission.
    pub fn applies_to(self) -> &'static str {
        match self {
            Decision::Reverse => "verified",
            Decision::Verify | Decision::Reject | Decision::Duplicate => "pending",
        }
    }

    /// Why this decision cannot be taken on a submission of `status`.
    pub fn refused_on(self, status: &str) -> String {
        match self {
            Decision::Reverse => {
                format!("only a verified submission can be reversed (this one is {status})")
            }
            _ => format!("the submission was already reviewed ({status})"),
        }
    }
}

/// What a decision gives the submitter, computed by the caller from the rules: points
/// (before the daily cap) and any bounty. A verification's depends on what its claim does
/// (a new incident, or evidence for one), so both are given.
#[derive(Debug, Clone, Copy)]
pub struct Rewards {
    pub new_incident: (i32, Option<Usd>),
    pub evidence: (i32, Option<Usd>),
    /// A rejection's or a duplicate's points (no bounty).
    pub penalty: i32,
    /// Most points gained in one UTC day.
    pub daily_cap: i32,
}

impl Rewards {
    /// What `rules` give for a decision on a submission whose matched incident had
    /// `sources_before` independent sources (0 when it matched none): the minor bounty
    /// for evidence that only adds a source to a well-reported incident.
    pub fn from_rules(rules: &kamiyo_domain::ReputationRules, sources_before: i64) -> Rewards {
        use kamiyo_domain::reputation::Outcome;
        Rewards {
            new_incident: (
                rules.points_for(Outcome::NewIncident),
                rules.bounty_for(Outcome::NewIncident, 0),
            ),
            evidence: (
                rules.points_for(Outcome::Evidence),
                rules.bounty_for(Outcome::Evidence, sources_before),
            ),
            penalty: 0,
            daily_cap: rules.daily_cap,
        }
    }

    /// The same, with the penalty of `decision` (a rejection as a false report, a
    /// duplicate as a duplicate).
    pub fn for_decision(
        rules: &kamiyo_domain::ReputationRules,
        decision: Decision,
        sources_before: i64,
    ) -> Rewards {
        use kamiyo_domain::reputation::Outcome;
        let penalty = match decision {
            Decision::Verify | Decision::Reverse => 0,
            Decision::Reject => rules.points_for(Outcome::FalseReport),
            Decision::Duplicate => rules.points_for(Outcome::Duplicate),
        };
        Rewards {
            penalty,
            ..Rewards::from_rules(rules, sources_before)
        }
    }
}

/// What a review did.
#[derive(Debug, Clone, PartialEq)]
pub struct Reviewed {
    pub submission: Submission,
    /// A verification's ingest outcome.
    pub ingest: Option<IngestOutcome>,
}

/// `SELECT`s of whole submissions: the columns on each backend (PostgreSQL's `jsonb`
/// claim read as text), then the rest of the statement.
macro_rules! select_submissions {
    ($pg:literal, $sqlite:literal) => {
        Sql {
            postgres: concat!(
                "SELECT id, submitted_by, status, matched, candidate_ids::text AS candidate_ids, exploit_id, claim_id, claim::text AS claim, \
                 evidence_urls::text AS evidence_urls, attacker_addresses::text AS attacker_addresses, \
                 victim_addresses::text AS victim_addresses, review_note, created_at, reviewed_at \
                 FROM community_submissions ",
                $pg
            ),
            sqlite: concat!(
                "SELECT id, submitted_by, status, matched, candidate_ids, exploit_id, claim_id, claim, \
                 evidence_urls, attacker_addresses, victim_addresses, review_note, created_at, reviewed_at \
                 FROM community_submissions ",
                $sqlite
            ),
        }
    };
}

const GET: Sql = select_submissions!("WHERE id = $1", "WHERE id = ?1");
const OF_USER: Sql = select_submissions!(
    "WHERE submitted_by = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    "WHERE submitted_by = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"
);
// Pending submissions of active users only: a disabled user's leave the queue.
const PENDING: Sql = select_submissions!(
    "WHERE status = 'pending' AND submitted_by IN (SELECT id FROM users WHERE is_active) \
     ORDER BY created_at, id LIMIT $1",
    "WHERE status = 'pending' AND submitted_by IN (SELECT id FROM users WHERE is_active = 1) \
     ORDER BY created_at, id LIMIT ?1"
);
const BY_FINGERPRINT: Sql = select_submissions!(
    "WHERE submitted_by = $1 AND fingerprint = $2",
    "WHERE submitted_by = ?1 AND fingerprint = ?2"
);
const REPUTATION: Sql = Sql {
    postgres: "SELECT \
        (SELECT coalesce(sum(points), 0) FROM reputation_events WHERE user_id = $1) AS score, \
        (SELECT count(*) FROM community_submissions WHERE submitted_by = $1) AS total, \
        (SELECT count(*) FROM community_submissions WHERE submitted_by = $1 AND status = 'verified') AS verified, \
        (SELECT count(*) FROM community_submissions WHERE submitted_by = $1 AND status = 'rejected') AS rejected, \
        (SELECT coalesce(sum(points), 0) FROM reputation_events \
          WHERE user_id = $1 AND points > 0 AND created_at >= $2) AS gained_today",
    sqlite: "SELECT \
        (SELECT coalesce(sum(points), 0) FROM reputation_events WHERE user_id = ?1) AS score, \
        (SELECT count(*) FROM community_submissions WHERE submitted_by = ?1) AS total, \
        (SELECT count(*) FROM community_submissions WHERE submitted_by = ?1 AND status = 'verified') AS verified, \
        (SELECT count(*) FROM community_submissions WHERE submitted_by = ?1 AND status = 'rejected') AS rejected, \
        (SELECT coalesce(sum(points), 0) FROM reputation_events \
          WHERE user_id = ?1 AND points > 0 AND created_at >= ?2) AS gained_today",
};
const SUBMITTED_SINCE: Sql = Sql {
    postgres: "SELECT count(*) AS n FROM community_submissions WHERE submitted_by = $1 AND created_at >= $2",
    sqlite: "SELECT count(*) AS n FROM community_submissions WHERE submitted_by = ?1 AND created_at >= ?2",
};

fn read_submission(row: &dyn DriverRow) -> Result<Submission, StoreError> {
    let f = Fields::of("community_submissions", row);
    let claim_text = f.text("claim")?;
    let claim = serde_json::from_str(&claim_text)
        .map_err(|e| StoreError::corrupt("community_submissions", "claim", e))?;
    let candidate_ids: Vec<i64> = json_of(&f, "candidate_ids")?;
    Ok(Submission {
        id: f.int("id")?,
        submitted_by: f.opt_int("submitted_by")?,
        status: f.text("status")?,
        matched: f.text("matched")?,
        candidate_ids,
        exploit_id: f.opt_int("exploit_id")?,
        claim_id: f.opt_int("claim_id")?,
        claim,
        evidence_urls: json_of(&f, "evidence_urls")?,
        attacker_addresses: json_of(&f, "attacker_addresses")?,
        victim_addresses: json_of(&f, "victim_addresses")?,
        review_note: f.opt_text("review_note")?,
        created_at: f.time("created_at")?,
        reviewed_at: f.opt_time("reviewed_at")?,
    })
}

/// A JSON column (text on SQLite, `jsonb` read as text on PostgreSQL) as `T`.
fn json_of<T: serde::de::DeserializeOwned, R: DriverRow + ?Sized>(
    f: &Fields<'_, R>,
    column: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(&f.text(column)?)
        .map_err(|e| StoreError::corrupt("community_submissions", column, e))
}

fn json_list<T: Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// The start of `now`'s UTC day.
fn day_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now)
}

impl CommunityStore {
    pub fn new(db: Database, incidents: IncidentStore) -> CommunityStore {
        CommunityStore { db, incidents }
    }

    /// One submission.
    pub async fn get(&self, id: i64) -> Result<Option<Submission>, StoreError> {
        let pool = self.db.primary();
        statement::query_opt(
            pool,
            GET.for_pool(pool),
            vec![Param::Int(id)],
            read_submission,
        )
        .await
    }

    /// A user's submissions, newest first (at most `limit`).
    pub async fn of_user(&self, user_id: i64, limit: i64) -> Result<Vec<Submission>, StoreError> {
        let pool = self.db.primary();
        statement::query(
            pool,
            OF_USER.for_pool(pool),
            vec![Param::Int(user_id), Param::Int(limit)],
            read_submission,
        )
        .await
    }

    /// The review queue: pending submissions of active users, oldest first.
    pub async fn pending(&self, limit: i64) -> Result<Vec<Submission>, StoreError> {
        let pool = self.db.primary();
        statement::query(
            pool,
            PENDING.for_pool(pool),
            vec![Param::Int(limit)],
            read_submission,
        )
        .await
    }

    /// A user's reputation at `now`.
    pub async fn reputation(
        &self,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Reputation, StoreError> {
        let pool = self.db.primary();
        let rows = statement::query(
            pool,
            REPUTATION.for_pool(pool),
            vec![Param::Int(user_id), Param::Time(day_start(now))],
            |row| {
                let f = Fields::of("reputation_events", row);
                Ok(Reputation {
                    score: f.int("score")?,
                    submissions_total: f.int("total")?,
                    submissions_verified: f.int("verified")?,
                    submissions_rejected: f.int("rejected")?,
                    gained_today: f.int("gained_today")?,
                })
            },
        )
        .await?;
        Ok(rows.into_iter().next().unwrap_or_default())
    }

    /// Submissions a user made since the start of `now`'s UTC day.
    pub async fn submitted_today(
        &self,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let pool = self.db.primary();
        let rows = statement::query(
            pool,
            SUBMITTED_SINCE.for_pool(pool),
            vec![Param::Int(user_id), Param::Time(day_start(now))],
            |row| Fields::of("community_submissions", row).int("n"),
        )
        .await?;
        Ok(rows.into_iter().next().unwrap_or_default())
    }

    /// Stores `new` unless its submitter sent the same before; says what it matches: the
    /// incident its claim would join (the ingest path run and rolled back), or other
    /// incidents of its protocol near its date, or none.
    pub async fn submit(
        &self,
        new: &NewSubmission,
        now: DateTime<Utc>,
    ) -> Result<Submitted, StoreError> {
        if let Some(existing) = self.by_fingerprint(new.user_id, &new.fingerprint).await? {
            return Ok(Submitted::Duplicate(existing));
        }
        let would = self.incidents.dry_run(&new.draft).await?;
        let (matched, exploit_id, candidates) = match would.action {
            IngestAction::Inserted => {
                let candidates = self.candidates(&new.draft).await?;
                if candidates.is_empty() {
                    ("none", None, candidates)
                } else {
                    ("candidates", None, candidates)
                }
            }
            _ => ("incident", Some(would.exploit_id), Vec::new()),
        };
        let pool = self.db.primary();
        let sql = Sql {
            postgres: "INSERT INTO community_submissions \
                (submitted_by, exploit_id, protocol, claim, evidence_urls, attacker_addresses, \
                 victim_addresses, fingerprint, matched, candidate_ids, created_at, updated_at) \
                VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb, $6::text::jsonb, $7::text::jsonb, $8, $9, $10::text::jsonb, $11, $11) \
                ON CONFLICT (submitted_by, fingerprint) DO NOTHING",
            sqlite: "INSERT INTO community_submissions \
                (submitted_by, exploit_id, protocol, claim, evidence_urls, attacker_addresses, \
                 victim_addresses, fingerprint, matched, candidate_ids, created_at, updated_at) \
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11) \
                ON CONFLICT (submitted_by, fingerprint) DO NOTHING",
        };
        let inserted = statement::execute(
            pool,
            sql.for_pool(pool),
            vec![
                Param::Int(new.user_id),
                Param::OptInt(exploit_id),
                Param::Text(new.protocol.clone()),
                Param::Text(new.claim.to_string()),
                Param::Text(json_list(&new.evidence_urls)),
                Param::Text(json_list(&new.attacker_addresses)),
                Param::Text(json_list(&new.victim_addresses)),
                Param::Text(new.fingerprint.clone()),
                Param::Text(matched.to_owned()),
                Param::Text(json_list(&candidates)),
                Param::Time(now),
            ],
        )
        .await?;
        // Read back by fingerprint: a concurrent twin that won the insert is this one's
        // duplicate.
        let stored = self
            .by_fingerprint(new.user_id, &new.fingerprint)
            .await?
            .ok_or_else(|| StoreError::Invariant("a stored submission is not found".into()))?;
        Ok(if inserted == 1 {
            Submitted::New(stored)
        } else {
            Submitted::Duplicate(stored)
        })
    }

    /// The submission `user_id` sent with this fingerprint, if any.
    pub async fn by_fingerprint(
        &self,
        user_id: i64,
        fingerprint: &str,
    ) -> Result<Option<Submission>, StoreError> {
        let pool = self.db.primary();
        statement::query_opt(
            pool,
            BY_FINGERPRINT.for_pool(pool),
            vec![Param::Int(user_id), Param::Text(fingerprint.to_owned())],
            read_submission,
        )
        .await
    }

    /// Other incidents of the draft's protocol within the candidate window of its date.
    async fn candidates(&self, draft: &IncidentDraft) -> Result<Vec<i64>, StoreError> {
        let request = crate::incidents::ListRequest {
            filter: crate::incidents::IncidentFilter {
                protocol_key: Some(draft.protocol.key().to_owned()),
                from: Some(draft.occurred_at - Duration::days(CANDIDATE_WINDOW_DAYS)),
                to: Some(draft.occurred_at + Duration::days(CANDIDATE_WINDOW_DAYS)),
                ..Default::default()
            },
            limit: crate::incidents::PageLimit::at_most(MAX_CANDIDATES),
            ..Default::default()
        };
        Ok(self
            .incidents
            .list(&request)
            .await?
            .items
            .iter()
            .map(|i| i.id)
            .collect())
    }
}

const VERIFY: Sql = Sql {
    postgres: "UPDATE community_submissions SET status = 'verified', exploit_id = $2, \
        claim_id = (SELECT max(id) FROM exploit_sources \
                     WHERE exploit_id = $2 AND source_name = 'community' AND external_id = $3), \
        reviewed_by = $4, reviewed_at = $5, review_note = $6, updated_at = $5 \
        WHERE id = $1 AND status = 'pending' \
          AND (submitted_by IS NULL OR submitted_by IN (SELECT id FROM users WHERE is_active))",
    sqlite: "UPDATE community_submissions SET status = 'verified', exploit_id = ?2, \
        claim_id = (SELECT max(id) FROM exploit_sources \
                     WHERE exploit_id = ?2 AND source_name = 'community' AND external_id = ?3), \
        reviewed_by = ?4, reviewed_at = ?5, review_note = ?6, updated_at = ?5 \
        WHERE id = ?1 AND status = 'pending' \
          AND (submitted_by IS NULL OR submitted_by IN (SELECT id FROM users WHERE is_active = 1))",
};
// Taken first by every decision about a user's submission: their reputation row, locked
// until the transaction ends, so that two decisions at once cannot both read the day's
// gains below the cap (SQLite's write transactions are serialised already).
const LOCK_USER: Sql = Sql {
    postgres: "INSERT INTO user_reputation (user_id) VALUES ($1) \
        ON CONFLICT (user_id) DO UPDATE SET user_id = excluded.user_id",
    sqlite: "INSERT INTO user_reputation (user_id) VALUES (?1) \
        ON CONFLICT (user_id) DO UPDATE SET user_id = excluded.user_id",
};
const DECIDE: Sql = Sql {
    postgres: "UPDATE community_submissions SET status = $2, reviewed_by = $3, reviewed_at = $4, \
        review_note = $5, updated_at = $4 WHERE id = $1 AND status = 'pending'",
    sqlite: "UPDATE community_submissions SET status = ?2, reviewed_by = ?3, reviewed_at = ?4, \
        review_note = ?5, updated_at = ?4 WHERE id = ?1 AND status = 'pending'",
};
const RECORD_REVIEW: Sql = Sql {
    postgres:
        "INSERT INTO submission_reviews (submission_id, reviewer_id, decision, reason, created_at) \
        VALUES ($1, $2, $3, $4, $5)",
    sqlite:
        "INSERT INTO submission_reviews (submission_id, reviewer_id, decision, reason, created_at) \
        VALUES (?1, ?2, ?3, ?4, ?5)",
};
// A gain is cut to what is left of the day's cap (never below zero); a loss is whole.
const RECORD_POINTS: Sql = Sql {
    postgres: "INSERT INTO reputation_events (user_id, submission_id, review_id, points, reason, created_at) \
        SELECT $1, $2, (SELECT max(id) FROM submission_reviews WHERE submission_id = $2), \
               (CASE WHEN $3::int8 > 0 THEN LEAST($3::int8, GREATEST(0, $4::int8 - \
                    (SELECT coalesce(sum(points), 0) FROM reputation_events \
                      WHERE user_id = $1 AND points > 0 AND created_at >= $5))) \
                    ELSE $3::int8 END)::int4, \
               $6, $7",
    sqlite: "INSERT INTO reputation_events (user_id, submission_id, review_id, points, reason, created_at) \
        SELECT ?1, ?2, (SELECT max(id) FROM submission_reviews WHERE submission_id = ?2), \
               CASE WHEN ?3 > 0 THEN min(?3, max(0, ?4 - \
                    (SELECT coalesce(sum(points), 0) FROM reputation_events \
                      WHERE user_id = ?1 AND points > 0 AND created_at >= ?5))) \
                    ELSE ?3 END, \
               ?6, ?7",
};
// user_reputation is the sum of the events and the counts of the submissions, recomputed:
// it can never drift from what they say.
const RECOUNT: Sql = Sql {
    postgres: "INSERT INTO user_reputation (user_id, score, submissions_total, submissions_approved, submissions_rejected) \
        SELECT $1, (SELECT coalesce(sum(points), 0) FROM reputation_events WHERE user_id = $1), \
               (SELECT count(*) FROM community_submissions WHERE submitted_by = $1), \
               (SELECT count(*) FROM community_submissions WHERE submitted_by = $1 AND status = 'verified'), \
               (SELECT count(*) FROM community_submissions WHERE submitted_by = $1 AND status = 'rejected') \
        WHERE true \
        ON CONFLICT (user_id) DO UPDATE SET score = excluded.score, \
            submissions_total = excluded.submissions_total, \
            submissions_approved = excluded.submissions_approved, \
            submissions_rejected = excluded.submissions_rejected",
    sqlite: "INSERT INTO user_reputation (user_id, score, submissions_total, submissions_approved, submissions_rejected) \
        SELECT ?1, (SELECT coalesce(sum(points), 0) FROM reputation_events WHERE user_id = ?1), \
               (SELECT count(*) FROM community_submissions WHERE submitted_by = ?1), \
               (SELECT count(*) FROM community_submissions WHERE submitted_by = ?1 AND status = 'verified'), \
               (SELECT count(*) FROM community_submissions WHERE submitted_by = ?1 AND status = 'rejected') \
        WHERE true \
        ON CONFLICT (user_id) DO UPDATE SET score = excluded.score, \
            submissions_total = excluded.submissions_total, \
            submissions_approved = excluded.submissions_approved, \
            submissions_rejected = excluded.submissions_rejected",
};
const REVERSE: Sql = Sql {
    postgres: "UPDATE community_submissions SET status = 'reversed', claim_id = NULL, \
        reviewed_by = $2, reviewed_at = $3, review_note = $4, updated_at = $3 \
        WHERE id = $1 AND status = 'verified'",
    sqlite: "UPDATE community_submissions SET status = 'reversed', claim_id = NULL, \
        reviewed_by = ?2, reviewed_at = ?3, review_note = ?4, updated_at = ?3 \
        WHERE id = ?1 AND status = 'verified'",
};
// Exactly what the submission's decisions gave, taken back as one event of its own (the
// history keeps both); nothing when they gave nothing (the day's cap was reached).
const TAKE_BACK_POINTS: Sql = Sql {
    postgres: "INSERT INTO reputation_events (user_id, submission_id, review_id, points, reason, created_at) \
        SELECT $1, $2, (SELECT max(id) FROM submission_reviews WHERE submission_id = $2), \
               (-given)::int4, 'reversal', $3 \
        FROM (SELECT coalesce(sum(points), 0) AS given FROM reputation_events \
              WHERE submission_id = $2 AND user_id = $1) AS g \
        WHERE given <> 0",
    sqlite: "INSERT INTO reputation_events (user_id, submission_id, review_id, points, reason, created_at) \
        SELECT ?1, ?2, (SELECT max(id) FROM submission_reviews WHERE submission_id = ?2), \
               -given, 'reversal', ?3 \
        FROM (SELECT coalesce(sum(points), 0) AS given FROM reputation_events \
              WHERE submission_id = ?2 AND user_id = ?1) AS g \
        WHERE given <> 0",
};
const CANCEL_BOUNTY: Sql = Sql {
    postgres:
        "UPDATE bounties SET status = 'cancelled' WHERE submission_id = $1 AND status = 'owed'",
    sqlite: "UPDATE bounties SET status = 'cancelled' WHERE submission_id = ?1 AND status = 'owed'",
};
// One live bounty per incident: a later verified report of the same hack earns none.
const OWE_BOUNTY: Sql = Sql {
    postgres: "INSERT INTO bounties (submission_id, exploit_id, user_id, amount_usd, created_at) \
        SELECT $1, $2, $3, $4::text::numeric, $5 \
        WHERE NOT EXISTS (SELECT 1 FROM bounties WHERE exploit_id = $2 AND status <> 'cancelled')",
    sqlite: "INSERT INTO bounties (submission_id, exploit_id, user_id, amount_usd, created_at) \
        SELECT ?1, ?2, ?3, ?4, ?5 \
        WHERE NOT EXISTS (SELECT 1 FROM bounties WHERE exploit_id = ?2 AND status <> 'cancelled')",
};

/// The reason a decision records in `reputation_events`.
fn points_reason(decision: Decision, new_incident: bool) -> &'static str {
    match (decision, new_incident) {
        (Decision::Verify, true) => "new_incident",
        (Decision::Verify, false) => "evidence",
        (Decision::Reject, _) => "false_report",
        (Decision::Duplicate, _) => "duplicate",
        (Decision::Reverse, _) => "reversal",
    }
}

/// What every decision records after its own update.
struct Record<'a> {
    submission: &'a Submission,
    reviewer: Option<i64>,
    /// As `submission_reviews.decision` records it (`auto_verify` for a trusted user's).
    decision: &'static str,
    reason: &'a str,
    points: i32,
    points_reason: &'static str,
    daily_cap: i32,
    now: DateTime<Utc>,
}

impl Record<'_> {
    /// The review record, the points (capped for the day), the recount.
    fn steps(&self, pool: &kamiyo_db::Pool) -> Vec<Step> {
        let mut steps = Vec::new();
        if let Some(user) = self.submission.submitted_by {
            steps.push(Step::new(LOCK_USER.for_pool(pool), vec![Param::Int(user)]));
        }
        steps.push(Step::new(
            RECORD_REVIEW.for_pool(pool),
            vec![
                Param::Int(self.submission.id),
                Param::OptInt(self.reviewer),
                Param::Text(self.decision.to_owned()),
                Param::Text(self.reason.to_owned()),
                Param::Time(self.now),
            ],
        ));
        if let Some(user) = self.submission.submitted_by {
            steps.push(Step::new(
                RECORD_POINTS.for_pool(pool),
                vec![
                    Param::Int(user),
                    Param::Int(self.submission.id),
                    Param::Int(i64::from(self.points)),
                    Param::Int(i64::from(self.daily_cap)),
                    Param::Time(day_start(self.now)),
                    Param::Text(self.points_reason.to_owned()),
                    Param::Time(self.now),
                ],
            ));
            steps.push(Step::new(RECOUNT.for_pool(pool), vec![Param::Int(user)]));
        }
        steps
    }
}

impl CommunityStore {
    /// Records `decision` on pending submission `id` by `reviewer` (`None`: the service
    /// itself), with `reason`. A verification stores the submission's claim as a claim of
    /// the source `community` through the ingest path (so its incident, merges and alert
    /// events are those of any source's claim), and in the same transaction the review,
    /// the submitter's points (capped for the day), the recount of their reputation and
    /// any bounty owed. A submission reviewed meanwhile by someone else is refused whole.
    pub async fn review(
        &self,
        id: i64,
        reviewer: Option<i64>,
        decision: Decision,
        reason: &str,
        rewards: Rewards,
        now: DateTime<Utc>,
    ) -> Result<Reviewed, StoreError> {
        self.decide(id, reviewer, decision, reason, rewards, now, false)
            .await
    }

    /// Verifies a trusted submitter's evidence without a reviewer (`auto_verify` in the
    /// record). Only evidence: a report whose claim would create an incident is refused
    /// (it waits for a reviewer), and no bounty is owed (money needs a person's review).
    pub async fn auto_verify(
        &self,
        id: i64,
        rewards: Rewards,
        now: DateTime<Utc>,
    ) -> Result<Reviewed, StoreError> {
        let rewards = Rewards {
            new_incident: (rewards.new_incident.0, None),
            evidence: (rewards.evidence.0, None),
            ..rewards
        };
        let reason = "applied without review: trusted submitter";
        self.decide(id, None, Decision::Verify, reason, rewards, now, true)
            .await
    }

    #[allow(clippy::too_many_arguments)] // the two public doors above name them
    async fn decide(
        &self,
        id: i64,
        reviewer: Option<i64>,
        decision: Decision,
        reason: &str,
        rewards: Rewards,
        now: DateTime<Utc>,
        auto: bool,
    ) -> Result<Reviewed, StoreError> {
        let submission = self
            .get(id)
            .await?
            .ok_or_else(|| StoreError::refused("id", "no such submission"))?;
        if submission.status != decision.applies_to() {
            return Err(StoreError::refused(
                "id",
                decision.refused_on(&submission.status),
            ));
        }
        if reviewer.is_some() && reviewer == submission.submitted_by {
            return Err(StoreError::refused(
                "id",
                "a reviewer cannot review their own submission",
            ));
        }
        let pool = self.db.primary().clone();
        let ingest = match decision {
            Decision::Reverse => {
                self.reverse(&submission, reviewer, reason, now).await?;
                None
            }
            Decision::Verify => {
                let external_id = kamiyo_domain::submission::external_id(id);
                let mut input: kamiyo_domain::IncidentInput =
                    serde_json::from_value(submission.claim.clone())
                        .map_err(|e| StoreError::corrupt("community_submissions", "claim", e))?;
                input.source = Some(COMMUNITY_SOURCE.to_owned());
                input.external_id = Some(external_id.clone());
                let draft = IncidentDraft::from_input(input, now).map_err(|e| {
                    StoreError::refused("claim", format!("{}: {}", e.field, e.message))
                })?;
                let (reason, submission) = (reason.to_owned(), submission.clone());
                let follow: crate::incidents::Follow = std::sync::Arc::new(move |outcome| {
                    let new_incident = outcome.action == IngestAction::Inserted;
                    if auto && new_incident {
                        return Err(StoreError::refused(
                            "id",
                            "a report of a new incident waits for a reviewer, whoever sent it",
                        ));
                    }
                    let (points, bounty) = if new_incident {
                        rewards.new_incident
                    } else {
                        rewards.evidence
                    };
                    let mut steps = vec![Step::new(
                        VERIFY.for_pool(&pool),
                        vec![
                            Param::Int(submission.id),
                            Param::Int(outcome.exploit_id),
                            Param::Text(external_id.clone()),
                            Param::OptInt(reviewer),
                            Param::Time(now),
                            Param::Text(reason.clone()),
                        ],
                    )
                    .must_change(
                        1,
                        "id",
                        "the submission was reviewed meanwhile, or its submitter is disabled",
                    )];
                    steps.extend(
                        Record {
                            submission: &submission,
                            reviewer,
                            decision: if auto { "auto_verify" } else { "verify" },
                            reason: &reason,
                            points,
                            points_reason: points_reason(Decision::Verify, new_incident),
                            daily_cap: rewards.daily_cap,
                            now,
                        }
                        .steps(&pool),
                    );
                    if let (Some(user), Some(amount)) = (submission.submitted_by, bounty) {
                        steps.push(Step::new(
                            OWE_BOUNTY.for_pool(&pool),
                            vec![
                                Param::Int(submission.id),
                                Param::Int(outcome.exploit_id),
                                Param::Int(user),
                                Param::Text(amount.to_string()),
                                Param::Time(now),
                            ],
                        ));
                    }
                    Ok(steps)
                });
                Some(self.incidents.ingest_then(&draft, follow).await?)
            }
            Decision::Reject | Decision::Duplicate => {
                let mut steps = vec![Step::new(
                    DECIDE.for_pool(&pool),
                    vec![
                        Param::Int(id),
                        Param::Text(decision.status().to_owned()),
                        Param::OptInt(reviewer),
                        Param::Time(now),
                        Param::Text(reason.to_owned()),
                    ],
                )
                .must_change(1, "id", "the submission was reviewed meanwhile")];
                steps.extend(
                    Record {
                        submission: &submission,
                        reviewer,
                        decision: decision.as_str(),
                        reason,
                        points: rewards.penalty,
                        points_reason: points_reason(decision, false),
                        daily_cap: rewards.daily_cap,
                        now,
                    }
                    .steps(&pool),
                );
                statement::run_steps(&pool, steps).await?;
                None
            }
        };
        let submission = self
            .get(id)
            .await?
            .ok_or_else(|| StoreError::Invariant("a reviewed submission is gone".into()))?;
        Ok(Reviewed { submission, ingest })
    }

    /// Takes a verification back in one transaction: the claim it stored is withdrawn
    /// from its incident (which is decided again without it, or deleted when it was its
    /// only claim), the points it gave are taken back, an owed bounty is cancelled (a
    /// paid one stays paid: the money has left), the submission becomes `reversed` and
    /// the decision is recorded. A verification reversed meanwhile is refused whole.
    async fn reverse(
        &self,
        submission: &Submission,
        reviewer: Option<i64>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let pool = self.db.primary();
        let mut steps = vec![Step::new(
            REVERSE.for_pool(pool),
            vec![
                Param::Int(submission.id),
                Param::OptInt(reviewer),
                Param::Time(now),
                Param::Text(reason.to_owned()),
            ],
        )
        .must_change(1, "id", "the submission was reversed meanwhile")];
        if let Some(user) = submission.submitted_by {
            steps.push(Step::new(LOCK_USER.for_pool(pool), vec![Param::Int(user)]));
        }
        steps.push(Step::new(
            RECORD_REVIEW.for_pool(pool),
            vec![
                Param::Int(submission.id),
                Param::OptInt(reviewer),
                Param::Text(Decision::Reverse.as_str().to_owned()),
                Param::Text(reason.to_owned()),
                Param::Time(now),
            ],
        ));
        if let Some(user) = submission.submitted_by {
            steps.push(Step::new(
                TAKE_BACK_POINTS.for_pool(pool),
                vec![
                    Param::Int(user),
                    Param::Int(submission.id),
                    Param::Time(now),
                ],
            ));
            steps.push(Step::new(RECOUNT.for_pool(pool), vec![Param::Int(user)]));
        }
        steps.push(Step::new(
            CANCEL_BOUNTY.for_pool(pool),
            vec![Param::Int(submission.id)],
        ));
        // Rows verified before migration 0014 name no claim; nothing since clears
        // `claim_id` of a verified submission but a reversal.
        let claim = submission.claim_id.ok_or_else(|| {
            StoreError::refused(
                "id",
                "the submission names no claim to withdraw (verified before claims were recorded): split its claim off with `kamiyo incident split`",
            )
        })?;
        let report = self.incidents.withdraw_then(claim, steps).await?;
        tracing::info!(
            submission = submission.id,
            claim,
            removed = ?report.removed,
            splits = report.splits.len(),
            merges = report.merges.len(),
            "community submission reversed"
        );
        Ok(())
    }

    /// Marks owed bounty `id` paid by `paid_by` (`None`: the admin token) with the
    /// payment's `reference`. A bounty paid or cancelled already is refused: a bounty is
    /// never paid twice.
    pub async fn pay_bounty(
        &self,
        id: i64,
        paid_by: Option<i64>,
        reference: &str,
        now: DateTime<Utc>,
    ) -> Result<Bounty, StoreError> {
        let pool = self.db.primary();
        statement::run_steps(
            pool,
            vec![Step::new(
                PAY_BOUNTY.for_pool(pool),
                vec![
                    Param::Int(id),
                    Param::Time(now),
                    Param::OptInt(paid_by),
                    Param::Text(reference.to_owned()),
                ],
            )
            .must_change(
                1,
                "id",
                "no owed bounty with this id (paid or cancelled already, or none)",
            )],
        )
        .await?;
        self.bounty(id)
            .await?
            .ok_or_else(|| StoreError::Invariant("a paid bounty is gone".into()))
    }

    /// One bounty.
    pub async fn bounty(&self, id: i64) -> Result<Option<Bounty>, StoreError> {
        let pool = self.db.primary();
        statement::query_opt(
            pool,
            BOUNTY.for_pool(pool),
            vec![Param::Int(id)],
            read_bounty,
        )
        .await
    }

    /// The bounties of a user (all of them for `None`), newest first.
    pub async fn bounties(&self, user_id: Option<i64>) -> Result<Vec<Bounty>, StoreError> {
        let pool = self.db.primary();
        statement::query(
            pool,
            BOUNTIES.for_pool(pool),
            vec![Param::OptInt(user_id)],
            read_bounty,
        )
        .await
    }
}

/// A bounty owed, paid or cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Bounty {
    pub id: i64,
    pub submission_id: i64,
    pub exploit_id: Option<i64>,
    pub user_id: Option<i64>,
    #[schema(value_type = String)]
    pub amount_usd: String,
    /// `owed`, `paid` or `cancelled`.
    pub status: String,
    pub payment_reference: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const PAY_BOUNTY: Sql = Sql {
    postgres:
        "UPDATE bounties SET status = 'paid', paid_at = $2, paid_by = $3, payment_reference = $4 \
        WHERE id = $1 AND status = 'owed'",
    sqlite:
        "UPDATE bounties SET status = 'paid', paid_at = ?2, paid_by = ?3, payment_reference = ?4 \
        WHERE id = ?1 AND status = 'owed'",
};

const BOUNTY: Sql = Sql {
    postgres:
        "SELECT id, submission_id, exploit_id, user_id, amount_usd::text AS amount_usd, status, \
        payment_reference, paid_at, created_at FROM bounties WHERE id = $1",
    sqlite: "SELECT id, submission_id, exploit_id, user_id, amount_usd, status, \
        payment_reference, paid_at, created_at FROM bounties WHERE id = ?1",
};

const BOUNTIES: Sql = Sql {
    postgres:
        "SELECT id, submission_id, exploit_id, user_id, amount_usd::text AS amount_usd, status, \
        payment_reference, paid_at, created_at FROM bounties \
        WHERE $1::int8 IS NULL OR user_id = $1 ORDER BY created_at DESC, id DESC",
    sqlite: "SELECT id, submission_id, exploit_id, user_id, amount_usd, status, \
        payment_reference, paid_at, created_at FROM bounties \
        WHERE ?1 IS NULL OR user_id = ?1 ORDER BY created_at DESC, id DESC",
};

fn read_bounty(row: &dyn DriverRow) -> Result<Bounty, StoreError> {
    let f = Fields::of("bounties", row);
    Ok(Bounty {
        id: f.int("id")?,
        submission_id: f.int("submission_id")?,
        exploit_id: f.opt_int("exploit_id")?,
        user_id: f.opt_int("user_id")?,
        amount_usd: f.text("amount_usd")?,
        status: f.text("status")?,
        payment_reference: f.opt_text("payment_reference")?,
        paid_at: f.opt_time("paid_at")?,
        created_at: f.time("created_at")?,
    })
}
