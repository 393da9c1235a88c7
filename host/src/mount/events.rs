//! Memory-block uevents, as the kernel sends them to udev: `add` and `remove` when a
//! block device is created or goes (create_memory_block_devices, remove_memory_block_devices),
//! `online` and `offline` when device_online/device_offline change its state. FUSE sends
//! no inotify events for changes a filesystem makes itself, so readers of
//! `hotplug-lab/events` get them instead, each with its sequence number.

use std::collections::VecDeque;

/// What happened to a memory block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Remove,
    Online,
    Offline,
}

impl Action {
    /// The uevent's ACTION value (kobject_actions[]).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
            Action::Online => "online",
            Action::Offline => "offline",
        }
    }
}

/// One uevent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub seqnum: u64,
    pub action: Action,
    pub block: u64,
}

impl Event {
    /// The event as a reader gets it: the uevent's environment, one `KEY=value` per line,
    /// ending with an empty line (what `udevadm monitor --kernel --property` shows).
    pub fn text(&self) -> String {
        format!(
            "ACTION={}\nDEVPATH=/devices/system/memory/memory{}\nSUBSYSTEM=memory\nSEQNUM={}\n\n",
            self.action.as_str(),
            self.block,
            self.seqnum
        )
    }

    /// The event as one line of `--uevent-log`.
    pub fn log_line(&self) -> String {
        format!("{} {} /devices/system/memory/memory{} (memory)\n", self.seqnum, self.action.as_str(), self.block)
    }
}

/// The most events kept for readers that fall behind; older ones are dropped (a reader
/// then sees the sequence numbers jump, as a udev monitor whose socket buffer overflowed
/// would miss events).
pub const KEPT: usize = 1 << 20;

/// The events so far, by sequence number.
#[derive(Debug, Default)]
pub struct EventLog {
    events: VecDeque<Event>,
    next_seqnum: u64,
}

impl EventLog {
    /// Record an event; returns it.
    pub fn push(&mut self, action: Action, block: u64) -> Event {
        self.next_seqnum += 1;
        let e = Event { seqnum: self.next_seqnum, action, block };
        if self.events.len() == KEPT {
            self.events.pop_front();
        }
        self.events.push_back(e);
        e
    }

    /// The sequence number the next event will have: where a new reader starts.
    pub fn next_seqnum(&self) -> u64 {
        self.next_seqnum + 1
    }

    /// The first event with sequence number `from` or later.
    pub fn from(&self, from: u64) -> Option<Event> {
        let first = self.events.front()?.seqnum;
        let i = from.saturating_sub(first) as usize;
        self.events.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_get_events_in_order_from_where_they_started() {
        let mut log = EventLog::default();
        let start = log.next_seqnum();
        assert_eq!(log.from(start), None);
        log.push(Action::Add, 32);
        log.push(Action::Online, 32);
        assert_eq!(log.from(start).map(|e| (e.action, e.block)), Some((Action::Add, 32)));
        assert_eq!(log.from(start + 1).map(|e| e.action), Some(Action::Online));
        assert_eq!(log.from(start + 2), None);
        assert_eq!(log.from(start).unwrap().text(), "ACTION=add\nDEVPATH=/devices/system/memory/memory32\nSUBSYSTEM=memory\nSEQNUM=1\n\n");
    }
}
