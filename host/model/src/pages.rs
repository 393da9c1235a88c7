//! Page state as a range map: a few runs per block, never a slot per page, so a petabyte
//! costs what its operations cost.

use super::journal::JMap;

/// A run `[start, end)` of pages sharing one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<V> {
    pub end: u64,
    pub value: V,
}

/// Maps pfn ranges to values; pfns without a run have no special state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeMap<V: Clone + PartialEq> {
    runs: JMap<u64, Run<V>>,
}

impl<V: Clone + PartialEq> Default for RangeMap<V> {
    fn default() -> Self {
        RangeMap { runs: JMap::default() }
    }
}

impl<V: Clone + PartialEq> RangeMap<V> {
    /// Number of runs (the map's size, independent of page counts).
    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// Runs overlapping `[start, end)`, clipped to it.
    pub fn overlapping(&self, start: u64, end: u64) -> Vec<(u64, u64, V)> {
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        // A run starting before `start` may reach into the range.
        if let Some((_, run)) = self.runs.range(..start).next_back() {
            if run.end > start {
                out.push((start, run.end.min(end), run.value.clone()));
            }
        }
        for (&s, run) in self.runs.range(start..end) {
            out.push((s, run.end.min(end), run.value.clone()));
        }
        out
    }

    /// Pages in `[start, end)` that have a state for which `pred` holds.
    pub fn count(&self, start: u64, end: u64, pred: impl Fn(&V) -> bool) -> u64 {
        self.overlapping(start, end).into_iter().filter(|(_, _, v)| pred(v)).map(|(s, e, _)| e - s).sum()
    }

    /// All runs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, &V)> {
        self.runs.iter().map(|(&s, r)| (s, r.end, &r.value))
    }

    /// Give `[start, end)` the state `value` (`None` clears it). Adjacent equal runs merge.
    pub fn set(&mut self, start: u64, end: u64, value: Option<V>) {
        if start >= end {
            return;
        }
        // Split a run that starts before `start` and reaches into the range.
        if let Some((&s, run)) = self.runs.range(..start).next_back() {
            if run.end > start {
                let run = run.clone();
                self.runs.insert(s, Run { end: start, value: run.value.clone() });
                if run.end > end {
                    self.runs.insert(end, Run { end: run.end, value: run.value });
                }
            }
        }
        // Remove runs starting inside; keep the tail of one that reaches past `end`.
        let inside: Vec<u64> = self.runs.range(start..end).map(|(&s, _)| s).collect();
        for s in inside {
            if let Some(run) = self.runs.remove(&s) {
                if run.end > end {
                    self.runs.insert(end, Run { end: run.end, value: run.value });
                }
            }
        }
        if let Some(value) = value {
            let mut new_start = start;
            let mut new_end = end;
            if let Some((&s, run)) = self.runs.range(..start).next_back() {
                if run.end == start && run.value == value {
                    new_start = s;
                }
            }
            if let Some(run) = self.runs.get(&end) {
                if run.value == value {
                    new_end = run.end;
                    self.runs.remove(&end);
                }
            }
            self.runs.insert(new_start, Run { end: new_end, value });
        }
    }

    pub fn begin(&mut self) {
        self.runs.begin();
    }

    pub fn commit(&mut self) {
        self.runs.commit();
    }

    pub fn rollback(&mut self) {
        self.runs.rollback();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_splits_and_merges() {
        let mut m: RangeMap<u8> = RangeMap::default();
        m.set(0, 100, Some(1));
        m.set(40, 60, Some(2));
        assert_eq!(m.run_count(), 3);
        assert_eq!(m.count(0, 100, |v| *v == 1), 80);
        m.set(40, 60, Some(1));
        assert_eq!(m.run_count(), 1, "equal neighbours merge back");
        m.set(10, 20, None);
        assert_eq!(m.overlapping(0, 100), vec![(0, 10, 1), (20, 100, 1)]);
    }

    #[test]
    fn huge_ranges_cost_one_run() {
        let mut m: RangeMap<u8> = RangeMap::default();
        // 256 TiB of 4 KiB pages in one run.
        m.set(0, 1 << 36, Some(7));
        assert_eq!(m.run_count(), 1);
        assert_eq!(m.count(0, 1 << 36, |_| true), 1 << 36);
    }

    #[test]
    fn rollback_restores_runs() {
        let mut m: RangeMap<u8> = RangeMap::default();
        m.set(0, 100, Some(1));
        let before = m.clone();
        m.begin();
        m.set(50, 150, Some(3));
        m.set(0, 10, None);
        m.rollback();
        assert_eq!(m.overlapping(0, 200), before.overlapping(0, 200));
    }
}
