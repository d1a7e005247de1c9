//! Sharding (`--shard`, `--total-shards`): three exporters split twenty organizations
//! between them, each organization exported by exactly one of them, and no exporter asks
//! Pipefy about another's organizations.

use std::collections::{BTreeMap, BTreeSet};

use pipefy_exporter::testing::Shard;
use pipefy_sim::SimData;

use crate::helpers::{pat_config, TestApp};

const ORGANIZATIONS: usize = 20;

/// The owner of ids 1000..=1019 among 3 shards, FNV-1a 64 of the id modulo 3, computed
/// independently of the exporter (with Python), so that a change of hash or of what is
/// hashed shows up here.
const EXPECTED: [&[u32]; 3] = [
    &[1002, 1004, 1007, 1009, 1010, 1013, 1016, 1019],
    &[1000, 1003, 1005, 1012, 1015, 1018],
    &[1001, 1006, 1008, 1011, 1014, 1017],
];

/// What one shard exported and asked the simulator about.
struct ShardRun {
    exported: BTreeSet<String>,
    /// Organization ids named in the requests: by `organization(id:)`, or by uuid in the
    /// usage-statistics fields (mapped back to the id).
    asked: BTreeSet<String>,
    /// `organizations` (discovery) root fields sent.
    discoveries: u64,
}

/// Runs shard `index` of 3 against its own simulator (same data for every shard, so that
/// each simulator's counters hold one shard's requests only), for one refresh.
async fn run_shard(index: u32, config: &str) -> ShardRun {
    let data = SimData::generated(ORGANIZATIONS);
    let id_of_uuid: BTreeMap<String, String> = data
        .orgs
        .values()
        .map(|org| (org.uuid.clone(), org.id.clone()))
        .collect();
    let app = TestApp::builder(data)
        .config(config)
        .shard(Shard::new(index, 3).unwrap())
        .spawn()
        .await;
    let m = app.cycles(1).await;
    let stats = app.sim.stats();

    assert_eq!(
        m.value("pipefy_exporter_shard_ordinal", &[]),
        f64::from(index)
    );
    assert_eq!(m.value("pipefy_exporter_total_shards", &[]), 3.0);
    let exported: BTreeSet<String> = m
        .find("pipefy_organization_info", &[])
        .iter()
        .map(|s| s.labels["organization_id"].clone())
        .collect();
    // Every series of the shard is about its own organizations.
    for sample in m.find("pipefy_up", &[]) {
        assert!(exported.contains(&sample.labels["organization_id"]));
        assert_eq!(sample.value, 1.0, "{sample:?}");
    }
    let mut asked: BTreeSet<String> = stats.organization_ids.keys().cloned().collect();
    for uuid in stats.organization_uuids.keys() {
        asked.insert(
            id_of_uuid
                .get(uuid)
                .unwrap_or_else(|| panic!("unknown uuid {uuid} sent"))
                .clone(),
        );
    }
    let discoveries = stats.root_fields.get("organizations").copied().unwrap_or(0);
    app.shutdown().await;
    ShardRun {
        exported,
        asked,
        discoveries,
    }
}

/// Each shard exports and asks about exactly its expected organizations, and together
/// they cover the twenty once.
async fn check_split(config: &str, discoveries_per_shard: u64) {
    let mut covered = BTreeMap::<String, u32>::new();
    for (index, expected) in (0..3).zip(EXPECTED) {
        let run = run_shard(index, config).await;
        let expected: BTreeSet<String> = expected.iter().map(u32::to_string).collect();
        assert_eq!(run.exported, expected, "shard {index} exports");
        assert_eq!(run.asked, expected, "shard {index} asks Pipefy about");
        assert_eq!(run.discoveries, discoveries_per_shard, "shard {index}");
        for id in run.exported {
            if let Some(other) = covered.insert(id.clone(), index) {
                panic!("organization {id} exported by shards {other} and {index}");
            }
        }
    }
    let all: BTreeSet<String> = (1000..1000 + ORGANIZATIONS)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(covered.keys().cloned().collect::<BTreeSet<_>>(), all);
}

#[tokio::test]
async fn three_shards_split_listed_organizations_once_each() {
    let ids: Vec<String> = (1000..1000 + ORGANIZATIONS)
        .map(|i| format!("\"{i}\""))
        .collect();
    let config = pat_config(&format!(
        "refresh_interval: 1h\norganizations: [{}]\n",
        ids.join(", ")
    ));
    // Listed organizations: no discovery at all.
    check_split(&config, 0).await;
}

#[tokio::test]
async fn three_shards_split_discovered_organizations_once_each() {
    // Every shard discovers (one `organizations` field each) and keeps its own.
    check_split(&pat_config("refresh_interval: 1h\n"), 1).await;
}
