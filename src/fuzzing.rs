//! Entry points for the coverage-guided fuzz targets in `fuzz/` (feature `fuzzing`): the
//! three places where bytes from a file or the network become data. Each must return an
//! error, never panic, whatever the input.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::collectors::{Collector, Context, RawCollectors, Target};
use crate::config::Config;
use crate::exposition::Encoder;
use crate::pipefy::model::{split, GraphQlResponse};
use crate::pipefy::query::document;
use crate::snapshot::{merge, OrgEntry, Outcome, Snapshot};
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
    for collector in collectors() {
        let fields = collector.fields(&orgs);
        let aliases = document(collector.operation(), &fields).aliases;
        let answers = split(&response, &aliases).into_iter().collect();
        let outcomes = collector
            .decode(&orgs, &answers)
            .into_iter()
            .map(|d| Outcome {
                org_id: d.org_id,
                collector: collector.name(),
                stale_after: collector.schedule().stale_after,
                result: d.result,
            })
            .collect();
        let entries = orgs
            .iter()
            .map(|o| OrgEntry {
                id: o.id.clone(),
                ..OrgEntry::default()
            })
            .collect();
        let now = SystemTime::now();
        let snapshot = merge(&Snapshot::default(), entries, outcomes, now);
        let mut out = String::new();
        collector.encode(&snapshot, now, &mut Encoder::new(&mut out));
    }
}

/// Every collector, with the options that change what it asks for switched on.
fn collectors() -> Vec<Arc<dyn Collector>> {
    let yaml = "api_usage: {by_operation: true}\nai_credits: {source: per_organization}\n";
    let mut all = crate::yaml::parse_yaml::<RawCollectors>(yaml)
        .ok()
        .and_then(|raw| raw.build(&Context::default()).ok())
        .unwrap_or_default();
    all.extend(
        RawCollectors::default()
            .build(&Context::default())
            .unwrap_or_default(),
    );
    all
}
