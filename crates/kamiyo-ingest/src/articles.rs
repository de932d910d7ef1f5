//! A news feed's articles, read for what the feed lacks (`sources.<name>.articles`, for
//! `rekt-rss` sources): after the feed is parsed, the page of each of its newest items is
//! fetched and its front matter put in place of the feed's date and loss
//! ([`crate::rekt::apply_article`]).
//!
//! Bounded three ways: at most `articles` pages per fetch (the feed lists the newest
//! first), every page within the source's own timeout and size limits, and all of them
//! within the source's fetch deadline (each page gets what is left of it; items left
//! when it has passed are skipped, and counted). Only pages on the feed's own origin are
//! fetched, and a redirect elsewhere is not followed (`fetch`): a link to another host,
//! or a private address a tampered feed names, is refused. An article
//! that cannot be read leaves its item as the feed gave it and is named in the report;
//! it never fails the fetch.

use std::time::Instant;

use serde::Serialize;

use crate::fetch::{Fetched, HttpFetcher, Validators};
use crate::sources::Source;
use crate::{RawIncident, Rejection};

/// What reading a feed's articles did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArticleReport {
    /// Pages read and applied to their item.
    pub read: usize,
    /// Pages that could not be fetched or read, each as `<url>: <why>`.
    pub failed: Vec<String>,
    /// Items left unread because the fetch's deadline had passed.
    pub skipped: usize,
}

/// Reads the articles of the first `source.articles` valid items of `records`, in place.
pub(crate) async fn read_articles(
    fetcher: &HttpFetcher,
    source: &Source,
    records: &mut [Result<RawIncident, Rejection>],
) -> ArticleReport {
    let mut report = ArticleReport::default();
    let ends = Instant::now() + source.limits.deadline;
    let origin = url::Url::parse(&source.url).ok().map(|u| u.origin());
    let items = records
        .iter_mut()
        .filter_map(|r| r.as_mut().ok())
        .filter(|r| r.source_url.is_some())
        .take(source.articles);
    for record in items {
        let Some(url) = record.source_url.clone() else {
            continue;
        };
        if Instant::now() >= ends {
            report.skipped += 1;
            continue;
        }
        let on_origin = url::Url::parse(&url)
            .ok()
            .is_some_and(|u| Some(u.origin()) == origin);
        if !on_origin {
            report
                .failed
                .push(format!("{url}: not on the feed's own origin, not fetched"));
            continue;
        }
        // What is left of the fetch's deadline, not a deadline of its own per page.
        let limits = crate::fetch::FetchLimits {
            deadline: ends.saturating_duration_since(Instant::now()),
            ..source.limits
        };
        let fetched = fetcher.fetch(&url, &Validators::default(), &limits).await;
        let page = match fetched.result {
            Ok(Fetched::Body { body, .. }) => body,
            // No validators are sent, so a page always comes back whole.
            Ok(Fetched::NotModified { .. } | Fetched::Unchanged { .. }) => {
                report.failed.push(format!("{url}: no page in the answer"));
                continue;
            }
            Err(error) => {
                report.failed.push(format!("{url}: {error}"));
                continue;
            }
        };
        let applied = std::str::from_utf8(&page)
            .map_err(|_| "the page is not UTF-8".to_owned())
            .and_then(|page| crate::rekt::apply_article(record, page).map_err(|e| e.message));
        match applied {
            Ok(()) => report.read += 1,
            Err(why) => report.failed.push(format!("{url}: {why}")),
        }
    }
    report
}
