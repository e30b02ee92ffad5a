//! The Prometheus text exposition format (version 0.0.4), written straight
//! from the probe metrics' own counters: with a thousand targets, going
//! through the `prometheus` crate's per-series structures took more memory
//! and time than the text itself.

use std::fmt::{Display, Write as _};

/// Label pairs of one series, written in the order given (names sorted, as
/// the `prometheus` crate writes them, so a series reads the same as before).
pub(super) type Labels<'a> = [(&'a str, &'a str)];

/// Writes text into one buffer, a family at a time.
pub(super) struct Exposition<'a> {
    out: &'a mut String,
}

impl<'a> Exposition<'a> {
    /// Appends to `out`.
    pub(super) fn new(out: &'a mut String) -> Exposition<'a> {
        Exposition { out }
    }

    /// A family's `# HELP` and `# TYPE` lines (`kind`: counter, gauge, histogram).
    pub(super) fn family(&mut self, name: &str, help: &str, kind: &str) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        push_escaped(self.out, help, false);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }

    /// One sample: `name{labels} value`.
    pub(super) fn sample(&mut self, name: &str, labels: &Labels, value: impl Display) {
        self.sample_with(name, "", labels, None, value);
    }

    /// One sample of `name` + `suffix`, with `extra` after `labels` (a
    /// bucket's `le`).
    fn sample_with(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &Labels,
        extra: Option<(&str, &str)>,
        value: impl Display,
    ) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        let mut separator = '{';
        for (label, label_value) in labels.iter().copied().chain(extra) {
            self.out.push(separator);
            self.out.push_str(label);
            self.out.push_str("=\"");
            push_escaped(self.out, label_value, true);
            self.out.push('"');
            separator = ',';
        }
        if separator == ',' {
            self.out.push('}');
        }
        // Writing into a String cannot fail.
        let _ = writeln!(self.out, " {value}");
    }

    /// A histogram's samples: the cumulative `_bucket` series (one per
    /// bound in `bounds`, then `+Inf`), `_sum` and `_count`.
    pub(super) fn histogram(
        &mut self,
        name: &str,
        labels: &Labels,
        bounds: &[f64],
        histogram: &Histogram,
    ) {
        let mut cumulative = 0;
        for (bound, count) in bounds.iter().zip(&histogram.counts) {
            cumulative += count;
            let le = bound.to_string();
            self.sample_with(name, "_bucket", labels, Some(("le", &le)), cumulative);
        }
        let count = histogram.count;
        self.sample_with(name, "_bucket", labels, Some(("le", "+Inf")), count);
        self.sample_with(name, "_sum", labels, None, histogram.sum);
        self.sample_with(name, "_count", labels, None, count);
    }
}

/// Observations counted per bucket (not cumulative: `counts[i]` holds those
/// above bound `i - 1` and at most bound `i`), their sum and their count.
#[derive(Debug, Clone, Default)]
pub(super) struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Count `value` against `bounds` (ascending).
    pub(super) fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.len() != bounds.len() {
            self.counts.resize(bounds.len(), 0);
        }
        if let Some(bucket) = bounds.iter().position(|bound| value <= *bound) {
            self.counts[bucket] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

/// Appends `text` with backslashes and line feeds escaped (and double
/// quotes, in a label value), as the text format asks.
fn push_escaped(out: &mut String, text: &str, quotes: bool) {
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            _ => out.push(character),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_a_histogram_is_cumulative() {
        let mut text = String::new();
        let mut exposition = Exposition::new(&mut text);
        exposition.family("x_total", "Counts \\ things.\nMore.", "counter");
        exposition.sample("x_total", &[("a", "q\"\\\n"), ("b", "plain")], 3);
        exposition.sample("up", &[], 1);
        let mut histogram = Histogram::default();
        for value in [0.5, 1.0, 1.5, 99.0] {
            histogram.observe(&[1.0, 2.0], value);
        }
        exposition.histogram("d_seconds", &[("a", "z")], &[1.0, 2.0], &histogram);
        assert_eq!(
            text,
            "# HELP x_total Counts \\\\ things.\\nMore.\n\
             # TYPE x_total counter\n\
             x_total{a=\"q\\\"\\\\\\n\",b=\"plain\"} 3\n\
             up 1\n\
             d_seconds_bucket{a=\"z\",le=\"1\"} 2\n\
             d_seconds_bucket{a=\"z\",le=\"2\"} 3\n\
             d_seconds_bucket{a=\"z\",le=\"+Inf\"} 4\n\
             d_seconds_sum{a=\"z\"} 102\n\
             d_seconds_count{a=\"z\"} 4\n"
        );
    }
}
