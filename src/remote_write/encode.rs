//! One sampling round into pushes: the text `/metrics` serves (so a push
//! carries exactly the series a scrape sees, histograms as their
//! `_bucket`/`_sum`/`_count` series), read line by line into remote write
//! `TimeSeries` with the external labels added, timestamped when the round
//! was taken, cut into batches of at most `max_samples_per_send`, each
//! encoded (prost) and compressed (snappy block format) once, ready to be
//! queued and sent as many times as it takes.
//!
//! The scratch request and its strings are reused from batch to batch, so
//! a round of 150,000 series allocates little beyond its compressed bodies.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message as _;

use super::wire::{Label, Sample, TimeSeries, WriteRequest};

/// One push, encoded and compressed.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    /// The snappy-compressed `WriteRequest`.
    pub(crate) body: Bytes,
    /// How many samples it carries.
    pub(crate) samples: usize,
    /// When its samples were taken, in milliseconds since the Unix epoch.
    pub(crate) taken_ms: i64,
}

/// What one round gave.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// Its pushes, in the order of the text.
    pub(crate) batches: Vec<Batch>,
    /// Lines that were not samples of the text format (none from the agent's
    /// own rendering; counted, not sent).
    pub(crate) skipped_lines: usize,
}

/// Why a batch could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    /// Snappy refused the input (it is larger than snappy's block limit).
    #[error("compressing a push: {0}")]
    Compress(#[from] snap::Error),
}

/// Turns rounds of exposition text into batches; keeps its buffers between rounds.
pub(crate) struct RoundEncoder {
    /// Labels added to every series that lacks them, sorted by name.
    external: Vec<(String, String)>,
    max_samples_per_send: usize,
    scratch: Scratch,
    snappy: snap::raw::Encoder,
}

/// The batch being filled and the buffers it is encoded through.
#[derive(Default)]
struct Scratch {
    /// Its first `used` series are this batch's; the others wait for reuse.
    request: WriteRequest,
    used: usize,
    encoded: Vec<u8>,
    compressed: Vec<u8>,
}

impl RoundEncoder {
    /// An encoder adding `external` labels, at most `max_samples_per_send` (≥ 1) a batch.
    pub(crate) fn new(
        external: BTreeMap<String, String>,
        max_samples_per_send: usize,
    ) -> RoundEncoder {
        RoundEncoder {
            external: external.into_iter().collect(),
            max_samples_per_send: max_samples_per_send.max(1),
            scratch: Scratch::default(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    /// Every sample of the exposition `text`, taken at `taken_ms` (a sample
    /// with its own timestamp keeps it), as batches.
    pub(crate) fn encode(&mut self, text: &str, taken_ms: i64) -> Result<Round, EncodeError> {
        let mut round = Round::default();
        let mut labels: Vec<RawLabel> = Vec::new();
        let external = &self.external;
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(sample) = parse_sample(line, &mut labels) else {
                round.skipped_lines += 1;
                continue;
            };
            if !complete_labels(sample.name, external, &mut labels) {
                round.skipped_lines += 1;
                continue;
            }
            let timestamp = sample.timestamp.unwrap_or(taken_ms);
            self.scratch.push_series(&labels, sample.value, timestamp);
            if self.scratch.used == self.max_samples_per_send {
                round
                    .batches
                    .push(self.scratch.finish_batch(&mut self.snappy, taken_ms)?);
            }
        }
        if self.scratch.used > 0 {
            round
                .batches
                .push(self.scratch.finish_batch(&mut self.snappy, taken_ms)?);
        }
        Ok(round)
    }
}

impl Scratch {
    /// Writes one series into the next slot of the batch, reusing its strings.
    fn push_series(&mut self, labels: &[RawLabel], value: f64, timestamp: i64) {
        if self.used == self.request.timeseries.len() {
            self.request.timeseries.push(TimeSeries::default());
        }
        let series = &mut self.request.timeseries[self.used];
        self.used += 1;
        series.labels.truncate(labels.len());
        for (index, raw) in labels.iter().enumerate() {
            if index == series.labels.len() {
                series.labels.push(Label::default());
            }
            let label = &mut series.labels[index];
            label.name.clear();
            label.name.push_str(raw.name);
            label.value.clear();
            match raw.escaped {
                true => unescape_into(raw.value, &mut label.value),
                false => label.value.push_str(raw.value),
            }
        }
        series.samples.clear();
        series.samples.push(Sample { value, timestamp });
    }

    /// Encodes and compresses the series filled so far into one batch.
    fn finish_batch(
        &mut self,
        snappy: &mut snap::raw::Encoder,
        taken_ms: i64,
    ) -> Result<Batch, EncodeError> {
        self.request.timeseries.truncate(self.used);
        // The buffer keeps its capacity from batch to batch; encoding into a
        // Vec grows it as needed, so it cannot run out of room.
        self.encoded.clear();
        let _ = self.request.encode(&mut self.encoded);
        self.compressed
            .resize(snap::raw::max_compress_len(self.encoded.len()), 0);
        let length = snappy.compress(&self.encoded, &mut self.compressed)?;
        let batch = Batch {
            body: Bytes::copy_from_slice(&self.compressed[..length]),
            samples: self.used,
            taken_ms,
        };
        self.used = 0;
        Ok(batch)
    }
}

/// A label as the text has it: its value still escaped when `escaped`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RawLabel<'a> {
    name: &'a str,
    value: &'a str,
    escaped: bool,
}

/// One sample line of the text format.
#[derive(Debug, PartialEq)]
struct ParsedSample<'a> {
    name: &'a str,
    value: f64,
    /// Its own timestamp (ms), when the line has one.
    timestamp: Option<i64>,
}

/// Reads `name{label="value",...} value [timestamp]`; the labels go into
/// `labels` (cleared first). `None` for anything else.
fn parse_sample<'a>(line: &'a str, labels: &mut Vec<RawLabel<'a>>) -> Option<ParsedSample<'a>> {
    labels.clear();
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut rest = &line[name_end..];
    if let Some(inside) = rest.strip_prefix('{') {
        rest = parse_labels(inside, labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = parse_value(fields.next()?)?;
    let timestamp = match fields.next() {
        Some(text) => Some(text.parse().ok()?),
        None => None,
    };
    if fields.next().is_some() {
        return None;
    }
    Some(ParsedSample {
        name,
        value,
        timestamp,
    })
}

/// Reads `label="value",...}` into `labels`; what follows the `}`.
fn parse_labels<'a>(mut text: &'a str, labels: &mut Vec<RawLabel<'a>>) -> Option<&'a str> {
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(after) = text.strip_prefix('}') {
            return Some(after);
        }
        let (name, after_name) = text.split_once('=')?;
        let quoted = after_name.trim_start().strip_prefix('"')?;
        let (value, escaped, after_value) = quoted_value(quoted)?;
        labels.push(RawLabel {
            name: name.trim(),
            value,
            escaped,
        });
        text = after_value;
    }
}

/// The value of a quoted label (after its opening quote) as written,
/// whether it holds escapes, and what follows its closing quote.
fn quoted_value(text: &str) -> Option<(&str, bool, &str)> {
    let (mut escaping, mut escaped) = (false, false);
    // Both delimiters are ASCII, so a byte index is a character boundary.
    for (index, byte) in text.bytes().enumerate() {
        match (escaping, byte) {
            (false, b'\\') => (escaping, escaped) = (true, true),
            (false, b'"') => return Some((&text[..index], escaped, &text[index + 1..])),
            _ => escaping = false,
        }
    }
    None
}

/// Appends the label value `raw` with `\\`, `\"` and `\n` read back.
fn unescape_into(raw: &str, out: &mut String) {
    let mut chars = raw.chars();
    while let Some(character) = chars.next() {
        if character != '\\' {
            out.push(character);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
}

/// A sample value: a number, `+Inf`, `-Inf` or `NaN`.
fn parse_value(text: &str) -> Option<f64> {
    text.parse().ok()
}

/// Completes a series' own `labels` (empty values left out) with
/// `__name__` and each external label it lacks, sorted by name. `false`
/// when a name occurs twice. (Sorting the few labels of a line whole
/// measured faster than binary-search inserts into the own, nearly sorted
/// ones.)
fn complete_labels<'a>(
    name: &'a str,
    external: &'a [(String, String)],
    labels: &mut Vec<RawLabel<'a>>,
) -> bool {
    labels.retain(|label| !label.value.is_empty());
    let own = labels.len();
    for (label, value) in external {
        if !labels[..own].iter().any(|own| own.name == label) {
            labels.push(RawLabel {
                name: label,
                value,
                escaped: false,
            });
        }
    }
    labels.push(RawLabel {
        name: "__name__",
        value: name,
        escaped: false,
    });
    labels.sort_unstable_by(|a, b| a.name.cmp(b.name));
    labels.windows(2).all(|pair| pair[0].name != pair[1].name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(batch: &Batch) -> WriteRequest {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&batch.body)
            .unwrap();
        WriteRequest::decode(raw.as_slice()).unwrap()
    }

    fn labels_of(series: &TimeSeries) -> Vec<(String, String)> {
        let labels = series.labels.iter();
        labels.map(|l| (l.name.clone(), l.value.clone())).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const TEXT: &str = "# HELP up_total A counter.\n# TYPE up_total counter\n\
        chatprobe_probe_runs_total{probe=\"gm\",region=\"eu-west\",result=\"success\",target=\"mock\"} 3\n\
        d_seconds_bucket{a=\"q\\\"\\\\\\n\",le=\"+Inf\"} 4\n\
        process_start_time_seconds 1700000000.5\n\
        chatprobe_target_info{region=\"eu-west\",target=\"mock\",instance=\"own\"} 1\n\
        stamped 2 1700000000000\n";

    #[test]
    fn every_sample_gets_sorted_labels_the_external_ones_and_its_time() {
        let external = BTreeMap::from([
            ("job".to_string(), "chatprobe".to_string()),
            ("instance".to_string(), "eu-west".to_string()),
        ]);
        let mut encoder = RoundEncoder::new(external, 2);
        let round = encoder.encode(TEXT, 42).unwrap();
        assert_eq!(round.skipped_lines, 0);
        let counts: Vec<usize> = round.batches.iter().map(|b| b.samples).collect();
        assert_eq!(counts, [2, 2, 1]);
        let series: Vec<TimeSeries> = round
            .batches
            .iter()
            .flat_map(|batch| decode(batch).timeseries)
            .collect();
        assert_eq!(
            labels_of(&series[0]),
            pairs(&[
                ("__name__", "chatprobe_probe_runs_total"),
                ("instance", "eu-west"),
                ("job", "chatprobe"),
                ("probe", "gm"),
                ("region", "eu-west"),
                ("result", "success"),
                ("target", "mock"),
            ])
        );
        assert_eq!(
            series[0].samples,
            [Sample {
                value: 3.0,
                timestamp: 42
            }]
        );
        assert_eq!(
            labels_of(&series[1]),
            pairs(&[
                ("__name__", "d_seconds_bucket"),
                ("a", "q\"\\\n"),
                ("instance", "eu-west"),
                ("job", "chatprobe"),
                ("le", "+Inf"),
            ])
        );
        assert_eq!(series[2].samples[0].value, 1_700_000_000.5);
        // A series' own label wins over an external one.
        assert!(labels_of(&series[3]).contains(&("instance".into(), "own".into())));
        assert_eq!(series[4].samples[0].timestamp, 1_700_000_000_000);
    }

    #[test]
    fn a_second_round_reuses_the_buffers_and_reads_the_same() {
        let mut encoder = RoundEncoder::new(BTreeMap::new(), 1000);
        let first = encoder.encode(TEXT, 1).unwrap();
        let second = encoder.encode(TEXT, 1).unwrap();
        assert_eq!(first.batches[0].body, second.batches[0].body);
        assert_eq!(second.batches[0].samples, 5);
    }

    #[test]
    fn lines_that_are_no_samples_are_skipped_and_counted() {
        let mut encoder = RoundEncoder::new(BTreeMap::new(), 10);
        let text = "ok 1\n{a=\"b\"} 1\nx{a=\"unterminated} 1\nx 1 2 3\nx one\nx{a=\"1\",a=\"2\"} 1\n9x 1\nx{__name__=\"y\"} 1\nnan_is_fine NaN\n";
        let round = encoder.encode(text, 0).unwrap();
        assert_eq!(round.skipped_lines, 7);
        let series = decode(&round.batches[0]).timeseries;
        assert_eq!(series.len(), 2);
        assert!(series[1].samples[0].value.is_nan());
    }

    #[test]
    fn values_read_as_the_text_format_writes_them() {
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("1.5e-05"), Some(1.5e-5));
        assert_eq!(parse_value("0x10"), None);
    }
}
