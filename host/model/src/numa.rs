//! NUMA facts a strategy may weigh when it places memmap: which nodes have CPUs, their
//! memory tier, and the distance table (`node_distance()`, the ACPI SLIT).

use std::collections::{BTreeMap, BTreeSet};

/// `LOCAL_DISTANCE` (include/linux/topology.h): a node's distance to itself.
pub const LOCAL_DISTANCE: u32 = 10;
/// `REMOTE_DISTANCE`: what numa_alloc_distance() fills in for every other pair.
pub const REMOTE_DISTANCE: u32 = 20;
/// The memory tier of ordinary DRAM: MEMTIER_ADISTANCE_DRAM (4 * 128 + 64) >> 7
/// (include/linux/memory-tiers.h), shown as /sys/devices/virtual/memory_tiering/memory_tier4.
pub const DRAM_TIER: u32 = 4;

/// A node's facts beyond its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFacts {
    pub has_cpus: bool,
    pub tier: u32,
}

impl Default for NodeFacts {
    /// The kernel's defaults: every node has CPUs and is DRAM (tier 4).
    fn default() -> Self {
        NodeFacts { has_cpus: true, tier: DRAM_TIER }
    }
}

/// The distance table of a machine: the kernel's defaults (10 local, 20 remote) except
/// where the config gives a distance. A distance given one way only is used both ways
/// (firmware distance tables are symmetric in practice).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Distances {
    nodes: BTreeSet<u32>,
    given: BTreeMap<(u32, u32), u32>,
}

impl Distances {
    /// A table over `nodes` with the distances in `given` (`(from, to) -> distance`).
    pub fn new(nodes: impl IntoIterator<Item = u32>, given: BTreeMap<(u32, u32), u32>) -> Self {
        Distances { nodes: nodes.into_iter().collect(), given }
    }

    /// `node_distance(from, to)`, or `None` when either node does not exist.
    /// The nodes the table is over.
    pub fn nodes(&self) -> impl Iterator<Item = u32> + '_ {
        self.nodes.iter().copied()
    }

    /// The distances given, `((from, to), distance)`.
    pub fn given(&self) -> impl Iterator<Item = ((u32, u32), u32)> + '_ {
        self.given.iter().map(|(&k, &v)| (k, v))
    }

    pub fn get(&self, from: u32, to: u32) -> Option<u32> {
        if !self.nodes.contains(&from) || !self.nodes.contains(&to) {
            return None;
        }
        if from == to {
            return Some(LOCAL_DISTANCE);
        }
        Some(self.given.get(&(from, to)).or_else(|| self.given.get(&(to, from))).copied().unwrap_or(REMOTE_DISTANCE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_mirroring() {
        // Node 0 says 1 is at 21; node 2 says 0 is at 30 and 1 at 17; 1 -> 2 is asked the other way.
        let given = BTreeMap::from([((0, 1), 21), ((2, 0), 30), ((2, 1), 17), ((1, 0), 25)]);
        let d = Distances::new([0, 1, 2], given);
        assert_eq!(d.get(0, 0), Some(LOCAL_DISTANCE));
        assert_eq!(d.get(0, 1), Some(21));
        assert_eq!(d.get(1, 0), Some(25), "a distance given both ways is asymmetric, as the SLIT allows");
        assert_eq!(d.get(0, 2), Some(30), "mirrored from 2 -> 0");
        assert_eq!(d.get(1, 2), Some(17), "mirrored from 2 -> 1");
        assert_eq!(d.get(0, 3), None);
        assert_eq!(Distances::new([0, 1], BTreeMap::new()).get(1, 0), Some(REMOTE_DISTANCE));
    }
}
