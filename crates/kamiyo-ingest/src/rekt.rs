//! rekt.news: its RSS 2.0 feed (`https://rekt.news/rss/feed.xml`), one `<item>` per
//! article, and an article's own front matter when its page is read.
//!
//! A news source dates its article, not the hack. From the feed alone a record's date is
//! the article's publication date (`pubDate`, usually a day or two after the hack), and
//! its loss is unknown (the feed's summary often names other, earlier losses, so no
//! figure is read from it). An article's front matter (`rekt.date`, `rekt.amount`)
//! gives the hack's own date and loss; [`apply_article`] puts them in place of the
//! feed's when the article was fetched.
//!
//! Titles name the protocol before ` - REKT` (`Orbit Bridge - REKT`, `X-Token - REKT
//! X2`); an editorial title without it is kept whole. The article's slug is the
//! record's own id, its link the claim's URL.

use chrono::DateTime;
use quick_xml::events::Event;
use quick_xml::Reader;

pub use crate::rekt_article::apply_article;
use crate::{Format, IngestError, RawIncident, Rejection};

const EXPECTED: &str =
    "an RSS 2.0 feed (<rss><channel><item><title>, <link>, <pubDate>, <description>)";

/// A summary longer than this is cut (on a character boundary): the feed's
/// descriptions are a paragraph; a whole article pasted there is not a summary.
const MAX_SUMMARY_CHARS: usize = 4_000;

#[derive(Default)]
struct Item {
    line: usize,
    title: Option<String>,
    link: Option<String>,
    published: Option<String>,
    description: Option<String>,
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Result<RawIncident, Rejection>>, IngestError> {
    let shape = |found: String| IngestError::Shape {
        format: Format::RektRss,
        expected: EXPECTED,
        found,
    };
    let text =
        std::str::from_utf8(bytes).map_err(|e| shape(format!("bytes that are not UTF-8 ({e})")))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut root: Option<String> = None;
    let mut channel = false;
    let mut items: Vec<Item> = Vec::new();
    let mut current: Option<Item> = None;
    let mut field: Option<String> = None;
    // Elements open at the end: a body cut short (a dropped connection) ends with some.
    let mut open: Vec<String> = Vec::new();
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            if root.is_none() {
                shape(describe_start(text))
            } else {
                shape(format!(
                    "XML that breaks off or is malformed at line {}: {e}",
                    line_of(text, reader.error_position() as usize)
                ))
            }
        })?;
        match event {
            Event::Start(tag) => {
                let name = String::from_utf8_lossy(tag.local_name().as_ref()).into_owned();
                open.push(name.clone());
                if root.is_none() {
                    if name.eq_ignore_ascii_case("html") {
                        return Err(shape("an HTML page".to_owned()));
                    }
                    if name != "rss" {
                        return Err(shape(format!("a document whose root is <{name}>")));
                    }
                    root = Some(name);
                    continue;
                }
                match name.as_str() {
                    "channel" => channel = true,
                    "item" => {
                        // `at` is where the previous event ended; the tag starts at the
                        // next `<`.
                        let tag_at = text
                            .get(at..)
                            .and_then(|t| t.find('<'))
                            .map_or(at, |i| at + i);
                        current = Some(Item {
                            line: line_of(text, tag_at),
                            ..Item::default()
                        })
                    }
                    _ if current.is_some() => field = Some(name),
                    _ => {}
                }
            }
            Event::Empty(tag) if root.is_none() => {
                let name = String::from_utf8_lossy(tag.local_name().as_ref()).into_owned();
                return Err(shape(format!("a document whose root is <{name}>")));
            }
            Event::Text(content) => {
                if let (Some(item), Some(name)) = (current.as_mut(), field.as_deref()) {
                    let value = content
                        .unescape()
                        .map(|v| v.into_owned())
                        .unwrap_or_else(|_| String::from_utf8_lossy(&content).into_owned());
                    item.set(name, &value);
                }
            }
            Event::CData(content) => {
                if let (Some(item), Some(name)) = (current.as_mut(), field.as_deref()) {
                    let value = String::from_utf8_lossy(&content).into_owned();
                    item.set(name, &value);
                }
            }
            Event::End(tag) => {
                open.pop();
                let name = tag.local_name();
                if name.as_ref() == b"item" {
                    items.extend(current.take());
                } else if current.is_some() {
                    field = None;
                }
            }
            Event::Eof => {
                if let Some(unclosed) = open.last() {
                    return Err(shape(format!(
                        "XML that breaks off before its end (<{unclosed}> is never closed)"
                    )));
                }
                break;
            }
            _ => {}
        }
    }
    match (root, channel) {
        (None, _) => Err(shape(describe_start(text))),
        (Some(_), false) => Err(shape("an <rss> document without a <channel>".to_owned())),
        _ => Ok(items.into_iter().map(Item::into_incident).collect()),
    }
}

impl Item {
    fn set(&mut self, field: &str, value: &str) {
        let slot = match field {
            "title" => &mut self.title,
            "link" => &mut self.link,
            "pubDate" => &mut self.published,
            "description" => &mut self.description,
            _ => return,
        };
        let value = value.trim();
        if !value.is_empty() {
            // Text split by entities or CDATA arrives in pieces.
            match slot {
                Some(existing) => existing.push_str(value),
                None => *slot = Some(value.to_owned()),
            }
        }
    }

    fn into_incident(self) -> Result<RawIncident, Rejection> {
        let title = self
            .title
            .ok_or_else(|| Rejection::field(self.line, "title", "the item has no <title>"))?;
        let date = match self.published {
            Some(published) => Some(
                DateTime::parse_from_rfc2822(&published)
                    .map(|at| at.to_utc().to_rfc3339())
                    .map_err(|_| {
                        Rejection::field(
                            self.line,
                            "pubDate",
                            format!("{published:?} is not an RFC 822 date"),
                        )
                    })?,
            ),
            None => None,
        };
        Ok(RawIncident {
            line: self.line,
            source: None, // the caller's default, or "rekt"
            external_id: self.link.as_deref().and_then(slug),
            id_names_incident: true,
            source_url: self.link,
            protocol: Some(protocol_of(&title)),
            date,
            description: self.description.map(|d| summary(&d)),
            ..RawIncident::default()
        })
    }
}

/// `Orbit Bridge - REKT` → `Orbit Bridge`; `X-Token - REKT X2` → `X-Token`; an editorial
/// title stays whole.
fn protocol_of(title: &str) -> String {
    let upper = title.to_uppercase();
    match upper.rfind(" - REKT") {
        Some(at) if at > 0 => title[..at].trim().to_owned(),
        _ => title.trim().to_owned(),
    }
}

/// The last path segment of an article's link: `https://rekt.news/orbit-bridge-rekt/`
/// → `orbit-bridge-rekt`.
fn slug(link: &str) -> Option<String> {
    let path = link.split_once("://").map_or(link, |(_, rest)| rest);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    segments
        .into_iter()
        .rfind(|segment| !segment.is_empty())
        .map(str::to_owned)
}

/// The description as plain text: tags dropped, whitespace folded, cut at
/// [`MAX_SUMMARY_CHARS`].
fn summary(html: &str) -> String {
    let mut plain = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                plain.push(' ');
            }
            _ if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let folded = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    decode_entities(&folded)
        .chars()
        .take(MAX_SUMMARY_CHARS)
        .collect()
}

/// HTML character references left in a CDATA description (`&#8217;`, `&amp;`).
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|end| *end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn describe_start(text: &str) -> String {
    let start = text.trim_start();
    let lower = start
        .get(..start.len().min(100))
        .unwrap_or(start)
        .to_ascii_lowercase();
    if start.is_empty() {
        "an empty body".to_owned()
    } else if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        "an HTML page".to_owned()
    } else if start.starts_with('{') || start.starts_with('[') {
        "JSON".to_owned()
    } else {
        "text that is not XML".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
<channel>
<title>Rekt</title>
<item>
<title>Orbit Bridge - REKT</title>
<link>https://rekt.news/orbit-bridge-rekt/</link>
<pubDate>Wed, 03 Jan 2024 00:00:00 GMT</pubDate>
<description><![CDATA[<p>It wasn&#8217;t just fireworks... lost <b>$81.5M</b>.</p>]]></description>
</item>
<item>
<title>Plenty of Phish &amp; Chips</title>
<link>https://rekt.news/plenty-of-phish/</link>
<pubDate>not a date</pubDate>
</item>
</channel>
</rss>"#;

    #[test]
    fn items_map_to_records_dated_by_their_article() {
        let results = parse(FEED.as_bytes()).unwrap();
        let orbit = results[0].as_ref().unwrap();
        assert_eq!(orbit.line, 5);
        assert_eq!(orbit.protocol.as_deref(), Some("Orbit Bridge"));
        assert_eq!(orbit.date.as_deref(), Some("2024-01-03T00:00:00+00:00"));
        assert_eq!(orbit.external_id.as_deref(), Some("orbit-bridge-rekt"));
        assert_eq!(orbit.loss_usd, None, "no figure is read from the summary");
        assert_eq!(
            orbit.description.as_deref(),
            Some("It wasn\u{2019}t just fireworks... lost $81.5M .")
        );
        let phish = results[1].as_ref().unwrap_err();
        assert_eq!((phish.line, phish.field.as_deref()), (11, Some("pubDate")));
    }

    #[test]
    fn titles_name_the_protocol_before_rekt() {
        assert_eq!(protocol_of("X-Token - REKT X2"), "X-Token");
        assert_eq!(protocol_of("Euler Finance - Rekt"), "Euler Finance");
        assert_eq!(protocol_of("The Year of the Hack"), "The Year of the Hack");
    }

    #[test]
    fn anything_but_an_rss_feed_fails_whole() {
        for (body, says) in [
            (
                "<!DOCTYPE html><html><body>Cloudflare</body></html>",
                "HTML",
            ),
            ("", "empty body"),
            ("{\"items\": []}", "JSON"),
            (
                "<feed xmlns=\"http://www.w3.org/2005/Atom\"></feed>",
                "root is <feed>",
            ),
            ("<rss version=\"2.0\"></rss>", "without a <channel>"),
            ("<rss><channel><item><title>Cut", "breaks off"),
        ] {
            let err = parse(body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(says), "{body}: {err}");
            assert!(err.contains("RSS 2.0 feed"), "{err}");
        }
        assert!(parse(b"<rss><channel><title>x</title></channel></rss>")
            .unwrap()
            .is_empty());
    }
}
