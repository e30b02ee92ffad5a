//! HTML escaping for text that may come from the network.

use std::fmt;

/// Writes its text with `&`, `<`, `>`, `"` and `'` escaped, safe both in
/// element content and in quoted attribute values.
pub(crate) struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            let entity = match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            };
            f.write_str(entity)?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped() {
        let hostile = r#"<script>alert("x")</script> & 'quoted' é"#;
        assert_eq!(
            Escaped(hostile).to_string(),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39; é"
        );
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(Escaped("ap-south").to_string(), "ap-south");
        assert_eq!(Escaped("").to_string(), "");
    }
}
