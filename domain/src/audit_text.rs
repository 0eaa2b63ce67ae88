//! The one way text enters an audit row.
//!
//! Everything a caller can choose — paths, tool names, user agents, JSON-RPC fields,
//! header values, attempted client ids — reaches the audit trail through [`AuditText`],
//! whose constructor makes it storable on both backends and bounded in size:
//!
//! - NUL, which PostgreSQL refuses in text and which once stalled the writer, and every
//!   other control character are escaped as `\u{..}`, as are the invisible characters
//!   that make a line read differently from what it holds (bidirectional overrides,
//!   zero-width characters). A backslash is doubled, so an escape cannot be forged.
//! - Bytes that are not UTF-8 become U+FFFD.
//! - The result is at most `cap` bytes; a cut value ends with [`TRUNCATED`], so a reader
//!   knows it saw a prefix.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Ends a value that was cut to its cap.
pub const TRUNCATED: &str = "…[truncated]";

/// Caps, in bytes, of what a caller controls.
pub mod cap {
    pub const PATH: usize = 2048;
    pub const USER_AGENT: usize = 512;
    pub const TOOL: usize = 128;
    pub const METHOD: usize = 32;
    /// Ids: clients, profiles, credentials, products, people, attempted client ids.
    pub const ID: usize = 128;
    pub const ENDPOINT: usize = 512;
    pub const ADDRESS: usize = 64;
}

/// Text that is safe to store in an audit row. Only [`AuditText::new`] and
/// [`AuditText::from_bytes`] make one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuditText(String);

impl AuditText {
    pub fn new(raw: &str, cap: usize) -> Self {
        // The common case, an id or a plain path, is copied as it is.
        if raw.len() <= cap && raw.chars().all(|c| !needs_escape(c)) {
            return Self(raw.to_owned());
        }
        let mut out = String::with_capacity(raw.len().min(cap));
        for c in raw.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
                c => out.push(c),
            }
            if out.len() > cap {
                break;
            }
        }
        if out.len() > cap {
            let mut end = cap.saturating_sub(TRUNCATED.len());
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
            out.push_str(TRUNCATED);
        }
        Self(out)
    }

    /// Bytes as a caller sent them (a header value, say): not UTF-8 becomes U+FFFD.
    pub fn from_bytes(raw: &[u8], cap: usize) -> Self {
        Self::new(&String::from_utf8_lossy(raw), cap)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_truncated(&self) -> bool {
        self.0.ends_with(TRUNCATED)
    }
}

impl fmt::Display for AuditText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters that never reach a row as themselves.
fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_kept() {
        assert_eq!(AuditText::new("/accounts/acc-1", cap::PATH).as_str(), "/accounts/acc-1");
        assert_eq!(AuditText::new("cliente ñ 日本", cap::PATH).as_str(), "cliente ñ 日本");
    }

    #[test]
    fn nul_controls_and_invisible_characters_are_escaped() {
        assert_eq!(AuditText::new("a\0b", 64).as_str(), "a\\u{0}b");
        assert_eq!(AuditText::new("line\r\nnext\x1b[31m", 64).as_str(), "line\\u{d}\\u{a}next\\u{1b}[31m");
        assert_eq!(AuditText::new("evil\u{202E}txt.exe", 64).as_str(), "evil\\u{202e}txt.exe");
        // A literal backslash cannot pose as an escape.
        assert_eq!(AuditText::new("\\u{0}", 64).as_str(), "\\\\u{0}");
        assert!(!AuditText::new("a\0b", 64).as_str().contains('\0'));
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(AuditText::from_bytes(b"ok\xff\xfe", 64).as_str(), "ok\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary_and_marked() {
        let long = "é".repeat(5000);
        let t = AuditText::new(&long, cap::USER_AGENT);
        assert!(t.as_str().len() <= cap::USER_AGENT, "{}", t.as_str().len());
        assert!(t.is_truncated());
        let escaped = AuditText::new(&"\0".repeat(5000), cap::PATH);
        assert!(escaped.as_str().len() <= cap::PATH);
        assert!(escaped.is_truncated());
        let exact = "x".repeat(cap::TOOL);
        assert_eq!(AuditText::new(&exact, cap::TOOL).as_str(), exact, "a value at its cap is whole");
    }
}
