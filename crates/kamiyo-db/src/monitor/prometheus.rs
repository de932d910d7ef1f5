//! Prometheus text exposition (format 0.0.4). We write it ourselves: prometheus-client
//! emits OpenMetrics (counters typed without their `_total` suffix, `# UNIT`, `# EOF`),
//! which `promtool check metrics` and plain text scrapers reject for counters, and our
//! histograms already exist as bucket counts, so a registry would only copy them.

use std::fmt::Write;

use super::histogram::Histogram;

/// Labels of one series: name and value pairs.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// The content type of [`Exposition::finish`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    pub fn new() -> Self {
        Exposition::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(
            self.out,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, extra: Option<(&str, &str)>, value: f64) {
        self.out.push_str(name);
        let mut all = labels.iter().copied().chain(extra).peekable();
        if all.peek().is_some() {
            self.out.push('{');
            for (i, (key, value)) in all.enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
    }

    pub fn gauge(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, f64)]) {
        self.header(name, help, "gauge");
        for (labels, value) in samples {
            self.sample(name, labels, None, *value);
        }
    }

    /// `name` must end in `_total`.
    pub fn counter(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, u64)]) {
        self.header(name, help, "counter");
        for (labels, value) in samples {
            self.sample(name, labels, None, *value as f64);
        }
    }

    /// Histogram of durations, exported in seconds.
    pub fn histogram(&mut self, name: &str, help: &str, series: &[(Labels<'_>, &Histogram)]) {
        self.header(name, help, "histogram");
        for (labels, histogram) in series {
            for (bound, count) in histogram.cumulative() {
                let le = if bound.is_infinite() {
                    "+Inf".to_owned()
                } else {
                    format_value(bound)
                };
                self.sample(
                    &format!("{name}_bucket"),
                    labels,
                    Some(("le", &le)),
                    count as f64,
                );
            }
            self.sample(
                &format!("{name}_sum"),
                labels,
                None,
                histogram.sum_nanos as f64 / 1e9,
            );
            self.sample(
                &format!("{name}_count"),
                labels,
                None,
                histogram.count as f64,
            );
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if value.is_nan() {
        "NaN".into()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn exposition_has_help_type_and_escaped_labels() {
        let mut h = Histogram::default();
        h.record(Duration::from_millis(3));
        let mut e = Exposition::new();
        e.gauge("g", "a gauge", &[(&[("pool", "pri\"mary")], 1.5)]);
        e.counter("c_total", "a counter", &[(&[], 7)]);
        e.histogram("d_seconds", "durations", &[(&[("pool", "p")], &h)]);
        let text = e.finish();
        assert!(
            text.contains("# TYPE g gauge\ng{pool=\"pri\\\"mary\"} 1.5\n"),
            "{text}"
        );
        assert!(text.contains("c_total 7\n"));
        assert!(
            text.contains("d_seconds_bucket{pool=\"p\",le=\"+Inf\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("d_seconds_sum{pool=\"p\"} 0.003\n"), "{text}");
    }
}
