//! B0-B6 (docs/PERF.md): `cargo bench -p hotplug-bench`. Criterion times each job; the
//! counting allocator gives its peak heap; the summary at the end quotes each median as
//! a multiple of B0's, B5's log-log slope and B6's ratio, against the targets.

use std::time::Duration;

use criterion::Criterion;
use hotplug_bench::{config_path, peak_heap_of, prepare, run_config, run_config_static, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Criterion id, config file, target median (ms).
const JOBS: &[(&str, &str, f64)] = &[
    ("b0-boot", "b0-boot.toml", f64::INFINITY),
    ("b1-mom-32t-2g", "b1-mom-32t-2g.toml", 10.0),
    ("b2-mom-32t-128m", "b2-mom-32t-128m.toml", 10.0),
    ("b3-device-4t", "b3-device-4t.toml", 5.0),
    ("b4-random-100k", "b4-random.toml", 1000.0),
    ("b5-mom-1t", "b5-mom-1t.toml", 10.0),
    ("b5-mom-64t", "b5-mom-64t.toml", 10.0),
    ("b5-mom-1p", "b5-mom-1p.toml", 10.0),
    ("b5-mom-4p", "b5-mom-4p.toml", 10.0),
];

/// B5's sizes in TiB, by job id.
const B5_TIB: &[(&str, f64)] = &[("b5-mom-1t", 1.0), ("b5-mom-64t", 64.0), ("b5-mom-1p", 1024.0), ("b5-mom-4p", 4096.0)];

/// The median criterion measured for `id`, in ms (from target/criterion/ID/new/estimates.json).
fn median_ms(id: &str) -> Option<f64> {
    let target = std::env::var("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| hotplug_bench::root().join("target"));
    let text = std::fs::read_to_string(target.join("criterion").join(id).join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(v["median"]["point_estimate"].as_f64()? / 1e6)
}

fn main() {
    prepare();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut heaps = Vec::new();
    for &(id, file, _) in JOBS {
        let path = config_path(file);
        let ((), peak) = peak_heap_of(|| drop(run_config(&path)));
        heaps.push((id, peak));
        c.bench_function(id, |b| b.iter(|| run_config(&path)));
    }
    let b1 = config_path("b1-mom-32t-2g.toml");
    let ((), peak) = peak_heap_of(|| drop(run_config_static(&b1)));
    heaps.push(("b6-static", peak));
    c.bench_function("b6-static", |b| b.iter(|| run_config_static(&b1)));
    c.final_summary();
    summary(&heaps);
}

/// The table docs/PERF.md quotes.
fn summary(heaps: &[(&str, usize)]) {
    let b0 = median_ms("b0-boot").unwrap_or(f64::NAN);
    println!("\njob                median      x B0   peak heap   target");
    for &(id, _, target) in JOBS {
        let ms = median_ms(id).unwrap_or(f64::NAN);
        let heap = heaps.iter().find(|(h, _)| *h == id).map_or(0, |&(_, b)| b);
        let verdict = if target.is_infinite() {
            "(floor)".to_string()
        } else if ms <= target && heap <= 32 << 20 {
            format!("< {target} ms: met")
        } else {
            format!("< {target} ms: MISSED")
        };
        println!("{id:<18} {ms:>8.3} ms {:>7.1} {:>9.1} MiB   {verdict}", ms / b0, heap as f64 / f64::from(1 << 20));
    }
    // Least-squares slope of log(time) against log(size) over B5's sizes.
    let points: Vec<(f64, f64)> = B5_TIB.iter().filter_map(|&(id, tib)| median_ms(id).map(|ms| (tib.ln(), ms.ln()))).collect();
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), &(x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let slope = points.iter().map(|&(x, y)| (x - mx) * (y - my)).sum::<f64>() / points.iter().map(|&(x, _)| (x - mx).powi(2)).sum::<f64>();
    println!("b5 log-log slope of time against size: {slope:.3} (target < 0.1)");
    let dynamic = median_ms("b1-mom-32t-2g").unwrap_or(f64::NAN);
    let fixed = median_ms("b6-static").unwrap_or(f64::NAN);
    let heap = heaps.iter().find(|(h, _)| *h == "b6-static").map_or(0, |&(_, b)| b);
    println!(
        "b6 .so / static: {dynamic:.3} ms / {fixed:.3} ms = {:.3} (target within 1.05); static peak heap {:.1} MiB",
        dynamic / fixed,
        heap as f64 / f64::from(1 << 20)
    );
}
