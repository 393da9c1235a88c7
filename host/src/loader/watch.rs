//! While plugin code runs in our process: what the host says when that code ends the
//! process or never returns.
//!
//! A plugin is code we did not write. Inside a call it may `exit(0)` (which would end the
//! run with success and no report), `abort`, crash on a signal, or hang. Around every
//! call into a plugin, [`call`] records which plugin, which call and which step; if the
//! process then ends through `exit`, a fatal signal or the per-call timeout, the host
//! prints one line naming them and exits with [`EXIT_PLUGIN`], never 0 or 1. Outside
//! plugin calls nothing changes (the host's own crashes stay crashes).
//!
//! The line is formatted when the call starts and kept in static atomics, so the signal
//! handler only reads memory and calls `write` and `_exit` (both async-signal-safe).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// The exit code of a run a plugin ended or hung: reserved for it (0 is success, 1 a step
/// that mismatched its `expect`, 2 bad input).
pub const EXIT_PLUGIN: i32 = 3;

/// The default per-call timeout (`--plugin-timeout`): far above any real strategy call
/// (they take microseconds), short enough that a hang is a line, not a stuck CI job.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

const CAP: usize = 480;

/// The plugin of the call in progress.
static WHO: [AtomicU8; CAP] = [const { AtomicU8::new(0) }; CAP];
static WHO_LEN: AtomicUsize = AtomicUsize::new(0);
/// The call in progress (`set_up`).
static CALL: [AtomicU8; CAP] = [const { AtomicU8::new(0) }; CAP];
static CALL_LEN: AtomicUsize = AtomicUsize::new(0);
/// What the call in progress is part of (`step #3 (add)`): its thread's context, copied
/// in when the call starts.
static CONTEXT: [AtomicU8; CAP] = [const { AtomicU8::new(0) }; CAP];
static CONTEXT_LEN: AtomicUsize = AtomicUsize::new(0);
/// Whether a plugin call is in progress.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// When the call in progress times out, in milliseconds since [`epoch`]; 0: never.
static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
/// The per-call timeout in milliseconds; 0: none.
static TIMEOUT_MS: AtomicU64 = AtomicU64::new(DEFAULT_TIMEOUT.as_millis() as u64);
static WATCHDOG: OnceLock<Thread> = OnceLock::new();
/// Held for the length of a watched call (see [`call`]).
static ONE_CALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
thread_local! {
    /// This thread is inside a watched call (a nested call is part of it).
    static IN_CALL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// What this thread's plugin calls are part of: per thread, so that among host
    /// sweep's workers the line names the step of the call in progress, not the step
    /// another worker began last.
    static THREAD_CONTEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// What this thread's steps are part of (a sweep's point), after the context.
    static THREAD_SCOPE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}
static INSTALLED: AtomicBool = AtomicBool::new(false);

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Keep `text` in `buf` (cut at CAP bytes, control characters as `?`): no allocation,
/// so watching a call costs a few stores.
fn store(buf: &[AtomicU8; CAP], len: &AtomicUsize, text: &str) {
    store_parts(buf, len, &[text]);
}

/// Keep `parts` one after another in `buf`, as [`store`] keeps one text.
fn store_parts(buf: &[AtomicU8; CAP], len: &AtomicUsize, parts: &[&str]) {
    let bytes = parts.iter().flat_map(|p| p.bytes()).take(CAP);
    let mut n = 0;
    for (slot, b) in buf.iter().zip(bytes) {
        slot.store(if b.is_ascii_control() { b'?' } else { b }, Ordering::Relaxed);
        n += 1;
    }
    len.store(n, Ordering::Release);
}

/// Write the stored line with `event` between its two halves, on fd 2. Signal-safe.
fn write_line(event: &[u8]) {
    let mut line = [0u8; 3 * CAP];
    let mut n = 0;
    let mut push = |bytes: &mut dyn Iterator<Item = u8>| {
        for b in bytes {
            if n < line.len() {
                line[n] = b;
                n += 1;
            }
        }
    };
    push(&mut b"host: error: plugin ".iter().copied());
    let who = WHO_LEN.load(Ordering::Acquire);
    push(&mut WHO[..who].iter().map(|b| b.load(Ordering::Relaxed)));
    push(&mut event.iter().copied());
    push(&mut b" in ".iter().copied());
    let call = CALL_LEN.load(Ordering::Acquire);
    push(&mut CALL[..call].iter().map(|b| b.load(Ordering::Relaxed)));
    let context = CONTEXT_LEN.load(Ordering::Acquire);
    if context > 0 {
        push(&mut b" during ".iter().copied());
        push(&mut CONTEXT[..context].iter().map(|b| b.load(Ordering::Relaxed)));
    }
    push(&mut b"; the run was abandoned (exit 3)\n".iter().copied());
    #[cfg(unix)]
    // SAFETY: write(2) on a valid buffer; the result is ignored (nothing else to do).
    unsafe {
        libc::write(libc::STDERR_FILENO, line.as_ptr().cast(), n);
    }
}

/// End the process for a plugin's misbehaviour: the line, then exit 3 at once (no
/// destructors or atexit handlers: the plugin's state is not to be trusted).
fn abandon(event: &[u8]) -> ! {
    write_line(event);
    #[cfg(unix)]
    // SAFETY: _exit ends the process; it is async-signal-safe.
    unsafe {
        libc::_exit(EXIT_PLUGIN)
    }
    #[cfg(not(unix))]
    std::process::exit(EXIT_PLUGIN)
}

extern "C" fn at_exit() {
    if ACTIVE.load(Ordering::Acquire) {
        abandon(b" called exit");
    }
}

#[cfg(unix)]
mod signals {
    use super::*;

    pub const FATAL: [(libc::c_int, &[u8]); 5] = [
        (libc::SIGABRT, b" crashed (SIGABRT)"),
        (libc::SIGSEGV, b" crashed (SIGSEGV)"),
        (libc::SIGBUS, b" crashed (SIGBUS)"),
        (libc::SIGILL, b" crashed (SIGILL)"),
        (libc::SIGFPE, b" crashed (SIGFPE)"),
    ];

    /// The handlers that were there before ours (Rust's stack-overflow handler among them).
    static mut PREVIOUS: [std::mem::MaybeUninit<libc::sigaction>; 5] = [const { std::mem::MaybeUninit::uninit() }; 5];

    extern "C" fn on_signal(sig: libc::c_int) {
        if let Some(i) = FATAL.iter().position(|&(s, _)| s == sig) {
            if ACTIVE.load(Ordering::Acquire) {
                abandon(FATAL[i].1);
            }
            // Not in a plugin call: put the previous handler back and return; the fault
            // recurs (or abort raises again) and is handled as it would have been.
            // SAFETY: PREVIOUS[i] was filled by install() before this handler existed.
            unsafe {
                let previous = std::ptr::addr_of!(PREVIOUS[i]).cast::<libc::sigaction>();
                libc::sigaction(sig, previous, std::ptr::null_mut());
            }
        }
    }

    pub fn install() {
        for (i, &(sig, _)) in FATAL.iter().enumerate() {
            // SAFETY: a plain sigaction call; the old action goes to PREVIOUS[i], written
            // once here before the handler can run. SA_ONSTACK keeps the handler usable on
            // a stack overflow (Rust's alternate signal stack).
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                let previous = std::ptr::addr_of_mut!(PREVIOUS[i]).cast::<libc::sigaction>();
                libc::sigaction(sig, &action, previous);
            }
        }
    }
}

/// Install the exit hook, the signal handlers and the watchdog, with `timeout` per call
/// (`None`: no timeout). Once per process; later calls only change the timeout.
pub fn install(timeout: Option<Duration>) {
    TIMEOUT_MS.store(timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)), Ordering::Release);
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    epoch();
    #[cfg(unix)]
    {
        // SAFETY: registers a plain extern "C" fn with no preconditions.
        unsafe {
            libc::atexit(at_exit);
        }
        signals::install();
    }
    let watchdog = std::thread::Builder::new().name("plugin-watchdog".into()).spawn(|| loop {
        let deadline = DEADLINE_MS.load(Ordering::Acquire);
        if deadline == 0 {
            std::thread::park();
            continue;
        }
        let now = now_ms();
        if now >= deadline && ACTIVE.load(Ordering::Acquire) && DEADLINE_MS.load(Ordering::Acquire) == deadline {
            let secs = TIMEOUT_MS.load(Ordering::Acquire) / 1000;
            let event = format!(" did not return within {secs} s (--plugin-timeout)");
            abandon(event.as_bytes());
        }
        std::thread::park_timeout(Duration::from_millis(deadline.saturating_sub(now).max(1)));
    });
    if let Ok(handle) = watchdog {
        let _ = WATCHDOG.set(handle.thread().clone());
    }
}

/// What the following plugin calls are part of, for the line (`"step #3"`).
pub fn set_context(context: &str) {
    THREAD_CONTEXT.with_borrow_mut(|c| {
        c.clear();
        c.push_str(context);
    });
}

/// What this thread's steps are part of, after the step in the line (`"at
/// step.1.size=8GiB"`, a sweep's point); empty: nothing.
pub fn set_scope(scope: &str) {
    THREAD_SCOPE.with_borrow_mut(|s| {
        s.clear();
        s.push_str(scope);
    });
}

/// Run `f`, a call `call` into plugin `plugin`, watched. Without [`install`] it only runs `f`.
pub fn call<R>(plugin: &str, call: &str, f: impl FnOnce() -> R) -> R {
    if !INSTALLED.load(Ordering::Acquire) || IN_CALL.get() {
        return f();
    }
    // Threads (host sweep's workers) take turns at plugin calls, so the one record
    // above always names the call in progress and its deadline is that call's. Plugin
    // calls take microseconds; the model's work between them runs in parallel.
    let _turn = ONE_CALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    IN_CALL.set(true);
    store(&WHO, &WHO_LEN, plugin);
    store(&CALL, &CALL_LEN, call);
    THREAD_CONTEXT.with_borrow(|c| {
        THREAD_SCOPE.with_borrow(|s| {
            let gap = if s.is_empty() || c.is_empty() { "" } else { " " };
            store_parts(&CONTEXT, &CONTEXT_LEN, &[c, gap, s]);
        })
    });
    ACTIVE.store(true, Ordering::Release);
    let timeout = TIMEOUT_MS.load(Ordering::Acquire);
    if timeout > 0 {
        DEADLINE_MS.store(now_ms().saturating_add(timeout), Ordering::Release);
        if let Some(t) = WATCHDOG.get() {
            t.unpark();
        }
    }
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            DEADLINE_MS.store(0, Ordering::Release);
            ACTIVE.store(false, Ordering::Release);
            IN_CALL.set(false);
        }
    }
    let _done = Done;
    f()
}
