//! `/incidents/{id}`: the incident, each canonical value with the source it came from,
//! every claim with its link, where the sources disagree, transaction hashes linked to
//! the chain's explorer, and other incidents of the same protocol.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use kamiyo_api::exploits::{incident_id, list_request, LIST_PARAMETERS};
use kamiyo_api::params::Params;
use kamiyo_api::{ApiError, AppState};
use kamiyo_store::incidents::SourceClaim;
use kamiyo_store::Incident;
use maud::{html, Markup};

use super::html;
use super::table::{chains, IncidentTable};
use crate::ctx::Ctx;
use crate::explorer;
use crate::format;
use crate::layout;

/// Related incidents shown.
const RELATED: usize = 10;

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = incident_id(id)?;
    let incident = match state.incidents.get(id).await? {
        Some(incident) if ctx.caller.can_see(incident.occurred_at, ctx.now) => incident,
        // Not visible to this tier yet: it does not exist for this visitor, as on the API.
        Some(_) => return Err(ApiError::NotFoundItem("incident")),
        None => {
            return match state.incidents.redirect(id).await? {
                Some(survivor) => {
                    Ok(Redirect::permanent(&format!("/incidents/{survivor}")).into_response())
                }
                None => Err(ApiError::NotFoundItem("incident")),
            }
        }
    };
    // The same protocol (its key, through its index), within what this visitor may see.
    let mut related_request = list_request(
        &Params::from_query(
            RawQuery(Some(format!("limit={}", RELATED + 1))),
            LIST_PARAMETERS,
        )?,
        &ctx.caller,
        ctx.now,
    )?;
    related_request.filter.protocol_key = Some(incident.protocol_key.clone());
    let by_name = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("protocol", &incident.protocol)
        .finish();
    let mut related = state.incidents.list(&related_request).await?.items;
    related.retain(|r| r.id != incident.id);
    related.truncate(RELATED);

    let title = format!(
        "{} ({})",
        incident.protocol,
        format::day(incident.occurred_at)
    );
    let body = html! {
        p { a href="/incidents" { "← All incidents" } }
        h1 { (incident.protocol) }
        (facts(&incident))
        @if let Some(description) = &incident.description {
            h2 { "What happened" }
            p { (description) }
        }
        (hashes(&incident))
        (conflicts(&incident))
        h2 #claims { "Claims (" (incident.sources.len()) ")" }
        p.muted { "What each source reported. The incident's values above are derived from these." }
        (claims_table(&incident.sources))
        @if !incident.merged_ids.is_empty() {
            p.muted { "Incidents merged into this one (their ids now lead here): "
                @for (i, merged) in incident.merged_ids.iter().enumerate() {
                    @if i > 0 { ", " } "#" (merged)
                }
            }
        }
        h2 { "Other incidents of " (incident.protocol) }
        @if related.is_empty() {
            p.muted { "None that you can see." }
        } @else {
            (IncidentTable { caption: "Incidents with the same protocol name", items: &related, sort_links: None }.render())
            p { a href=(format!("/incidents?{by_name}")) { "Incidents whose name contains " (incident.protocol) } }
        }
        p { a href=(format!("/api/exploits/{}", incident.id)) { "This incident on the API (JSON)" } }
    };
    Ok(html(StatusCode::OK, layout::page(&ctx, &title, body)))
}

/// The source that gave `field`'s canonical value, as a tag.
fn source_of(incident: &Incident, field: &str) -> Markup {
    match incident.provenance.iter().find(|p| p.field == field) {
        Some(p) => html! {
            a.source-tag href=(format!("#claim-{}", p.claim)) title="The claim this value comes from" { (p.source) }
        },
        None => html! {},
    }
}

fn facts(incident: &Incident) -> Markup {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    html! {
        dl.facts {
            dt { "Name" } dd { (incident.protocol) (source_of(incident, "protocol")) }
            dt { "Date" } dd { (format::day(incident.occurred_at)) (source_of(incident, "occurred_at")) }
            dt { "Loss" } dd { (format::usd(incident.loss_usd.map(|u| u.decimal()))) (source_of(incident, "loss_usd")) }
            dt { "Recovered" } dd { (format::usd(incident.recovered_usd.map(|u| u.decimal()))) (source_of(incident, "recovered_usd")) }
            dt { "Chains" } dd { (chains(&incident.chains)) (source_of(incident, "chain")) }
            dt { "Attack" } dd {
                (incident.attack_class.as_str().replace('_', " ")) " / " (incident.attack_type.as_str().replace('_', " "))
                (source_of(incident, "attack_type"))
                @if let Some(text) = &incident.attack_text { " — " (text) }
            }
            dt { "Status" } dd { (incident.status.as_str().replace('_', " ")) }
            dt { "Flash loan" } dd { (yes_no(incident.flash_loan)) }
            dt { "Bridge" } dd { (yes_no(incident.bridge)) }
            dt { "Independent sources" } dd { (incident.sources_count) }
            dt { "First recorded" } dd { (format::instant(incident.created_at)) }
            dt { "Last changed" } dd { (format::instant(incident.updated_at)) }
        }
    }
}

fn hashes(incident: &Incident) -> Markup {
    if incident.tx_hashes.is_empty() {
        return html! {};
    }
    html! {
        h2 { "Transactions" }
        ul {
            @for tx in &incident.tx_hashes {
                li {
                    (tx.chain.display_name()) ": "
                    @match explorer::tx_url(tx.chain.slug(), &tx.hash) {
                        Some(url) => { a.hash href=(url) rel="noopener noreferrer external" { (tx.hash) } }
                        None => { span.hash { (tx.hash) } }
                    }
                }
            }
        }
    }
}

fn conflicts(incident: &Incident) -> Markup {
    if incident.conflicts.is_empty() {
        return html! {};
    }
    let label = |field: &str| match field {
        "loss_usd" => "Loss",
        "occurred_at" => "Date",
        "chains" => "Chains",
        _ => "Value",
    };
    html! {
        h2 { "Where the sources disagree" }
        div.table-wrap { table {
            caption { "Each source's value where they differ" }
            thead { tr { th scope="col" { "Field" } th scope="col" { "Source" } th scope="col" { "Says" } } }
            // One row group per field: its header spans that group's rows.
            @for conflict in &incident.conflicts {
                tbody {
                    @for (i, value) in conflict.values.iter().enumerate() {
                        tr {
                            @if i == 0 { th scope="rowgroup" rowspan=(conflict.values.len()) { (label(&conflict.field)) } }
                            td { (value.source) }
                            td { (conflict_value(&conflict.field, &value.value)) }
                        }
                    }
                }
            }
        } }
    }
}

fn conflict_value(field: &str, value: &str) -> Markup {
    match field {
        "loss_usd" => format::usd(Some(format::decimal(value))),
        _ => html! { (value) },
    }
}

fn claims_table(claims: &[SourceClaim]) -> Markup {
    html! {
        div.table-wrap { table {
            caption { "Every source's claim" }
            thead { tr {
                th scope="col" { "Source" }
                th scope="col" { "Reported as" }
                th scope="col" { "Date given" }
                th.num scope="col" { "Loss" }
                th scope="col" class="hide-narrow" { "Chains" }
                th scope="col" class="hide-narrow" { "Technique" }
                th scope="col" class="hide-narrow" { "Joined by" }
                th scope="col" class="hide-narrow" { "Last seen" }
            } }
            tbody {
                @for claim in claims {
                    tr id=(format!("claim-{}", claim.id)) {
                        td {
                            @match claim.url.as_deref().filter(|u| u.starts_with("https://") || u.starts_with("http://")) {
                                Some(url) => { a href=(url) rel="noopener noreferrer external" { (claim.source) } }
                                None => { (claim.source) }
                            }
                        }
                        td { (claim.reported_name) }
                        td { (claim.reported_date) }
                        td.num { (format::usd(claim.loss_usd.map(|u| u.decimal()))) }
                        td class="hide-narrow" { (chains(&claim.chains)) }
                        td class="hide-narrow" { (claim.technique.as_deref().unwrap_or("")) }
                        td class="hide-narrow" {
                            (claim.joined_by.map(|j| j.as_str()).unwrap_or(""))
                            @if let Some(e) = claim.evidence { " (evidence " (e) ")" }
                        }
                        td class="hide-narrow" { (format::instant(claim.last_seen_at)) }
                    }
                }
            }
        } }
    }
}
