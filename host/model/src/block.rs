//! Memory-block devices: the units user space onlines and offlines through sysfs.

use hotplug_core::Altmap;

use super::zone::ZoneType;

/// A memory block's state as sysfs shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    Online,
    Offline,
}

impl BlockState {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockState::Online => "online",
            BlockState::Offline => "offline",
        }
    }
}

/// One `struct memory_block` (drivers/base/memory.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBlock {
    /// memoryN: first section number / sections per block.
    pub id: u64,
    pub nid: u32,
    pub state: BlockState,
    /// The zone it is online in (None while offline, or for a boot block spanning zones).
    pub zone: Option<ZoneType>,
    /// Present at boot.
    pub early: bool,
    /// The memory group it belongs to (0: none).
    pub group_id: u64,
    /// Memmap on memory: the block's own altmap, as allocation left it.
    pub altmap: Option<Altmap>,
    /// Pages at the block's start holding its memmap (present, never managed).
    pub vmemmap_pages: u64,
    /// The strategy instance that added it, for remove/tear_down.
    pub strategy: Option<String>,
    /// The hot-add this block came from (for reports and removal).
    pub add_id: u64,
}

/// What a run of alike memory blocks shares: a [`MemoryBlock`] without its id, its
/// altmap's pfns relative to the block's first pfn, so a million blocks added alike stay
/// one run until something makes one of them differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    pub nid: u32,
    pub state: BlockState,
    pub zone: Option<ZoneType>,
    pub early: bool,
    pub group_id: u64,
    /// The block's altmap with `base_pfn` and `end_pfn` counted from the block's first pfn.
    pub altmap: Option<Altmap>,
    pub vmemmap_pages: u64,
    pub strategy: Option<String>,
    pub add_id: u64,
}

/// `a` with its pfns counted from `first_pfn`: how a run of blocks stores an altmap.
pub fn relative_altmap(a: Altmap, first_pfn: u64) -> Altmap {
    Altmap { base_pfn: a.base_pfn.saturating_sub(first_pfn), end_pfn: a.end_pfn.saturating_sub(first_pfn), ..a }
}

impl BlockInfo {
    /// Block `id` of a run with this info, its altmap placed at `first_pfn`.
    pub fn block(&self, id: u64, first_pfn: u64) -> MemoryBlock {
        let altmap = self.altmap.map(|a| Altmap { base_pfn: a.base_pfn + first_pfn, end_pfn: a.end_pfn + first_pfn, ..a });
        MemoryBlock {
            id,
            nid: self.nid,
            state: self.state,
            zone: self.zone,
            early: self.early,
            group_id: self.group_id,
            altmap,
            vmemmap_pages: self.vmemmap_pages,
            strategy: self.strategy.clone(),
            add_id: self.add_id,
        }
    }

    /// The info of `block`, whose first pfn is `first_pfn`.
    pub fn of(block: &MemoryBlock, first_pfn: u64) -> BlockInfo {
        let altmap = block.altmap.map(|a| relative_altmap(a, first_pfn));
        BlockInfo {
            nid: block.nid,
            state: block.state,
            zone: block.zone,
            early: block.early,
            group_id: block.group_id,
            altmap,
            vmemmap_pages: block.vmemmap_pages,
            strategy: block.strategy.clone(),
            add_id: block.add_id,
        }
    }
}

/// The memory-block devices by id, as runs of alike blocks (journaled).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockTable {
    runs: crate::pages::RangeMap<BlockInfo>,
    /// Pages per block, to place altmaps (set at boot).
    pages_per_block: u64,
}

impl BlockTable {
    pub fn new(pages_per_block: u64) -> Self {
        BlockTable { runs: Default::default(), pages_per_block }
    }

    /// Block `id`, built from its run.
    pub fn get(&self, id: &u64) -> Option<MemoryBlock> {
        self.runs.get(*id).map(|info| info.block(*id, id * self.pages_per_block))
    }

    /// Whether block `id` exists.
    pub fn contains(&self, id: u64) -> bool {
        self.runs.get(id).is_some()
    }

    /// Number of blocks.
    pub fn len(&self) -> u64 {
        self.runs.total()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.run_count() == 0
    }

    /// Runs of alike blocks (the table's size).
    pub fn run_count(&self) -> usize {
        self.runs.run_count()
    }

    /// Every block, one by one (costs the blocks: for printing and tests).
    pub fn values(&self) -> impl DoubleEndedIterator<Item = MemoryBlock> + '_ {
        self.runs.iter().flat_map(move |(s, e, info)| (s..e).map(move |id| info.block(id, id * self.pages_per_block)))
    }

    /// Runs of blocks `(first id, end id, info)`.
    pub fn runs(&self) -> impl Iterator<Item = (u64, u64, &BlockInfo)> + '_ {
        self.runs.iter()
    }

    /// Runs overlapping ids `[first, end)`, clipped.
    pub fn runs_in(&self, first: u64, end: u64) -> impl DoubleEndedIterator<Item = (u64, u64, &BlockInfo)> + '_ {
        self.runs.runs_in(first, end)
    }

    /// Whether any block's info satisfies `pred` (cost: the runs).
    pub fn any(&self, pred: impl Fn(&BlockInfo) -> bool) -> bool {
        self.runs.iter().any(|(_, _, info)| pred(info))
    }

    /// Blocks `[first, end)` created alike (or removed with `None`).
    pub fn set_range(&mut self, first: u64, end: u64, info: Option<BlockInfo>) {
        self.runs.set(first, end, info);
    }

    /// Change every existing block of `[first, end)` with `f`, run by run.
    pub fn update_range(&mut self, first: u64, end: u64, f: impl FnMut(&mut BlockInfo)) {
        self.runs.update(first, end, f);
    }

    /// Insert or replace one block.
    pub fn insert(&mut self, id: u64, block: MemoryBlock) {
        let info = BlockInfo::of(&block, id * self.pages_per_block);
        self.runs.set(id, id + 1, Some(info));
    }

    /// Change one block (nothing when it does not exist).
    pub fn update(&mut self, id: &u64, f: impl FnOnce(&mut MemoryBlock)) {
        if let Some(mut b) = self.get(id) {
            f(&mut b);
            self.insert(*id, b);
        }
    }

    pub fn same_contents(&self, other: &Self) -> bool {
        self.runs == other.runs
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

/// Blocks an outcome names, as runs `[first, end)` with one value each (their zone, or
/// nothing), in the order the step met them: how a step over a million blocks reports
/// them without a record per block. Reports expand them only when they print ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRuns<T = ()> {
    runs: Vec<(u64, u64, T)>,
}

impl<T> Default for BlockRuns<T> {
    fn default() -> Self {
        BlockRuns { runs: Vec::new() }
    }
}

impl<T: Clone + PartialEq> BlockRuns<T> {
    /// Blocks `[first, end)` with `value`, after those already listed (merged with the
    /// last run when it ends at `first` with the same value).
    pub fn push(&mut self, first: u64, end: u64, value: T) {
        if first >= end {
            return;
        }
        if let Some(last) = self.runs.last_mut() {
            if last.1 == first && last.2 == value {
                last.1 = end;
                return;
            }
        }
        self.runs.push((first, end, value));
    }

    /// All of `other`'s runs after these.
    pub fn extend(&mut self, other: BlockRuns<T>) {
        for (s, e, v) in other.runs {
            self.push(s, e, v);
        }
    }

    /// How many blocks.
    pub fn len(&self) -> u64 {
        self.runs.iter().map(|(s, e, _)| e - s).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The runs `(first, end, value)`.
    pub fn runs(&self) -> &[(u64, u64, T)] {
        &self.runs
    }

    /// Every block with its value, one by one.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> + '_ {
        self.runs.iter().flat_map(|(s, e, v)| (*s..*e).map(move |id| (id, v)))
    }

    /// Every block id, one by one.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_runs_merge_ascending_neighbours_only() {
        let mut r: BlockRuns<u8> = BlockRuns::default();
        r.push(10, 20, 1);
        r.push(20, 30, 1);
        r.push(30, 31, 2);
        // A shrink lists blocks from the end down: each its own run.
        r.push(5, 6, 2);
        r.push(4, 5, 2);
        assert_eq!(r.runs(), &[(10, 30, 1), (30, 31, 2), (5, 6, 2), (4, 5, 2)]);
        assert_eq!(r.len(), 23);
        assert_eq!(r.ids().take(2).collect::<Vec<_>>(), [10, 11]);
        assert_eq!(r.ids().last(), Some(4));
    }
}
