//! Why an organization is stale or failing, as the landing page shows it: the last error
//! of a failing collector, under the status.
//!
//! The errors come from Pipefy's answers and from the HTTP client, and the exporter puts
//! no secret in them (`Secret` has no `Display`). The page is readable by whoever can
//! reach the port, though, so what it shows is masked once more, here: anything shaped
//! like a credential (a bearer token, the user part of a URL, a `token=` or `secret=`
//! parameter) is replaced by `<redacted>` before it is escaped and shown.

use super::{escape_html, Row};

/// Characters shown under the status; the whole (masked) text is the cell's tooltip.
const SHOWN_CHARS: usize = 160;
/// What stands in for a masked value.
const REDACTED: &str = "<redacted>";
/// Parameter names whose value is masked, when a name contains one of them.
const SECRET_NAMES: &[&str] = &["token", "secret", "password", "passwd", "key", "auth"];

/// A failure's reason, masked: `full` for the tooltip, a shortened copy to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reason {
    pub(crate) full: String,
    shown: String,
}

impl Reason {
    /// `<small class="reason">…</small>`, escaped.
    pub(crate) fn html(&self) -> String {
        format!(
            "<small class=\"reason\">{}</small>",
            escape_html(&self.shown)
        )
    }
}

/// The reason of `row`'s failures, if one of its collectors failed.
pub(crate) fn of(row: &Row) -> Option<Reason> {
    let full = redact(row.error.as_deref()?);
    let shown = match full.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &full[..cut]),
        None => full.clone(),
    };
    Some(Reason { full, shown })
}

/// `text` with every credential-shaped part replaced by `<redacted>`.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(len) = bearer_prefix(rest) {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            let token = word_len(rest);
            if token > 0 {
                out.push_str(REDACTED);
                rest = &rest[token..];
            }
        } else if let Some(after) = rest.strip_prefix("://") {
            out.push_str("://");
            rest = after;
            // The authority ends at the path, the query, or a space.
            let authority = rest
                .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
                .unwrap_or(rest.len());
            if let Some(at) = rest[..authority].rfind('@') {
                out.push_str(REDACTED);
                rest = &rest[at..];
            }
        } else if let Some(name) = secret_parameter(rest) {
            out.push_str(&rest[..name]);
            rest = &rest[name..];
            let value = rest
                .find(['&', ',', ';', '"', '\''])
                .map_or_else(|| word_len(rest), |end| end.min(word_len(rest)));
            if value > 0 {
                out.push_str(REDACTED);
                rest = &rest[value..];
            }
        } else {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The length of `Bearer ` (any case, one or more spaces) at the start of `text`.
fn bearer_prefix(text: &str) -> Option<usize> {
    let head = text.get(..6)?;
    if !head.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let spaces = text[6..].len() - text[6..].trim_start_matches(' ').len();
    (spaces > 0).then_some(6 + spaces)
}

/// The length of the run of non-space characters at the start of `text`.
fn word_len(text: &str) -> usize {
    text.find(char::is_whitespace).unwrap_or(text.len())
}

/// At the start of a parameter `name=` whose name names a secret, the length of
/// `name=`.
fn secret_parameter(text: &str) -> Option<usize> {
    let name_len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(text.len());
    if name_len == 0 || !text[name_len..].starts_with('=') {
        return None;
    }
    let name = text[..name_len].to_ascii_lowercase();
    SECRET_NAMES
        .iter()
        .any(|secret| name.contains(secret))
        .then_some(name_len + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_the_rest_kept() {
        for (text, masked) in [
            (
                "discovery failed: unauthorized (HTTP 401): check the token or service account",
                "discovery failed: unauthorized (HTTP 401): check the token or service account",
            ),
            (
                "request failed: sent Authorization: Bearer pat-7e1b9c0d-secret-token to Pipefy",
                "request failed: sent Authorization: Bearer <redacted> to Pipefy",
            ),
            ("bearer   abc.def", "bearer   <redacted>"),
            (
                "could not connect: https://user:s3cret@api.example/graphql refused",
                "could not connect: https://<redacted>@api.example/graphql refused",
            ),
            (
                "GET https://auth.example/oauth/token?client_secret=cs-4f2a&grant_type=x failed",
                "GET https://auth.example/oauth/token?client_secret=<redacted>&grant_type=x failed",
            ),
            (
                "access_token=abc, api_key=k1; password='p w'",
                "access_token=<redacted>, api_key=<redacted>; password='p w'",
            ),
            // A word that merely contains "token" is no parameter.
            (
                "token_attribution: Pipefy returned an error",
                "token_attribution: Pipefy returned an error",
            ),
            (
                "Café \"Monk's\" bot: ünïcode",
                "Café \"Monk's\" bot: ünïcode",
            ),
        ] {
            assert_eq!(redact(text), masked, "{text}");
        }
    }

    #[test]
    fn long_reasons_are_shortened_and_escaped() {
        let row = |error: &str| Row {
            id: "1".into(),
            name: "A".into(),
            status: super::super::Status::Failing { age: None },
            error: Some(error.into()),
            cells: vec![],
        };
        let long = "é".repeat(200);
        let reason = of(&row(&long)).unwrap();
        assert_eq!(reason.full, long);
        assert_eq!(
            reason.html(),
            format!("<small class=\"reason\">{}…</small>", "é".repeat(160))
        );
        assert_eq!(
            of(&row("<b> & Bearer x")).unwrap().html(),
            "<small class=\"reason\">&lt;b&gt; &amp; Bearer &lt;redacted&gt;</small>"
        );
    }
}
