//! Page state as a range map: a few runs per block, never a slot per page, so a petabyte
//! costs what its operations cost.

use super::journal::JMap;
use super::PageState;

/// A run `[start, end)` of pages sharing one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<V> {
    pub end: u64,
    pub value: V,
}

/// Maps key ranges (pfns, section numbers, block ids) to values, as runs of equal values;
/// keys without a run have no value.
#[derive(Debug, Clone)]
pub struct RangeMap<V: Clone + PartialEq> {
    runs: JMap<u64, Run<V>>,
}

impl<V: Clone + PartialEq> PartialEq for RangeMap<V> {
    /// The same runs (an open journal aside).
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<V: Clone + Eq> Eq for RangeMap<V> {}

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
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, u64, &V)> {
        self.runs.iter().map(|(&s, r)| (s, r.end, &r.value))
    }

    /// The value at `key`.
    pub fn get(&self, key: u64) -> Option<&V> {
        let (_, run) = self.runs.range(..=key).next_back()?;
        (run.end > key).then_some(&run.value)
    }

    /// The runs overlapping `[start, end)`, clipped to it, borrowed (no clone).
    pub fn runs_in(&self, start: u64, end: u64) -> impl DoubleEndedIterator<Item = (u64, u64, &V)> + '_ {
        let before = self.runs.range(..start).next_back().filter(|(_, r)| r.end > start && start < end);
        let inside = self.runs.range(start..end.max(start));
        before.into_iter().chain(inside).map(move |(&s, r)| (s.max(start), r.end.min(end), &r.value))
    }

    /// The first run at or after `key` (clipped to start at `key`).
    pub fn first_from(&self, key: u64) -> Option<(u64, u64, &V)> {
        self.runs_in(key, u64::MAX).next()
    }

    /// The last run before `key` (clipped to end at `key`).
    pub fn last_before(&self, key: u64) -> Option<(u64, u64, &V)> {
        self.runs_in(0, key).next_back()
    }

    /// Whether any key in `[start, end)` has a value.
    pub fn any_in(&self, start: u64, end: u64) -> bool {
        self.runs_in(start, end).next().is_some()
    }

    /// Keys in `[start, end)` that have a value.
    pub fn covered(&self, start: u64, end: u64) -> u64 {
        self.runs_in(start, end).map(|(s, e, _)| e - s).sum()
    }

    /// Keys that have a value.
    pub fn total(&self) -> u64 {
        self.runs.iter().map(|(&s, r)| r.end - s).sum()
    }

    /// Split the run holding `key` in two at `key` (nothing when a run starts there).
    fn split_at(&mut self, key: u64) {
        if let Some((&s, run)) = self.runs.range(..key).next_back() {
            if run.end > key {
                let run = run.clone();
                self.runs.insert(s, Run { end: key, value: run.value.clone() });
                self.runs.insert(key, run);
            }
        }
    }

    /// Merge equal neighbours among the runs touching `[start, end]`.
    fn merge_around(&mut self, start: u64, end: u64) {
        let from = self.runs.range(..start).next_back().map_or(start, |(&s, _)| s);
        let starts: Vec<u64> = self.runs.range(from..=end).map(|(&s, _)| s).collect();
        let mut prev: Option<u64> = None;
        for s in starts {
            if let Some(p) = prev {
                let (left, right) = (self.runs.get(&p).cloned(), self.runs.get(&s).cloned());
                if let (Some(l), Some(r)) = (left, right) {
                    if l.end == s && l.value == r.value {
                        self.runs.remove(&s);
                        self.runs.insert(p, Run { end: r.end, value: l.value });
                        continue;
                    }
                }
            }
            prev = Some(s);
        }
    }

    /// Change the value of every key in `[start, end)` that has one with `f`, run by run
    /// (keys without a value stay without). Cost: the runs in the range.
    pub fn update(&mut self, start: u64, end: u64, mut f: impl FnMut(&mut V)) {
        if start >= end {
            return;
        }
        self.split_at(start);
        self.split_at(end);
        let starts: Vec<u64> = self.runs.range(start..end).map(|(&s, _)| s).collect();
        for s in starts {
            self.runs.update(&s, |run| f(&mut run.value));
        }
        self.merge_around(start, end);
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

/// A run of the page map: one state for all its pages, or vmemmap marks repeating
/// through it (what a strided `mark_vmemmap` leaves: a memmap-on-memory add of a
/// million blocks is one such run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRun {
    Plain(PageState),
    /// Pages `p` with `(p - phase) % stride < len` are vmemmap, the others have no state
    /// (`phase < stride`, `0 < len < stride`).
    Strided {
        stride: u64,
        len: u64,
        phase: u64,
    },
}

/// What `Strided` marks are.
const VMEMMAP: &PageState = &PageState::Vmemmap;

impl PageRun {
    /// The marked pieces of this run within `[start, end)`, one by one.
    fn pieces(&self, start: u64, end: u64) -> Vec<(u64, u64, &PageState)> {
        match self {
            PageRun::Plain(v) => vec![(start, end, v)],
            PageRun::Strided { stride, len, phase } => {
                let mut out = Vec::new();
                // The period holding `start`, then every period up to `end`.
                let mut p = start - (start.wrapping_sub(*phase) % stride);
                while p < end {
                    let (a, b) = (p.max(start), (p + len).min(end));
                    if a < b {
                        out.push((a, b, VMEMMAP));
                    }
                    p += stride;
                }
                out
            }
        }
    }

    /// Marked pages within `[start, end)`.
    fn marked(&self, start: u64, end: u64) -> u64 {
        match self {
            PageRun::Plain(_) => end - start,
            PageRun::Strided { stride, len, phase } => {
                // Marked pages in [phase', x) for x counted from a period boundary.
                let below = |x: u64| {
                    let off = x.wrapping_sub(*phase) % stride;
                    let base = x - off;
                    (base / stride) * len + off.min(*len)
                };
                below(end) - below(start)
            }
        }
    }
}

/// Page state over pfns: plain runs, and strided vmemmap marks kept as one run each.
/// Queries expand strided runs only over the pfns they ask about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageMap {
    runs: RangeMap<PageRun>,
}

impl PageMap {
    /// Runs as stored (the map's size).
    pub fn run_count(&self) -> usize {
        self.runs.run_count()
    }

    /// The stored runs overlapping `[start, end)`, clipped.
    pub fn runs_in(&self, start: u64, end: u64) -> impl DoubleEndedIterator<Item = (u64, u64, &PageRun)> + '_ {
        self.runs.runs_in(start, end)
    }

    /// Pieces of one state overlapping `[start, end)`, clipped (strided marks one by one).
    pub fn overlapping(&self, start: u64, end: u64) -> Vec<(u64, u64, PageState)> {
        self.runs.runs_in(start, end).flat_map(|(s, e, r)| r.pieces(s, e).into_iter().map(|(a, b, v)| (a, b, *v))).collect()
    }

    /// Pages in `[start, end)` that have a state for which `pred` holds.
    pub fn count(&self, start: u64, end: u64, pred: impl Fn(&PageState) -> bool) -> u64 {
        self.runs
            .runs_in(start, end)
            .map(|(s, e, r)| match r {
                PageRun::Plain(v) if pred(v) => e - s,
                PageRun::Strided { .. } if pred(VMEMMAP) => r.marked(s, e),
                _ => 0,
            })
            .sum()
    }

    /// Every piece of one state, in order (strided marks one by one: for printing).
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, &PageState)> + '_ {
        self.runs.iter().flat_map(|(s, e, r)| r.pieces(s, e))
    }

    /// Give `[start, end)` the state `value` (`None` clears it). Strided runs cut by it
    /// keep only the part from their first to their last remaining mark.
    pub fn set(&mut self, start: u64, end: u64, value: Option<PageState>) {
        if start >= end {
            return;
        }
        self.runs.set(start, end, value.map(PageRun::Plain));
        if let Some((s, e, r)) = self.runs.last_before(start).filter(|(_, e, _)| *e == start).map(|(s, e, r)| (s, e, *r)) {
            self.trim_strided(s, e, r);
        }
        if let Some((s, e, r)) = self.runs.first_from(end).filter(|(s, _, _)| *s == end).map(|(s, e, r)| (s, e, *r)) {
            self.trim_strided(s, e, r);
        }
    }

    /// A strided run `[s, e)` shrunk to its first mark's start and last mark's end (gone
    /// when it holds no mark), so no run stands for pages without state.
    fn trim_strided(&mut self, s: u64, e: u64, r: PageRun) {
        let PageRun::Strided { stride, len, phase } = r else { return };
        let in_period = |p: u64| p.wrapping_sub(phase) % stride;
        // First marked pfn at or after s; end of the last mark before e.
        let first = if in_period(s) < len { s } else { s - in_period(s) + stride };
        let last_period = (e - 1) - in_period(e - 1);
        let last_end = (last_period + len).min(e);
        if first >= e || last_end <= s || first >= last_end {
            self.runs.set(s, e, None);
            return;
        }
        if first > s {
            self.runs.set(s, first, None);
        }
        if last_end < e {
            self.runs.set(last_end, e, None);
        }
    }

    /// Whether both hold the same page states, however they store them.
    pub fn same_states(&self, other: &PageMap) -> bool {
        self == other || self.iter().eq(other.iter())
    }

    /// `count` runs of `len` pages every `stride` from `start` get `value` (the caller
    /// checked that they lie inside its range). Vmemmap marks over pfns without state
    /// are one stored run, and clearing exactly such marks removes it: O(1); anything
    /// else goes run by run.
    pub fn set_strided(&mut self, start: u64, len: u64, stride: u64, count: u64, value: Option<PageState>) {
        let end = start + (count - 1) * stride + len;
        let pattern = PageRun::Strided { stride, len, phase: start % stride };
        let strided = count > 1 && len < stride;
        if strided && value == Some(PageState::Vmemmap) && !self.runs.any_in(start, end) {
            self.runs.set(start, end, Some(pattern));
            return;
        }
        if strided && value.is_none() && self.runs.runs_in(start, end).all(|(_, _, r)| *r == pattern) {
            // Only these marks lie in [start, end): the periods' gaps hold no state.
            let gaps_only = self.runs.runs_in(start, end).all(|(s, e, _)| s >= start && e <= end);
            if gaps_only {
                self.runs.set(start, end, None);
                return;
            }
        }
        for i in 0..count {
            let s = start + i * stride;
            self.set(s, s + len, value);
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
    fn update_changes_values_run_by_run_and_merges_back() {
        let mut m: RangeMap<u8> = RangeMap::default();
        m.set(0, 100, Some(1));
        m.set(200, 300, Some(1));
        // [50, 250): two pieces change, the gap [100, 200) stays empty.
        m.update(50, 250, |v| *v = 2);
        assert_eq!(m.overlapping(0, 300), vec![(0, 50, 1), (50, 100, 2), (200, 250, 2), (250, 300, 1)]);
        assert_eq!((m.get(49), m.get(50), m.get(150), m.get(299), m.get(300)), (Some(&1), Some(&2), None, Some(&1), None));
        assert_eq!(m.covered(0, 1000), 200);
        m.update(0, 300, |v| *v = 1);
        assert_eq!(m.run_count(), 2, "equal neighbours merge back");
        assert_eq!(m.runs_in(90, 210).collect::<Vec<_>>(), vec![(90, 100, &1), (200, 210, &1)]);
        assert_eq!(m.first_from(100), Some((200, 300, &1)));
        assert_eq!(m.last_before(200), Some((0, 100, &1)));
    }

    #[test]
    fn strided_marks_are_one_run_and_count_by_arithmetic() {
        let mut m = PageMap::default();
        // 1,000 blocks of 32,768 pages from pfn 0x100000, each starting with 512 marks.
        m.set_strided(0x100000, 512, 32_768, 1_000, Some(PageState::Vmemmap));
        assert_eq!(m.run_count(), 1);
        assert_eq!(m.count(0, u64::MAX, |v| *v == PageState::Vmemmap), 512_000);
        // Half of block 3's marks, and none of the gap after them.
        let b3 = 0x100000 + 3 * 32_768;
        assert_eq!(m.count(b3 + 256, b3 + 4_096, |_| true), 256);
        assert_eq!(m.overlapping(b3, b3 + 32_768), vec![(b3, b3 + 512, PageState::Vmemmap)]);
        assert_eq!(m.iter().count(), 1_000);
        // Clearing exactly those marks removes the run; other marks go run by run.
        let mut c = m.clone();
        c.set_strided(0x100000, 512, 32_768, 1_000, None);
        assert_eq!(c.run_count(), 0);
        m.set(b3, b3 + 1, None);
        assert_eq!(m.count(0, u64::MAX, |_| true), 511_999);
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
