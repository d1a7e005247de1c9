//! Entry points for the coverage-guided fuzz targets in `fuzz/` (feature `fuzzing`): the
//! three places where bytes from a file or the network become data. Each must return an
//! error, never panic, whatever the input.

use std::path::Path;

use crate::collectors::{decode_and_render, every_variant, Target};
use crate::config::Config;
use crate::pipefy::model::{alias_outcome, Answer, GraphQlResponse};
use crate::pipefy::query::document;
use crate::pipefy::Answers;
use crate::web::WebConfig;

/// The configuration file parser and validator. Secrets come from a fake environment,
/// so a valid file needs no secret file.
pub fn config(text: &str) {
    let _ = Config::from_yaml(text, Path::new("fuzz.yml"), &|_| Some("token".to_owned()));
}

/// The web configuration parser. Certificate paths resolve under a directory that does
/// not exist, so the fuzzer explores the parser, not the file system.
pub fn web_config(text: &str) {
    let _ = WebConfig::from_yaml(text, Path::new("/nonexistent/fuzz/web.yml"));
}

/// A GraphQL response body, decoded as the answer to every collector's request (with
/// every option that changes a request switched on) for three organizations, merged
/// into a snapshot and rendered.
pub fn graphql_response(body: &[u8]) {
    let Ok(response) = serde_json::from_slice::<GraphQlResponse>(body) else {
        return;
    };
    let orgs: Vec<Target> = ["2", "300", "4242"]
        .iter()
        .map(|id| Target {
            id: (*id).to_owned(),
            uuid: Some(format!("u{id}")),
        })
        .collect();
    for collector in every_variant() {
        let fields = collector.fields(&orgs);
        let aliases = document(collector.operation(), &fields).aliases;
        // Each alias's outcome filed under its key, as the client does.
        let answers: Answers = aliases
            .iter()
            .map(|(alias, key)| {
                let outcome = alias_outcome(&response, alias, None).map(|v| v.map(Answer::from));
                (key.clone(), outcome)
            })
            .collect();
        decode_and_render(collector.as_ref(), &orgs, &answers);
    }
}
