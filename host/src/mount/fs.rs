//! The FUSE side of `host mount` (fuser): each request answered from the live model
//! through tree.rs (names, attributes, text) and live.rs (writes). Files are opened
//! direct-I/O, so every read sees the model as it is at that moment and every write
//! reaches its store function once, as sysfs attributes behave.
//!
//! What is written to `hotplug-lab/ctl` through one descriptor is one step, run when the
//! descriptor is closed (flush; its errno is close's, and a read of `ctl` tells).
//! A read of `hotplug-lab/events` that finds no new event is answered later, when a
//! write causes one (the reply is kept, the request loop goes on); poll() on it is
//! answered POLLIN, or remembered and notified when an event comes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags, PollEvents, PollFlags,
    PollNotifier, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, WriteFlags,
};

use super::events::Event;
use super::live::Live;
use super::tree::{self, Kind, Node};

/// How long the kernel may keep a name and its attributes. Safe however long: a name's
/// inode number encodes what it names, sizes and modes never change, every open, read
/// and write asks the model whether the entry still exists, and files are read direct,
/// never from a cache. Without it each path component costs a round trip per open
/// (lsmem on 32,768 blocks: 49 s, not 2).
const TTL: Duration = Duration::from_secs(60);

/// One open file.
struct Open {
    node: Node,
    /// For `events`: the sequence number of the next event this reader gets.
    next_seqnum: u64,
    /// A read of `events` waiting for the next event: its reply, how many bytes it asked
    /// for, and the reader's pid.
    waiting: Option<(ReplyData, usize, u32)>,
    /// For `events`: the rest of an event a smaller read took the start of (a shell's
    /// `read` takes a byte at a time).
    unread: Vec<u8>,
    /// A poll waiting to hear of the next event.
    poll: Option<PollNotifier>,
    /// For `ctl`: what was written since it was opened; the step runs when the file is
    /// closed (a shell's printf writes a line at a time).
    pending: Vec<u8>,
}

struct State {
    live: Live,
    open: HashMap<u64, Open>,
    next_fh: u64,
    uevent_log: Option<std::fs::File>,
}

/// The filesystem: the live state behind one lock (fuser runs one request at a time here).
pub struct LiveFs {
    state: Arc<Mutex<State>>,
    uid: u32,
    gid: u32,
}

impl LiveFs {
    pub fn new(live: Live, uevent_log: Option<std::fs::File>) -> LiveFs {
        // SAFETY: getuid/getgid only read the process's ids.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let state = Arc::new(Mutex::new(State { live, open: HashMap::new(), next_fh: 1, uevent_log }));
        // A read of `events` waits in the kernel until we answer it, deaf even to SIGKILL
        // (fuser does not take FUSE_INTERRUPT): answer EINTR for a reader with a fatal
        // signal pending, so it dies as it would in any interruptible wait.
        let watched = Arc::downgrade(&state);
        std::thread::spawn(move || {
            while let Some(state) = watched.upgrade() {
                state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).release_killed_readers();
                drop(state);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        LiveFs { state, uid, gid }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn attr(&self, model: &crate::model::Model, node: Node) -> FileAttr {
        let (kind, size, nlink) = match node.kind() {
            Kind::Dir => (FileType::Directory, 0, 2),
            // sysfs gives every attribute a size of one page.
            Kind::File => (FileType::RegularFile, 4096, 1),
            Kind::Link => (FileType::Symlink, tree::link_target(model, node).map_or(0, |t| t.len() as u64), 1),
        };
        FileAttr {
            ino: INodeNo(node.ino()),
            size,
            blocks: 0,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm: node.mode() as u16,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        }
    }
}

impl State {
    /// The node an inode names, if it exists now.
    fn node(&self, ino: INodeNo) -> Option<Node> {
        Node::from_ino(u64::from(ino)).filter(|&n| tree::exists(&self.live.model, n))
    }

    /// Hand new events to the readers and pollers waiting for them, and to the log.
    fn announce(&mut self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        if let Some(log) = &mut self.uevent_log {
            let text: String = events.iter().map(Event::log_line).collect();
            if let Err(e) = log.write_all(text.as_bytes()) {
                log::warn!("--uevent-log: {e}");
            }
        }
        let State { live, open, .. } = self;
        for o in open.values_mut().filter(|o| o.node == Node::Events) {
            if let Some((reply, size, pid)) = o.waiting.take() {
                match o.take_event(&live.events, size) {
                    Some(bytes) => reply.data(&bytes),
                    None => o.waiting = Some((reply, size, pid)),
                }
            }
            if let Some(p) = o.poll.take() {
                let _ = p.notify();
            }
        }
    }
}

impl Open {
    /// Up to `size` bytes of this reader's next event text, if there is one.
    fn take_event(&mut self, log: &super::events::EventLog, size: usize) -> Option<Vec<u8>> {
        if self.unread.is_empty() {
            let e = log.from(self.next_seqnum)?;
            self.next_seqnum = e.seqnum + 1;
            self.unread = e.text().into_bytes();
        }
        let n = size.min(self.unread.len());
        Some(self.unread.drain(..n).collect())
    }
}

impl State {
    /// Answer EINTR to every waiting read whose reader is gone or has a fatal signal
    /// pending.
    fn release_killed_readers(&mut self) {
        for o in self.open.values_mut() {
            if o.waiting.as_ref().is_some_and(|&(_, _, pid)| fatal_signal_pending(pid)) {
                if let Some((reply, _, _)) = o.waiting.take() {
                    reply.error(Errno::EINTR);
                }
            }
        }
    }

    /// Run the step written to `ctl` through `fh`, if any.
    fn run_ctl(&mut self, fh: u64) -> Result<(), i32> {
        let Some(o) = self.open.get_mut(&fh).filter(|o| o.node == Node::Ctl && !o.pending.is_empty()) else { return Ok(()) };
        let step = std::mem::take(&mut o.pending);
        let events = self.live.write(Node::Ctl, &step)?;
        self.announce(&events);
        Ok(())
    }
}

/// Whether process `pid` is gone or has a signal pending that will end it: not blocked,
/// not ignored, not caught, and not one whose default is to be ignored or to stop.
fn fatal_signal_pending(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return true };
    let mask =
        |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| u64::from_str_radix(v.trim(), 16).ok()).unwrap_or(0);
    let bit = |sig: i32| 1u64 << (sig - 1);
    let harmless = [libc::SIGCHLD, libc::SIGCONT, libc::SIGURG, libc::SIGWINCH, libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU]
        .iter()
        .fold(0, |m, &s| m | bit(s));
    let pending = (mask("SigPnd:") | mask("ShdPnd:")) & !mask("SigBlk:");
    let fatal = pending & !mask("SigIgn:") & !mask("SigCgt:") & !harmless;
    fatal != 0 || pending & bit(libc::SIGKILL) != 0
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

impl Filesystem for LiveFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let s = self.lock();
        let found = s.node(parent).zip(name.to_str()).and_then(|(dir, name)| tree::lookup(&s.live.model, dir, name));
        match found {
            Some(n) => reply.entry(&TTL, &self.attr(&s.live.model, n), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let s = self.lock();
        match s.node(ino) {
            Some(n) => reply.attr(&TTL, &self.attr(&s.live.model, n)),
            None => reply.error(Errno::ENOENT),
        }
    }

    /// Only the truncation a shell's `>` makes before it writes: attributes have no length.
    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let s = self.lock();
        match s.node(ino) {
            None => reply.error(Errno::ENOENT),
            Some(_) if mode.is_some() || uid.is_some() || gid.is_some() => reply.error(Errno::EPERM),
            Some(n) if !n.writable() => reply.error(Errno::EACCES),
            Some(n) => reply.attr(&TTL, &self.attr(&s.live.model, n)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let s = self.lock();
        match s.node(ino).and_then(|n| tree::link_target(&s.live.model, n)) {
            Some(t) => reply.data(t.as_bytes()),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.lock();
        let Some(node) = s.node(ino) else { return reply.error(Errno::ENOENT) };
        if node.kind() != Kind::File {
            return reply.error(Errno::EISDIR);
        }
        let fh = s.next_fh;
        s.next_fh += 1;
        let next_seqnum = s.live.events.next_seqnum();
        s.open.insert(fh, Open { node, next_seqnum, waiting: None, unread: Vec::new(), poll: None, pending: Vec::new() });
        let mut flags = FopenFlags::FOPEN_DIRECT_IO;
        match node {
            Node::Events => flags |= FopenFlags::FOPEN_NONSEEKABLE | FopenFlags::FOPEN_NOFLUSH,
            // close(2) of ctl runs its step (flush); no other file needs the round trip.
            Node::Ctl => {}
            _ => flags |= FopenFlags::FOPEN_NOFLUSH,
        }
        reply.opened(FileHandle(fh), flags);
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut s = self.lock();
        let Some(node) = s.node(ino) else { return reply.error(Errno::ENOENT) };
        if node == Node::Events {
            let State { live, open, .. } = &mut *s;
            let Some(o) = open.get_mut(&u64::from(fh)) else { return reply.error(Errno::EBADF) };
            match o.take_event(&live.events, size as usize) {
                Some(bytes) => reply.data(&bytes),
                // Answered when the next event comes (announce), or empty on release.
                None if o.waiting.is_none() => o.waiting = Some((reply, size as usize, req.pid())),
                None => reply.error(Errno::EBUSY),
            }
            return;
        }
        let text = match node {
            Node::Ctl => Some(s.live.last_ctl.clone()),
            _ => tree::content(&s.live.model, node),
        };
        let Some(text) = text else { return reply.error(Errno::EACCES) };
        let bytes = text.as_bytes();
        let from = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let to = from.saturating_add(size as usize).min(bytes.len());
        reply.data(&bytes[from..to]);
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.lock();
        let Some(node) = s.node(ino) else { return reply.error(Errno::ENOENT) };
        if !node.writable() {
            return reply.error(Errno::EACCES);
        }
        if node == Node::Ctl {
            let Some(o) = s.open.get_mut(&u64::from(fh)) else { return reply.error(Errno::EBADF) };
            if o.pending.len() + data.len() > super::live::MAX_CTL_WRITE {
                o.pending.clear();
                return reply.error(Errno::EFBIG);
            }
            o.pending.extend_from_slice(data);
            return reply.written(data.len() as u32);
        }
        match s.live.write(node, data) {
            Ok(events) => {
                s.announce(&events);
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.lock();
        // A ctl step not yet run by a flush (its result is in ctl either way).
        let _ = s.run_ctl(u64::from(fh));
        if let Some(o) = s.open.remove(&u64::from(fh)) {
            if let Some((waiting, _, _)) = o.waiting {
                waiting.data(&[]);
            }
        }
        reply.ok();
    }

    /// close(2) of a `ctl` descriptor runs the step written to it; its errno is close's.
    fn flush(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        match self.lock().run_ctl(u64::from(fh)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// Directories keep no state per open: ENOSYS tells the kernel (5.1 and later:
    /// FUSE_NO_OPENDIR_SUPPORT) to stop sending OPENDIR and RELEASEDIR, a round trip and
    /// a release saved per listing (lsmem lists every block's directory: 17 requests a
    /// block become 16).
    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let s = self.lock();
        let Some(dir) = s.node(ino) else { return reply.error(Errno::ENOENT) };
        if dir.kind() != Kind::Dir {
            return reply.error(Errno::ENOTDIR);
        }
        // A reply holds a few hundred entries; the rest come in the next call.
        for (next, node, name) in tree::entries(&s.live.model, dir, offset, 512) {
            let kind = match node.kind() {
                Kind::Dir => FileType::Directory,
                Kind::File => FileType::RegularFile,
                Kind::Link => FileType::Symlink,
            };
            if reply.add(INodeNo(node.ino()), next, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    /// sysfs keeps no extended attributes (security modules ask for theirs).
    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENODATA);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: fuser::ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn poll(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        ph: PollNotifier,
        _events: PollEvents,
        flags: PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        let mut s = self.lock();
        let Some(node) = s.node(ino) else { return reply.error(Errno::ENOENT) };
        if node != Node::Events {
            // Attributes are always readable (and writable when their mode says).
            return reply.poll(PollEvents::POLLIN | PollEvents::POLLOUT);
        }
        let State { live, open, .. } = &mut *s;
        let Some(o) = open.get_mut(&u64::from(fh)) else { return reply.error(Errno::EBADF) };
        if !o.unread.is_empty() || live.events.from(o.next_seqnum).is_some() {
            return reply.poll(PollEvents::POLLIN);
        }
        if flags.contains(PollFlags::FUSE_POLL_SCHEDULE_NOTIFY) {
            o.poll = Some(ph);
        }
        reply.poll(PollEvents::empty());
    }
}
