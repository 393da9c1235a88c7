//! Zonelists (mm/page_alloc.c build_zonelists, find_next_best_node,
//! build_zonerefs_node): the order in which an allocation for a node tries the zones of
//! the machine when it may fall back across nodes.

use super::zone::ZoneType;
use super::Model;

/// find_next_best_node's penalty for a node with CPUs (PENALTY_FOR_NODE_WITH_CPUS).
const PENALTY_FOR_NODE_WITH_CPUS: u32 = 1;

impl Model {
    /// Whether node `nid` has memory (N_MEMORY): some zone has present pages.
    fn has_memory(&self, nid: u32) -> bool {
        self.nodes.get(&nid).is_some_and(|n| n.zones.iter().any(|z| z.present > 0))
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
        let ids: Vec<u32> = self.nodes.map().keys().copied().collect();
        let mut load = std::collections::BTreeMap::<u32, u32>::new();
        if !fresh {
            for &nid in ids.iter().take_while(|&&n| n < local) {
                self.build_node_order(nid, &mut load);
            }
        }
        self.build_node_order(local, &mut load)
    }

    /// build_zonelists for `local`: its node order, adding the round-robin penalty to
    /// the first node of each new distance.
    fn build_node_order(&self, local: u32, load: &mut std::collections::BTreeMap<u32, u32>) -> Vec<u32> {
        let with_memory: Vec<u32> = self.nodes.map().keys().copied().filter(|&n| self.has_memory(n)).collect();
        let mut order: Vec<u32> = Vec::with_capacity(with_memory.len());
        let mut prev = local;
        loop {
            let next = if !order.contains(&local) && self.has_memory(local) {
                Some(local)
            } else {
                with_memory.iter().copied().filter(|n| !order.contains(n)).min_by_key(|&n| {
                    let cpus = self.nodes.get(&n).is_some_and(|node| node.facts.has_cpus);
                    let rank = self.distance(local, n) + u32::from(n < local) + if cpus { PENALTY_FOR_NODE_WITH_CPUS } else { 0 };
                    (rank, load.get(&n).copied().unwrap_or(0), n)
                })
            };
            let Some(node) = next else { break };
            if self.distance(local, node) != self.distance(local, prev) {
                *load.entry(node).or_default() += 1;
            }
            order.push(node);
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
