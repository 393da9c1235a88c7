//! The model's words (ops, online types, policies) read from TOML by their names: the
//! model's own lists (`ALL`, `as_str`) are the only spelling, and an unknown word gets
//! the message serde gives an unknown enum variant ("unknown variant `x`, expected one of ...").

use serde::de::{Deserialize, Deserializer, Error};

use crate::model::policy::{AutoOnline, OnlinePolicy, OnlineType};
use crate::model::step::Op;
use crate::model::watermarks::Thp;

/// A string that must be one of `names`, turned into its value by `from_name`.
fn word<'de, D: Deserializer<'de>, T>(d: D, names: &[&'static str], from_name: fn(&str) -> Option<T>) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    from_name(&text).ok_or_else(|| D::Error::custom(format!("unknown variant `{text}`, expected {}", expected(names))))
}

/// The alternatives as serde words them for an unknown enum variant.
fn expected(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "there are no variants".to_string(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        all => format!("one of {}", all.join(", ")),
    }
}

pub fn op<'de, D: Deserializer<'de>>(d: D) -> Result<Op, D::Error> {
    word(d, &Op::ALL.map(Op::as_str), Op::from_name)
}

pub fn online_type<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OnlineType>, D::Error> {
    word(d, &OnlineType::ALL.map(OnlineType::as_str), OnlineType::from_name).map(Some)
}

pub fn auto_online<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AutoOnline>, D::Error> {
    word(d, &AutoOnline::ALL.map(AutoOnline::as_str), AutoOnline::from_name).map(Some)
}

pub fn online_policy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OnlinePolicy>, D::Error> {
    word(d, &OnlinePolicy::ALL.map(OnlinePolicy::as_str), OnlinePolicy::from_name).map(Some)
}

/// Whose build-time defaults a machine starts from (`[machine] defaults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defaults {
    /// The kernel's Kconfig defaults: MHP_DEFAULT_ONLINE_TYPE_OFFLINE,
    /// TRANSPARENT_HUGEPAGE_ALWAYS.
    Kernel,
    /// Debian's 6.12 config: MHP_DEFAULT_ONLINE_TYPE_ONLINE_AUTO (new blocks onlined
    /// at once), TRANSPARENT_HUGEPAGE_ALWAYS.
    Debian,
}

impl Defaults {
    pub const ALL: [Defaults; 2] = [Defaults::Kernel, Defaults::Debian];

    pub fn as_str(self) -> &'static str {
        match self {
            Defaults::Kernel => "kernel",
            Defaults::Debian => "debian",
        }
    }

    pub fn from_name(name: &str) -> Option<Defaults> {
        Defaults::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// auto_online_blocks under these defaults.
    pub fn auto_online_blocks(self) -> AutoOnline {
        match self {
            Defaults::Kernel => AutoOnline::Offline,
            Defaults::Debian => AutoOnline::Online,
        }
    }
}

pub fn defaults<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Defaults>, D::Error> {
    word(d, &Defaults::ALL.map(Defaults::as_str), Defaults::from_name).map(Some)
}

/// `kernelcore`/`movablecore`: `"2GiB"` (any size) or `"25%"` (of boot RAM, at most 100).
pub fn core_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<crate::model::boot::CoreSize>, D::Error> {
    use crate::model::boot::CoreSize;
    let text = String::deserialize(d)?;
    if let Some(p) = text.strip_suffix('%') {
        return match p.trim().parse::<u64>() {
            Ok(p) if p <= 100 => Ok(Some(CoreSize::Percent(p))),
            _ => Err(D::Error::custom(format!("{text:?}: a percentage from 0% to 100%"))),
        };
    }
    // The command line's own suffixes too (memparse: K, M, G, T, P, E).
    let last = text.chars().last().map(|c| c.to_ascii_uppercase());
    let spelled = match last {
        Some(c @ ('K' | 'M' | 'G' | 'T' | 'P' | 'E')) if text[..text.len() - 1].chars().all(|d| d.is_ascii_digit()) => {
            format!("{}{c}iB", &text[..text.len() - 1])
        }
        _ => text.clone(),
    };
    crate::config::parse_size(&spelled).map(|b| Some(CoreSize::Bytes(b))).map_err(D::Error::custom)
}

pub fn thp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Thp>, D::Error> {
    word(d, &Thp::ALL.map(Thp::as_str), Thp::from_name).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_words_read_as_serde_words_them() {
        assert_eq!(expected(&["a"]), "`a`");
        assert_eq!(expected(&["contig-zones", "auto-movable"]), "`contig-zones` or `auto-movable`");
        assert_eq!(expected(&["a", "b", "c"]), "one of `a`, `b`, `c`");
        let e = toml::from_str::<crate::config::ConfigFile>("[machine]\nonline_policy = \"fast\"\n").unwrap_err();
        assert!(e.message().contains("unknown variant `fast`, expected `contig-zones` or `auto-movable`"), "{}", e.message());
        let e = toml::from_str::<crate::config::ConfigFile>("[machine]\n[[step]]\nop = \"plug\"\n").unwrap_err();
        assert!(
            e.message().contains("expected one of `add`, `online`, `offline`, `remove`, `memremap`, `memunmap`, `grow`, `shrink`"),
            "{}",
            e.message()
        );
    }
}
