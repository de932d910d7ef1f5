//! What an alert subscription wants to hear about, matched on the merged incident (every
//! source's claim folded into one), never on one source's claim.
//!
//! Every part is optional; an absent or empty part matches everything. Within a part any
//! value matches (chains `["ethereum", "bsc"]`: either); across parts all must. Chains
//! are matched by their resolved slug (`eth`, `Ethereum` and `1` are one chain),
//! protocols by identity (case, suffix words and the alias table: a filter on `Ronin`
//! matches `Ronin Network`), attack classes and types, statuses by their names. An
//! incident whose loss is unknown does not pass a minimum loss.

use serde::{Deserialize, Serialize};

use crate::identity::{Aliases, NameMatch};
use crate::money::Usd;
use crate::protocol::protocol_key;
use crate::{AttackClass, AttackType, Chain, FieldError, IncidentStatus};

/// The most values one part of a filter may list.
pub const MAX_FILTER_VALUES: usize = 100;

/// A filter as a subscriber writes it (`filter` of `POST /api/subscriptions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlertFilterInput {
    pub chains: Vec<String>,
    pub protocols: Vec<String>,
    pub attack_classes: Vec<String>,
    pub attack_types: Vec<String>,
    /// A decimal number of US dollars, as a string (`"1000000"`).
    pub min_loss_usd: Option<String>,
    /// Independent sources: distinct source names with a claim on the incident.
    pub min_sources: Option<u32>,
    pub statuses: Vec<String>,
}

/// A validated filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    chains: Vec<Chain>,
    /// As written, with their keys.
    protocols: Vec<(String, String)>,
    attack_classes: Vec<AttackClass>,
    attack_types: Vec<AttackType>,
    min_loss_usd: Option<Usd>,
    min_sources: Option<u32>,
    statuses: Vec<IncidentStatus>,
}

/// What a filter reads of a merged incident.
#[derive(Debug, Clone, Copy)]
pub struct AlertFacts<'a> {
    pub protocol: &'a str,
    /// Chain slugs.
    pub chains: &'a [String],
    pub attack_type: AttackType,
    pub status: IncidentStatus,
    pub loss_usd: Option<Usd>,
    pub independent_sources: usize,
}

fn each<T>(
    field: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, FieldError>,
) -> Result<Vec<T>, FieldError> {
    if values.len() > MAX_FILTER_VALUES {
        return Err(FieldError::new(
            format!("filter.{field}"),
            format!("lists more than {MAX_FILTER_VALUES} values"),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            parse(value).map_err(|e| FieldError::new(format!("filter.{field}[{i}]"), e.message))
        })
        .collect()
}

impl AlertFilter {
    /// Validates `input`; an error names the part and the position (`filter.chains[1]`).
    pub fn from_input(input: &AlertFilterInput) -> Result<AlertFilter, FieldError> {
        let protocols = each("protocols", &input.protocols, |name| {
            let name = name.trim();
            let key = protocol_key(name);
            if key.is_empty() {
                return Err(FieldError::new("protocol", "has no letters or digits"));
            }
            Ok((name.to_owned(), key))
        })?;
        Ok(AlertFilter {
            chains: each("chains", &input.chains, Chain::parse)?,
            protocols,
            attack_classes: each("attack_classes", &input.attack_classes, AttackClass::parse)?,
            attack_types: each("attack_types", &input.attack_types, AttackType::parse)?,
            min_loss_usd: input
                .min_loss_usd
                .as_deref()
                .map(|text| Usd::parse("filter.min_loss_usd", text))
                .transpose()?,
            min_sources: input.min_sources,
            statuses: each("statuses", &input.statuses, IncidentStatus::parse)?,
        })
    }

    /// The filter as stored and shown: every value in its resolved form.
    pub fn to_input(&self) -> AlertFilterInput {
        AlertFilterInput {
            chains: self.chains.iter().map(|c| c.slug().to_owned()).collect(),
            protocols: self
                .protocols
                .iter()
                .map(|(name, _)| name.clone())
                .collect(),
            attack_classes: self
                .attack_classes
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            attack_types: self
                .attack_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            min_loss_usd: self.min_loss_usd.map(|u| u.to_string()),
            min_sources: self.min_sources,
            statuses: self
                .statuses
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        }
    }

    pub fn matches(&self, facts: &AlertFacts<'_>, aliases: &Aliases) -> bool {
        let chains = self.chains.is_empty()
            || self
                .chains
                .iter()
                .any(|c| facts.chains.iter().any(|s| s == c.slug()));
        let protocols = self.protocols.is_empty() || {
            let key = protocol_key(facts.protocol);
            self.protocols
                .iter()
                .any(|(_, wanted)| aliases.name_match(wanted, &key) == NameMatch::Same)
        };
        let classes = self.attack_classes.is_empty()
            || self.attack_classes.contains(&facts.attack_type.class());
        let types = self.attack_types.is_empty() || self.attack_types.contains(&facts.attack_type);
        let loss = self.min_loss_usd.is_none_or(|min| {
            facts
                .loss_usd
                .is_some_and(|loss| loss.decimal() >= min.decimal())
        });
        let sources = self
            .min_sources
            .is_none_or(|min| facts.independent_sources >= usize::try_from(min).unwrap_or(0));
        let statuses = self.statuses.is_empty() || self.statuses.contains(&facts.status);
        chains && protocols && classes && types && loss && sources && statuses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: serde_json::Value) -> Result<AlertFilter, FieldError> {
        AlertFilter::from_input(&serde_json::from_value(json).unwrap())
    }

    fn facts<'a>(protocol: &'a str, chains: &'a [String], loss: Option<&str>) -> AlertFacts<'a> {
        AlertFacts {
            protocol,
            chains,
            attack_type: AttackType::parse("oracle_manipulation").unwrap(),
            status: IncidentStatus::Confirmed,
            loss_usd: loss.map(|l| Usd::parse("loss", l).unwrap()),
            independent_sources: 2,
        }
    }

    #[test]
    fn chains_and_protocols_match_by_identity_not_by_spelling() {
        let aliases = Aliases::shipped().unwrap();
        let f =
            filter(serde_json::json!({"chains": ["ETH", "56"], "protocols": ["ronin"]})).unwrap();
        let on = |chain: &str| vec![chain.to_owned()];
        assert!(f.matches(&facts("Ronin Network", &on("ethereum"), None), &aliases));
        assert!(f.matches(&facts("RONIN BRIDGE", &on("bsc"), None), &aliases));
        assert!(!f.matches(&facts("Ronin Network", &on("polygon"), None), &aliases));
        assert!(!f.matches(&facts("Euler", &on("ethereum"), None), &aliases));
        let mim = filter(serde_json::json!({"protocols": ["Abracadabra"]})).unwrap();
        assert!(
            mim.matches(&facts("MIMSpell", &on("ethereum"), None), &aliases),
            "through the shipped alias table"
        );
    }

    #[test]
    fn a_minimum_loss_and_sources_are_floors_and_an_unknown_loss_does_not_pass() {
        let aliases = Aliases::default();
        let chains = vec!["ethereum".to_owned()];
        let f = filter(serde_json::json!({"min_loss_usd": "1000000", "min_sources": 2})).unwrap();
        assert!(f.matches(&facts("X", &chains, Some("1000000")), &aliases));
        assert!(!f.matches(&facts("X", &chains, Some("999999.99")), &aliases));
        assert!(!f.matches(&facts("X", &chains, None), &aliases));
        let three = filter(serde_json::json!({"min_sources": 3})).unwrap();
        assert!(!three.matches(&facts("X", &chains, None), &aliases));
        assert!(AlertFilter::default().matches(&facts("X", &[], None), &aliases));
    }

    #[test]
    fn a_bad_value_is_refused_naming_its_part_and_position() {
        let err =
            filter(serde_json::json!({"attack_types": ["oracle_manipulation", "teleportation"]}))
                .unwrap_err();
        assert_eq!(err.field, "filter.attack_types[1]");
        let err = filter(serde_json::json!({"min_loss_usd": "-5"})).unwrap_err();
        assert_eq!(err.field, "filter.min_loss_usd");
        let err = filter(serde_json::json!({"statuses": ["maybe"]})).unwrap_err();
        assert_eq!(err.field, "filter.statuses[0]");
        assert!(
            serde_json::from_value::<AlertFilterInput>(serde_json::json!({"chain": []})).is_err()
        );
    }

    #[test]
    fn the_stored_form_is_the_resolved_one_and_reads_back_the_same() {
        let f =
            filter(serde_json::json!({"chains": ["BSC"], "attack_classes": ["economic"]})).unwrap();
        let stored = f.to_input();
        assert_eq!(stored.chains, ["bsc"]);
        assert_eq!(AlertFilter::from_input(&stored).unwrap(), f);
    }
}
