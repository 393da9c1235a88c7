//! Parsing a strategy's `options` table, with errors that name the key.

use serde::de::DeserializeOwned;

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::types::PluginError;

/// Parse `text` (the `[[strategy]]` table's `options`, as TOML) into `T`.
///
/// Use `#[serde(deny_unknown_fields)]` on `T` so a typo is refused. The error names the
/// offending key, e.g. `option "mode": unknown variant "fast", expected "strict" or "force"`.
pub fn parse<T: DeserializeOwned>(plugin: &str, text: &str) -> Result<T, PluginError> {
    toml::from_str(text).map_err(|e| {
        let key = e.span().and_then(|span| key_at(text, span.start));
        let message = e.message().trim().replace('\n', " ");
        match key {
            Some(key) => PluginError::msg(format!("{plugin} option \"{key}\": {message}")),
            None => PluginError::msg(format!("{plugin} options: {message}")),
        }
    })
}

/// The key of the `key = value` line holding byte `offset` of `text`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty()).then(|| key.to_string())
}

/// A size option (`OptionType::SIZE`): bytes as an integer, or text such as `"64MiB"` or
/// `"0x200000"`, read with [`crate::size::parse_size`], the parser the host checks the
/// option with. Use it as a field of your options struct: `headroom: Option<Size>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: an integer, hex like \"0x100000000\", or \"4GiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v).map(Size).map_err(|_| E::custom(format!("negative size {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                crate::size::parse_size(v).map(Size).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Opts {
        count: Option<u32>,
    }

    #[test]
    fn type_errors_name_the_key() {
        let err = parse::<Opts>("p", "count = \"zero\"\n").unwrap_err();
        assert!(err.message.starts_with("p option \"count\":"), "{}", err.message);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse::<Opts>("p", "colour = 1\n").unwrap_err();
        assert!(err.message.contains("colour"), "{}", err.message);
    }
}
