//! Reputation: the points a review decision gives or takes, the daily cap on gains, the
//! thresholds that grant privileges, and the bounty a verified submission earns
//! (docs/COMMUNITY.md, "Reputation and bounties").
//!
//! The rules are configuration (`community.*` in the settings file,
//! `KAMIYO_COMMUNITY_<KEY>` in the environment), not code, so that a deployment can tune
//! them; [`ReputationRules::default`] is the public service's. They are checked once at
//! start-up by [`ReputationRules::validate`]: rules that cannot work (a cap that admits no
//! gain, a score with no submission limit) stop start-up instead of locking users out.
//!
//! Nothing here reads or writes a score: the store keeps each change as an event and
//! asks these functions what the change is.

use serde::{Deserialize, Serialize};

use crate::money::Usd;

/// What a review decided a submission was; each outcome has its points
/// ([`ReputationRules::points_for`]) and perhaps a bounty ([`ReputationRules::bounty_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Verified, and the first report of an incident not yet known.
    NewIncident,
    /// Verified evidence for an incident already known.
    Evidence,
    /// The same as a submission already made, or nothing the incident did not have.
    Duplicate,
    /// Rejected as false.
    FalseReport,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::NewIncident,
        Outcome::Evidence,
        Outcome::Duplicate,
        Outcome::FalseReport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::NewIncident => "new_incident",
            Outcome::Evidence => "evidence",
            Outcome::Duplicate => "duplicate",
            Outcome::FalseReport => "false_report",
        }
    }
}

/// From `from_score` up (to the next step), a user may make `per_day` submissions a UTC
/// day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionStep {
    pub from_score: i32,
    pub per_day: u32,
}

/// The default of `community.submissions_per_day`: 5 a day for everyone who may submit,
/// 20 from a score of 25 (a few verified reports), 100 for trusted users.
pub const DEFAULT_SUBMISSION_STEPS: [SubmissionStep; 3] = [
    SubmissionStep {
        from_score: 0,
        per_day: 5,
    },
    SubmissionStep {
        from_score: 25,
        per_day: 20,
    },
    SubmissionStep {
        from_score: 100,
        per_day: 100,
    },
];

/// The reputation rules, as configured; every key is optional, and each one left out
/// keeps the default written beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReputationRules {
    /// Points for the first report of a new incident, once verified. Default 10.
    pub new_incident: i32,
    /// Points for verified evidence for an incident already known. Default 5.
    pub evidence: i32,
    /// Points for a duplicate (zero or less). Default -2: a duplicate costs a reviewer's
    /// time, a little.
    pub duplicate: i32,
    /// Points for a submission rejected as false (zero or less). Default -10: one false
    /// report undoes a verified new incident.
    pub false_report: i32,
    /// The most points a user gains in one UTC day; losses are never capped. Default 50:
    /// a flood of small submissions cannot buy trust in a day.
    pub daily_cap: i32,
    /// From this score up, a user's submissions on existing incidents are applied without
    /// review (still logged and reversible). Default 100.
    pub trusted: i32,
    /// Submissions a day by score, steps sorted by `from_score`, the first from 0. A score
    /// below zero may not submit at all. Default [`DEFAULT_SUBMISSION_STEPS`].
    pub submissions_per_day: Vec<SubmissionStep>,
    /// The bounty for the first report of a new incident. Default $50.
    #[serde(deserialize_with = "usd_setting")]
    pub bounty_new_incident_usd: Usd,
    /// The bounty for verified evidence for a known incident. Default $20.
    #[serde(deserialize_with = "usd_setting")]
    pub bounty_evidence_usd: Usd,
    /// The bounty for verified evidence that only adds a source to an incident that
    /// `bounty_minor_from_sources` independent sources had already reported. Default $5.
    #[serde(deserialize_with = "usd_setting")]
    pub bounty_minor_usd: Usd,
    /// How many sources make a report's evidence minor. Default 3: by then the incident
    /// is well established, and a fourth source adds little.
    pub bounty_minor_from_sources: i64,
}

impl Default for ReputationRules {
    fn default() -> Self {
        ReputationRules {
            new_incident: 10,
            evidence: 5,
            duplicate: -2,
            false_report: -10,
            daily_cap: 50,
            trusted: 100,
            submissions_per_day: DEFAULT_SUBMISSION_STEPS.to_vec(),
            bounty_new_incident_usd: dollars(50),
            bounty_evidence_usd: dollars(20),
            bounty_minor_usd: dollars(5),
            bounty_minor_from_sources: 3,
        }
    }
}

fn dollars(amount: u32) -> Usd {
    Usd::whole_dollars(amount)
}

impl ReputationRules {
    /// The points `outcome` gives (positive) or takes (negative), before the daily cap.
    pub fn points_for(&self, outcome: Outcome) -> i32 {
        match outcome {
            Outcome::NewIncident => self.new_incident,
            Outcome::Evidence => self.evidence,
            Outcome::Duplicate => self.duplicate,
            Outcome::FalseReport => self.false_report,
        }
    }

    /// The points actually applied when a user who has gained `earned_today` points this
    /// UTC day (gains only, after the cap; losses do not give room back) is given
    /// `points`: a gain is cut so that the day's gains stay within `daily_cap`; a loss
    /// passes whole.
    pub fn capped_gain(&self, earned_today: i32, points: i32) -> i32 {
        if points <= 0 {
            return points;
        }
        let room = self.daily_cap.saturating_sub(earned_today.max(0)).max(0);
        points.min(room)
    }

    /// Whether a user with `score` may submit at all: not below zero.
    pub fn may_submit(&self, score: i32) -> bool {
        score >= 0
    }

    /// Submissions a UTC day a user with `score` may make: the step the score has
    /// reached; 0 below zero.
    pub fn per_day(&self, score: i32) -> u32 {
        if !self.may_submit(score) {
            return 0;
        }
        self.submissions_per_day
            .iter()
            .rev()
            .find(|step| step.from_score <= score)
            .map_or(0, |step| step.per_day)
    }

    /// Whether a user with `score` has submissions on existing incidents applied without
    /// review.
    pub fn is_trusted(&self, score: i32) -> bool {
        score >= self.trusted
    }

    /// The bounty a verified submission earns, `sources_before` being the number of
    /// independent sources that had reported its incident before it (ignored for a new
    /// incident). `None` for a duplicate, a false report, and an amount of zero.
    pub fn bounty_for(&self, outcome: Outcome, sources_before: i64) -> Option<Usd> {
        let amount = match outcome {
            Outcome::NewIncident => self.bounty_new_incident_usd,
            Outcome::Evidence if sources_before >= self.bounty_minor_from_sources => {
                self.bounty_minor_usd
            }
            Outcome::Evidence => self.bounty_evidence_usd,
            Outcome::Duplicate | Outcome::FalseReport => return None,
        };
        (!amount.decimal().is_zero()).then_some(amount)
    }

    /// Refuses rules that cannot work; the message names the first key at fault
    /// (`community.daily_cap must be at least 1`). Amounts are never negative: a
    /// negative one is refused when the settings are read.
    pub fn validate(&self) -> Result<(), String> {
        let refused = |key: &str, why: String| Err(format!("community.{key} {why}"));
        for (key, points) in [
            ("new_incident", self.new_incident),
            ("evidence", self.evidence),
        ] {
            if points < 0 {
                return refused(
                    key,
                    format!("({points}) must not be negative: it is a gain"),
                );
            }
        }
        for (key, points) in [
            ("duplicate", self.duplicate),
            ("false_report", self.false_report),
        ] {
            if points > 0 {
                return refused(
                    key,
                    format!("({points}) must not be positive: it is a penalty"),
                );
            }
        }
        // A cap of zero would make every gain vanish without a word.
        if self.daily_cap < 1 {
            return refused("daily_cap", "must be at least 1".to_owned());
        }
        // At zero every user, new ones included, would skip review.
        if self.trusted < 1 {
            return refused("trusted", "must be at least 1".to_owned());
        }
        self.validate_steps()?;
        if self.bounty_minor_from_sources < 1 {
            return refused("bounty_minor_from_sources", "must be at least 1".to_owned());
        }
        Ok(())
    }

    fn validate_steps(&self) -> Result<(), String> {
        let key = "community.submissions_per_day";
        let Some(first) = self.submissions_per_day.first() else {
            return Err(format!("{key} must hold at least one step (from_score 0)"));
        };
        // Without a step at 0 a new user, whose score is 0, could not submit.
        if first.from_score != 0 {
            return Err(format!(
                "{key}[0].from_score ({}) must be 0: a new user's score is 0",
                first.from_score
            ));
        }
        for (i, step) in self.submissions_per_day.iter().enumerate() {
            if step.per_day == 0 {
                return Err(format!(
                    "{key}[{i}].per_day must be at least 1 (a score below zero is what stops a user)"
                ));
            }
            if let Some(before) = i
                .checked_sub(1)
                .and_then(|b| self.submissions_per_day.get(b))
            {
                if step.from_score <= before.from_score {
                    return Err(format!(
                        "{key}[{i}].from_score ({}) must be greater than {key}[{}].from_score ({}): steps are sorted ascending",
                        step.from_score,
                        i - 1,
                        before.from_score
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An amount of a setting: decimal text (`"50.00"`) or a number, as
/// [`Usd::parse`] reads it; a negative amount is refused here.
fn usd_setting<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Usd, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Amount {
        Text(String),
        Integer(i64),
        Number(f64),
    }
    let text = match Amount::deserialize(deserializer)? {
        Amount::Text(text) => text,
        Amount::Integer(n) => n.to_string(),
        Amount::Number(n) => n.to_string(),
    };
    Usd::parse("amount", &text)
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not an amount: {}", e.message)))
}

#[cfg(test)]
mod tests;
