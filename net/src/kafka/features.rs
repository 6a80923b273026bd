//! Kafka's feature flags (KIP-584) as this broker reports them: the
//! versions it supports, and the levels finalized for the cluster, which
//! are its highest supported ones (a cluster of sluice brokers of one
//! release; levels are not changed at run time).
//!
//! Owns: the table, ApiVersions' feature fields (v3+), and the answer to
//! UpdateFeatures: a request for the level in force succeeds; any other
//! fails as a whole with INVALID_UPDATE_VERSION and Kafka's message.
//!
//! What each level claims: `metadata.version` 27 (Kafka 4.1-IV1, the
//! request versions served here); `group.version` 1 (KIP-848 consumer
//! groups); `eligible.leader.replicas.version` 1 (KIP-966);
//! `transaction.version` 2 (KIP-890 part 2: Produce v12, EndTxn v5 and
//! TxnOffsetCommit v5, an epoch bump per transaction; Kafka 4's default, so
//! its clients speak it here as there); `share.version` 2 (KIP-932 share
//! groups, on by default as in Kafka 4.2 and later, with KIP-1191's
//! dead-letter topics, as Kafka 4.4 formats a new cluster). Features whose only
//! level here is 0 (`kraft.version`: the controller quorum's voters are
//! static; `streams.version`: not served) are not listed, as Kafka leaves
//! out a feature it supports only at 0.

/// One feature: its name, the levels supported, the level finalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub min_version: i16,
    pub max_version: i16,
    pub finalized: i16,
}

/// Every feature this broker lists.
pub const FEATURES: &[Feature] = &[
    Feature {
        name: "metadata.version",
        min_version: 7,
        max_version: 27,
        finalized: 27,
    },
    Feature {
        name: "group.version",
        min_version: 0,
        max_version: 1,
        finalized: 1,
    },
    Feature {
        name: "eligible.leader.replicas.version",
        min_version: 0,
        max_version: 1,
        finalized: 1,
    },
    Feature {
        name: "transaction.version",
        min_version: 0,
        max_version: 2,
        finalized: 2,
    },
    Feature {
        name: "share.version",
        min_version: 0,
        max_version: 2,
        finalized: 2,
    },
];

/// Why an update of `name` to `level` cannot be made here (Kafka's
/// per-feature message); `None` when it asks for the level in force.
pub fn update_error(name: &str, level: i16, node_id: i32) -> Option<String> {
    let prefix = format!("Invalid update version {level} for feature {name}.");
    let Some(f) = FEATURES.iter().find(|f| f.name == name) else {
        return Some(format!(
            "{prefix} Local controller {node_id} does not support this feature."
        ));
    };
    if level == f.finalized {
        return None;
    }
    if level < 0 {
        return Some(format!("{prefix} A feature version cannot be less than 0."));
    }
    if level < f.min_version || level > f.max_version {
        return Some(format!(
            "{prefix} Local controller {node_id} only supports versions {}-{}",
            f.min_version, f.max_version
        ));
    }
    Some(format!(
        "{prefix} Can't change the version of this feature: sluice finalizes the highest level it supports."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_in_force_is_the_only_update_accepted() {
        assert_eq!(update_error("group.version", 1, 0), None);
        let down = update_error("group.version", 0, 0).unwrap_or_default();
        assert!(
            down.starts_with("Invalid update version 0 for feature group.version."),
            "{down}"
        );
        let up = update_error("metadata.version", 28, 3).unwrap_or_default();
        assert!(
            up.ends_with("Local controller 3 only supports versions 7-27"),
            "{up}"
        );
        assert_eq!(update_error("share.version", 2, 0), None);
        let unknown = update_error("streams.version", 1, 0).unwrap_or_default();
        assert!(
            unknown.ends_with("does not support this feature."),
            "{unknown}"
        );
    }
}
