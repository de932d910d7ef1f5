//! The DeFiLlama `/hacks` export saved as CSV.
//!
//! Quirks seen in real exports: many empty cells, several chains in one quoted cell
//! (`"Ethereum,BSC"`), `TRUE`/`FALSE` for `bridgeHack`, dates as `M/D/YY` (kept as text),
//! and values ending in a non-breaking space (trimmed).

use crate::table::{self, Row, Schema};
use crate::text::{self, push_unique};
use crate::{Format, IngestError, RawIncident, Rejection};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Column {
    Name,
    ExploitDate,
    Classification,
    Technique,
    LossUsd,
    Chain,
    BridgeHack,
    TargetType,
    ReturnedFunds,
    DefillamaId,
    Language,
    SourceUrl,
    ParentProtocolId,
}

impl Schema for Column {
    const FORMAT: Format = Format::Defillama;
    const COLUMNS: &'static [(Self, &'static str)] = &[
        (Column::Name, "name"),
        (Column::ExploitDate, "exploit_date"),
        (Column::Classification, "classification"),
        (Column::Technique, "technique"),
        (Column::LossUsd, "loss_usd"),
        (Column::Chain, "chain"),
        (Column::BridgeHack, "bridgeHack"),
        (Column::TargetType, "targetType"),
        (Column::ReturnedFunds, "returnedFunds"),
        (Column::DefillamaId, "defillamaId"),
        (Column::Language, "language"),
        (Column::SourceUrl, "source_url"),
        (Column::ParentProtocolId, "parentProtocolId"),
    ];
    // Every column we map is required: a renamed column would otherwise turn into empty
    // values for every record without anyone noticing. `language` and
    // `parentProtocolId` are read by nothing, so they may go.
    const REQUIRED: &'static [Self] = &[
        Column::Name,
        Column::ExploitDate,
        Column::Classification,
        Column::Technique,
        Column::LossUsd,
        Column::Chain,
        Column::BridgeHack,
        Column::TargetType,
        Column::ReturnedFunds,
        Column::DefillamaId,
        Column::SourceUrl,
    ];
    const UNKNOWN_IS_ERROR: bool = false;
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Result<RawIncident, Rejection>>, IngestError> {
    table::read(bytes, to_incident)
}

fn to_incident(row: &Row<Column>) -> Result<RawIncident, Rejection> {
    let mut chains = Vec::new();
    text::split_list(row.raw(Column::Chain)).for_each(|chain| push_unique(&mut chains, chain));
    Ok(RawIncident {
        line: row.line,
        source: None, // filled with the caller's default, or "defillama"
        source_url: row.text(Column::SourceUrl),
        external_id: row.text(Column::DefillamaId),
        protocol: row.text(Column::Name),
        chains,
        date: row.text(Column::ExploitDate),
        loss_usd: row.text(Column::LossUsd),
        recovered_usd: row.text(Column::ReturnedFunds),
        attack_class: row.text(Column::Classification),
        technique: row.text(Column::Technique),
        bridge: row.boolean(Column::BridgeHack)?,
        target_type: row.text(Column::TargetType),
        ..RawIncident::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "name,exploit_date,classification,technique,loss_usd,chain,bridgeHack,targetType,returnedFunds,defillamaId,language,source_url,parentProtocolId\n";

    #[test]
    fn maps_every_column_and_keeps_the_date_text() {
        let input = format!(
            "{HEADER}Examplefi,3/22/24,Protocol Logic,Price Oracle Manipulation\u{a0},4800000,\"Ethereum,BSC\",TRUE,DeFi Protocol,100000,9001,Solidity,https://example.com/examplefi,parent#examplefi\n"
        );
        let results = parse(input.as_bytes()).unwrap();
        let incident = results[0].as_ref().unwrap();
        assert_eq!(
            incident,
            &RawIncident {
                line: 2,
                source: None,
                source_url: Some("https://example.com/examplefi".into()),
                external_id: Some("9001".into()),
                protocol: Some("Examplefi".into()),
                chains: vec!["Ethereum".into(), "BSC".into()],
                date: Some("3/22/24".into()),
                loss_usd: Some("4800000".into()),
                recovered_usd: Some("100000".into()),
                attack_class: Some("Protocol Logic".into()),
                technique: Some("Price Oracle Manipulation".into()),
                bridge: Some(true),
                target_type: Some("DeFi Protocol".into()),
                ..RawIncident::default()
            }
        );
    }

    #[test]
    fn empty_cells_are_absent() {
        let input = format!("{HEADER}Examplefi,1/5/23,,,,,FALSE,,,,,,\n");
        let results = parse(input.as_bytes()).unwrap();
        let incident = results[0].as_ref().unwrap();
        assert_eq!(incident.loss_usd, None);
        assert_eq!(incident.external_id, None);
        assert!(incident.chains.is_empty());
        assert_eq!(incident.bridge, Some(false));
    }

    #[test]
    fn ignored_and_extra_columns_are_optional_but_mapped_ones_are_required() {
        let input = "name,exploit_date,classification,technique,loss_usd,chain,bridgeHack,targetType,returnedFunds,defillamaId,source_url,newColumn\n\
                     Examplefi,1/5/23,,,,,FALSE,,,,,x\n";
        assert!(parse(input.as_bytes()).unwrap()[0].is_ok());

        let err = parse(b"name,exploit_date,chain\n").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("loss_usd"), "{message}");
        assert!(message.contains("bridgeHack"), "{message}");
        assert!(!message.contains("language"), "{message}");
    }

    #[test]
    fn bad_bridge_hack_names_the_column() {
        let input = format!("{HEADER}Examplefi,1/5/23,,,,,MAYBE,,,,,,\n");
        let rejection = parse(input.as_bytes()).unwrap().remove(0).unwrap_err();
        assert_eq!(rejection.field.as_deref(), Some("bridgeHack"));
        assert_eq!(rejection.line, 2);
    }
}
