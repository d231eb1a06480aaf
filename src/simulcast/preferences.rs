//! A subscriber's simulcast preferences (calls-api.md, "Simulcast"), as
//! given on a pull or on tracks/update, and the layer they pick.
//!
//! The rule, over the publisher's rids in a–z order ("asciibetical", `a`
//! most desirable):
//! - the start is `preferredRid` (or, without one, the first rid a–z);
//! - `ridNotAvailable: "asciibetical"`: when the start is not live, the
//!   next live rid after it a–z (then the ones before it, nearest first);
//! - `priorityOrdering: "asciibetical"`: the first live rid from the start
//!   on whose rate fits the subscriber's estimate; when none fits, the
//!   last live one;
//! - with both `"none"` the start is kept whatever happens.

use serde_json::Value;

use super::{Layer, MAX_LAYERS};
use crate::ids::Rid;

/// What a subscriber asked of a simulcast track.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preferences {
    /// `preferredRid`.
    pub preferred_rid: Option<Rid>,
    /// `priorityOrdering: "asciibetical"`: follow the bandwidth estimate.
    pub by_estimate: bool,
    /// `ridNotAvailable: "asciibetical"`: fall back when a rid stops.
    pub fallback: bool,
}

impl Preferences {
    /// Reads the API's `simulcast` object (already checked by the API's
    /// limits: unknown values are ignored here).
    pub fn from_api(value: &Value) -> Self {
        let text = |name: &str| value.get(name).and_then(Value::as_str);
        Preferences {
            preferred_rid: text("preferredRid").map(Rid::from),
            by_estimate: text("priorityOrdering") == Some("asciibetical"),
            fallback: text("ridNotAvailable") == Some("asciibetical"),
        }
    }

    /// Our rule for a pull that gives no `simulcast` object: the best rid
    /// a–z that is live and fits the estimate.
    pub fn automatic() -> Self {
        Preferences {
            preferred_rid: None,
            by_estimate: true,
            fallback: true,
        }
    }

    /// The publisher's layers in the order they are tried: the start, the
    /// rids after it a–z, then those before it, nearest first.
    pub fn candidates(&self, rids: &[Rid]) -> Candidates {
        let mut sorted: Vec<(usize, &Rid)> = rids.iter().take(MAX_LAYERS).enumerate().collect();
        sorted.sort_by(|a, b| a.1.as_str().as_bytes().cmp(b.1.as_str().as_bytes()));
        let start = self
            .preferred_rid
            .as_ref()
            .and_then(|p| sorted.iter().position(|(_, r)| *r == p));
        let mut order = Candidates::default();
        let Some(start) =
            start.or((!sorted.is_empty() && self.preferred_rid.is_none()).then_some(0))
        else {
            // A preferred rid the publisher does not send: nothing is the
            // start; a fallback still finds the others, a–z.
            order.missing_start = true;
            for (i, _) in &sorted {
                order.push(Layer(*i as u8));
            }
            return order;
        };
        for (i, _) in &sorted[start..] {
            order.push(Layer(*i as u8));
        }
        for (i, _) in sorted[..start].iter().rev() {
            order.push(Layer(*i as u8));
        }
        order
    }

    /// The layer to send: `live` tells which layers receive media, `fits`
    /// which ones the estimate carries (always true without an estimate).
    pub fn target(
        &self,
        candidates: &Candidates,
        live: impl Fn(Layer) -> bool,
        fits: impl Fn(Layer) -> bool,
    ) -> Option<Layer> {
        let layers = candidates.layers();
        let start = (!candidates.missing_start)
            .then(|| layers.first().copied())
            .flatten();
        if !self.fallback && !self.by_estimate {
            return start;
        }
        let mut last_live = None;
        for layer in layers {
            if !live(*layer) {
                continue;
            }
            if !self.by_estimate || fits(*layer) {
                return Some(*layer);
            }
            last_live = Some(*layer);
        }
        last_live.or(start)
    }
}

/// Layers in the order a subscriber's preferences try them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Candidates {
    layers: [Layer; MAX_LAYERS],
    len: u8,
    /// The preferred rid is not one of the publisher's.
    missing_start: bool,
}

impl Candidates {
    fn push(&mut self, layer: Layer) {
        if usize::from(self.len) < MAX_LAYERS {
            self.layers[usize::from(self.len)] = layer;
            self.len += 1;
        }
    }

    /// The layers, most wanted first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers[..usize::from(self.len)]
    }

    /// The position of `layer` in the order (lower is more wanted).
    pub fn rank(&self, layer: Layer) -> Option<usize> {
        self.layers().iter().position(|l| *l == layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rids(names: &[&str]) -> Vec<Rid> {
        names.iter().map(|n| Rid::from(*n)).collect()
    }

    #[test]
    fn the_api_object_is_read_and_defaults_are_none() {
        let p = Preferences::from_api(&json!({"preferredRid": "h",
            "priorityOrdering": "asciibetical", "ridNotAvailable": "none"}));
        assert_eq!(p.preferred_rid, Some(Rid::from("h")));
        assert!(p.by_estimate && !p.fallback);
        assert_eq!(Preferences::from_api(&json!({})), Preferences::default());
    }

    #[test]
    fn candidates_start_at_the_preferred_rid_then_go_on_a_to_z_then_back() {
        // Sent as q;h;f (layers 0, 1, 2): a–z is f, h, q.
        let published = rids(&["q", "h", "f"]);
        let order = |preferred: Option<&str>| {
            let p = Preferences {
                preferred_rid: preferred.map(Rid::from),
                ..Preferences::default()
            };
            p.candidates(&published).layers().to_vec()
        };
        assert_eq!(order(None), [Layer(2), Layer(1), Layer(0)]);
        assert_eq!(order(Some("f")), [Layer(2), Layer(1), Layer(0)]);
        assert_eq!(order(Some("h")), [Layer(1), Layer(0), Layer(2)]);
        assert_eq!(order(Some("q")), [Layer(0), Layer(1), Layer(2)]);
    }

    #[test]
    fn with_both_defaults_the_preferred_layer_is_kept_even_when_it_stops() {
        let published = rids(&["f", "h", "q"]);
        let p = Preferences::from_api(&json!({"preferredRid": "f"}));
        let c = p.candidates(&published);
        assert_eq!(p.target(&c, |_| false, |_| false), Some(Layer(0)));
        // A rid the publisher does not send: nothing.
        let p = Preferences::from_api(&json!({"preferredRid": "x"}));
        let c = p.candidates(&published);
        assert_eq!(p.target(&c, |_| true, |_| true), None);
    }

    #[test]
    fn rid_not_available_falls_to_the_next_live_rid_and_back() {
        let published = rids(&["f", "h", "q"]);
        let p =
            Preferences::from_api(&json!({"preferredRid": "f", "ridNotAvailable": "asciibetical"}));
        let c = p.candidates(&published);
        assert_eq!(p.target(&c, |_| true, |_| false), Some(Layer(0)));
        assert_eq!(p.target(&c, |l| l != Layer(0), |_| false), Some(Layer(1)));
        assert_eq!(p.target(&c, |l| l == Layer(2), |_| false), Some(Layer(2)));
        // Preferring q, with q stopped: the nearest before it, h.
        let p =
            Preferences::from_api(&json!({"preferredRid": "q", "ridNotAvailable": "asciibetical"}));
        let c = p.candidates(&published);
        assert_eq!(p.target(&c, |l| l != Layer(2), |_| false), Some(Layer(1)));
        // A preferred rid the publisher never sent: the first live a–z.
        let p =
            Preferences::from_api(&json!({"preferredRid": "x", "ridNotAvailable": "asciibetical"}));
        let c = p.candidates(&published);
        assert_eq!(p.target(&c, |l| l != Layer(0), |_| true), Some(Layer(1)));
    }

    #[test]
    fn priority_ordering_takes_the_best_live_rid_that_fits() {
        let published = rids(&["f", "h", "q"]);
        let p = Preferences::from_api(&json!({"priorityOrdering": "asciibetical"}));
        let c = p.candidates(&published);
        assert_eq!(p.target(&c, |_| true, |_| true), Some(Layer(0)));
        assert_eq!(p.target(&c, |_| true, |l| l != Layer(0)), Some(Layer(1)));
        assert_eq!(p.target(&c, |_| true, |l| l == Layer(2)), Some(Layer(2)));
        // Nothing fits: the least wanted live layer (the pause logic
        // takes it from there).
        assert_eq!(p.target(&c, |l| l != Layer(2), |_| false), Some(Layer(1)));
        // The automatic rule is the same, starting at the first rid a–z.
        let auto = Preferences::automatic();
        let c = auto.candidates(&rids(&["2", "1", "0"]));
        assert_eq!(auto.target(&c, |_| true, |_| true), Some(Layer(2)));
    }
}
