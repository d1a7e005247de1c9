//! What the configuration file and the web configuration file share: YAML read with the
//! key path and the line of every error, in the user's terms, and one error type that
//! names the file, the line and the key.
//!
//! serde's own messages speak Rust (`invalid type: integer `30`, expected usize`,
//! `expected struct RawPipefy`); [`humanize`] rewrites them into "expected ..., found
//! ...". The line is found again from the key path ([`locate`]) rather than taken from
//! the serde error, whose position is that of the enclosing table when a value is
//! rejected after it was read.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// An error in a configuration file, in the user's terms: which file, which line, which
/// key.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    // The cause is the error's source: `{:#}` printing shows it once.
    #[error("cannot read {kind} {}", path.display())]
    Read {
        kind: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{kind} {}: {}key {key}: {message}", path.display(), Line(*line))]
    Invalid {
        kind: &'static str,
        path: PathBuf,
        /// 1-based; `None` when the key is not in the file (e.g. a required key is
        /// missing from an empty file).
        line: Option<usize>,
        key: String,
        message: String,
    },
}

/// `line 3: ` or nothing.
struct Line(Option<usize>);

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, "line {line}: "),
            None => Ok(()),
        }
    }
}

/// A file being read and validated: the one thing every validator needs to report an
/// error.
#[derive(Clone, Copy, Debug)]
pub(crate) struct File<'a> {
    /// "config file", "web config file".
    pub kind: &'static str,
    pub path: &'a Path,
    /// The file's text, in which errors find the line of their key ("" before it is
    /// read).
    pub text: &'a str,
}

impl<'a> File<'a> {
    /// A file whose text is not read yet.
    pub(crate) fn new(kind: &'static str, path: &'a Path) -> Self {
        File {
            kind,
            path,
            text: "",
        }
    }

    /// The same file with its text, for errors to find their line in.
    pub(crate) fn with_text(self, text: &'a str) -> Self {
        File { text, ..self }
    }

    /// The file's text.
    pub(crate) fn read(&self) -> Result<String, FileError> {
        std::fs::read_to_string(self.path).map_err(|source| FileError::Read {
            kind: self.kind,
            path: self.path.to_owned(),
            source,
        })
    }

    /// An error at `key` (a path such as `pipefy.auth.token_file`), at the line of that
    /// key in the text, or of its nearest ancestor that is written.
    pub(crate) fn err(&self, key: impl Into<String>, message: impl Into<String>) -> FileError {
        let key = key.into();
        let line = locate(self.text, &key);
        self.err_at(key, line, message)
    }

    fn err_at(&self, key: String, line: Option<usize>, message: impl Into<String>) -> FileError {
        FileError::Invalid {
            kind: self.kind,
            path: self.path.to_owned(),
            line,
            key,
            message: message.into(),
        }
    }

    /// The text deserialized as `T`, or an error naming the key and its line.
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, FileError> {
        parse_yaml(self.text).map_err(|e| self.err_at(e.key, e.line, e.message))
    }

    /// A path as written in the file: relative paths are relative to the file's
    /// directory (as in the exporter-toolkit), not to the working directory.
    pub(crate) fn resolve(&self, file: &Path) -> PathBuf {
        resolve(self.path, file)
    }
}

/// `file` relative to the directory of `base` (a file), unless it is absolute.
pub(crate) fn resolve(base: &Path, file: &Path) -> PathBuf {
    match base.parent() {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file.to_owned(),
    }
}

/// A deserialization error: key path (`pipefy.auth.token_file`, `(top level)`), line and
/// message in the user's terms.
#[derive(Debug)]
pub(crate) struct YamlError {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

/// The key of an error that is about no key in particular.
const TOP_LEVEL: &str = "(top level)";

/// Deserializes YAML with serde's path tracking. An empty document is read as `{}`.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = err.path().to_string();
        let key = if key == "." {
            TOP_LEVEL.to_owned()
        } else {
            key
        };
        let err = err.into_inner();
        let reported = err.location().map(|l| l.line());
        let mut message = err.to_string();
        // serde_yaml_ng's own decorations: the path in front, the position behind.
        if let Some(l) = err.location() {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        // The path serde_yaml_ng puts in front is that of the enclosing table.
        if let Some((head, tail)) = message.split_once(": ") {
            if key.starts_with(head) {
                message = tail.to_owned();
            }
        }
        if is_syntax_error(&message) {
            // libyaml's own position is where the text stops making sense.
            return YamlError {
                key,
                line: reported,
                message: format!("invalid YAML: {}", strip_positions(&message)),
            };
        }
        // The key's own line when it can be found: serde_yaml_ng reports the start of
        // the enclosing table for a value rejected after it was read.
        let line = locate(text, &key).or(reported);
        YamlError {
            key,
            line,
            message: humanize(&message),
        }
    })
}

/// Whether serde_yaml_ng's message is libyaml's (the text is not YAML) rather than
/// about a value.
fn is_syntax_error(message: &str) -> bool {
    message.contains(", while ")
        || message.contains(" at line ")
        || [
            "unknown anchor",
            "recursion limit exceeded",
            "repetition limit exceeded",
        ]
        .iter()
        .any(|m| message.starts_with(m))
}

/// `message` without its ` at line 3 column 5` parts: the line is said once, in front.
fn strip_positions(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(" at line ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + " at line ".len()..];
        let after = after.trim_start_matches(|c: char| c.is_ascii_digit());
        let after = after.strip_prefix(" column ").unwrap_or(after);
        rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// One of a closed set of words (`period: last_month`): the error lists them, whatever
/// was written instead (a word, a number, a list).
pub(crate) fn one_of<'de, D: de::Deserializer<'de>, T: Copy>(
    d: D,
    choices: &'static [(&'static str, T)],
) -> Result<T, D::Error> {
    struct OneOf<T: 'static>(&'static [(&'static str, T)]);
    impl<T: Copy> Visitor<'_> for OneOf<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("one of ")?;
            for (i, (name, _)) in self.0.iter().enumerate() {
                f.write_str(if i == 0 { "" } else { ", " })?;
                f.write_str(name)?;
            }
            Ok(())
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            self.0
                .iter()
                .find(|(name, _)| *name == v)
                .map(|(_, value)| *value)
                .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(OneOf(choices))
}

// ---------------------------------------------------------------------------------
// serde's messages in the user's terms.

/// Rewrites serde's messages ("invalid type: integer `30`, expected usize") into
/// "expected a whole number, found 30". Messages of our own pass unchanged.
pub(crate) fn humanize(message: &str) -> String {
    let rewrite = |found: &str, expected: &str| {
        format!(
            "expected {}, found {}",
            expected_term(expected),
            found_term(found)
        )
    };
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.split_once(", expected ") {
                return rewrite(found, expected);
            }
        }
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return match rest.split_once(", expected ") {
            Some((name, expected)) => format!("unknown key {name}, expected {expected}"),
            None => match rest.split_once(", there are no fields") {
                Some((name, _)) => format!("unknown key {name}: this table takes no keys"),
                None => format!("unknown key {rest}"),
            },
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        if let Some((name, expected)) = rest.split_once(", expected ") {
            return format!("expected {expected}, found {name}");
        }
    }
    if let Some(name) = message.strip_prefix("missing field ") {
        return format!("required key {name} is missing");
    }
    if let Some(name) = message.strip_prefix("duplicate field ") {
        return format!("key {name} is given twice");
    }
    if message.starts_with("data did not match any variant") {
        return "this value has none of the accepted forms".to_owned();
    }
    message.to_owned()
}

/// serde's "expected ..." (a visitor's `expecting`) in the user's terms.
fn expected_term(expected: &str) -> String {
    match expected {
        "a boolean" => "true or false".into(),
        "a string" | "a borrowed string" | "a character" => "a string".into(),
        "path string" | "a borrowed path" => "a file path".into(),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "a list".into(),
        "a map" => "a table (key: value lines)".into(),
        "unit" => "nothing".into(),
        other if other.starts_with("struct ") => "a table of settings".into(),
        other if other.starts_with("enum ") || other.starts_with("variant ") => {
            "one of the documented values".into()
        }
        other if other.starts_with("tuple") => "a list".into(),
        other => other.into(),
    }
}

/// serde's `Unexpected` ("integer `30`", "string \"x\"", "map") in the user's terms.
fn found_term(found: &str) -> String {
    // "`99999999999999999999` as u128": serde_yaml_ng's words for a number too large.
    let quoted = |rest: &str| {
        let rest = rest.split_once("` as ").map_or(rest, |(number, _)| number);
        rest.trim_matches('`').to_owned()
    };
    for kind in ["integer ", "floating point ", "boolean ", "char "] {
        if let Some(rest) = found.strip_prefix(kind) {
            return quoted(rest);
        }
    }
    if let Some(rest) = found.strip_prefix("string ") {
        return rest.to_owned();
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a table".into(),
        "unit value" | "unit" | "Option value" => "an empty value".into(),
        "newtype struct" | "newtype variant" | "unit variant" | "tuple variant"
        | "struct variant" | "enum" => "a tagged value".into(),
        other => other.into(),
    }
}

// ---------------------------------------------------------------------------------
// The line of a key.

/// The 1-based line of `key` (`pipefy.auth`, `accounts[1].organizations[0]`) in `text`,
/// or of its nearest ancestor that is written; `None` for the top level or a text that
/// does not parse.
///
/// It reads the text again with a deserializer that follows the path and fails at its
/// end: serde_yaml_ng stamps that error with the position of the key (or, for a list
/// item, the item), the same parser and so the same lines as the error being reported.
/// Errors are rare, so the second read costs nothing that matters.
pub(crate) fn locate(text: &str, key: &str) -> Option<usize> {
    if key == TOP_LEVEL || key.is_empty() || key == "." {
        return None;
    }
    let text = if text.trim().is_empty() { "{}" } else { text };
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    match (Seek { rest: key }).deserialize(deserializer) {
        Err(err) if err.to_string().contains(FOUND) => err.location().map(|l| l.line()),
        Err(_) => None,
        // Not there: the line of the parent, if any.
        Ok(()) => parent(key).and_then(|p| locate(text, p)),
    }
}

/// `a.b` of `a.b.c` or `a.b[2]`; `None` for a top-level key.
fn parent(key: &str) -> Option<&str> {
    key.rfind(['.', '['])
        .map(|at| &key[..at])
        .filter(|p| !p.is_empty())
}

/// The message of the error [`Seek`] raises where it arrives.
const FOUND: &str = "pipefy-exporter: key located";

/// Follows `rest`, a key path relative to the value being deserialized.
struct Seek<'k> {
    rest: &'k str,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.rest.is_empty() {
            return Err(de::Error::custom(FOUND));
        }
        // Every entry is read, even after the key was passed: serde_yaml_ng rejects a
        // table left half read.
        while let Some(next) = map.next_key_seed(Key { rest: self.rest })? {
            match next {
                Some(rest) => map.next_value_seed(Seek { rest })?,
                None => map.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.rest.is_empty() {
            return Err(de::Error::custom(FOUND));
        }
        let step = self
            .rest
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)));
        let mut index = 0;
        loop {
            let more = match step {
                Some((wanted, rest)) if wanted == index => {
                    let rest = rest.strip_prefix('.').unwrap_or(rest);
                    seq.next_element_seed(Seek { rest })?.is_some()
                }
                _ => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }

    // A scalar: the path ends here (or goes nowhere).
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

impl Seek<'_> {
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        if self.rest.is_empty() {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

/// A key of a table on the way: `Some(rest of the path)` when it is the next step,
/// or an error at the key itself when it is the last.
struct Key<'k> {
    rest: &'k str,
}

impl<'de, 'k> DeserializeSeed<'de> for Key<'k> {
    type Value = Option<&'k str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'k> Visitor<'de> for Key<'k> {
    type Value = Option<&'k str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        match self.rest.strip_prefix(key) {
            Some("") => Err(E::custom(FOUND)),
            Some(rest) if rest.starts_with('.') => Ok(Some(&rest[1..])),
            Some(rest) if rest.starts_with('[') => Ok(Some(rest)),
            _ => Ok(None),
        }
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
pipefy:
  auth:
    token_file: /a
  timeout: 30
organizations: [2,
  3]
accounts:
  - name: a
    organizations:
      - 4
  - {name: b}
";

    #[test]
    fn keys_are_located_at_their_own_line() {
        for (key, line) in [
            ("pipefy", Some(1)),
            ("pipefy.auth", Some(2)),
            ("pipefy.auth.token_file", Some(3)),
            ("pipefy.timeout", Some(4)),
            ("organizations", Some(5)),
            ("organizations[0]", Some(5)),
            ("organizations[1]", Some(6)),
            ("accounts[0]", Some(8)),
            ("accounts[0].organizations[0]", Some(10)),
            ("accounts[1].name", Some(11)),
            // Not written: the nearest ancestor that is.
            ("pipefy.auth.service_account.client_id", Some(2)),
            ("accounts[1].auth", Some(11)),
            ("organizations[7]", Some(5)),
            ("collectors", None),
            ("(top level)", None),
        ] {
            assert_eq!(locate(TEXT, key), line, "{key}");
        }
        assert_eq!(locate("a: [\npipefy: 1\n", "pipefy"), None);
    }

    #[test]
    fn serde_messages_are_rewritten_in_the_users_terms() {
        for (serde, ours) in [
            (
                "invalid type: integer `30`, expected usize",
                "expected a whole number (0 or more), found 30",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "expected a whole number (0 or more), found -1",
            ),
            (
                "invalid type: floating point `2.5`, expected a boolean",
                "expected true or false, found 2.5",
            ),
            (
                "invalid type: string \"x\", expected struct RawPipefy",
                "expected a table of settings, found \"x\"",
            ),
            (
                "invalid type: map, expected a sequence",
                "expected a list, found a table",
            ),
            (
                "invalid type: sequence, expected a map",
                "expected a table (key: value lines), found a list",
            ),
            (
                "invalid type: unit value, expected a string",
                "expected a string, found an empty value",
            ),
            (
                "unknown field `x`, expected `a` or `b`",
                "unknown key `x`, expected `a` or `b`",
            ),
            (
                "unknown variant `y`, expected one of `a`, `b`",
                "expected one of `a`, `b`, found `y`",
            ),
            ("missing field `name`", "required key `name` is missing"),
            ("must be greater than 0", "must be greater than 0"),
        ] {
            assert_eq!(humanize(serde), ours, "{serde}");
        }
    }

    #[test]
    fn relative_paths_are_taken_from_the_files_directory() {
        let base = Path::new("/etc/pipefy/config.yml");
        assert_eq!(
            resolve(base, Path::new("token")),
            Path::new("/etc/pipefy/token")
        );
        assert_eq!(resolve(base, Path::new("/run/t")), Path::new("/run/t"));
        // A config file named without a directory: the working directory, as written.
        assert_eq!(
            resolve(Path::new("config.yml"), Path::new("token")),
            Path::new("token")
        );
    }
}
