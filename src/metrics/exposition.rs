//! The one exposition path of the agent's metrics: every family is written
//! through an [`Exposition`] into a [`SampleSink`], either the Prometheus
//! text format (version 0.0.4) `/metrics` serves ([`TextSink`]) or remote
//! write's series (`crate::remote_write`), so a scrape and a push carry the
//! same series from the same code, and a push never formats text and reads
//! it back. Written straight from the metrics' own counters: with a
//! thousand targets, going through the `prometheus` crate's per-series
//! structures took more memory and time than the text itself.

use std::fmt::Write as _;

/// Label pairs of one series, in the order given (names sorted, as the
/// `prometheus` crate writes them, so a series reads the same as before).
pub(crate) type Labels<'a> = [(&'a str, &'a str)];

/// A sample's value: a count (written as an integer) or any number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    /// A counter's or a bucket's count.
    Count(u64),
    /// A gauge, a sum, a timestamp.
    Real(f64),
}

impl Value {
    /// As the float every sample of remote write is.
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Value::Count(count) => count as f64,
            Value::Real(real) => real,
        }
    }
}

impl From<u64> for Value {
    fn from(count: u64) -> Value {
        Value::Count(count)
    }
}

impl From<f64> for Value {
    fn from(real: f64) -> Value {
        Value::Real(real)
    }
}

/// One series as the writers name it: `name` + `suffix` (a histogram's
/// `_bucket`, `_sum`, `_count`), its `labels`, then `extra` (a bucket's `le`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesRef<'a> {
    /// The family's name.
    pub(crate) name: &'a str,
    /// Appended to it.
    pub(crate) suffix: &'a str,
    /// Its labels, in the writer's order.
    pub(crate) labels: &'a Labels<'a>,
    /// A label after them.
    pub(crate) extra: Option<(&'a str, &'a str)>,
}

impl<'a> SeriesRef<'a> {
    /// Every label, in the writer's order: `labels`, then `extra`.
    pub(crate) fn all_labels(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.labels.iter().copied().chain(self.extra)
    }
}

/// Where the exposition goes: the writers call `family` once a family,
/// then `sample` for each of its series.
pub(crate) trait SampleSink {
    /// A family begins (`kind`: counter, gauge, histogram).
    fn family(&mut self, name: &str, help: &str, kind: &str);
    /// One sample.
    fn sample(&mut self, series: SeriesRef<'_>, value: Value);
}

/// Writes every family into a sink, a family at a time.
pub(crate) struct Exposition<'a> {
    sink: &'a mut dyn SampleSink,
}

impl<'a> Exposition<'a> {
    /// Writes into `sink`.
    pub(crate) fn new(sink: &'a mut dyn SampleSink) -> Exposition<'a> {
        Exposition { sink }
    }

    /// A family begins: its name, help text and `kind` (counter, gauge, histogram).
    pub(crate) fn family(&mut self, name: &str, help: &str, kind: &str) {
        self.sink.family(name, help, kind);
    }

    /// One sample: `name{labels} value`.
    pub(crate) fn sample(&mut self, name: &str, labels: &Labels, value: impl Into<Value>) {
        self.sample_with(name, "", labels, None, value.into());
    }

    /// One sample of `name` + `suffix`, with `extra` after `labels`.
    fn sample_with(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &Labels,
        extra: Option<(&str, &str)>,
        value: Value,
    ) {
        let series = SeriesRef {
            name,
            suffix,
            labels,
            extra,
        };
        self.sink.sample(series, value);
    }

    /// A histogram's samples: the cumulative `_bucket` series (one per
    /// bound of `bounds`, then `+Inf`), `_sum` and `_count`.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        labels: &Labels,
        bounds: &BucketBounds,
        histogram: &Histogram,
    ) {
        let mut cumulative = 0;
        for (le, count) in bounds.le.iter().zip(&histogram.counts) {
            cumulative += count;
            let bucket = Some(("le", le.as_str()));
            self.sample_with(name, "_bucket", labels, bucket, Value::Count(cumulative));
        }
        let count = Value::Count(histogram.count);
        self.sample_with(name, "_bucket", labels, Some(("le", "+Inf")), count);
        self.sample_with(name, "_sum", labels, None, Value::Real(histogram.sum));
        self.sample_with(name, "_count", labels, None, count);
    }
}

/// A histogram's bounds as their `le` label values, written once a
/// rendering rather than once a bucket.
pub(crate) struct BucketBounds {
    le: Vec<String>,
}

impl BucketBounds {
    /// The `le` values of `bounds` (ascending).
    pub(crate) fn of(bounds: &[f64]) -> BucketBounds {
        BucketBounds {
            le: bounds.iter().map(f64::to_string).collect(),
        }
    }
}

/// The text format, appended to a buffer.
pub(crate) struct TextSink<'a> {
    out: &'a mut String,
}

impl<'a> TextSink<'a> {
    /// Appends to `out`.
    pub(crate) fn new(out: &'a mut String) -> TextSink<'a> {
        TextSink { out }
    }
}

/// What `write` writes, in the text format.
pub(crate) fn text(write: impl FnOnce(&mut Exposition<'_>)) -> String {
    let mut text = String::new();
    write(&mut Exposition::new(&mut TextSink::new(&mut text)));
    text
}

impl SampleSink for TextSink<'_> {
    /// `# HELP` and `# TYPE` lines.
    fn family(&mut self, name: &str, help: &str, kind: &str) {
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

    /// `name{labels} value`.
    fn sample(&mut self, series: SeriesRef<'_>, value: Value) {
        self.out.push_str(series.name);
        self.out.push_str(series.suffix);
        let mut separator = '{';
        for (label, label_value) in series.all_labels() {
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
        let _ = match value {
            Value::Count(count) => writeln!(self.out, " {count}"),
            Value::Real(real) => writeln!(self.out, " {}", TextNumber(real)),
        };
    }
}

/// A float as the text format writes it: `+Inf`, `-Inf`, `NaN`, else Rust's shortest form.
struct TextNumber(f64);

impl std::fmt::Display for TextNumber {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            f64::INFINITY => out.write_str("+Inf"),
            f64::NEG_INFINITY => out.write_str("-Inf"),
            real if real.is_nan() => out.write_str("NaN"),
            real => write!(out, "{real}"),
        }
    }
}

/// Observations counted per bucket (not cumulative: `counts[i]` holds those
/// above bound `i - 1` and at most bound `i`), their sum and their count.
#[derive(Debug, Clone, Default)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Count `value` against `bounds` (ascending).
    pub(crate) fn observe(&mut self, bounds: &[f64], value: f64) {
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
        let mut sink = TextSink::new(&mut text);
        let mut exposition = Exposition::new(&mut sink);
        exposition.family("x_total", "Counts \\ things.\nMore.", "counter");
        exposition.sample("x_total", &[("a", "q\"\\\n"), ("b", "plain")], 3u64);
        exposition.sample("up", &[], 1u64);
        exposition.sample("g", &[], f64::INFINITY);
        let mut histogram = Histogram::default();
        for value in [0.5, 1.0, 1.5, 99.0] {
            histogram.observe(&[1.0, 2.0], value);
        }
        let bounds = BucketBounds::of(&[1.0, 2.0]);
        exposition.histogram("d_seconds", &[("a", "z")], &bounds, &histogram);
        assert_eq!(
            text,
            "# HELP x_total Counts \\\\ things.\\nMore.\n\
             # TYPE x_total counter\n\
             x_total{a=\"q\\\"\\\\\\n\",b=\"plain\"} 3\n\
             up 1\n\
             g +Inf\n\
             d_seconds_bucket{a=\"z\",le=\"1\"} 2\n\
             d_seconds_bucket{a=\"z\",le=\"2\"} 3\n\
             d_seconds_bucket{a=\"z\",le=\"+Inf\"} 4\n\
             d_seconds_sum{a=\"z\"} 102\n\
             d_seconds_count{a=\"z\"} 4\n"
        );
    }
}
