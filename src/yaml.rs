//! What the configuration file and the web configuration file share: YAML read with the
//! key path of every error, and one error type that names the file and the key.

use std::path::{Path, PathBuf};

/// An error in a configuration file, in the user's terms: which file, which key.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    // The cause is the error's source: `{:#}` printing shows it once.
    #[error("cannot read {kind} {}", path.display())]
    Read {
        kind: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{kind} {}: key {key}: {message}", path.display())]
    Invalid {
        kind: &'static str,
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// A file being read and validated: the one thing every validator needs to report an
/// error.
#[derive(Clone, Copy, Debug)]
pub struct File<'a> {
    /// "config file", "web config file".
    pub kind: &'static str,
    pub path: &'a Path,
}

impl File<'_> {
    /// The file's text.
    pub fn read(&self) -> Result<String, FileError> {
        std::fs::read_to_string(self.path).map_err(|source| FileError::Read {
            kind: self.kind,
            path: self.path.to_owned(),
            source,
        })
    }

    /// An error at `key` (a path such as `pipefy.auth.token_file`).
    pub fn err(&self, key: impl Into<String>, message: impl Into<String>) -> FileError {
        FileError::Invalid {
            kind: self.kind,
            path: self.path.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// `text` deserialized as `T`, or an error naming the key.
    pub fn parse<T: serde::de::DeserializeOwned>(&self, text: &str) -> Result<T, FileError> {
        parse_yaml(text).map_err(|(key, message)| self.err(key, message))
    }
}

/// Deserializes YAML with serde's path tracking: on error, the key path
/// (`pipefy.auth.token_file`, `(top level)`) and the message without serde_yaml_ng's own
/// path prefix. An empty document is read as `{}`.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, (String, String)> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = err.path().to_string();
        let key = if key == "." {
            "(top level)".to_owned()
        } else {
            key
        };
        let message = err.into_inner().to_string();
        let message = match message.split_once(": ") {
            Some((head, tail)) if key.starts_with(head) => tail.to_owned(),
            _ => message,
        };
        (key, message)
    })
}
