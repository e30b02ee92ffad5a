//! One sampling round into pushes. The agent's one exposition path
//! (`crate::metrics::Exposition`, the code that writes `/metrics`) writes
//! its series straight into a [`SampleSink`] here, so a push carries exactly
//! the series a scrape sees, without the text being formatted and read back:
//! each sample becomes a remote write `TimeSeries` (its labels with
//! `__name__` and the external labels, sorted, empty values left out),
//! timestamped when the round was taken, encoded (prost) into the batch
//! being filled, and every `max_samples_per_send` series the batch is
//! compressed (snappy block format) once, ready to be queued and sent as
//! many times as it takes.
//!
//! Each round also remembers which series it pushed ([`Pushed`]: a
//! fingerprint each, and its compressed batches), so the next round can
//! end the series that are gone (a target removed by a reload) with a
//! staleness marker, as Prometheus ends a scraped series, and the last
//! round at shutdown can end them all.
//!
//! One scratch series and its strings are reused from sample to sample, so
//! a round of 150,000 series allocates little beyond its compressed bodies.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher as _, Hasher as _};

use bytes::Bytes;
use prost::Message as _;

use super::wire::{Label, Sample, TimeSeries, WriteRequest};
use crate::metrics::{Exposition, SampleSink, SeriesRef, Value};

/// Prometheus' staleness marker: the NaN whose bits say "this series ended".
pub(crate) const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// The field of `WriteRequest` its series are (`repeated TimeSeries timeseries = 1`).
const TIMESERIES_FIELD: u32 = 1;

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

/// The series a round pushed: what the next round ends when they are gone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pushed {
    /// A fingerprint of each series' labels, in the order pushed.
    fingerprints: Vec<u64>,
    /// The round's batches of them (shared with the queue, not copied).
    bodies: Vec<Bytes>,
}

/// What one round gave.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// Its pushes, in the order written: the samples, then the staleness
    /// markers of the series gone since the round before.
    pub(crate) batches: Vec<Batch>,
    /// Series left out because a label name occurs twice in them (none
    /// from the agent's own metrics; a receiver would refuse the push).
    pub(crate) skipped: usize,
    /// The series it pushed, for the next round.
    pub(crate) pushed: Pushed,
}

/// Why a batch could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    /// Snappy refused the input (it is larger than snappy's block limit).
    #[error("compressing a push: {0}")]
    Compress(#[from] snap::Error),
    /// A batch of the round before could not be read back for its staleness markers.
    #[error("reading back a push for its staleness markers: {0}")]
    ReadBack(#[from] prost::DecodeError),
}

/// Turns rounds into batches; keeps its buffers between rounds.
pub(crate) struct RoundEncoder {
    /// Labels added to every series that lacks them.
    external: Vec<(String, String)>,
    scratch: Scratch,
    batcher: Batcher,
}

impl RoundEncoder {
    /// An encoder adding `external` labels, at most `max_samples_per_send` (≥ 1) a batch.
    pub(crate) fn new(
        external: BTreeMap<String, String>,
        max_samples_per_send: usize,
    ) -> RoundEncoder {
        RoundEncoder {
            external: external.into_iter().collect(),
            scratch: Scratch::default(),
            batcher: Batcher::new(max_samples_per_send),
        }
    }

    /// Every sample `write` writes, taken at `taken_ms`, as batches, then
    /// staleness markers at `taken_ms` for the series of `before` it no
    /// longer has.
    pub(crate) fn encode(
        &mut self,
        taken_ms: i64,
        before: &Pushed,
        write: impl FnOnce(&mut Exposition<'_>),
    ) -> Result<Round, EncodeError> {
        let mut sink = RoundSink {
            external: &self.external,
            scratch: &mut self.scratch,
            batcher: &mut self.batcher,
            taken_ms,
            fingerprints: Vec::with_capacity(before.fingerprints.len()),
            skipped: 0,
        };
        write(&mut Exposition::new(&mut sink));
        let (fingerprints, skipped) = (sink.fingerprints, sink.skipped);
        let mut batches = self.batcher.take(taken_ms)?;
        let pushed = Pushed {
            fingerprints,
            bodies: batches.iter().map(|batch| batch.body.clone()).collect(),
        };
        if let Some(gone) = gone_since(before, &pushed) {
            batches.extend(self.markers(before, Some(&gone), taken_ms)?);
        }
        Ok(Round {
            batches,
            skipped,
            pushed,
        })
    }

    /// Staleness markers at `at_ms` for every series of `before` (the agent stops).
    pub(crate) fn end(&mut self, before: &Pushed, at_ms: i64) -> Result<Vec<Batch>, EncodeError> {
        self.markers(before, None, at_ms)
    }

    /// A staleness marker at `at_ms` for each series of `before` whose
    /// fingerprint is in `only` (every one when `None`), read back from
    /// its batches.
    fn markers(
        &mut self,
        before: &Pushed,
        only: Option<&HashSet<u64>>,
        at_ms: i64,
    ) -> Result<Vec<Batch>, EncodeError> {
        let mut decoder = snap::raw::Decoder::new();
        let marker = Sample {
            value: f64::from_bits(STALE_NAN),
            timestamp: at_ms,
        };
        for body in &before.bodies {
            let raw = decoder.decompress_vec(body)?;
            for mut series in WriteRequest::decode(raw.as_slice())?.timeseries {
                if only.is_some_and(|only| !only.contains(&fingerprint(&series.labels))) {
                    continue;
                }
                series.samples.clear();
                series.samples.push(marker.clone());
                self.batcher.add(&series, at_ms);
            }
        }
        self.batcher.take(at_ms)
    }
}

/// The fingerprints of the series of `before` that `now` lacks, or `None`
/// when none is gone (at once when the rounds pushed the same series in
/// the same order, as they do until the agent's series change).
fn gone_since(before: &Pushed, now: &Pushed) -> Option<HashSet<u64>> {
    if before.fingerprints == now.fingerprints {
        return None;
    }
    let present: HashSet<u64> = now.fingerprints.iter().copied().collect();
    let gone: HashSet<u64> = before
        .fingerprints
        .iter()
        .copied()
        .filter(|fingerprint| !present.contains(fingerprint))
        .collect();
    (!gone.is_empty()).then_some(gone)
}

/// A fingerprint of a series' sorted labels (the same in every round of
/// the process). foldhash, not the standard library's SipHash: a round
/// fingerprints every series, and needs no defence against chosen keys.
fn fingerprint(labels: &[Label]) -> u64 {
    let mut hasher = foldhash::fast::FixedState::with_seed(0).build_hasher();
    for label in labels {
        hasher.write(label.name.as_bytes());
        hasher.write_u8(0xff);
        hasher.write(label.value.as_bytes());
        hasher.write_u8(0xff);
    }
    hasher.finish()
}

/// The sink of one round: each sample into the batch being filled.
struct RoundSink<'a> {
    external: &'a [(String, String)],
    scratch: &'a mut Scratch,
    batcher: &'a mut Batcher,
    taken_ms: i64,
    fingerprints: Vec<u64>,
    skipped: usize,
}

impl SampleSink for RoundSink<'_> {
    /// Families carry no metadata in remote write 1.0.
    fn family(&mut self, _name: &str, _help: &str, _kind: &str) {}

    fn sample(&mut self, series: SeriesRef<'_>, value: Value) {
        if !self.scratch.fill(series, self.external) {
            self.skipped += 1;
            return;
        }
        self.fingerprints
            .push(fingerprint(&self.scratch.series.labels));
        self.scratch.series.samples.clear();
        self.scratch.series.samples.push(Sample {
            value: value.as_f64(),
            timestamp: self.taken_ms,
        });
        self.batcher.add(&self.scratch.series, self.taken_ms);
    }
}

/// The one series being written, and spare labels whose strings are reused.
#[derive(Default)]
struct Scratch {
    series: TimeSeries,
    spare: Vec<Label>,
}

impl Scratch {
    /// Makes the scratch series `series`' labels (empty values left out),
    /// each external label it lacks and `__name__`, sorted by name; `false`
    /// when a name occurs twice.
    fn fill(&mut self, series: SeriesRef<'_>, external: &[(String, String)]) -> bool {
        self.spare.append(&mut self.series.labels);
        for (name, value) in series.all_labels() {
            if !value.is_empty() {
                self.push_label(name, &[value]);
            }
        }
        let own = self.series.labels.len();
        for (name, value) in external {
            let labels = &self.series.labels[..own];
            if !labels.iter().any(|label| label.name == *name) {
                self.push_label(name, &[value.as_str()]);
            }
        }
        self.push_label("__name__", &[series.name, series.suffix]);
        let labels = &mut self.series.labels;
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        labels.windows(2).all(|pair| pair[0].name != pair[1].name)
    }

    /// Appends a label `name` whose value is `parts` joined, reusing a spare one's strings.
    fn push_label(&mut self, name: &str, parts: &[&str]) {
        let mut label = self.spare.pop().unwrap_or_default();
        label.name.clear();
        label.name.push_str(name);
        label.value.clear();
        for part in parts {
            label.value.push_str(part);
        }
        self.series.labels.push(label);
    }
}

/// The batch being filled: its series encoded one after the other as the
/// `timeseries` field of a `WriteRequest` (what prost writes for the whole
/// message, without holding the message), compressed when full.
struct Batcher {
    max_samples: usize,
    encoded: Vec<u8>,
    samples: usize,
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
    batches: Vec<Batch>,
    failed: Option<EncodeError>,
}

impl Batcher {
    fn new(max_samples_per_send: usize) -> Batcher {
        Batcher {
            max_samples: max_samples_per_send.max(1),
            encoded: Vec::new(),
            samples: 0,
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
            batches: Vec::new(),
            failed: None,
        }
    }

    /// Adds one series (of one sample) taken at `taken_ms`.
    fn add(&mut self, series: &TimeSeries, taken_ms: i64) {
        // Encoding into a Vec grows it as needed, so it cannot run out of room.
        prost::encoding::message::encode(TIMESERIES_FIELD, series, &mut self.encoded);
        self.samples += 1;
        if self.samples == self.max_samples {
            self.finish(taken_ms);
        }
    }

    /// Compresses the series added so far into one batch.
    fn finish(&mut self, taken_ms: i64) {
        if self.samples == 0 {
            return;
        }
        self.compressed
            .resize(snap::raw::max_compress_len(self.encoded.len()), 0);
        match self.snappy.compress(&self.encoded, &mut self.compressed) {
            Ok(length) => self.batches.push(Batch {
                body: Bytes::copy_from_slice(&self.compressed[..length]),
                samples: self.samples,
                taken_ms,
            }),
            Err(err) => {
                self.failed.get_or_insert(EncodeError::Compress(err));
            }
        }
        self.encoded.clear();
        self.samples = 0;
    }

    /// The batches made since the last call, the last one finished; the
    /// first error instead, when one failed.
    fn take(&mut self, taken_ms: i64) -> Result<Vec<Batch>, EncodeError> {
        self.finish(taken_ms);
        let batches = std::mem::take(&mut self.batches);
        match self.failed.take() {
            Some(err) => Err(err),
            None => Ok(batches),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::metrics::MetricsRegistry;
    use crate::outcome::{Operation, ProbeKey, ProbeOutcome, StepTiming};

    fn decode(batch: &Batch) -> Vec<TimeSeries> {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&batch.body)
            .unwrap();
        WriteRequest::decode(raw.as_slice()).unwrap().timeseries
    }

    fn series_of(round: &[Batch]) -> Vec<TimeSeries> {
        round.iter().flat_map(decode).collect()
    }

    fn labels_of(series: &TimeSeries) -> Vec<(String, String)> {
        let labels = series.labels.iter();
        labels.map(|l| (l.name.clone(), l.value.clone())).collect()
    }

    fn name_of(series: &TimeSeries) -> &str {
        let name = series.labels.iter().find(|l| l.name == "__name__");
        name.map_or("", |l| l.value.as_str())
    }

    /// Reads one sample line of the text format back into sorted labels
    /// (`__name__` among them, empty values left out) and a value: what
    /// Prometheus makes of a scrape, to compare the pushed series with.
    fn parse_line(line: &str) -> (Vec<(String, String)>, f64) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, mut rest) = series.split_once('{').unwrap_or((series, "}"));
        let mut labels = vec![("__name__".to_string(), name.to_string())];
        while let Some((label, after)) = rest.split_once("=\"") {
            let mut text = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().unwrap() {
                    (_, '\\') => match chars.next().unwrap().1 {
                        'n' => text.push('\n'),
                        other => text.push(other),
                    },
                    (index, '"') => break index,
                    (_, other) => text.push(other),
                }
            };
            if !text.is_empty() {
                labels.push((label.trim_start_matches(',').to_string(), text));
            }
            rest = &after[end + 1..];
        }
        labels.sort();
        (labels, value.parse().unwrap())
    }

    fn key(target: &str) -> ProbeKey {
        ProbeKey {
            region: "eu-west".into(),
            target: target.into(),
            probe: "group_message".into(),
        }
    }

    fn registry() -> MetricsRegistry {
        let registry = MetricsRegistry::default();
        let outcome = ProbeOutcome {
            started_at: SystemTime::now(),
            duration: Duration::from_millis(40),
            steps: vec![StepTiming {
                operation: Operation::Send,
                duration: Duration::from_millis(7),
            }],
            failures: vec![],
            messages_expected: 9,
            messages_delivered: 9,
        };
        for target in ["a", "b"] {
            registry.probes.observe(&key(target), &outcome);
        }
        let shard = BTreeMap::from([
            ("shard".to_string(), "q\"\\\n".to_string()),
            ("cell".to_string(), String::new()),
        ]);
        registry
            .targets
            .set_region("eu-west", [("a", &shard), ("b", &BTreeMap::new())]);
        registry.push.init_url("http://r/api/v1/write");
        registry
    }

    #[test]
    fn a_round_pushes_exactly_the_series_and_values_of_metrics() {
        let registry = registry();
        let text = registry.render();
        let mut encoder = RoundEncoder::new(BTreeMap::new(), 100);
        let round = encoder
            .encode(42, &Pushed::default(), |out| registry.expose(out))
            .unwrap();
        assert_eq!(round.skipped, 0);
        let pushed: Vec<(Vec<(String, String)>, f64)> = series_of(&round.batches)
            .iter()
            .map(|series| {
                assert_eq!(series.samples.len(), 1);
                assert_eq!(series.samples[0].timestamp, 42);
                (labels_of(series), series.samples[0].value)
            })
            .collect();
        let scraped: Vec<(Vec<(String, String)>, f64)> = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(parse_line)
            .collect();
        assert!(scraped.len() > 200, "{} series", scraped.len());
        assert_eq!(pushed.len(), scraped.len());
        for (pushed, scraped) in pushed.iter().zip(&scraped) {
            assert_eq!(pushed.0, scraped.0);
            // The process metrics were read again for the round.
            if !pushed.0[0].1.starts_with("process_") {
                assert_eq!(pushed.1, scraped.1, "{:?}", pushed.0);
            }
        }
        assert_eq!(
            round.batches.iter().map(|b| b.samples).sum::<usize>(),
            pushed.len()
        );
        assert!(round.batches.iter().all(|b| b.samples <= 100));
    }

    #[test]
    fn external_labels_fill_in_and_a_name_twice_is_skipped() {
        let external = BTreeMap::from([
            ("job".to_string(), "chatprobe".to_string()),
            ("instance".to_string(), "eu-west".to_string()),
        ]);
        let mut encoder = RoundEncoder::new(external, 2);
        let round = encoder
            .encode(7, &Pushed::default(), |out| {
                out.sample("x_total", &[("instance", "own"), ("a", "1")], 3u64);
                out.sample("twice", &[("a", "1"), ("a", "2")], 1u64);
                out.sample("named", &[("__name__", "other")], 1u64);
                out.sample("up", &[], 1.5);
            })
            .unwrap();
        assert_eq!(round.skipped, 2);
        let series = series_of(&round.batches);
        assert_eq!(round.batches.len(), 1);
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            labels_of(&series[0]),
            pairs(&[
                ("__name__", "x_total"),
                ("a", "1"),
                ("instance", "own"),
                ("job", "chatprobe"),
            ])
        );
        assert_eq!(
            labels_of(&series[1]),
            pairs(&[
                ("__name__", "up"),
                ("instance", "eu-west"),
                ("job", "chatprobe"),
            ])
        );
        assert_eq!(series[1].samples[0].value, 1.5);
    }

    #[test]
    fn a_batch_is_the_write_request_prost_would_encode() {
        let mut encoder = RoundEncoder::new(BTreeMap::new(), 1000);
        let round = encoder
            .encode(1, &Pushed::default(), |out| {
                out.sample("a", &[("x", "1")], 1u64);
                out.sample("b", &[], 2u64);
            })
            .unwrap();
        let series = series_of(&round.batches);
        let whole = WriteRequest { timeseries: series }.encode_to_vec();
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&round.batches[0].body)
            .unwrap();
        assert_eq!(raw, whole);
    }

    #[test]
    fn series_gone_since_the_round_before_end_with_a_staleness_marker() {
        let registry = registry();
        let mut encoder = RoundEncoder::new(BTreeMap::new(), 50);
        let first = encoder
            .encode(1000, &Pushed::default(), |out| registry.expose(out))
            .unwrap();
        let live = |round: &Round| {
            let series = series_of(&round.batches);
            let (stale, live): (Vec<_>, Vec<_>) = series
                .into_iter()
                .partition(|s| s.samples[0].value.to_bits() == STALE_NAN);
            (live, stale)
        };
        assert!(live(&first).1.is_empty());
        // Unchanged: no markers.
        let second = encoder
            .encode(2000, &first.pushed, |out| registry.expose(out))
            .unwrap();
        assert!(live(&second).1.is_empty());
        // Target b removed: each of its series ends, at the round's time.
        registry.probes.forget_probe(&key("b"));
        registry
            .targets
            .set_region("eu-west", [("a", &BTreeMap::new())]);
        let third = encoder
            .encode(3000, &second.pushed, |out| registry.expose(out))
            .unwrap();
        let (now, stale) = live(&third);
        let was = live(&second).0;
        assert_eq!(
            now.len() + stale.len(),
            was.len() + 1,
            "a's info changed labels"
        );
        assert!(!stale.is_empty());
        for series in &stale {
            assert_eq!(series.samples[0].timestamp, 3000);
            let target = series.labels.iter().find(|l| l.name == "target");
            let shard = series.labels.iter().any(|l| l.name == "shard");
            assert!(
                target.is_some_and(|t| t.value == "b") || shard,
                "{:?}",
                labels_of(series)
            );
        }
        assert!(
            stale
                .iter()
                .any(|s| name_of(s) == "chatprobe_probe_runs_total")
        );
        assert!(now.iter().all(|s| labels_of(s).iter().all(|l| l.1 != "b")));
        // The markers are no series of the round: the next one ends nothing more.
        let fourth = encoder
            .encode(4000, &third.pushed, |out| registry.expose(out))
            .unwrap();
        assert!(live(&fourth).1.is_empty());
        // The agent stops: every series ends.
        let ended = encoder.end(&fourth.pushed, 4001).unwrap();
        let ended = series_of(&ended);
        assert_eq!(ended.len(), live(&fourth).0.len());
        assert!(
            ended.iter().all(
                |s| s.samples[0].value.to_bits() == STALE_NAN && s.samples[0].timestamp == 4001
            )
        );
    }
}
