use super::*;

fn rules() -> ReputationRules {
    ReputationRules::default()
}

fn usd(text: &str) -> Usd {
    Usd::parse("amount", text).unwrap()
}

#[test]
fn the_defaults_are_the_documented_ones_and_valid() {
    let rules = rules();
    assert_eq!(rules.points_for(Outcome::NewIncident), 10);
    assert_eq!(rules.points_for(Outcome::Evidence), 5);
    assert_eq!(rules.points_for(Outcome::Duplicate), -2);
    assert_eq!(rules.points_for(Outcome::FalseReport), -10);
    assert_eq!(rules.daily_cap, 50);
    assert_eq!(rules.trusted, 100);
    assert_eq!(rules.bounty_new_incident_usd.to_string(), "50.00");
    assert_eq!(rules.bounty_evidence_usd.to_string(), "20.00");
    assert_eq!(rules.bounty_minor_usd.to_string(), "5.00");
    assert_eq!(rules.bounty_minor_from_sources, 3);
    assert_eq!(rules.validate(), Ok(()));
}

#[test]
fn a_gain_is_cut_to_what_is_left_of_the_daily_cap() {
    let rules = rules();
    assert_eq!(rules.capped_gain(0, 10), 10);
    assert_eq!(rules.capped_gain(40, 10), 10);
    assert_eq!(rules.capped_gain(45, 10), 5);
    assert_eq!(rules.capped_gain(50, 10), 0);
    assert_eq!(rules.capped_gain(70, 10), 0, "past the cap (a lowered cap)");
}

#[test]
fn a_loss_passes_whole_whatever_was_earned_today() {
    let rules = rules();
    assert_eq!(rules.capped_gain(0, -10), -10);
    assert_eq!(rules.capped_gain(50, -10), -10);
    assert_eq!(rules.capped_gain(i32::MAX, -2), -2);
    assert_eq!(rules.capped_gain(i32::MIN, 10), 10, "no overflow");
}

#[test]
fn a_score_below_zero_may_not_submit_at_all() {
    let rules = rules();
    assert!(rules.may_submit(0));
    assert!(!rules.may_submit(-1));
    assert_eq!(rules.per_day(-1), 0);
    assert_eq!(rules.per_day(i32::MIN), 0);
}

#[test]
fn submissions_per_day_follow_the_step_the_score_has_reached() {
    let rules = rules();
    for (score, per_day) in [
        (0, 5),
        (24, 5),
        (25, 20),
        (99, 20),
        (100, 100),
        (i32::MAX, 100),
    ] {
        assert_eq!(rules.per_day(score), per_day, "score {score}");
    }
}

#[test]
fn a_user_at_or_above_the_threshold_is_trusted() {
    let rules = rules();
    assert!(!rules.is_trusted(99));
    assert!(rules.is_trusted(100));
    assert!(rules.is_trusted(1_000));
    assert!(!rules.is_trusted(-5));
}

#[test]
fn bounties_by_outcome_and_by_how_many_sources_came_before() {
    let rules = rules();
    assert_eq!(rules.bounty_for(Outcome::NewIncident, 0), Some(usd("50")));
    assert_eq!(rules.bounty_for(Outcome::Evidence, 1), Some(usd("20")));
    assert_eq!(rules.bounty_for(Outcome::Evidence, 2), Some(usd("20")));
    assert_eq!(rules.bounty_for(Outcome::Evidence, 3), Some(usd("5")));
    assert_eq!(rules.bounty_for(Outcome::Evidence, 40), Some(usd("5")));
    assert_eq!(rules.bounty_for(Outcome::Duplicate, 0), None);
    assert_eq!(rules.bounty_for(Outcome::FalseReport, 0), None);
}

#[test]
fn a_bounty_of_zero_is_no_bounty() {
    let rules = ReputationRules {
        bounty_minor_usd: usd("0"),
        ..rules()
    };
    assert_eq!(rules.bounty_for(Outcome::Evidence, 5), None);
    assert_eq!(rules.bounty_for(Outcome::Evidence, 0), Some(usd("20")));
}

#[test]
fn outcomes_have_stable_names() {
    let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(
        names,
        ["new_incident", "evidence", "duplicate", "false_report"]
    );
    for outcome in Outcome::ALL {
        let json = serde_json::to_string(&outcome).unwrap();
        assert_eq!(json, format!("\"{}\"", outcome.as_str()));
    }
}

fn refusal(change: impl FnOnce(&mut ReputationRules)) -> String {
    let mut rules = rules();
    change(&mut rules);
    rules.validate().unwrap_err()
}

#[test]
fn each_refusal_names_its_key() {
    let step = |from_score, per_day| SubmissionStep {
        from_score,
        per_day,
    };
    type Change = Box<dyn FnOnce(&mut ReputationRules)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|r| r.daily_cap = 0),
            "community.daily_cap must be at least 1",
        ),
        (
            Box::new(|r| r.trusted = 0),
            "community.trusted must be at least 1",
        ),
        (
            Box::new(|r| r.new_incident = -1),
            "community.new_incident (-1) must not be negative",
        ),
        (
            Box::new(|r| r.evidence = -5),
            "community.evidence (-5) must not be negative",
        ),
        (
            Box::new(|r| r.duplicate = 2),
            "community.duplicate (2) must not be positive",
        ),
        (
            Box::new(|r| r.false_report = 10),
            "community.false_report (10) must not be positive",
        ),
        (
            Box::new(|r| r.submissions_per_day.clear()),
            "community.submissions_per_day must hold at least one step",
        ),
        (
            Box::new(move |r| r.submissions_per_day = vec![step(1, 5)]),
            "community.submissions_per_day[0].from_score (1) must be 0",
        ),
        (
            Box::new(move |r| r.submissions_per_day = vec![step(0, 5), step(100, 20), step(25, 100)]),
            "community.submissions_per_day[2].from_score (25) must be greater than community.submissions_per_day[1].from_score (100)",
        ),
        (
            Box::new(move |r| r.submissions_per_day = vec![step(0, 5), step(0, 20)]),
            "community.submissions_per_day[1].from_score (0) must be greater than",
        ),
        (
            Box::new(move |r| r.submissions_per_day = vec![step(0, 5), step(25, 0)]),
            "community.submissions_per_day[1].per_day must be at least 1",
        ),
        (
            Box::new(|r| r.bounty_minor_from_sources = 0),
            "community.bounty_minor_from_sources must be at least 1",
        ),
    ];
    for (change, expected) in cases {
        let message = refusal(change);
        assert!(message.starts_with(expected), "{message}");
    }
}

#[test]
fn zero_points_and_a_single_step_are_accepted() {
    let rules = ReputationRules {
        new_incident: 0,
        duplicate: 0,
        false_report: 0,
        daily_cap: 1,
        submissions_per_day: vec![SubmissionStep {
            from_score: 0,
            per_day: 1,
        }],
        ..rules()
    };
    assert_eq!(rules.validate(), Ok(()));
    assert_eq!(rules.per_day(1_000), 1);
}

#[test]
fn every_key_left_out_keeps_its_default() {
    let rules: ReputationRules =
        serde_json::from_str(r#"{"daily_cap": 20, "bounty_minor_usd": "7.50"}"#).unwrap();
    assert_eq!(rules.daily_cap, 20);
    assert_eq!(rules.bounty_minor_usd, usd("7.50"));
    assert_eq!(
        ReputationRules {
            daily_cap: 50,
            bounty_minor_usd: usd("5"),
            ..rules
        },
        ReputationRules::default()
    );
}

#[test]
fn amounts_are_read_from_text_or_numbers_and_never_negative() {
    let read = |json: &str| serde_json::from_str::<ReputationRules>(json);
    assert_eq!(
        read(r#"{"bounty_new_incident_usd": 75}"#)
            .unwrap()
            .bounty_new_incident_usd,
        usd("75")
    );
    assert_eq!(
        read(r#"{"bounty_evidence_usd": 12.5}"#)
            .unwrap()
            .bounty_evidence_usd,
        usd("12.50")
    );
    assert_eq!(
        read(r#"{"bounty_evidence_usd": "$1,000"}"#)
            .unwrap()
            .bounty_evidence_usd,
        usd("1000")
    );
    let negative = read(r#"{"bounty_evidence_usd": "-5"}"#).unwrap_err();
    assert!(
        negative.to_string().contains("must not be negative"),
        "{negative}"
    );
    let negative = read(r#"{"bounty_minor_usd": -5}"#).unwrap_err();
    assert!(
        negative.to_string().contains("must not be negative"),
        "{negative}"
    );
    assert!(read(r#"{"bounty_minor_usd": "lots"}"#).is_err());
}

#[test]
fn unknown_keys_are_refused() {
    let err = serde_json::from_str::<ReputationRules>(r#"{"daily_capp": 5}"#).unwrap_err();
    assert!(err.to_string().contains("daily_capp"), "{err}");
    let err = serde_json::from_str::<ReputationRules>(
        r#"{"submissions_per_day": [{"from_score": 0, "per_day": 5, "tier": "pro"}]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("tier"), "{err}");
}

#[test]
fn the_rules_read_back_what_they_write() {
    let rules = rules();
    let json = serde_json::to_string(&rules).unwrap();
    assert!(
        json.contains(r#""bounty_new_incident_usd":"50.00""#),
        "{json}"
    );
    let back: ReputationRules = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rules);
}
