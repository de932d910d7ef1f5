//! `/incidents`: the listing with every filter of `GET /api/exploits`, read from the same
//! query string by the same code (`kamiyo_api::exploits::list_request`), so that a page
//! URL and an API URL with the same parameters give the same rows and total.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use kamiyo_api::exploits::{list_request, LIST_PARAMETERS};
use kamiyo_api::params::Params;
use kamiyo_api::{ApiError, AppState};
use kamiyo_domain::attack::ATTACK_TYPES;
use kamiyo_domain::{AttackClass, IncidentStatus};
use maud::{html, Markup};

use super::html;
use super::table::{query_without, without_empty_fields, IncidentTable, SortLinks};
use crate::ctx::Ctx;
use crate::format;
use crate::layout;

const CLASSES: [AttackClass; 6] = [
    AttackClass::Code,
    AttackClass::Economic,
    AttackClass::KeyInfra,
    AttackClass::Social,
    AttackClass::Insider,
    AttackClass::Other,
];

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if let Some(redirect) = without_empty_fields("/incidents", query.as_deref()) {
        return Ok(redirect);
    }
    let values: HashMap<String, String> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let request = Params::from_query(RawQuery(query.clone()), LIST_PARAMETERS)
        .and_then(|params| list_request(&params, &ctx.caller, ctx.now));
    let request = match request {
        Ok(request) => request,
        // A bad filter: the form again, with what was wrong (the API's own message).
        Err(ApiError::BadParameter { parameter, message }) => {
            let error = format!("{parameter}: {message}");
            let body = html! {
                h1 { "Incidents" }
                (filter_form(&values))
                div #results {
                    p.error role="alert" { (error) }
                }
            };
            return Ok(html(
                StatusCode::BAD_REQUEST,
                layout::page(&ctx, "Incidents", body),
            ));
        }
        Err(other) => return Err(other),
    };
    let page = state.incidents.list(&request).await?;

    let raw = query.as_deref();
    let filters = query_without(raw, &["sort", "order", "cursor"]);
    let sort = values.get("sort").map_or("date", String::as_str);
    let order = values.get("order").map_or("desc", String::as_str);
    let same_query = query_without(raw, &["cursor"]);
    let with_query = |path: &str, q: &str| {
        if q.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{q}")
        }
    };
    let next = page.next_cursor.as_ref().map(|cursor| {
        let q = if same_query.is_empty() {
            format!("cursor={}", cursor.encode())
        } else {
            format!("{same_query}&cursor={}", cursor.encode())
        };
        format!("/incidents?{q}")
    });
    let export = with_query("/incidents.csv", &query_without(raw, &["cursor", "limit"]));
    let api = with_query("/api/exploits", raw.unwrap_or_default());
    let shown = page.items.len();
    let body = html! {
        h1 { "Incidents" }
        (filter_form(&values))
        div #results aria-live="polite" tabindex="-1" {
            p.actions {
                strong { (format::count(page.total)) } " incidents match"
                @if page.total as usize > shown { ", " (shown) " shown on this page" }
                "."
                a href=(export) download { "Download CSV" }
                a href=(api) title="Your browser's request to the API is anonymous: send your key to see your tier's view" { "Same query on the API (JSON)" }
            }
            (IncidentTable {
                caption: "Incidents matching the filters",
                items: &page.items,
                sort_links: Some(SortLinks { filters: &filters, sort, order }),
            }.render())
            nav.pager aria-label="Pages" {
                @if request.cursor.is_some() {
                    a href=(with_query("/incidents", &same_query)) data-nav { "First page" }
                }
                @if let Some(next) = &next {
                    a href=(next) data-nav rel="next" { "Next page" }
                }
            }
        }
    };
    Ok(html(StatusCode::OK, layout::page(&ctx, "Incidents", body)))
}

/// The filters as a plain GET form (it works without the script; with it, results are
/// swapped in place). Field names are the API's parameters.
fn filter_form(values: &HashMap<String, String>) -> Markup {
    let value = |name: &str| values.get(name).cloned().unwrap_or_default();
    let select = |name: &str, label: &str, options: Vec<(String, String)>| {
        let current = value(name);
        html! {
            div {
                label for=(format!("f-{name}")) { (label) }
                select id=(format!("f-{name}")) name=(name) {
                    option value="" { "Any" }
                    @for (v, text) in &options {
                        option value=(v) selected[*v == current] { (text) }
                    }
                }
            }
        }
    };
    let input = |name: &str, label: &str, kind: &str, hint: &str| {
        html! {
            div {
                label for=(format!("f-{name}")) { (label) }
                input id=(format!("f-{name}")) name=(name) type=(kind) value=(value(name)) placeholder=(hint);
            }
        }
    };
    let human = |s: &str| s.replace('_', " ");
    html! {
        form.filters method="get" action="/incidents" data-enhance role="search" aria-label="Filter incidents" {
            (input("q", "Search", "search", "protocol or description"))
            (input("protocol", "Protocol", "text", "e.g. Euler"))
            (input("chain", "Chain", "text", "e.g. ethereum, bsc, 56"))
            (select("attack_class", "Attack class", CLASSES.iter().map(|c| (c.as_str().to_owned(), human(c.as_str()))).collect()))
            (select("attack_type", "Attack type", ATTACK_TYPES.iter().map(|t| (t.as_str().to_owned(), human(t.as_str()))).collect()))
            (select("status", "Status", IncidentStatus::ALL.iter().map(|s| (s.as_str().to_owned(), human(s.as_str()))).collect()))
            (input("min_amount", "Min loss (USD)", "text", "1000000"))
            (input("max_amount", "Max loss (USD)", "text", ""))
            (input("from", "From", "date", "YYYY-MM-DD"))
            (input("to", "To", "date", "YYYY-MM-DD"))
            (input("min_sources", "Min sources", "number", "1"))
            (select("sort", "Sort by", vec![("date".into(), "date".into()), ("amount".into(), "loss".into()), ("sources".into(), "sources".into())]))
            (select("order", "Order", vec![("desc".into(), "newest / largest first".into()), ("asc".into(), "oldest / smallest first".into())]))
            @if let Some(limit) = values.get("limit") {
                input type="hidden" name="limit" value=(limit);
            }
            div.actions {
                button type="submit" { "Apply" }
                a href="/incidents" { "Clear" }
            }
        }
    }
}
