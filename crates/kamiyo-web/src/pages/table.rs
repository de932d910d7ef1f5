//! The incident table every page shows incidents in, and query-string helpers.

use axum::response::{IntoResponse, Redirect, Response};
use kamiyo_store::incidents::IncidentSummary;
use maud::{html, Markup};

use crate::format;

/// A caption, and the incidents under it; `sort_links` makes the date and loss headers
/// links that sort by them (the listing's current query in `query`, without `sort`,
/// `order` and `cursor`).
pub struct IncidentTable<'a> {
    pub caption: &'a str,
    pub items: &'a [IncidentSummary],
    pub sort_links: Option<SortLinks<'a>>,
}

pub struct SortLinks<'a> {
    /// The listing's filters as a query string (no `sort`, `order`, `cursor`).
    pub filters: &'a str,
    pub sort: &'a str,
    pub order: &'a str,
}

impl IncidentTable<'_> {
    pub fn render(&self) -> Markup {
        html! {
            div.table-wrap {
                table {
                    caption { (self.caption) }
                    thead { tr {
                        th scope="col" aria-sort=[self.aria_sort("date")] { (self.header("date", "Date")) }
                        th scope="col" { "Protocol" }
                        th scope="col" class="hide-narrow" { "Chains" }
                        th scope="col" class="hide-narrow" { "Attack" }
                        th.num scope="col" aria-sort=[self.aria_sort("amount")] { (self.header("amount", "Loss")) }
                        th.num scope="col" { "Sources" }
                    } }
                    tbody {
                        @for incident in self.items {
                            tr {
                                td { (format::day(incident.occurred_at)) }
                                td { a href=(format!("/incidents/{}", incident.id)) { (incident.protocol) } }
                                td class="hide-narrow" { (chains(&incident.chains)) }
                                td class="hide-narrow" { (incident.attack_type.as_str().replace('_', " ")) }
                                td.num { (format::usd(incident.loss_usd.map(|u| u.decimal()))) }
                                td.num { (incident.sources_count) }
                            }
                        }
                        @if self.items.is_empty() {
                            tr { td colspan="6" { "No incidents match." } }
                        }
                    }
                }
            }
        }
    }

    fn aria_sort(&self, key: &str) -> Option<&'static str> {
        let links = self.sort_links.as_ref()?;
        (links.sort == key).then_some(if links.order == "asc" {
            "ascending"
        } else {
            "descending"
        })
    }

    fn header(&self, key: &str, label: &str) -> Markup {
        let Some(links) = &self.sort_links else {
            return html! { (label) };
        };
        // The current sort flips its order; another starts from the largest/newest.
        let order = if links.sort == key && links.order == "desc" {
            "asc"
        } else {
            "desc"
        };
        let mut query = format!("sort={key}&order={order}");
        if !links.filters.is_empty() {
            query = format!("{}&{query}", links.filters);
        }
        html! {
            a href=(format!("/incidents?{query}")) data-nav {
                (label)
                @if links.sort == key { (if links.order == "asc" { " ▲" } else { " ▼" }) }
            }
        }
    }
}

pub fn chains(chains: &[kamiyo_domain::Chain]) -> Markup {
    html! {
        @for (i, chain) in chains.iter().enumerate() {
            @if i > 0 { ", " }
            @if chain.is_unknown() { span.muted { "unknown" } } @else { (chain.display_name()) }
        }
    }
}

/// The pairs of a raw query string, still percent-encoded.
pub fn pairs(raw: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    raw.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// A plain form sends its empty fields (`?chain=&min_amount=`); the API refuses most of
/// them. The page answers with the same URL without them, so that what the address bar
/// shows is exactly the API's query string.
pub fn without_empty_fields(path: &str, raw: Option<&str>) -> Option<Response> {
    let blank = |v: &str| v.is_empty() || v.chars().all(|c| c == '+') || v == "%20";
    if !pairs(raw).any(|(_, v)| blank(v)) {
        return None;
    }
    let kept: Vec<String> = pairs(raw)
        .filter(|(_, v)| !blank(v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let target = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    Some(Redirect::to(&target).into_response())
}

/// `raw` without the parameters named in `drop`.
pub fn query_without(raw: Option<&str>, drop: &[&str]) -> String {
    pairs(raw)
        .filter(|(k, _)| !drop.contains(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_are_dropped_by_a_redirect_and_full_ones_kept() {
        assert!(without_empty_fields("/incidents", Some("chain=bsc&limit=5")).is_none());
        assert!(without_empty_fields("/incidents", None).is_none());
        let response = without_empty_fields("/incidents", Some("chain=&q=x&min_amount=+"));
        let location = response
            .as_ref()
            .and_then(|r| r.headers().get("location"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(location.as_deref(), Some("/incidents?q=x"));
        assert_eq!(
            query_without(
                Some("chain=bsc&sort=amount&cursor=abc"),
                &["sort", "cursor"]
            ),
            "chain=bsc"
        );
    }
}
