//! Sizes as people type them: integers, hex (`0x1_0000_0000`) or binary units (`128MiB`,
//! `4 GiB`, `1PiB`). One parser for the host's config and for plugins' `SIZE` options, so
//! a value the host accepts for an option declared `OptionType::SIZE` is one the plugin's
//! own parser accepts too.

const UNITS: &[(&str, u32)] = &[("KiB", 10), ("MiB", 20), ("GiB", 30), ("TiB", 40), ("PiB", 50), ("EiB", 60), ("B", 0)];

/// Parse `text` as a size; the error says what is wrong in words a user understands.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty size".into());
    }
    if t.starts_with('-') {
        return Err(format!("negative size \"{text}\""));
    }
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        let digits: String = hex.chars().filter(|&c| c != '_').collect();
        return u64::from_str_radix(&digits, 16).map_err(|e| match e.kind() {
            std::num::IntErrorKind::PosOverflow => format!("size \"{text}\" does not fit in 64 bits"),
            _ => format!("invalid hex size \"{text}\""),
        });
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '_')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let digits: String = number.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() {
        return Err(format!("invalid size \"{text}\": expected a number, hex, or a number with KiB, MiB, GiB, TiB or PiB"));
    }
    let value: u64 = digits.parse().map_err(|e: std::num::ParseIntError| match e.kind() {
        std::num::IntErrorKind::PosOverflow => format!("size \"{text}\" does not fit in 64 bits"),
        _ => format!("invalid size \"{text}\""),
    })?;
    let unit = unit.trim();
    if unit.is_empty() {
        return Ok(value);
    }
    let shift = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, shift)| shift)
        .ok_or_else(|| format!("unknown unit \"{unit}\" in \"{text}\": use B, KiB, MiB, GiB, TiB, PiB or EiB"))?;
    value.checked_mul(1u64 << shift).ok_or_else(|| format!("size \"{text}\" does not fit in 64 bits"))
}

/// A size as reports and notes print it: the largest binary unit that divides `bytes`
/// exactly, digits grouped by thousands (`"128 MiB"`, `"15,260 MiB"`, `"4,097 B"`). Exact
/// rather than rounded, because a kernel person compares these against what the kernel
/// prints; one function so a plugin's note reads like the host's report.
pub fn format_size(bytes: u64) -> String {
    for (name, shift) in [("EiB", 60u32), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        let unit = 1u64 << shift;
        if bytes >= unit && bytes % unit == 0 {
            return format!("{} {name}", thousands(bytes / unit));
        }
    }
    format!("{} B", thousands(bytes))
}

/// `4194304` as `"4,194,304"`: every count in a report, so long numbers read at a glance.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `"1 block"`, `"1,024 blocks"`: a count with its noun, singular only for one, in the
/// style of [`thousands`] (nouns that take a plain `s`).
pub fn count_of(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(n))
    }
}

/// `"16 GiB (4,194,304 pages)"`: a size where the page count matters too (memmap,
/// device pages), in one style. The size saturates at 2^64 - 1 bytes.
pub fn format_pages(pages: u64, page_size: u64) -> String {
    let noun = if pages == 1 { "page" } else { "pages" };
    format!("{} ({} {noun})", format_size(pages.saturating_mul(page_size)), thousands(pages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_sizes_in_one_style() {
        // Exact units, grouped digits: 3 << 29 is 1,536 MiB, not 1.5 GiB.
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(4097), "4,097 B");
        assert_eq!(format_size(128 << 20), "128 MiB");
        assert_eq!(format_size(3 << 29), "1,536 MiB");
        assert_eq!(format_size(u64::MAX), "18,446,744,073,709,551,615 B");
        assert_eq!(format_size(1 << 63), "8 EiB");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(4_194_304), "4,194,304");
        assert_eq!(count_of(0, "block"), "0 blocks");
        assert_eq!(count_of(1, "block"), "1 block");
        assert_eq!(count_of(1024, "event"), "1,024 events");
        // 16 GiB of 4 KiB pages is 2^34 / 2^12 = 4,194,304 pages.
        assert_eq!(format_pages(4_194_304, 4096), "16 GiB (4,194,304 pages)");
        assert_eq!(format_pages(1, 4096), "4 KiB (1 page)");
    }

    #[test]
    fn parses_units_hex_and_plain() {
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2PiB"), Ok(2 << 50));
        assert_eq!(parse_size("0x1_0000_0000"), Ok(1 << 32));
        assert_eq!(parse_size("4096"), Ok(4096));
    }

    #[test]
    fn refuses_bad_sizes() {
        assert!(parse_size("-1GiB").unwrap_err().contains("negative"));
        assert!(parse_size("16EiB").unwrap_err().contains("64 bits"));
        assert!(parse_size("0x1_0000_0000_0000_0000").unwrap_err().contains("64 bits"));
        assert!(parse_size("4GB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("GiB").unwrap_err().contains("invalid size"));
        assert!(parse_size("").is_err());
    }
}
