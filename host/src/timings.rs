//! `--timings`: where a run's time went, step by step, and the process's peak memory,
//! on standard error so a JSON report on standard output stays clean.

use std::fmt::Write as _;
use std::time::Duration;

use crate::runner::RunReport;

/// The process's peak resident memory in bytes (VmHWM of /proc/self/status), where the
/// system says it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// What happened before the first run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prepare {
    /// Reading and parsing the config (TOML with spans).
    pub parse: Duration,
    /// Checking it and resolving the machine and steps (one boot included).
    pub resolve: Duration,
    /// Loading the plugins and instantiating the strategies.
    pub plugins: Duration,
}

/// The timings of `runs` after `prepare` as lines: one per step, then a summary with
/// the peak memory.
pub fn text(prepare: Prepare, runs: &[RunReport], peak_rss: Option<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "timings: config parse {}, resolve {}, plugins {}", ms(prepare.parse), ms(prepare.resolve), ms(prepare.plugins));
    let mut total = prepare.parse + prepare.resolve + prepare.plugins;
    for run in runs {
        let name = run.strategy.as_ref().map(|s| format!(" [strategy {s}]")).unwrap_or_default();
        let _ = writeln!(out, "timings{name}: boot {}", ms(run.boot_elapsed));
        total += run.boot_elapsed;
        for s in &run.steps {
            let _ = writeln!(out, "timings{name}: #{:<5} {:<8} {} ({})", s.index, s.op.as_str(), ms(s.elapsed), s.outcome.code());
            total += s.elapsed;
        }
    }
    let steps: usize = runs.iter().map(|r| r.steps.len()).sum();
    let peak = peak_rss.map_or_else(|| "unknown".to_string(), |b| format!("{:.1} MiB", b as f64 / f64::from(1 << 20)));
    let _ = writeln!(out, "timings: {steps} step(s), {} in all (checks and report aside); peak memory (VmHWM) {peak}", ms(total));
    out
}
