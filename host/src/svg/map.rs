//! The memory map (`--svg FILE`): the physical address space top to bottom, low addresses
//! first as in /proc/iomem, one row per range of `Model::address_map`, coloured by owner,
//! with the memmap a range holds inside it drawn over its start. Row heights follow the
//! size on a linear scale when the ranges are alike, on a log scale when they differ by
//! orders of magnitude (a 2 MiB block beside a 2 TiB expander); holes are cut short and
//! marked as breaks. Each row is labelled with its start in hex and its size in binary
//! units with the page count, so the picture never needs the scale to be read exactly.

use std::fmt::Write as _;

use hotplug_core::size::{count_of, format_pages, format_size, thousands};

use super::Svg;
use crate::model::address_map::{MapRange, Owner};
use crate::model::Model;

/// What the map's title says: the config and the moment it shows.
pub struct MapHeading<'a> {
    /// The config's path as the report shows it.
    pub config: &'a str,
    /// The strategy forced on the run, for a compare config's runs.
    pub strategy: Option<&'a str>,
    /// `after boot`, `after step 3 of 5 (memremap)`.
    pub moment: String,
}

const WIDTH: f64 = 1040.0;
const TOP: f64 = 78.0;
const BAR_X: f64 = 150.0;
const BAR_W: f64 = 150.0;
const LABEL_X: f64 = BAR_X + BAR_W + 14.0;
const MIN_ROW: f64 = 34.0;
const MAX_ROW: f64 = 300.0;
const HOLE_ROW: f64 = 22.0;
/// Ranges within this factor of each other are drawn to a linear scale.
const LINEAR_SPREAD: u64 = 64;

const STYLE: &str = "text{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;fill:#222}\
.title{font-size:16px;font-weight:bold}.caption{font-size:12px;fill:#555}\
.addr{font-size:11px;font-family:'DejaVu Sans Mono',Menlo,monospace;text-anchor:end;fill:#444}\
.name{font-size:12.5px;font-weight:bold}.detail{font-size:11px;fill:#555}\
.legend-text{font-size:12px}.note{font-size:12px;fill:#333}\
.bar{stroke:#ffffff;stroke-width:1}.break{stroke:#777;stroke-width:1.2;fill:none}";

/// The colour of each owner: blue for boot RAM, greens and orange for hot-added memory
/// by zone, greys for what is not in use, warm colours for device memory by pgmap type.
pub fn fill(owner: Owner) -> &'static str {
    use crate::model::ZoneType;
    use hotplug_core::PgmapType;
    match owner {
        Owner::BootRam => "#4e79a7",
        Owner::Online(Some(ZoneType::Normal)) | Owner::Online(None) => "#59a14f",
        Owner::Online(Some(ZoneType::Movable)) => "#f28e2b",
        Owner::Online(Some(ZoneType::Dma32)) => "#76b7b2",
        Owner::Online(Some(ZoneType::Dma)) | Owner::Online(Some(ZoneType::Device)) => "#a0cbe8",
        Owner::Offline => "#bab0ac",
        Owner::Unplugged => "#e9eef4",
        Owner::Device(PgmapType::FS_DAX) => "#b07aa1",
        Owner::Device(PgmapType::GENERIC) => "#ff9da7",
        Owner::Device(PgmapType::PRIVATE) => "#9c755f",
        Owner::Device(PgmapType::COHERENT) => "#edc948",
        Owner::Device(PgmapType::PCI_P2PDMA) => "#e15759",
        Owner::Device(_) => "#d37295",
        Owner::Region => "#d7ceb2",
        Owner::Hole => "#f3f3f3",
    }
}

/// The colour of the pages that hold memmap.
pub const MEMMAP_FILL: &str = "#2b2b2b";

/// The owners in the legend's order.
const LEGEND_ORDER: [Owner; 16] = {
    use crate::model::ZoneType as Z;
    use hotplug_core::PgmapType as P;
    [
        Owner::BootRam,
        Owner::Online(Some(Z::Dma)),
        Owner::Online(Some(Z::Dma32)),
        Owner::Online(Some(Z::Normal)),
        Owner::Online(None),
        Owner::Online(Some(Z::Movable)),
        Owner::Offline,
        Owner::Unplugged,
        Owner::Device(P::FS_DAX),
        Owner::Device(P::GENERIC),
        Owner::Device(P::PRIVATE),
        Owner::Device(P::COHERENT),
        Owner::Device(P::PCI_P2PDMA),
        Owner::Device(P::NONE),
        Owner::Region,
        Owner::Hole,
    ]
};

/// How sizes become row heights.
#[derive(Debug, Clone, Copy)]
enum Scale {
    /// Height in proportion to size (at least `MIN_ROW`).
    Linear { max: u64 },
    /// `MIN_ROW` for the smallest range, `per_doubling` more for each doubling.
    Log { min: u64, per_doubling: f64 },
}

impl Scale {
    fn for_ranges(ranges: &[MapRange]) -> Scale {
        let sizes = ranges.iter().filter(|r| r.owner != Owner::Hole).map(MapRange::size);
        let (min, max) = sizes.fold((u64::MAX, 1), |(lo, hi), s| (lo.min(s.max(1)), hi.max(s)));
        let min = min.min(max);
        if max / min <= LINEAR_SPREAD {
            Scale::Linear { max }
        } else {
            let doublings = (max as f64 / min as f64).log2();
            Scale::Log { min, per_doubling: ((MAX_ROW - MIN_ROW) / doublings).min(40.0) }
        }
    }

    fn height(self, r: &MapRange) -> f64 {
        if r.owner == Owner::Hole {
            return HOLE_ROW;
        }
        match self {
            Scale::Linear { max } => (MAX_ROW * r.size() as f64 / max as f64).max(MIN_ROW),
            Scale::Log { min, per_doubling } => MIN_ROW + per_doubling * (r.size().max(min) as f64 / min as f64).log2(),
        }
    }

    fn words(self) -> &'static str {
        match self {
            Scale::Linear { .. } => "row heights in proportion to size",
            Scale::Log { .. } => "row heights on a log scale of size (the ranges differ by orders of magnitude)",
        }
    }
}

/// The memory map of `model` as an SVG document.
pub fn memory_map(model: &Model, heading: &MapHeading) -> String {
    let ranges = model.address_map();
    let page = model.geometry.page_size();
    let scale = Scale::for_ranges(&ranges);
    let mut svg = Svg::new();

    let g = &model.geometry.g;
    let strategy = heading.strategy.map(|s| format!(" [strategy {s}]")).unwrap_or_default();
    svg.text(20.0, 28.0, "title", &format!("Memory map of {}{strategy}, {}", heading.config, heading.moment));
    svg.text(
        20.0,
        48.0,
        "caption",
        &format!(
            "{}, {} pages, {} sections, {} memory blocks; {}; holes cut short (≈)",
            g.arch.name(),
            format_size(g.page_size),
            format_size(g.section_size),
            format_size(g.memory_block_size),
            scale.words()
        ),
    );
    svg.text(BAR_X - 8.0, TOP - 10.0, "addr", "address");

    let mut y = TOP;
    for r in &ranges {
        let h = scale.height(r);
        draw_range(&mut svg, r, y, h, page);
        y += h;
    }
    if let Some(last) = ranges.last() {
        svg.text(BAR_X - 8.0, y + 4.0, "addr", &format!("{:#x}", last.end));
    }

    y = legend(&mut svg, &ranges, y + 34.0);
    svg.finish(WIDTH, y + 16.0, STYLE)
}

/// One row: the owner's colour, the memmap it holds over its start, a break mark for a
/// hole, its start address on the left and what it is on the right.
fn draw_range(svg: &mut Svg, r: &MapRange, y: f64, h: f64, page: u64) {
    let key = r.owner.key();
    let nid = r.nid.map(|n| format!(r#" data-nid="{n}""#)).unwrap_or_default();
    svg.raw(&format!(r#"<g class="range" data-owner="{key}" data-start="{:#x}" data-end="{:#x}"{nid}>"#, r.start, r.end));
    let outline = if r.owner == Owner::Unplugged { r##" stroke="#4e79a7" stroke-dasharray="4 3""## } else { "" };
    svg.rect(BAR_X, y, BAR_W, h, fill(r.owner), &format!(r#"class="bar"{outline}"#));
    let set_aside = r.set_aside_total();
    let pages = r.size() / page;
    if set_aside > 0 && pages > 0 {
        // The memmap's share at the start of each block (memmap on memory) when the
        // blocks are few enough to tell apart, else at the start of the range (where an
        // altmap puts it); never thinner than a line, so 2 MiB shows beside 128 GiB.
        let stripes = if r.per_block && r.blocks as f64 * 6.0 <= h { r.blocks } else { 1 };
        let each = h / stripes as f64;
        let share = (h * set_aside as f64 / pages as f64).clamp(if stripes > 1 { 1.5 } else { 3.0 }, each);
        for i in 0..stripes {
            svg.rect(BAR_X, y + i as f64 * each, BAR_W, share, MEMMAP_FILL, r#"class="memmap""#);
        }
    }
    if r.owner == Owner::Hole {
        let mid = y + h / 2.0;
        for dy in [-3.0, 3.0] {
            svg.raw(&format!(
                r#"<polyline class="break" points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}"/>"#,
                BAR_X - 6.0,
                mid + dy + 3.0,
                BAR_X + BAR_W / 3.0,
                mid + dy - 3.0,
                BAR_X + 2.0 * BAR_W / 3.0,
                mid + dy + 3.0,
                BAR_X + BAR_W + 6.0,
                mid + dy - 3.0
            ));
        }
    }
    svg.text(BAR_X - 8.0, y + 11.0, "addr", &format!("{:#x}", r.start));
    let (name, detail) = labels(r, page);
    if r.owner == Owner::Hole {
        svg.text(LABEL_X, y + h / 2.0 + 4.0, "detail", &name);
    } else {
        svg.text(LABEL_X, y + 14.0, "name", &name);
        svg.text(LABEL_X, y + 28.0, "detail", &detail);
    }
    svg.raw("</g>");
}

/// A row's two label lines: what it is, and its numbers.
fn labels(r: &MapRange, page: u64) -> (String, String) {
    if r.owner == Owner::Hole {
        return (format!("hole, {}", format_size(r.size())), String::new());
    }
    let mut name = format!("{}  {}", format_size(r.size()), r.owner.describe());
    if r.owner == Owner::Offline {
        name.push_str(if r.boot { " (present at boot)" } else { " (hot-added)" });
    }
    if let Some(nid) = r.nid {
        let _ = write!(name, ", node {nid}");
    }
    if let Some(region) = &r.iomem {
        let shown: String = region.chars().take(48).collect();
        let _ = write!(name, ", {shown}{}", if shown.len() < region.len() { "..." } else { "" });
    }
    let mut detail = format!("{:#x}-{:#x}, {} pages", r.start, r.end - 1, thousands(r.size() / page));
    if r.blocks > 0 {
        let _ = write!(detail, ", {}", count_of(r.blocks, "block"));
    }
    if r.per_block && r.set_aside > 0 {
        let _ = write!(detail, "; memmap on memory: {} at the start of each block", format_pages(r.set_aside, page));
    } else if r.set_aside > 0 {
        let _ = write!(detail, "; memmap {} in its first {}", format_pages(r.memmap, page), format_size(r.set_aside.saturating_mul(page)));
    }
    if !r.memmap_in_ram.is_empty() {
        let homes: Vec<String> = r.memmap_in_ram.iter().map(|&(n, p)| format!("{} on node {n}", format_pages(p, page))).collect();
        let _ = write!(detail, "; memmap in RAM: {}", homes.join(", "));
    }
    (name, detail)
}

/// The legend: one swatch per owner on the map, then memmap and the break mark; returns
/// the y below it.
fn legend(svg: &mut Svg, ranges: &[MapRange], y: f64) -> f64 {
    let mut items: Vec<(String, &str, String)> = LEGEND_ORDER
        .iter()
        .filter(|o| ranges.iter().any(|r| r.owner == **o))
        .map(|&o| (o.key(), fill(o), if o == Owner::Hole { "hole (cut short)".to_string() } else { o.describe() }))
        .collect();
    if ranges.iter().any(|r| r.set_aside > 0) {
        items.push(("memmap".into(), MEMMAP_FILL, "pages set aside for memmap, inside the range".into()));
    }
    svg.text(20.0, y, "name", "Legend");
    let (col_w, row_h) = (340.0, 20.0);
    let mut bottom = y;
    for (i, (key, colour, text)) in items.iter().enumerate() {
        let (col, row) = ((i % 3) as f64, (i / 3) as f64);
        let (x, top) = (20.0 + col * col_w, y + 10.0 + row * row_h);
        svg.raw(&format!(r#"<g class="legend" data-owner="{key}" data-fill="{colour}">"#));
        svg.rect(x, top, 14.0, 14.0, colour, r##"stroke="#999" stroke-width="0.5""##);
        svg.text(x + 20.0, top + 11.5, "legend-text", text);
        svg.raw("</g>");
        bottom = top + row_h;
    }
    bottom
}

/// `FILE` for one map, or `FILE` with `-<strategy>` and `-step<N>` before its extension
/// when a run writes several (`map.svg` -> `map-mom-step2.svg`).
pub fn file_name(base: &std::path::Path, strategy: Option<&str>, step: Option<usize>) -> std::path::PathBuf {
    let stem = base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "map".into());
    let ext = base.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_else(|| "svg".into());
    let mut name = stem;
    if let Some(s) = strategy {
        name.push('-');
        name.push_str(&s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect::<String>());
    }
    if let Some(n) = step {
        let _ = write!(name, "-step{n}");
    }
    base.with_file_name(format!("{name}.{ext}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::file_name;

    #[test]
    fn file_names_for_several_maps_keep_the_extension() {
        assert_eq!(file_name(Path::new("out/map.svg"), None, None), Path::new("out/map.svg"));
        assert_eq!(file_name(Path::new("out/map.svg"), Some("mom"), Some(2)), Path::new("out/map-mom-step2.svg"));
        assert_eq!(file_name(Path::new("m"), Some("a/b"), None), Path::new("m-a_b.svg"));
    }
}
