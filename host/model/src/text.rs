//! Text a plugin gave us (names, errors, notes, log lines), made safe to print.
//!
//! A plugin's strings reach the report, JSON and stderr. Left raw, a newline or an ANSI
//! escape in an error forges report lines, invalid UTF-8 breaks the JSON, and a 50 MB note
//! floods the terminal. Every plugin string passes [`plugin_text`] once, where it enters
//! the host: control characters escaped (`\n`, `\u{1b}`), invalid UTF-8 replaced (U+FFFD),
//! and at most [`MAX_PLUGIN_TEXT`] bytes kept, with the full length said.

/// The most bytes of one plugin string the host keeps.
pub const MAX_PLUGIN_TEXT: usize = 4096;

/// `bytes` as printable text of at most `max` bytes (plus the "... (N bytes)" marker).
pub fn plugin_text_bytes(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(max + 32));
    for c in text.chars() {
        let escaped: String = if c.is_control() { c.escape_default().collect() } else { c.to_string() };
        if out.len() + escaped.len() > max {
            out.push_str(&format!("... ({} bytes)", bytes.len()));
            return out;
        }
        out.push_str(&escaped);
    }
    out
}

/// [`plugin_text_bytes`] of a `&str` (an `RString` from a plugin: its bytes, as given).
pub fn plugin_text(text: &str, max: usize) -> String {
    plugin_text_bytes(text.as_bytes(), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_length_is_bounded() {
        assert_eq!(plugin_text("ok", 10), "ok");
        assert_eq!(plugin_text("a\nEPLUGIN forged", 100), "a\\nEPLUGIN forged");
        assert_eq!(plugin_text("\u{1b}[31mred", 100), "\\u{1b}[31mred");
        assert_eq!(plugin_text_bytes(b"bad \xff byte", 100), "bad \u{fffd} byte");
        // 10 bytes kept of 20, then the length of the whole.
        assert_eq!(plugin_text(&"y".repeat(20), 10), "yyyyyyyyyy... (20 bytes)");
        // An escape is kept whole or not at all.
        assert_eq!(plugin_text("abc\n", 4), "abc... (4 bytes)");
    }
}
