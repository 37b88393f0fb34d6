//! Histograms of times, in X-Ray's `[{Value, Count}]` shape: values in
//! seconds, rounded to the millisecond.

use std::collections::BTreeMap;

use serde::Serialize;

/// Counts of times, by millisecond.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram(BTreeMap<u64, u64>);

/// One bar of a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    /// The time, seconds.
    pub value: f64,
    /// How many times fell on it (at most `i32::MAX`, as the API types it).
    pub count: u32,
}

impl Histogram {
    /// Counts `seconds` (ignored when negative or not finite).
    pub fn add(&mut self, seconds: f64) {
        if seconds.is_finite() && seconds >= 0.0 {
            // Saturates for absurd values (over half a billion years).
            let ms = (seconds * 1000.0).round() as u64;
            *self.0.entry(ms).or_default() += 1;
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (k, v) in &other.0 {
            *self.0.entry(*k).or_default() += v;
        }
    }

    /// `true` when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bars, shortest time first.
    pub fn entries(&self) -> Vec<Entry> {
        self.0
            .iter()
            .map(|(ms, n)| Entry {
                value: *ms as f64 / 1000.0,
                count: u32::try_from(*n).unwrap_or(u32::MAX).min(i32::MAX as u32),
            })
            .collect()
    }
}

impl Serialize for Histogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.entries().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_milliseconds_and_merges() {
        let mut h = Histogram::default();
        for s in [0.0014, 0.0006, 0.25, f64::NAN, -1.0, 0.2504] {
            h.add(s);
        }
        let mut g = Histogram::default();
        g.add(0.001);
        h.merge(&g);
        assert_eq!(
            serde_json::to_value(&h).expect("json"),
            serde_json::json!([{"Value": 0.001, "Count": 3}, {"Value": 0.25, "Count": 2}])
        );
    }
}
