//! The two-level attack taxonomy (docs/TAXONOMY.md) and the rules that place a source's
//! free-text technique in it. The source's text is always kept beside the result.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// The taxonomy's class of an attack (docs/TAXONOMY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttackClass {
    Code,
    Economic,
    KeyInfra,
    Social,
    Insider,
    Other,
}

/// The taxonomy's type of an attack (docs/TAXONOMY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttackType {
    Reentrancy,
    AccessControl,
    LogicError,
    MathPrecision,
    InputValidation,
    SignatureVerification,
    OracleManipulation,
    MevFrontrun,
    GovernanceAttack,
    PrivateKeyCompromise,
    Infrastructure,
    FrontendSupplyChain,
    Phishing,
    RugPull,
    Unknown,
}

pub const ATTACK_TYPES: [AttackType; 15] = [
    AttackType::Reentrancy,
    AttackType::AccessControl,
    AttackType::LogicError,
    AttackType::MathPrecision,
    AttackType::InputValidation,
    AttackType::SignatureVerification,
    AttackType::OracleManipulation,
    AttackType::MevFrontrun,
    AttackType::GovernanceAttack,
    AttackType::PrivateKeyCompromise,
    AttackType::Infrastructure,
    AttackType::FrontendSupplyChain,
    AttackType::Phishing,
    AttackType::RugPull,
    AttackType::Unknown,
];

impl AttackType {
    pub fn class(self) -> AttackClass {
        use AttackType::*;
        match self {
            Reentrancy
            | AccessControl
            | LogicError
            | MathPrecision
            | InputValidation
            | SignatureVerification => AttackClass::Code,
            OracleManipulation | MevFrontrun | GovernanceAttack => AttackClass::Economic,
            PrivateKeyCompromise | Infrastructure | FrontendSupplyChain => AttackClass::KeyInfra,
            Phishing => AttackClass::Social,
            RugPull => AttackClass::Insider,
            Unknown => AttackClass::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        use AttackType::*;
        match self {
            Reentrancy => "reentrancy",
            AccessControl => "access_control",
            LogicError => "logic_error",
            MathPrecision => "math_precision",
            InputValidation => "input_validation",
            SignatureVerification => "signature_verification",
            OracleManipulation => "oracle_manipulation",
            MevFrontrun => "mev_frontrun",
            GovernanceAttack => "governance_attack",
            PrivateKeyCompromise => "private_key_compromise",
            Infrastructure => "infrastructure",
            FrontendSupplyChain => "frontend_supply_chain",
            Phishing => "phishing",
            RugPull => "rug_pull",
            Unknown => "unknown",
        }
    }

    /// A taxonomy name (`oracle_manipulation`), as the API and our own format use.
    pub fn parse(text: &str) -> Result<AttackType, FieldError> {
        let key = text.trim().to_lowercase().replace([' ', '-'], "_");
        ATTACK_TYPES
            .into_iter()
            .find(|t| t.as_str() == key)
            .ok_or_else(|| {
                FieldError::new(
                    "attack_type",
                    format!("{text:?} is not an attack type of the taxonomy"),
                )
            })
    }
}

impl AttackClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AttackClass::Code => "code",
            AttackClass::Economic => "economic",
            AttackClass::KeyInfra => "key_infra",
            AttackClass::Social => "social",
            AttackClass::Insider => "insider",
            AttackClass::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Result<AttackClass, FieldError> {
        let key = text.trim().to_lowercase().replace([' ', '-'], "_");
        [
            AttackClass::Code,
            AttackClass::Economic,
            AttackClass::KeyInfra,
            AttackClass::Social,
            AttackClass::Insider,
            AttackClass::Other,
        ]
        .into_iter()
        .find(|c| c.as_str() == key)
        .ok_or_else(|| {
            FieldError::new(
                "attack_class",
                format!("{text:?} is not an attack class of the taxonomy"),
            )
        })
    }
}

impl fmt::Display for AttackType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for AttackClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Keyword rules, first match wins; checked against the technique text, then against
/// the source's classification. Order matters: "flash loan oracle manipulation" is an
/// oracle manipulation, not a generic logic error.
const RULES: &[(&[&str], AttackType)] = &[
    (
        &["reentran", "re-entran", "read-only reentrancy"],
        AttackType::Reentrancy,
    ),
    (
        &[
            "oracle",
            "price manipulation",
            "price-manipulation",
            "manipulated price",
        ],
        AttackType::OracleManipulation,
    ),
    (
        &[
            "private key",
            "key compromise",
            "compromised key",
            "key leak",
            "leaked key",
            "multisig compromise",
            "compromised wallet",
            "hot wallet",
            "seed phrase",
        ],
        AttackType::PrivateKeyCompromise,
    ),
    (
        &["governance", "voting", "proposal"],
        AttackType::GovernanceAttack,
    ),
    (
        &["front-run", "frontrun", "front run", "sandwich", "mev"],
        AttackType::MevFrontrun,
    ),
    (
        &[
            "phishing",
            "social engineering",
            "impersonat",
            "address poisoning",
        ],
        AttackType::Phishing,
    ),
    (
        &["rug", "exit scam", "insider", "team dumped", "ponzi"],
        AttackType::RugPull,
    ),
    (
        &[
            "frontend",
            "front-end",
            "dns",
            "supply chain",
            "domain hijack",
            "npm",
        ],
        AttackType::FrontendSupplyChain,
    ),
    (
        &["signature", "ecrecover", "replay"],
        AttackType::SignatureVerification,
    ),
    (
        &[
            "rounding",
            "precision",
            "overflow",
            "underflow",
            "math",
            "arithmetic",
            "calculation",
        ],
        AttackType::MathPrecision,
    ),
    (
        &[
            "access control",
            "unauthorized",
            "unprotected",
            "permission",
            "ownership",
            "privilege",
            "admin function",
            "missing check",
        ],
        AttackType::AccessControl,
    ),
    (
        &[
            "input validation",
            "unchecked",
            "arbitrary call",
            "external call",
            "improper validation",
            "unvalidated",
            "lack of validation",
            "arbitrary",
        ],
        AttackType::InputValidation,
    ),
    (
        &[
            "infrastructure",
            "bridge validator",
            "node",
            "server",
            "exchange hack",
            "cex",
        ],
        AttackType::Infrastructure,
    ),
    (
        &[
            "logic",
            "infinite mint",
            "mint",
            "business",
            "flashloan",
            "flash loan",
            "design flaw",
            "misconfiguration",
        ],
        AttackType::LogicError,
    ),
];

/// Places a source's technique (and classification, when given) in the taxonomy.
pub fn classify(technique: Option<&str>, classification: Option<&str>) -> AttackType {
    for text in [technique, classification].into_iter().flatten() {
        let lower = text.to_lowercase();
        if let Some((_, attack)) = RULES
            .iter()
            .find(|(words, _)| words.iter().any(|w| lower.contains(w)))
        {
            return *attack;
        }
    }
    match classification.map(|c| c.trim().to_lowercase()).as_deref() {
        Some("rugpull" | "rug pull") => AttackType::RugPull,
        Some("infrastructure") => AttackType::Infrastructure,
        Some("protocol logic" | "smart contract language") => AttackType::LogicError,
        _ => AttackType::Unknown,
    }
}

/// Whether a technique text mentions a flash loan (a flag beside the type).
pub fn mentions_flash_loan(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("flash loan") || lower.contains("flashloan") || lower.contains("flash-loan")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn techniques_are_classified() {
        assert_eq!(
            classify(Some("Reentrancy"), Some("Smart Contract Language")),
            AttackType::Reentrancy
        );
        assert_eq!(
            classify(Some("Flashloan Price Oracle Attack"), None),
            AttackType::OracleManipulation
        );
        assert_eq!(
            classify(Some("Private Key Compromised"), Some("Infrastructure")),
            AttackType::PrivateKeyCompromise
        );
        assert_eq!(
            classify(Some("Infinite Mint and Dump"), Some("Protocol Logic")),
            AttackType::LogicError
        );
        assert_eq!(
            classify(Some("Something new"), Some("Rugpull")),
            AttackType::RugPull
        );
        assert_eq!(classify(None, None), AttackType::Unknown);
        assert_eq!(
            AttackType::OracleManipulation.class(),
            AttackClass::Economic
        );
    }

    #[test]
    fn taxonomy_names_round_trip() {
        for t in ATTACK_TYPES {
            assert_eq!(AttackType::parse(t.as_str()).unwrap(), t);
            assert_eq!(AttackClass::parse(t.class().as_str()).unwrap(), t.class());
        }
        assert_eq!(
            AttackType::parse("Oracle Manipulation").unwrap(),
            AttackType::OracleManipulation
        );
        assert!(AttackType::parse("magic").is_err());
        assert!(mentions_flash_loan("Flashloan Incentive Rewards Exploit"));
    }
}
