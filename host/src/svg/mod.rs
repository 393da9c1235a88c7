//! Pictures as SVG text: the memory map (`--svg`) and the sweep's line chart (`--chart`).
//! Plain SVG 1.1 with no scripts and no external resources, so any browser, resvg or an
//! image viewer shows it; every element a test counts carries a class and `data-*`.

pub mod chart;
pub mod map;

use std::fmt::Write as _;

/// `text` made safe inside an XML element or quoted attribute: the five markup
/// characters escaped, and the characters XML 1.0 cannot hold at all (most controls)
/// replaced by `replacement`, since the text may be untrusted (a config's names, a
/// plugin's messages). One function for the SVG pictures and the JUnit report.
pub fn xml_escape(text: &str, replacement: char) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => out.push(replacement),
            c => out.push(c),
        }
    }
    out
}

/// Text made safe for an SVG text node or a quoted attribute (what XML cannot hold
/// becomes U+FFFD, which a picture shows as a visible mark).
pub fn escape(text: &str) -> String {
    xml_escape(text, '\u{fffd}')
}

/// An SVG document under construction: elements appended in drawing order.
pub struct Svg {
    body: String,
}

impl Svg {
    pub fn new() -> Svg {
        Svg { body: String::new() }
    }

    /// Raw markup (already escaped).
    pub fn raw(&mut self, markup: &str) {
        self.body.push_str(markup);
        self.body.push('\n');
    }

    /// A rectangle; `attrs` is extra markup such as `class="bar"` (already escaped).
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, attrs: &str) {
        let _ = writeln!(self.body, r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}" {attrs}/>"#);
    }

    /// A line of text, escaped here.
    pub fn text(&mut self, x: f64, y: f64, class: &str, text: &str) {
        let _ = writeln!(self.body, r#"<text x="{x:.1}" y="{y:.1}" class="{class}">{}</text>"#, escape(text));
    }

    /// The finished document, `width` by `height` pixels, with the style sheet given.
    pub fn finish(self, width: f64, height: f64, style: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\n<style>{style}</style>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n{}</svg>\n",
            self.body
        )
    }
}

impl Default for Svg {
    fn default() -> Self {
        Svg::new()
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_makes_names_safe_in_text_and_attributes() {
        assert_eq!(escape(r#"a<b>&"c"'d"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d");
        // A control character is not allowed in XML 1.0 even as a reference.
        assert_eq!(escape("x\u{1b}[31my"), "x\u{fffd}[31my");
    }
}
