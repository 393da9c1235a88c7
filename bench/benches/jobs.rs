//! B0-B6 (docs/PERF.md): `cargo bench -p hotplug-bench`. Criterion times each job; the
//! counting allocator gives its peak heap; the summary at the end quotes each median as
//! a multiple of B0's, B5's log-log slope and B6's ratio, against the targets.

use std::time::Duration;

use criterion::Criterion;
use hotplug_bench::{
    config_path, linked, peak_heap_of, prepare, prepare_config, prepare_isolated, run_config, run_prepared, CountingAlloc,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Criterion id, config file, target median (ms), target peak heap (MiB) where there is one.
const JOBS: &[(&str, &str, f64, Option<f64>)] = &[
    ("b0-boot", "b0-boot.toml", f64::INFINITY, None),
    ("b1-mom-32t-2g", "b1-mom-32t-2g.toml", 10.0, Some(32.0)),
    ("b2-mom-32t-128m", "b2-mom-32t-128m.toml", 10.0, Some(32.0)),
    ("b3-device-4t", "b3-device-4t.toml", 5.0, None),
    ("b4-random-100k", "b4-random.toml", 1000.0, None),
    ("b5-mom-1t", "b5-mom-1t.toml", 10.0, Some(32.0)),
    ("b5-mom-64t", "b5-mom-64t.toml", 10.0, Some(32.0)),
    ("b5-mom-1p", "b5-mom-1p.toml", 10.0, Some(32.0)),
    ("b5-mom-4p", "b5-mom-4p.toml", 10.0, Some(32.0)),
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
    for &(id, file, _, _) in JOBS {
        let path = config_path(file);
        let ((), peak) = peak_heap_of(|| drop(run_config(&path)));
        heaps.push((id, peak));
        c.bench_function(id, |b| b.iter(|| run_config(&path)));
    }
    // B6: B1's run with the strategy loaded from its .so, then linked in; the config
    // read and the library loaded once, outside the timing.
    let (scenario, loaded) = prepare_config(&config_path("b1-mom-32t-2g.toml"));
    let statically = linked(&scenario);
    c.bench_function("b6-so", |b| b.iter(|| run_prepared(&scenario, &loaded)));
    let ((), peak) = peak_heap_of(|| drop(run_prepared(&scenario, &statically)));
    heaps.push(("b6-static", peak));
    c.bench_function("b6-static", |b| b.iter(|| run_prepared(&scenario, &statically)));
    // B7: the cost of --isolate: B1 (3 strategy calls, one strided mark) and B3 (device
    // pages: set_up and construct per range) with their plugins in a child process.
    for (id, file) in [("b7-isolated-b1", "b1-mom-32t-2g.toml"), ("b7-isolated-b3", "b3-device-4t.toml")] {
        let (scenario, isolated) = prepare_isolated(&config_path(file));
        c.bench_function(id, |b| b.iter(|| run_prepared(&scenario, &isolated)));
    }
    c.final_summary();
    summary(&heaps);
}

/// The table docs/PERF.md quotes.
fn summary(heaps: &[(&str, usize)]) {
    let mib = |bytes: usize| bytes as f64 / f64::from(1 << 20);
    let b0 = median_ms("b0-boot").unwrap_or(f64::NAN);
    println!("\njob                median      x B0   peak heap   target");
    for &(id, _, target, heap_target) in JOBS {
        let ms = median_ms(id).unwrap_or(f64::NAN);
        let heap = heaps.iter().find(|(h, _)| *h == id).map_or(0, |&(_, b)| b);
        let heap_ok = heap_target.is_none_or(|limit| mib(heap) <= limit);
        let wanted = format!("< {target} ms{}", heap_target.map_or(String::new(), |m| format!(", < {m} MiB")));
        let verdict = match (target.is_infinite(), ms <= target && heap_ok) {
            (true, _) => "(floor)".to_string(),
            (false, true) => format!("{wanted}: met"),
            (false, false) => format!("{wanted}: MISSED"),
        };
        println!("{id:<18} {ms:>8.3} ms {:>7.1} {:>9.1} MiB   {verdict}", ms / b0, mib(heap));
    }
    // Least-squares slope of log(time) against log(size) over B5's sizes.
    let points: Vec<(f64, f64)> = B5_TIB.iter().filter_map(|&(id, tib)| median_ms(id).map(|ms| (tib.ln(), ms.ln()))).collect();
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), &(x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let slope = points.iter().map(|&(x, y)| (x - mx) * (y - my)).sum::<f64>() / points.iter().map(|&(x, _)| (x - mx).powi(2)).sum::<f64>();
    println!("b5 log-log slope of time against size: {slope:.3} (target < 0.1)");
    let dynamic = median_ms("b6-so").unwrap_or(f64::NAN);
    let fixed = median_ms("b6-static").unwrap_or(f64::NAN);
    let heap = heaps.iter().find(|(h, _)| *h == "b6-static").map_or(0, |&(_, b)| b);
    println!(
        "b6 .so / static: {dynamic:.3} ms / {fixed:.3} ms = {:.3} (target within 1.05); static peak heap {:.1} MiB",
        dynamic / fixed,
        mib(heap)
    );
    for (isolated, plain) in [("b7-isolated-b1", "b1-mom-32t-2g"), ("b7-isolated-b3", "b3-device-4t")] {
        let (i, p) = (median_ms(isolated).unwrap_or(f64::NAN), median_ms(plain).unwrap_or(f64::NAN));
        println!("{isolated}: {i:.3} ms against {p:.3} ms in-process (+{:.3} ms for the pipe round trips)", i - p);
    }
}
