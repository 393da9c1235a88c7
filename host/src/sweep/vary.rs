//! `--vary KEY=VALUES`: which config value a sweep changes, and the values it takes.
//!
//! KEY is a dotted path into the config as written: table keys, a 1-based index into an
//! array of tables (`step.2.size`: the second `[[step]]`, as the report numbers steps),
//! or a `[[strategy]]` by its name (`strategy.mom.options.mode`); several paths joined
//! by commas take the same value (`step.1.size,step.2.size=...`: an add and the online
//! of the same range). The config is edited in place (toml_edit), so an error in a
//! point's config points at the user's own line and column. VALUES is a list
//! (`128MiB,2GiB`), a doubling-style range `LO..HI:xF` (`1GiB..1TiB:x2`: 1, 2, 4, ...
//! 1024 GiB) or a stepped one `LO..HI:+STEP` (`100..400:+100`); range ends are sizes
//! or plain integers, and the values are written back the way the ends were.

use hotplug_core::size::parse_size;
use toml_edit::{DocumentMut, Item, TableLike, Value};

/// The most points one sweep may have: more is a typo, not a study.
pub const MAX_POINTS: usize = 10_000;

/// One `--vary`: a path and its values, as text the config would hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vary {
    pub key: String,
    paths: Vec<Vec<String>>,
    pub values: Vec<String>,
    /// Each value as a number (bytes for sizes), when they all are: the chart's x axis.
    pub numbers: Option<Vec<u64>>,
    /// The values are sizes (`1GiB`), not plain integers.
    pub sizes: bool,
}

impl Vary {
    /// Parse `KEY=VALUES`.
    pub fn parse(spec: &str) -> Result<Vary, String> {
        let (key, values) =
            spec.split_once('=').ok_or_else(|| format!("--vary {spec:?}: expected KEY=VALUES, such as step.2.size=1GiB..1TiB:x2"))?;
        let key = key.trim();
        let mut paths = Vec::new();
        for one in key.split(',') {
            let path: Vec<String> = one.split('.').map(|s| s.trim().to_string()).collect();
            if path.iter().any(String::is_empty) {
                return Err(format!("--vary {spec:?}: {one:?} is not a dotted path such as machine.memory_block_size"));
            }
            paths.push(path);
        }
        let (values, sizes) = parse_values(values.trim()).map_err(|e| format!("--vary {key}: {e}"))?;
        let numbers = values.iter().map(|v| parse_size(v).ok()).collect::<Option<Vec<u64>>>();
        Ok(Vary { key: key.to_string(), paths, values, numbers, sizes })
    }

    /// Set this vary's paths to `value` in the config `doc`, keeping the type the config
    /// gives each (an integer stays an integer, a size string a string).
    pub fn apply(&self, doc: &mut DocumentMut, value: &str) -> Result<(), String> {
        self.paths.iter().try_for_each(|path| {
            set(doc.as_table_mut(), path, value).map_err(|(at, why)| format!("--vary {}: {}: {why}", self.key, path[..=at].join(".")))
        })
    }
}

/// Set `path` under `table` to `value`; an error names how far along the path it is.
fn set(mut table: &mut dyn TableLike, path: &[String], value: &str) -> Result<(), (usize, String)> {
    let last = path.len() - 1;
    let mut i = 0;
    while i < last {
        let item = table.get_mut(&path[i]).ok_or((i, "the config has no such key".to_string()))?;
        let is_array = matches!(item, Item::ArrayOfTables(_) | Item::Value(Value::Array(_)));
        if !is_array {
            table = item.as_table_like_mut().ok_or((i, "is a value, not a table".to_string()))?;
            i += 1;
            continue;
        }
        // An array takes the next part as an index or a name.
        i += 1;
        if i == last {
            return Err((i, "names an array element, not a value in it".into()));
        }
        let elements: Vec<&mut dyn TableLike> = match item {
            Item::ArrayOfTables(a) => a.iter_mut().map(|t| t as &mut dyn TableLike).collect(),
            Item::Value(Value::Array(a)) => a.iter_mut().filter_map(|v| v.as_inline_table_mut().map(|t| t as &mut dyn TableLike)).collect(),
            _ => Vec::new(),
        };
        table = element(elements, &path[i]).map_err(|e| (i, e))?;
        i += 1;
    }
    let typed = typed_like(table.get(&path[last]), value).map_err(|e| (last, e))?;
    match table.get_mut(&path[last]) {
        // In place: the key keeps its spacing and comments.
        Some(Item::Value(old)) => {
            let decor = old.decor().clone();
            *old = typed;
            *old.decor_mut() = decor;
        }
        _ => {
            table.insert(&path[last], Item::Value(typed));
        }
    }
    Ok(())
}

/// The table `part` names among an array's tables: a 1-based index, or a `name`.
fn element<'a>(mut items: Vec<&'a mut dyn TableLike>, part: &str) -> Result<&'a mut dyn TableLike, String> {
    let count = items.len();
    let at = match part.parse::<usize>() {
        Ok(0) => return Err("indices start at 1 (step.1 is the first [[step]])".into()),
        Ok(n) if n <= count => n - 1,
        Ok(n) => return Err(format!("there are {count} of them, not {n}")),
        Err(_) => items
            .iter()
            .position(|t| t.get("name").and_then(Item::as_str) == Some(part))
            .ok_or_else(|| format!("none is named {part:?}"))?,
    };
    Ok(items.swap_remove(at))
}

/// `value` as the TOML type of `existing` (a string when there is none and it is not a
/// plain integer or boolean).
fn typed_like(existing: Option<&Item>, value: &str) -> Result<Value, String> {
    let integer = || value.parse::<i64>().map(Value::from).map_err(|_| format!("{value:?} is not an integer"));
    let boolean = || value.parse::<bool>().map(Value::from).map_err(|_| format!("{value:?} is not true or false"));
    match existing {
        Some(Item::Value(Value::Integer(_))) => integer(),
        Some(Item::Value(Value::Boolean(_))) => boolean(),
        Some(Item::Value(Value::Float(_))) => value.parse::<f64>().map(Value::from).map_err(|_| format!("{value:?} is not a number")),
        Some(Item::Value(Value::String(_))) => Ok(Value::from(value)),
        Some(Item::None) | None => Ok(integer().or_else(|_| boolean()).unwrap_or_else(|_| Value::from(value))),
        Some(_) => Err("is a table or an array, not a value".into()),
    }
}

/// The values of `text`, and whether they are sizes with units.
fn parse_values(text: &str) -> Result<(Vec<String>, bool), String> {
    if text.is_empty() {
        return Err("no values".into());
    }
    let Some((range, step)) = text.split_once(':').filter(|(r, _)| r.contains("..")) else {
        let values: Vec<String> = text.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            return Err(format!("{text:?}: an empty value in the list"));
        }
        let sizes = values.iter().any(|v| !v.chars().all(|c| c.is_ascii_digit()));
        return Ok((values, sizes));
    };
    let (lo_text, hi_text) = range.split_once("..").expect("checked above");
    let (lo, hi) = (parse_size(lo_text)?, parse_size(hi_text)?);
    if lo > hi {
        return Err(format!("{range}: the range ends below where it starts"));
    }
    let sizes = !lo_text.trim().chars().all(|c| c.is_ascii_digit());
    let mut numbers = Vec::new();
    let step = step.trim();
    if let Some(f) = step.strip_prefix('x') {
        let factor: u64 = f.trim().parse().map_err(|_| format!(":{step}: the factor after x is a whole number, such as x2"))?;
        if factor < 2 || lo == 0 {
            return Err(format!(":{step}: a range that multiplies needs a factor of 2 or more and a start above 0"));
        }
        let mut v = lo;
        while v <= hi && numbers.len() <= MAX_POINTS {
            numbers.push(v);
            let Some(next) = v.checked_mul(factor) else { break };
            v = next;
        }
    } else if let Some(s) = step.strip_prefix('+') {
        let add = parse_size(s)?;
        if add == 0 {
            return Err(format!(":{step}: the step must be above 0"));
        }
        let mut v = lo;
        while v <= hi && numbers.len() <= MAX_POINTS {
            numbers.push(v);
            let Some(next) = v.checked_add(add) else { break };
            v = next;
        }
    } else {
        return Err(format!(":{step}: expected :xF (multiply) or :+STEP (add) after the range"));
    }
    if numbers.len() > MAX_POINTS {
        return Err(format!("{text}: more than {} values", thousands(MAX_POINTS)));
    }
    let values = numbers.iter().map(|&n| if sizes { size_text(n) } else { n.to_string() }).collect();
    Ok((values, sizes))
}

fn thousands(n: usize) -> String {
    hotplug_core::size::thousands(n as u64)
}

/// A size as a config holds it, in the largest binary unit that divides it (`1536MiB`).
pub fn size_text(bytes: u64) -> String {
    const UNITS: [(&str, u32); 6] = [("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Every combination of the varies' values, the first vary's values changing slowest.
pub fn grid(varies: &[Vary]) -> Result<Vec<Vec<String>>, String> {
    let count = varies.iter().try_fold(1usize, |n, v| n.checked_mul(v.values.len())).unwrap_or(usize::MAX);
    if count > MAX_POINTS {
        return Err(format!(
            "the sweep has {} points; at most {} (fewer values, or a coarser step)",
            thousands(count),
            thousands(MAX_POINTS)
        ));
    }
    let mut points = vec![Vec::new()];
    for v in varies {
        points = points.into_iter().flat_map(|p| v.values.iter().map(move |x| [p.clone(), vec![x.clone()]].concat())).collect();
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_lists_and_their_text() {
        let v = Vary::parse("step.2.size=1GiB..16GiB:x2").unwrap();
        assert_eq!(v.values, ["1GiB", "2GiB", "4GiB", "8GiB", "16GiB"]);
        assert_eq!(v.numbers.as_deref(), Some(&[1 << 30, 2 << 30, 4 << 30, 8 << 30, 16 << 30][..]));
        assert!(v.sizes);
        let v = Vary::parse("machine.memory_block_size=128MiB,2GiB").unwrap();
        assert_eq!(v.values, ["128MiB", "2GiB"]);
        let v = Vary::parse("machine.auto_movable_ratio=100..400:+100").unwrap();
        assert_eq!(v.values, ["100", "200", "300", "400"]);
        assert!(!v.sizes);
        // 1.5 GiB steps: the largest unit that divides each value.
        assert_eq!(Vary::parse("a=1536MiB..3GiB:+1536MiB").unwrap().values, ["1536MiB", "3GiB"]);
        assert_eq!(Vary::parse("a=online,offline").unwrap().numbers, None);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("step.2.size", "expected KEY=VALUES"),
            ("step..size=1", "dotted path"),
            ("a=4GiB..1GiB:x2", "ends below"),
            ("a=1GiB..4GiB:x1", "factor of 2 or more"),
            ("a=1GiB..4GiB:y", "expected :xF"),
            ("a=1,,2", "empty value"),
            ("a=1..100000:+1", "more than 10,000"),
            ("a=1..18446744073709551615:x2", ""),
        ] {
            match Vary::parse(spec) {
                Err(e) => assert!(e.contains(says), "{spec}: {e}"),
                Ok(v) => assert!(says.is_empty() && v.values.len() == 64, "{spec}: {v:?}"),
            }
        }
    }

    #[test]
    fn apply_finds_steps_by_index_and_strategies_by_name() {
        let mut doc: DocumentMut = "[machine]\nauto_movable_ratio = 301 # a comment\n[[machine.node]]\nboot = [{ start = \"0\", size = \"1GiB\" }]\n[[strategy]]\nname = \"mom\"\noptions = { mode = \"a\" }\n[[step]]\nsize = \"1GiB\"\n[[step]]\nsize = \"2GiB\"\n"
            .parse()
            .unwrap();
        Vary::parse("step.2.size=8GiB").unwrap().apply(&mut doc, "8GiB").unwrap();
        Vary::parse("machine.auto_movable_ratio=600").unwrap().apply(&mut doc, "600").unwrap();
        Vary::parse("strategy.mom.options.mode=b").unwrap().apply(&mut doc, "b").unwrap();
        Vary::parse("machine.memory_block_size=2GiB").unwrap().apply(&mut doc, "2GiB").unwrap();
        Vary::parse("machine.node.1.boot.1.size=4GiB").unwrap().apply(&mut doc, "4GiB").unwrap();
        Vary::parse("step.1.size,step.2.size=16GiB").unwrap().apply(&mut doc, "16GiB").unwrap();
        let text = doc.to_string();
        // Edited in place: the other lines, the comment and the layout are as written.
        assert!(text.contains("auto_movable_ratio = 600 # a comment\n"), "{text}");
        assert!(text.contains("boot = [{ start = \"0\", size = \"4GiB\" }]"), "{text}");
        assert!(text.contains("options = { mode = \"b\" }"), "{text}");
        assert!(text.contains("memory_block_size = \"2GiB\""), "{text}");
        assert_eq!(text.matches("size = \"16GiB\"").count(), 2, "{text}");
        for (spec, says) in [
            ("step.3.size=1", "there are 2 of them, not 3"),
            ("step.0.size=1", "indices start at 1"),
            ("strategy.base.plugin=x", "none is named \"base\""),
            ("machine.auto_movable_ratio=lots", "not an integer"),
            ("nothing.here=1", "no such key"),
            ("step.1=1", "names an array element"),
            ("machine.auto_movable_ratio.x=1", "is a value, not a table"),
            ("step.1.size,step.5.size=1", "step.5: there are 2 of them"),
        ] {
            let v = Vary::parse(spec).unwrap();
            let e = v.apply(&mut doc, &v.values[0].clone()).unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn the_grid_is_every_combination() {
        let a = Vary::parse("a=1,2").unwrap();
        let b = Vary::parse("b=x,y,z").unwrap();
        let g = grid(&[a, b]).unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(g[0], ["1", "x"]);
        assert_eq!(g[5], ["2", "z"]);
        let big = Vary::parse("c=1..200:+1").unwrap();
        assert!(grid(&[big.clone(), big]).unwrap_err().contains("40,000 points"));
    }
}
