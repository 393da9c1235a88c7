//! Zonelists (mm/page_alloc.c build_zonelists, find_next_best_node,
//! build_zonerefs_node): the order in which an allocation for a node tries the zones of
//! the machine when it may fall back across nodes.

use super::zone::ZoneType;
use super::Model;

/// find_next_best_node's penalty for a node with CPUs (PENALTY_FOR_NODE_WITH_CPUS).
const PENALTY_FOR_NODE_WITH_CPUS: u32 = 1;

/// N_MEMORY: some zone of the node has present pages.
fn node_has_memory(n: &super::Node) -> bool {
    n.zones.iter().any(|z| z.present > 0)
}

/// The zonelists __build_all_zonelists gives every node, kept while the nodes with
/// memory stay the same (the kernel rebuilds them when that set changes, too). Building
/// them is O(N^2 log N) for N nodes; a hot-add then reads its node's in O(N). A cache
/// only: never part of the model's state (equality and undo logs ignore it).
#[derive(Debug, Default)]
pub struct ZonelistCache(std::sync::Mutex<Option<CachedZonelists>>);

#[derive(Debug, Clone)]
struct CachedZonelists {
    /// The nodes with memory they were built for.
    with_memory: Vec<u32>,
    by_node: std::collections::BTreeMap<u32, Vec<u32>>,
}

impl Clone for ZonelistCache {
    fn clone(&self) -> Self {
        ZonelistCache(std::sync::Mutex::new(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()))
    }
}

impl Model {
    /// Whether node `nid` has memory (N_MEMORY): some zone has present pages.
    fn has_memory(&self, nid: u32) -> bool {
        self.nodes.get(&nid).is_some_and(node_has_memory)
    }

    /// The nodes of `local`'s fallback zonelist, nearest first: the node itself when it
    /// has memory, then every other node with memory by find_next_best_node's rank
    /// (distance, +1 for a lower id, +1 for a node with CPUs, then the round-robin load
    /// that earlier nodes' zonelists left, then the lower id).
    ///
    /// `fresh`: the node is being brought online by this hot-add (hotadd_init_pgdat
    /// builds only its zonelist, with the round-robin load cleared); otherwise the
    /// zonelists are those __build_all_zonelists builds for every node in id order.
    pub fn zonelist_nodes(&self, local: u32, fresh: bool) -> Vec<u32> {
        if fresh {
            return self.build_node_order(local, &mut std::collections::BTreeMap::new());
        }
        let with_memory: Vec<u32> = self.nodes.values().filter(|n| node_has_memory(n)).map(|n| n.id).collect();
        let mut cache = self.zonelists.0.lock().unwrap_or_else(|p| p.into_inner());
        if cache.as_ref().is_none_or(|c| c.with_memory != with_memory) {
            let mut load = std::collections::BTreeMap::<u32, u32>::new();
            let by_node = self.nodes.map().keys().map(|&nid| (nid, self.build_node_order(nid, &mut load))).collect();
            *cache = Some(CachedZonelists { with_memory, by_node });
        }
        match cache.as_ref().and_then(|c| c.by_node.get(&local)) {
            Some(order) => order.clone(),
            // Not a configured node: built after the nodes below it, as the kernel would.
            None => {
                let mut load = std::collections::BTreeMap::<u32, u32>::new();
                for &nid in self.nodes.map().keys().take_while(|&&n| n < local) {
                    self.build_node_order(nid, &mut load);
                }
                self.build_node_order(local, &mut load)
            }
        }
    }

    /// build_zonelists for `local`: its node order, adding the round-robin penalty to
    /// the first node of each new distance.
    ///
    /// find_next_best_node picks the unused node of least (rank, load, id) again and
    /// again; a pick changes only the picked node's load, so the picks are the nodes
    /// sorted once by that key (O(N log N) per node, where picking is O(N^2)).
    fn build_node_order(&self, local: u32, load: &mut std::collections::BTreeMap<u32, u32>) -> Vec<u32> {
        let mut others: Vec<(u32, u32, u32)> = self
            .nodes
            .values()
            .filter(|n| n.id != local && node_has_memory(n))
            .map(|n| {
                let penalty = if n.facts.has_cpus { PENALTY_FOR_NODE_WITH_CPUS } else { 0 };
                let rank = self.distance(local, n.id) + u32::from(n.id < local) + penalty;
                (rank, load.get(&n.id).copied().unwrap_or(0), n.id)
            })
            .collect();
        others.sort_unstable();
        let mut order: Vec<u32> = Vec::with_capacity(others.len() + 1);
        if self.has_memory(local) {
            order.push(local);
        }
        order.extend(others.iter().map(|&(_, _, id)| id));
        let mut prev = local;
        for &node in &order {
            if self.distance(local, node) != self.distance(local, prev) {
                *load.entry(node).or_default() += 1;
            }
            prev = node;
        }
        order
    }

    /// node_distance between two configured nodes (remote for an unknown one).
    fn distance(&self, from: u32, to: u32) -> u32 {
        self.distances.get(from, to).unwrap_or(super::numa::REMOTE_DISTANCE)
    }

    /// The zones of `nid` an allocation that may use up to Normal tries, highest first
    /// (build_zonerefs_node: populated zones only).
    pub fn node_kernel_zones(&self, nid: u32) -> Vec<ZoneType> {
        let Some(n) = self.nodes.get(&nid) else { return Vec::new() };
        [ZoneType::Normal, ZoneType::Dma32, ZoneType::Dma].into_iter().filter(|&z| n.zone(z).present > 0).collect()
    }
}
