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
