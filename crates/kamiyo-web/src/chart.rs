//! Bar charts drawn as SVG on the server: exact, no chart library in the browser, and
//! accessible (a title and description for screen readers, each bar's exact value on
//! hover, and the data as a table behind the chart).

use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::format::{count, usd_exact, usd_short};

/// One bar: a label, a loss and the incidents behind it.
pub struct Bar {
    pub label: String,
    pub loss: Decimal,
    pub incidents: i64,
}

pub struct Chart<'a> {
    /// Unique on the page: ids of the title and description derive from it.
    pub id: &'a str,
    pub title: &'a str,
    /// What the label column of the data table is called (`Month`, `Chain`).
    pub label_header: &'a str,
    pub bars: Vec<Bar>,
}

const WIDTH: f64 = 640.0;

impl Chart<'_> {
    fn max(&self) -> f64 {
        self.bars
            .iter()
            .map(|b| b.loss.to_f64().unwrap_or(0.0))
            .fold(0.0, f64::max)
    }

    fn description(&self) -> String {
        match self.bars.iter().max_by(|a, b| a.loss.cmp(&b.loss)) {
            Some(top) => format!(
                "{} bars; the largest is {} with {}.",
                self.bars.len(),
                top.label,
                usd_short(top.loss)
            ),
            None => "No incidents in this window.".into(),
        }
    }

    /// Columns left to right, for a series in time order (loss by month).
    pub fn columns(&self) -> Markup {
        let height = 200.0;
        let base = height - 24.0;
        let max = self.max();
        let n = self.bars.len().max(1) as f64;
        let slot = (WIDTH - 8.0) / n;
        // At most 48 units wide: a few months must not read as a wall of colour.
        let bar_width = (slot * 0.8).clamp(1.0, 48.0);
        // A label under every k-th column, so they never overlap.
        let every = ((n * 48.0 / WIDTH).ceil() as usize).max(1);
        let svg = html! {
            svg viewBox=(format!("0 0 {WIDTH} {height}")) role="img"
                aria-labelledby=(format!("{id}-title {id}-desc", id = self.id)) {
                title id=(format!("{}-title", self.id)) { (self.title) }
                desc id=(format!("{}-desc", self.id)) { (self.description()) }
                line.axis x1="4" y1=(base) x2=(WIDTH - 4.0) y2=(base) {}
                @for (i, bar) in self.bars.iter().enumerate() {
                    @let value = bar.loss.to_f64().unwrap_or(0.0);
                    @let h = if max > 0.0 { (value / max) * (base - 8.0) } else { 0.0 };
                    @let x = 4.0 + i as f64 * slot + (slot - bar_width) / 2.0;
                    rect.bar x=(fmt(x)) y=(fmt(base - h)) width=(fmt(bar_width)) height=(fmt(h.max(0.5))) {
                        title { (bar.label) ": " (usd_exact(bar.loss)) ", " (count(bar.incidents)) " incidents" }
                    }
                    @if i % every == 0 {
                        text x=(fmt(x + bar_width / 2.0)) y=(height - 8.0) text-anchor="middle" { (bar.label) }
                    }
                }
            }
        };
        self.figure(svg)
    }

    /// Rows top to bottom, largest first (loss by chain, by attack class).
    pub fn rows(&self) -> Markup {
        let row = 22.0;
        let label_width = 150.0;
        let height = (self.bars.len().max(1) as f64) * row + 8.0;
        let max = self.max();
        let room = WIDTH - label_width - 80.0;
        let svg = html! {
            svg viewBox=(format!("0 0 {WIDTH} {height}")) role="img"
                aria-labelledby=(format!("{id}-title {id}-desc", id = self.id)) {
                title id=(format!("{}-title", self.id)) { (self.title) }
                desc id=(format!("{}-desc", self.id)) { (self.description()) }
                @for (i, bar) in self.bars.iter().enumerate() {
                    @let value = bar.loss.to_f64().unwrap_or(0.0);
                    @let w = if max > 0.0 { value / max * room } else { 0.0 };
                    @let y = 4.0 + i as f64 * row;
                    text x=(fmt(label_width - 6.0)) y=(fmt(y + 15.0)) text-anchor="end" { (bar.label) }
                    rect.bar x=(fmt(label_width)) y=(fmt(y + 3.0)) width=(fmt(w.max(0.5))) height="16" {
                        title { (bar.label) ": " (usd_exact(bar.loss)) ", " (count(bar.incidents)) " incidents" }
                    }
                    text x=(fmt(label_width + w + 6.0)) y=(fmt(y + 15.0)) { (usd_short(bar.loss)) }
                }
            }
        };
        self.figure(svg)
    }

    fn figure(&self, svg: Markup) -> Markup {
        html! {
            figure.chart aria-labelledby=(format!("{}-caption", self.id)) {
                figcaption id=(format!("{}-caption", self.id)) { (self.title) }
                (svg)
                details {
                    summary { "Data table" }
                    div.table-wrap {
                        table {
                            caption { (self.title) }
                            thead { tr {
                                th scope="col" { (self.label_header) }
                                th.num scope="col" { "Incidents" }
                                th.num scope="col" { "Loss (USD)" }
                            } }
                            tbody {
                                @for bar in &self.bars {
                                    tr {
                                        th scope="row" { (bar.label) }
                                        td.num { (count(bar.incidents)) }
                                        td.num { (usd_exact(bar.loss)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Coordinates to a tenth of a pixel: enough for a crisp chart, and short markup.
fn fmt(v: f64) -> String {
    format!("{:.1}", if v.is_finite() { v } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(bars: Vec<Bar>) -> String {
        Chart {
            id: "c",
            title: "Loss <by> chain",
            label_header: "Chain",
            bars,
        }
        .rows()
        .into_string()
    }

    #[test]
    fn the_largest_bar_fills_the_room_and_each_value_is_in_the_table() {
        let svg = chart(vec![
            Bar {
                label: "ethereum".into(),
                loss: Decimal::from(2_000_000),
                incidents: 3,
            },
            Bar {
                label: "bsc".into(),
                loss: Decimal::from(1_000_000),
                incidents: 1,
            },
        ]);
        // 640 - 150 - 80 = 410 for the largest; half of it for the other.
        assert!(svg.contains(r#"width="410.0""#), "{svg}");
        assert!(svg.contains(r#"width="205.0""#), "{svg}");
        assert!(svg.contains("$2,000,000.00") && svg.contains("$1,000,000.00"));
        assert!(svg.contains("Loss &lt;by&gt; chain"), "titles are escaped");
        assert!(svg.contains(r#"aria-labelledby="c-title c-desc""#));
    }

    #[test]
    fn an_empty_chart_says_so_instead_of_dividing_by_zero() {
        let svg = chart(Vec::new());
        assert!(svg.contains("No incidents in this window."));
        assert!(!svg.contains("NaN"));
    }
}
