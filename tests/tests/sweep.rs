//! `host sweep`: a small grid over small-vm.toml, its table, CSV and chart checked
//! against numbers worked out by hand from the kernel rules.

use hotplug_tests::{run_host, scratch, Profile};

const P: Profile = Profile::Debug;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// The CSV as rows of (column -> cell).
fn csv_rows(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines.map(|l| header.iter().map(|h| h.to_string()).zip(l.split(',').map(String::from)).collect()).collect()
}

#[test]
fn small_vm_sweep_finds_where_the_baseline_runs_out_of_memmap() {
    let dir = scratch("sweep_small_vm");
    let (csv, chart) = (dir.join("s.csv"), dir.join("s.svg"));
    let run = run_host(
        P,
        &[
            "sweep",
            "--config",
            "small-vm.toml",
            "--vary",
            "step.1.size=1GiB..8GiB:x8",
            "--vary",
            "machine.memory_block_size=128MiB,1GiB",
            "--csv",
            csv.to_str().unwrap(),
            "--chart",
            chart.to_str().unwrap(),
            "--chart-metric",
            "added",
            "--jobs",
            "2",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Piped: no progress bar.
    assert_eq!(run.stderr, "");
    // 1GiB..8GiB:x8 is 1 and 8 GiB; by two block sizes: 4 points; small-vm.toml compares
    // base and mom: 8 runs.
    assert!(
        run.stdout.contains("sweep of 4 points over step.1.size (2 values) x machine.memory_block_size (2 values): 8 runs"),
        "{}",
        run.stdout
    );

    let rows = csv_rows(&std::fs::read_to_string(&csv).unwrap());
    assert_eq!(rows.len(), 8);
    let row = |size: &str, block: &str, strategy: &str| {
        rows.iter()
            .find(|r| r["step.1.size"] == size && r["machine.memory_block_size"] == block && r["strategy"] == strategy)
            .unwrap_or_else(|| panic!("no row {size} {block} {strategy}"))
    };
    let n = |r: &std::collections::BTreeMap<String, String>, k: &str| r[k].parse::<u64>().unwrap_or_else(|_| panic!("{k}: {:?}", r[k]));
    for block in ["128MiB", "1GiB"] {
        // base, 1 GiB first: its memmap is 1 GiB / 4 KiB x 64 B = 16 MiB from the 1 GiB
        // guest's RAM, and it is onlined; the 512 GiB after it needs 8 GiB of memmap from
        // about 2 GiB of RAM: ENOMEM at step 2. Left: the first add, all online.
        let r = row("1GiB", block, "base");
        assert_eq!((r["failed_step"].as_str(), r["errno"].as_str()), ("2", "ENOMEM"));
        assert_eq!((n(r, "added_bytes"), n(r, "online_bytes")), (GIB, GIB));
        assert_eq!((n(r, "memmap_bytes"), n(r, "memmap_in_ram_bytes"), n(r, "memmap_inside_bytes")), (16 * MIB, 16 * MIB, 0));
        assert_eq!(r["memmap_share_percent"], "1.562500");
        // base, 8 GiB first: 128 MiB of memmap fits in the guest; onlined, it gives the
        // 8 GiB the 512 GiB add needs. Both succeed: 520 GiB, memmap 520 / 64 GiB = 8,320 MiB.
        let r = row("8GiB", block, "base");
        assert_eq!((r["failed_step"].as_str(), r["steps_ok"].as_str()), ("", "2"));
        assert_eq!(n(r, "added_bytes"), 520 * GIB);
        assert_eq!((n(r, "memmap_in_ram_bytes"), n(r, "memmap_inside_bytes")), (8_320 * MIB, 0));
        // mom carries each block's memmap in the block: both adds succeed whatever the
        // first's size, 1 + 512 = 513 GiB, memmap 513 GiB / 64 = 8,208 MiB inside.
        let r = row("1GiB", block, "mom");
        assert_eq!((n(r, "added_bytes"), n(r, "memmap_inside_bytes"), n(r, "memmap_in_ram_bytes")), (513 * GIB, 8_208 * MIB, 0));
    }

    // The chart: a line per strategy and block size (4), a point per first-add size (2);
    // the base runs that failed at 1 GiB are hollow.
    let svg = std::fs::read_to_string(&chart).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    let series: Vec<_> = doc.descendants().filter(|n| n.attribute("class") == Some("series")).collect();
    let names: Vec<&str> = series.iter().map(|s| s.attribute("data-name").unwrap()).collect();
    assert_eq!(
        names,
        [
            "base, machine.memory_block_size=128MiB",
            "base, machine.memory_block_size=1GiB",
            "mom, machine.memory_block_size=128MiB",
            "mom, machine.memory_block_size=1GiB"
        ]
    );
    assert!(series.iter().all(|s| s.attribute("data-points") == Some("2")));
    let hollow = doc.descendants().filter(|n| n.attribute("class") == Some("point") && n.attribute("fill") == Some("#ffffff")).count();
    assert_eq!(hollow, 2);
}

#[test]
fn a_bad_vary_or_point_is_one_located_line_and_exit_2() {
    // A path the config does not have: refused before any run.
    let run = run_host(P, &["sweep", "--config", "small-vm.toml", "--vary", "step.9.size=1GiB"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.trim(), "host: error: --vary step.9.size: step.9: there are 2 of them, not 9");
    // A value the config refuses: the line names the point, and the config's own line
    // (small-vm.toml has no memory_block_size key: the new key goes at the end of
    // [machine], where the error points).
    let run = run_host(P, &["sweep", "--config", "small-vm.toml", "--vary", "machine.memory_block_size=96MiB"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with("host: error: at machine.memory_block_size=96MiB: "), "{}", run.stderr);
    assert!(run.stderr.contains("memory_block_size must be a power of two"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    // A range that would never end, and a list with a hole.
    let run = run_host(P, &["sweep", "--config", "small-vm.toml", "--vary", "step.1.size=1GiB..2GiB:x1"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("factor of 2 or more"), "{}", run.stderr);
}

#[test]
fn keep_going_turns_an_invalid_point_into_a_row_that_says_why() {
    let dir = scratch("sweep_keep_going");
    let (csv, chart) = (dir.join("k.csv"), dir.join("k.svg"));
    // 96 MiB is no power of two (invalid geometry); 128 MiB is small-vm.toml's own block
    // size. small-vm.toml compares base and mom: 4 rows, 2 of them for the invalid point.
    let args = [
        "sweep",
        "--config",
        "small-vm.toml",
        "--vary",
        "machine.memory_block_size=96MiB,128MiB",
        "--keep-going",
        "--csv",
        csv.to_str().unwrap(),
        "--chart",
        chart.to_str().unwrap(),
        "--chart-metric",
        "added",
    ];
    let run = run_host(P, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let cells = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    let invalid: Vec<&&str> = lines.iter().filter(|l| l.trim_start().starts_with("96MiB")).collect();
    assert_eq!(invalid.len(), 2, "{}", run.stdout);
    for l in &invalid {
        let c = cells(l);
        // value, strategy, outcome, then eight metric cells of "-".
        assert_eq!(&c[2..], ["invalid", "-", "-", "-", "-", "-", "-", "-", "-"], "{l}");
    }
    // Why, once, under the table, naming the point and the config's line.
    let why: Vec<&&str> = lines.iter().filter(|l| l.starts_with("invalid at ")).collect();
    assert_eq!(why.len(), 1, "{}", run.stdout);
    assert!(why[0].starts_with("invalid at machine.memory_block_size=96MiB: ") && why[0].contains("power of two"), "{}", why[0]);
    // The valid point ran as without --keep-going: its rows end ok or with the errno.
    assert_eq!(lines.iter().filter(|l| l.trim_start().starts_with("128MiB")).count(), 2, "{}", run.stdout);

    // The CSV: empty metrics and the reason for the invalid point's rows, none for the others.
    let rows = csv_rows(&std::fs::read_to_string(&csv).unwrap());
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let bad = r["machine.memory_block_size"] == "96MiB";
        assert_eq!(r["added_bytes"].is_empty(), bad, "{r:?}");
        assert_eq!(r["steps"] == "0", bad, "{r:?}");
        assert_eq!(r["invalid"].contains("power of two"), bad, "{r:?}");
    }
    // The chart draws only what ran: no point at all for 96 MiB (it is neither filled
    // nor hollow), so each strategy's line has one point, at 128 MiB.
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert_eq!(svg.matches("<circle").count(), 2, "{svg}");

    // The JSON: null metrics and the reason, and it validates (report_schema.rs checks
    // the schema itself).
    let run = run_host(P, &[&args[..5], &["--keep-going", "--format", "json"]].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let rows = json["sweep"]["rows"].as_array().unwrap();
    let bad: Vec<_> = rows.iter().filter(|r| r["values"][0] == "96MiB").collect();
    assert_eq!(bad.len(), 2);
    assert!(bad.iter().all(|r| r["metrics"].is_null() && r["invalid"].as_str().unwrap().contains("power of two")));
    assert!(rows.iter().filter(|r| r["values"][0] == "128MiB").all(|r| r["metrics"].is_object() && r.get("invalid").is_none()));
}
