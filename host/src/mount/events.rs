//! Memory-block uevents, as the kernel sends them to udev: `add` and `remove` when a
//! block device is created or goes (create_memory_block_devices, remove_memory_block_devices),
//! `online` and `offline` when device_online/device_offline change its state, and any
//! action user space asks for by writing it to the block's `uevent` file (a synthetic
//! uevent: how `udevadm trigger` replays `add` for devices that exist already). FUSE
//! sends no inotify events for changes a filesystem makes itself, so readers of
//! `hotplug-lab/events` get them instead, each with its sequence number.

use std::collections::VecDeque;

/// What happened to a memory block (enum kobject_action: the model causes the first
/// four; the others come only from writes to `uevent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Remove,
    Change,
    Move,
    Online,
    Offline,
    Bind,
    Unbind,
}

impl Action {
    /// Every action, in kobject_actions[] order.
    pub const ALL: [Action; 8] =
        [Action::Add, Action::Remove, Action::Change, Action::Move, Action::Online, Action::Offline, Action::Bind, Action::Unbind];

    /// The uevent's ACTION value (kobject_actions[]).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
            Action::Change => "change",
            Action::Move => "move",
            Action::Online => "online",
            Action::Offline => "offline",
            Action::Bind => "bind",
            Action::Unbind => "unbind",
        }
    }
}

/// One uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seqnum: u64,
    pub action: Action,
    pub block: u64,
    /// Variables after SUBSYSTEM: a synthetic event's `SYNTH_UUID=...` and
    /// `SYNTH_ARG_KEY=VALUE`s; none for the model's own events.
    pub env: Vec<String>,
}

impl Event {
    /// The event as a reader gets it: the uevent's environment, one `KEY=value` per line
    /// in kobject_uevent_env's order (SEQNUM last), ending with an empty line (what
    /// `udevadm monitor --kernel --property` shows).
    pub fn text(&self) -> String {
        let mut text = format!("ACTION={}\nDEVPATH=/devices/system/memory/memory{}\nSUBSYSTEM=memory\n", self.action.as_str(), self.block);
        for var in &self.env {
            text.push_str(var);
            text.push('\n');
        }
        text.push_str(&format!("SEQNUM={}\n\n", self.seqnum));
        text
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

/// The most bytes of synthetic events' own variables kept (each event's are bounded by
/// [`UEVENT_BUFFER_SIZE`]), so a flood of `uevent` writes costs bounded memory.
pub const KEPT_ENV_BYTES: usize = 64 << 20;

/// A uevent's environment, at most: UEVENT_NUM_ENVP variables in UEVENT_BUFFER_SIZE bytes
/// (each with its NUL); add_uevent_var refuses more with ENOMEM.
pub const UEVENT_NUM_ENVP: usize = 64;
pub const UEVENT_BUFFER_SIZE: usize = 2048;

/// The events so far, by sequence number.
#[derive(Debug, Default)]
pub struct EventLog {
    events: VecDeque<Event>,
    next_seqnum: u64,
    /// The bytes of the kept events' own variables.
    env_bytes: usize,
}

impl EventLog {
    /// Record an event of the model's; returns it.
    pub fn push(&mut self, action: Action, block: u64) -> Event {
        self.push_with(action, block, Vec::new())
    }

    /// Record an event with variables of its own (a synthetic one); returns it.
    pub fn push_with(&mut self, action: Action, block: u64, env: Vec<String>) -> Event {
        self.next_seqnum += 1;
        let e = Event { seqnum: self.next_seqnum, action, block, env };
        self.env_bytes += env_bytes(&e);
        self.events.push_back(e.clone());
        while self.events.len() > KEPT || self.env_bytes > KEPT_ENV_BYTES {
            let Some(old) = self.events.pop_front() else { break };
            self.env_bytes -= env_bytes(&old);
        }
        e
    }

    /// The sequence number the next event will have: where a new reader starts.
    pub fn next_seqnum(&self) -> u64 {
        self.next_seqnum + 1
    }

    /// The first event with sequence number `from` or later.
    pub fn from(&self, from: u64) -> Option<&Event> {
        let first = self.events.front()?.seqnum;
        let i = from.saturating_sub(first) as usize;
        self.events.get(i)
    }
}

fn env_bytes(e: &Event) -> usize {
    e.env.iter().map(String::len).sum()
}

/// The event a write of `text` to block `block`'s `uevent` sends as event `seqnum`
/// (kobject_synth_uevent), or the writer's errno: EINVAL for what [`parse_synthetic`]
/// refuses, ENOMEM for an environment past [`UEVENT_NUM_ENVP`] variables or
/// [`UEVENT_BUFFER_SIZE`] bytes.
pub fn synthetic(text: &[u8], block: u64, seqnum: u64) -> Result<(Action, Vec<String>), i32> {
    let (action, env) = parse_synthetic(text).ok_or(hotplug_core::errno::EINVAL)?;
    let e = Event { seqnum, action, block, env };
    // Each variable with its NUL: the text's lines, without the empty line that ends it.
    let lines = e.text();
    let (vars, bytes) = (lines.lines().filter(|l| !l.is_empty()).count(), lines.len() - 1);
    if vars > UEVENT_NUM_ENVP || bytes > UEVENT_BUFFER_SIZE {
        return Err(hotplug_core::errno::ENOMEM);
    }
    Ok((e.action, e.env))
}

/// kobject_synth_uevent's reading of a write to a device's `uevent`: an action name
/// alone (the event gets `SYNTH_UUID=0`), or followed by one space, a UUID and any
/// number of ` KEY=VALUE` pairs, keys and values alphanumeric (`SYNTH_UUID=<uuid>`,
/// `SYNTH_ARG_KEY=VALUE`); one trailing newline or NUL is ignored. `None`: the kernel's
/// EINVAL.
pub fn parse_synthetic(text: &[u8]) -> Option<(Action, Vec<String>)> {
    let text = text.strip_suffix(b"\n").or_else(|| text.strip_suffix(b"\0")).unwrap_or(text);
    let (name, args) = match text.iter().position(|&c| c == b' ') {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let action = Action::ALL.into_iter().find(|a| a.as_str().as_bytes() == name)?;
    let Some(args) = args else { return Some((action, vec!["SYNTH_UUID=0".to_string()])) };
    let (uuid, mut rest) = (args.get(..UUID_LEN)?, &args[UUID_LEN..]);
    if !uuid_is_valid(uuid) {
        return None;
    }
    let word = |w: &[u8]| !w.is_empty() && w.iter().all(u8::is_ascii_alphanumeric);
    let mut env = vec![format!("SYNTH_UUID={}", String::from_utf8_lossy(uuid))];
    while !rest.is_empty() {
        rest = rest.strip_prefix(b" ")?;
        let eq = rest.iter().position(|&c| c == b'=')?;
        let (key, after) = (&rest[..eq], &rest[eq + 1..]);
        let end = after.iter().position(|&c| c == b' ').unwrap_or(after.len());
        let value = &after[..end];
        if !word(key) || !word(value) {
            return None;
        }
        env.push(format!("SYNTH_ARG_{}={}", String::from_utf8_lossy(key), String::from_utf8_lossy(value)));
        rest = &after[end..];
    }
    Some((action, env))
}

/// A UUID's text: 36 characters, hex digits with hyphens at 8, 13, 18 and 23.
const UUID_LEN: usize = 36;

fn uuid_is_valid(s: &[u8]) -> bool {
    s.len() == UUID_LEN && s.iter().enumerate().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
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
        assert_eq!(log.from(start).map(|e| e.seqnum), Some(1));
        assert_eq!(log.from(start + 1).map(|e| e.action), Some(Action::Online));
        assert_eq!(log.from(start + 2), None);
        assert_eq!(log.from(start).unwrap().text(), "ACTION=add\nDEVPATH=/devices/system/memory/memory32\nSUBSYSTEM=memory\nSEQNUM=1\n\n");
    }

    #[test]
    fn synthetic_uevents_are_read_as_the_kernel_reads_them() {
        let parse = |t: &str| parse_synthetic(t.as_bytes());
        assert_eq!(parse("add\n"), Some((Action::Add, vec!["SYNTH_UUID=0".to_string()])));
        assert_eq!(parse("unbind").map(|p| p.0), Some(Action::Unbind));
        let uuid = "fe4d7c9d-b8c6-4a70-9ef1-3d8a58d18eed";
        assert_eq!(
            parse(&format!("change {uuid} A=1 key2=Val\n")),
            Some((Action::Change, vec![format!("SYNTH_UUID={uuid}"), "SYNTH_ARG_A=1".to_string(), "SYNTH_ARG_key2=Val".to_string()]))
        );
        assert_eq!(parse(&format!("add {uuid}")).map(|p| p.1.len()), Some(1));
        // EINVAL: no action, an unknown or padded one, a second newline, a bad UUID,
        // keys and values that are empty or not alphanumeric, doubled or trailing spaces.
        for bad in [
            "",
            "\n",
            "ad",
            "adds",
            " add",
            "add\n\n",
            "add ",
            "add 0",
            "add fe4d7c9d-b8c6-4a70-9ef1-3d8a58d18eeg",
            "add fe4d7c9db8c64a709ef13d8a58d18eed0000",
            &format!("add {uuid}x"),
            &format!("add {uuid} "),
            &format!("add {uuid} A"),
            &format!("add {uuid} A="),
            &format!("add {uuid} =1"),
            &format!("add {uuid} A=1  B=2"),
            &format!("add {uuid} A-B=1"),
            &format!("add {uuid} A=1/2"),
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        // The environment's bounds: ACTION=add, DEVPATH=/devices/system/memory/memory3,
        // SUBSYSTEM=memory, SYNTH_UUID=<36 characters>, SEQNUM=7 are 5 variables of
        // 11 + 39 + 17 + 48 + 9 = 124 bytes with their NULs; 59 args SYNTH_ARG_A=1 (14
        // bytes each, 950 in all) fill the 64 variables, a 60th is ENOMEM.
        let args = |n: usize| (0..n).map(|_| " A=1").collect::<String>();
        assert_eq!(synthetic(format!("add {uuid}{}", args(59)).as_bytes(), 3, 7).map(|p| p.1.len()), Ok(60));
        assert_eq!(synthetic(format!("add {uuid}{}", args(60)).as_bytes(), 3, 7), Err(hotplug_core::errno::ENOMEM));
        // One long value: 124 + "SYNTH_ARG_A=" (12) + v + NUL <= 2048: v up to 1,911.
        let long = |n: usize| format!("add {uuid} A={}", "v".repeat(n));
        assert!(synthetic(long(1911).as_bytes(), 3, 7).is_ok());
        assert_eq!(synthetic(long(1912).as_bytes(), 3, 7), Err(hotplug_core::errno::ENOMEM));
        assert_eq!(synthetic(b"nope", 3, 7), Err(hotplug_core::errno::EINVAL));
        let e = Event { seqnum: 7, action: Action::Add, block: 3, env: vec!["SYNTH_UUID=0".to_string()] };
        assert_eq!(e.text(), "ACTION=add\nDEVPATH=/devices/system/memory/memory3\nSUBSYSTEM=memory\nSYNTH_UUID=0\nSEQNUM=7\n\n");
    }

    #[test]
    fn a_flood_of_long_synthetic_events_keeps_bounded_memory() {
        let mut log = EventLog::default();
        // 40,000 events of 2,000 bytes each are 80,000,000 bytes, past the 64 MiB
        // (67,108,864) kept: the oldest go, 33,554 stay (67,108,000 bytes).
        let var = "X".repeat(2000);
        for i in 0..40_000 {
            log.push_with(Action::Change, i, vec![var.clone()]);
        }
        assert_eq!(log.events.len(), 33_554);
        assert_eq!(log.env_bytes, 33_554 * 2000);
        assert_eq!(log.from(1).map(|e| e.seqnum), Some(40_000 - 33_554 + 1), "a reader that fell behind skips ahead");
    }
}
