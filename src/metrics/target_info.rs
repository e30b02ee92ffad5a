//! `chatprobe_target_info{region,target,<labels>...} 1`: one series per
//! target, carrying the target's own `labels:` (shard, cell, cluster, ...),
//! to join on (`* on(region, target) group_left(shard) chatprobe_target_info`)
//! rather than repeated on every series. Targets have different label names,
//! so this is a collector of its own, not a fixed-label vector.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// The metric's name (**contract**).
pub(super) const NAME: &str = "chatprobe_target_info";
const HELP: &str = "Always 1, one per target; carries the target's own labels (`labels:`) to join on region and target.";

/// Each region's targets and their labels.
type Targets = BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>;

/// The info series of every region's targets.
#[derive(Clone)]
pub(crate) struct TargetInfo {
    desc: Arc<Desc>,
    targets: Arc<Mutex<Targets>>,
}

impl TargetInfo {
    /// An empty collector.
    pub(super) fn new() -> prometheus::Result<TargetInfo> {
        let desc = Desc::new(NAME.into(), HELP.into(), Vec::new(), Default::default())?;
        Ok(TargetInfo {
            desc: Arc::new(desc),
            targets: Arc::default(),
        })
    }

    /// Replaces the targets of `region`: each target name with its labels.
    pub(crate) fn set_region<'a>(
        &self,
        region: &str,
        targets: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, String>)>,
    ) {
        let targets = targets
            .into_iter()
            .map(|(name, labels)| (name.to_string(), labels.clone()))
            .collect();
        self.lock().insert(region.to_string(), targets);
    }

    fn lock(&self) -> MutexGuard<'_, Targets> {
        self.targets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A label pair.
fn pair(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_string());
    pair.set_value(value.to_string());
    pair
}

impl Collector for TargetInfo {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut metrics = Vec::new();
        for (region, targets) in self.lock().iter() {
            for (target, labels) in targets {
                let mut label_pairs = vec![pair("region", region), pair("target", target)];
                label_pairs.extend(labels.iter().map(|(name, value)| pair(name, value)));
                let mut gauge = Gauge::default();
                gauge.set_value(1.0);
                let mut metric = Metric::from_gauge(gauge);
                metric.set_label(label_pairs);
                metrics.push(metric);
            }
        }
        if metrics.is_empty() {
            return Vec::new();
        }
        let mut family = MetricFamily::default();
        family.set_name(NAME.into());
        family.set_help(HELP.into());
        family.set_field_type(MetricType::GAUGE);
        family.set_metric(metrics);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_target_has_its_own_labels_and_a_region_is_replaced_whole() {
        let registry = prometheus::Registry::new();
        let info = TargetInfo::new().unwrap();
        registry.register(Box::new(info.clone())).unwrap();
        let shard = BTreeMap::from([("shard".to_string(), "s1".to_string())]);
        let none = BTreeMap::new();
        info.set_region("eu-west", [("a", &shard), ("b", &none)]);
        let render = || {
            let mut out = Vec::new();
            prometheus::Encoder::encode(
                &prometheus::TextEncoder::new(),
                &registry.gather(),
                &mut out,
            )
            .unwrap();
            String::from_utf8(out).unwrap()
        };
        let text = render();
        assert!(
            text.contains("chatprobe_target_info{region=\"eu-west\",target=\"a\",shard=\"s1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("chatprobe_target_info{region=\"eu-west\",target=\"b\"} 1"),
            "{text}"
        );
        info.set_region("eu-west", [("b", &none)]);
        let text = render();
        assert!(!text.contains("target=\"a\""), "{text}");
        info.set_region("eu-west", []);
        assert!(!render().contains(NAME));
    }
}
