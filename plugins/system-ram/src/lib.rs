//! The baseline strategy: what `add_memory()` does without MHP_MEMMAP_ON_MEMORY.
//!
//! Memory-block devices are created so the range can be onlined, and the memmap comes
//! from node memory (the range's own node, `memmap_nid`, or an ordered list of nodes).
//! This is the strategy that runs out on a small VM hot-adding a lot: every 128 MiB
//! section needs 2 MiB of already-online memory for its `struct page`s.
//!
//! `memmap_policy = "nearest-cpu-node"` is the CXL case: memory on a CPU-less expander
//! node gets its memmap from the nodes with CPUs, nearest first (by the host's distance
//! table), so `struct page` lookups stay on fast DRAM.

use hotplug_core::{
    export_plugin, Host, OptionSpec, OptionType, PluginError, ROption, Request, RequestKinds, RestrictionFlags, Restrictions, Strategy,
};
use serde::Deserialize;

/// The `options` table of a `[[strategy]]` using this plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Take the memmap from this node instead of the range's own node.
    memmap_nid: Option<u32>,
    /// Take the memmap from the first of these nodes with room.
    memmap_nodes: Option<Vec<u32>>,
    /// How to choose the memmap node when neither of the above is given.
    memmap_policy: Option<Policy>,
}

/// Where the memmap goes when no node is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Policy {
    /// The range's own node, as `add_memory()` does.
    Node,
    /// The nodes with CPUs, nearest to the range's node first.
    NearestCpuNode,
}

/// The options, for the host and `host plugins --verbose`.
const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new("memmap_nid", OptionType::INTEGER, "(the range's node)", "take the memmap from this node"),
    OptionSpec::new("memmap_nodes", OptionType::INTEGER_LIST, "[]", "take the memmap from the first of these nodes with room"),
    OptionSpec::choice(
        "memmap_policy",
        "node|nearest-cpu-node",
        "\"node\"",
        "no node named: the range's node, or the nodes with CPUs nearest first",
    ),
];

/// The baseline System RAM strategy.
pub struct SystemRam {
    memmap_nid: Option<u32>,
    memmap_nodes: Vec<u32>,
    policy: Policy,
    host: Host,
}

impl std::fmt::Debug for SystemRam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemRam").field("memmap_nid", &self.memmap_nid).field("memmap_nodes", &self.memmap_nodes).finish()
    }
}

impl SystemRam {
    /// The nodes with CPUs, nearest to `request.nid` first (ties by node id).
    fn nearest_cpu_nodes(&self, request: &Request<'_>) -> Vec<u32> {
        let mut nodes: Vec<(u32, u32)> =
            request.nodes.iter().filter(|n| n.has_cpus).filter_map(|n| self.host.distance(request.nid, n.id).map(|d| (d, n.id))).collect();
        nodes.sort_unstable();
        nodes.into_iter().map(|(_, id)| id).collect()
    }
}

impl Strategy for SystemRam {
    const KINDS: RequestKinds = RequestKinds::SYSTEM_RAM;
    const OPTIONS: Option<&'static [OptionSpec]> = Some(OPTIONS);

    fn new(options: &str, host: &Host) -> Result<Self, PluginError> {
        let o: Options = hotplug_core::options::parse("system-ram", options)?;
        let memmap_nodes = o.memmap_nodes.unwrap_or_default();
        if o.memmap_nid.is_some() && !memmap_nodes.is_empty() {
            return Err(PluginError::msg("system-ram options \"memmap_nid\" and \"memmap_nodes\": give one"));
        }
        Ok(SystemRam { memmap_nid: o.memmap_nid, memmap_nodes, policy: o.memmap_policy.unwrap_or(Policy::Node), host: host.clone() })
    }

    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        let mut restrictions = Restrictions::new(RestrictionFlags::MEMORY_BLOCK_DEVICES);
        if let Some(nid) = self.memmap_nid {
            restrictions.memmap_nid = ROption::RSome(nid);
        } else if !self.memmap_nodes.is_empty() {
            restrictions = restrictions.with_memmap_nodes(self.memmap_nodes.iter().copied());
        } else if self.policy == Policy::NearestCpuNode {
            let nodes = self.nearest_cpu_nodes(request);
            restrictions.note = format!("memmap from the nodes with CPUs, nearest first: {nodes:?}").into();
            restrictions = restrictions.with_memmap_nodes(nodes);
        }
        log::debug!("set_up pfn {:#x}+{:#x}: memmap from node memory", request.start_pfn, request.nr_pages);
        Ok(restrictions)
    }
}

export_plugin!(SystemRam);
