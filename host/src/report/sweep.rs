//! `host sweep`'s answers: a table in the report's number style, a CSV file for
//! spreadsheets and plotting tools (exact integers, one row per run), and JSON in the
//! report's schema (`"kind": "sweep"`).

use std::fmt::Write as _;

use serde::Serialize;

use super::table::{Align, Table};
use crate::model::units::{format_size, thousands};
use crate::sweep::{Metrics, Sweep, SweepRow};

/// How a run ended, in a table cell: `ok`, the first failed step and its errno, or
/// `invalid` for a point that did not run (why is listed under the table).
pub fn outcome_cell(r: &SweepRow) -> String {
    match (&r.failed_step, &r.error) {
        _ if r.invalid.is_some() => "invalid".to_string(),
        (Some(step), Some(e)) if r.partial => format!("#{step} partial: {}", e.code),
        (Some(step), Some(e)) => format!("#{step} {}", e.code),
        _ => "ok".to_string(),
    }
}

/// The table's metric cells, hot-added to free pages (`-` for a point that did not run).
fn metric_cells(m: Option<&Metrics>) -> [String; 8] {
    let Some(m) = m else { return std::array::from_fn(|_| "-".to_string()) };
    [
        format_size(m.added_bytes),
        format_size(m.online_bytes),
        format_size(m.device_bytes),
        format_size(m.memmap_bytes),
        format_size(m.memmap_in_ram_bytes),
        format_size(m.memmap_inside_bytes),
        m.memmap_share_percent.map_or("-".to_string(), |p| format!("{p:.4} %")),
        thousands(m.free_pages),
    ]
}

/// The CSV's metric fields, exact (empty for a point that did not run).
fn metric_fields(m: Option<&Metrics>) -> [String; 8] {
    let Some(m) = m else { return Default::default() };
    [
        m.added_bytes.to_string(),
        m.online_bytes.to_string(),
        m.device_bytes.to_string(),
        m.memmap_bytes.to_string(),
        m.memmap_in_ram_bytes.to_string(),
        m.memmap_inside_bytes.to_string(),
        m.memmap_share_percent.map(|p| format!("{p:.6}")).unwrap_or_default(),
        m.free_pages.to_string(),
    ]
}

/// The strategy's name in a cell (`as written`: the config's own steps).
pub fn strategy_name(s: Option<&str>) -> &str {
    s.unwrap_or("as written")
}

/// The sweep as a table, one row per run, after a line saying what was swept.
pub fn text(config: &str, s: &Sweep) -> String {
    let mut out = String::new();
    let points = s.varies.iter().map(|v| v.values.len()).product::<usize>();
    let over: Vec<String> = s.varies.iter().map(|v| format!("{} ({} values)", v.key, thousands(v.values.len() as u64))).collect();
    let _ = writeln!(
        out,
        "{config}: sweep of {} over {}: {} runs",
        if points == 1 { "1 point".to_string() } else { format!("{} points", thousands(points as u64)) },
        over.join(" x "),
        thousands(s.rows.len() as u64)
    );
    out.push('\n');
    let mut columns: Vec<(&str, Align)> = s.varies.iter().map(|v| (v.key.as_str(), Align::Right)).collect();
    columns.extend([
        ("strategy", Align::Left),
        ("outcome", Align::Left),
        ("hot-added", Align::Right),
        ("online", Align::Right),
        ("device", Align::Right),
        ("memmap", Align::Right),
        ("in RAM", Align::Right),
        ("inside", Align::Right),
        ("share", Align::Right),
        ("free pages", Align::Right),
    ]);
    let mut t = Table::new(&columns);
    for r in &s.rows {
        let mut cells = r.values.clone();
        cells.extend([strategy_name(r.strategy.as_deref()).to_string(), outcome_cell(r)]);
        cells.extend(metric_cells(r.metrics.as_ref()));
        t.row(cells);
    }
    out.push_str(&t.render());
    // Why each point that did not run did not, once per point.
    let mut said: Option<&[String]> = None;
    for r in s.rows.iter().filter(|r| r.invalid.is_some()) {
        if said != Some(r.values.as_slice()) {
            let point: Vec<String> = s.varies.iter().zip(&r.values).map(|(v, x)| format!("{}={x}", v.key)).collect();
            if said.is_none() {
                out.push('\n');
            }
            let _ = writeln!(out, "invalid at {}: {}", point.join(" "), r.invalid.as_deref().unwrap_or(""));
            said = Some(&r.values);
        }
    }
    out
}

/// The CSV file: a header, then one line per run with exact integers (bytes, pages) and
/// the errno name of the first failed step (empty when none failed; `partial` true when
/// that step is a virtio-mem request the device did part of); last, why the point did not
/// run (`--keep-going`), with its metric fields empty.
pub fn csv(s: &Sweep) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = s.varies.iter().map(|v| v.key.clone()).collect();
    header.extend(
        [
            "strategy",
            "steps_ok",
            "steps",
            "failed_step",
            "partial",
            "errno",
            "added_bytes",
            "online_bytes",
            "device_bytes",
            "memmap_bytes",
            "memmap_in_ram_bytes",
            "memmap_inside_bytes",
            "memmap_share_percent",
            "free_pages",
            "invalid",
        ]
        .map(String::from),
    );
    w.write_record(&header)?;
    for r in &s.rows {
        let mut record = r.values.clone();
        record.extend([
            strategy_name(r.strategy.as_deref()).to_string(),
            r.steps_ok.to_string(),
            r.steps.to_string(),
            r.failed_step.map(|i| i.to_string()).unwrap_or_default(),
            r.partial.to_string(),
            r.error.as_ref().map(|e| e.code.to_string()).unwrap_or_default(),
        ]);
        record.extend(metric_fields(r.metrics.as_ref()));
        record.push(r.invalid.clone().unwrap_or_default());
        w.write_record(&record)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8"))
}

/// `host sweep --format json`.
pub fn json(config: &str, s: &Sweep) -> String {
    #[derive(Serialize)]
    struct SweepReport<'a> {
        schema_version: u32,
        kind: &'static str,
        config: &'a str,
        sweep: &'a Sweep,
    }
    serde_json::to_string_pretty(&SweepReport { schema_version: super::SCHEMA_VERSION, kind: "sweep", config, sweep: s })
        .expect("sweep serialises")
}
