//! Sharding (`--shard N --total-shards M`): several exporter processes split the
//! organizations between them, so that each organization is fetched, paid for and
//! exported by exactly one of them.
//!
//! An organization belongs to shard `fnv1a64(id) % total`, as kube-state-metrics first
//! assigned objects to shards (FNV-1a 64 of the object's UID modulo `--total-shards`).
//! The id is the decimal organization id as Pipefy writes it (`"300"`), so every
//! replica computes the same owner from the same shared configuration, without talking
//! to the others. kube-state-metrics has since moved to jump consistent hashing, which
//! moves fewer objects when the shard count changes; here a moved organization costs
//! one refresh on its new shard and nothing else, so plain modulo is kept for being
//! reproducible by hand (`printf 300 | fnv1a64`).

use std::fmt;

/// This process's part of the organizations: shard `index` of `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    total: u32,
}

impl Default for Shard {
    /// Not sharded: the one shard owns every organization.
    fn default() -> Self {
        Shard::ALL
    }
}

impl Shard {
    /// Not sharded: shard 0 of 1.
    pub const ALL: Shard = Shard { index: 0, total: 1 };

    /// Shard `index` (from 0) of `total`. The messages name the flags.
    pub fn new(index: u32, total: u32) -> Result<Shard, String> {
        if total == 0 {
            return Err("--total-shards must be at least 1, got 0".to_owned());
        }
        if index >= total {
            return Err(format!(
                "--shard must be less than --total-shards ({total}): shards are numbered from 0, got --shard={index}"
            ));
        }
        Ok(Shard { index, total })
    }

    /// This shard's number, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards share the organizations.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Whether this process shares the organizations with others.
    pub fn is_sharded(&self) -> bool {
        self.total > 1
    }

    /// Whether the organization with this id belongs to this shard.
    pub fn owns(&self, organization_id: &str) -> bool {
        owner(organization_id, self.total) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// The shard (of `total`, at least 1) that owns the organization with this id.
pub fn owner(organization_id: &str, total: u32) -> u32 {
    // The remainder is below `total`, a u32: the cast cannot truncate.
    (fnv1a64(organization_id.as_bytes()) % u64::from(total.max(1))) as u32
}

/// FNV-1a, 64 bits (Fowler, Noll, Vo; the `hash/fnv` `New64a` of Go's standard library).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the test vectors of the FNV reference code (Landon Curt Noll's
        // test_fnv.c, fnv1a_64 column) and Go's hash/fnv tests.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"ab"), 0x089c_4407_b545_986a);
        assert_eq!(fnv1a64(b"abc"), 0xe71f_a219_0541_574b);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_owner_is_the_hash_modulo_the_shard_count() {
        // fnv1a64("a") = 0xaf63dc4c8601ec8c = 12638187200555641996.
        assert_eq!(owner("a", 1), 0);
        assert_eq!(owner("a", 3), 1);
        assert_eq!(owner("a", 7), 5);
        assert!(Shard::ALL.owns("a") && Shard::ALL.owns("300"));
    }

    #[test]
    fn every_id_has_exactly_one_owner() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut counts = [0usize; 3];
        for id in 1..=300 {
            let id = id.to_string();
            let owners: Vec<u32> = shards
                .iter()
                .filter(|s| s.owns(&id))
                .map(Shard::index)
                .collect();
            assert_eq!(owners.len(), 1, "organization {id}: {owners:?}");
            counts[owners[0] as usize] += 1;
        }
        // A hash, not round robin: no shard is left empty by 300 consecutive ids.
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
        assert_eq!(counts.iter().sum::<usize>(), 300);
    }

    #[test]
    fn a_sharded_config_keeps_its_own_listed_organizations_and_every_discovery() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "tok").unwrap();
        // Among 3 shards, 1000 and 1003 belong to shard 1, 1002 to shard 0.
        let yaml = format!(
            "accounts:\n  - name: a\n    auth: {{token_file: {0}}}\n    organizations: [1000, 1003]\n  - name: b\n    auth: {{token_file: {0}}}\n    organizations: [1002]\n  - name: c\n    auth: {{token_file: {0}}}\n",
            token.display()
        );
        let config = crate::config::Config::from_yaml(&yaml, "x.yml".as_ref(), &|_| None).unwrap();
        let accounts = |shard: u32| -> Vec<(String, Option<Vec<String>>)> {
            let sharded = config.clone().sharded(Shard::new(shard, 3).unwrap());
            assert_eq!(sharded.shard.index(), shard);
            sharded
                .accounts
                .into_iter()
                .map(|a| (a.name, a.organizations))
                .collect()
        };
        assert_eq!(
            accounts(0),
            [("b".into(), Some(vec!["1002".into()])), ("c".into(), None)]
        );
        assert_eq!(
            accounts(1),
            [
                ("a".into(), Some(vec!["1000".into(), "1003".into()])),
                ("c".into(), None)
            ]
        );
        assert_eq!(accounts(2), [("c".into(), None)]);
        assert_eq!(config.clone().sharded(Shard::ALL).accounts, config.accounts);
    }

    #[test]
    fn bad_shard_flags_are_explained() {
        assert_eq!(
            Shard::new(0, 0).unwrap_err(),
            "--total-shards must be at least 1, got 0"
        );
        assert_eq!(
            Shard::new(3, 3).unwrap_err(),
            "--shard must be less than --total-shards (3): shards are numbered from 0, got --shard=3"
        );
        let shard = Shard::new(2, 3).unwrap();
        assert_eq!(
            (shard.index(), shard.total(), shard.to_string()),
            (2, 3, "2/3".into())
        );
        assert!(shard.is_sharded() && !Shard::ALL.is_sharded());
    }
}
