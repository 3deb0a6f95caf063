//! Key encodings of the observation store, chosen so every reader is one range scan.
//!
//! - `runs`: run id → run record. Run ids are UUIDv7 strings, so key order is creation order.
//! - `run_index`: one entry per run for every combination of the listing filters it can match:
//!   `mask ‖ (value ‖ 0x00)* ‖ run id`, where `mask` says which of kind (1), component (2), rig (4) and
//!   status (8) are present, in that order. A listing with any set of filters is then a reverse range scan
//!   over one prefix: `GET /runs?component=api&status=fail&limit=50` reads 50 index entries and 50 records,
//!   however many runs the store holds. Mask 0 (no filter) is every run.
//! - `artifacts`, `findings`: `run id ‖ 0x00 ‖ suffix`, so a run's children are one contiguous range;
//!   findings use a big-endian sequence number as suffix (reporting order), artifacts their UUIDv7 id.

use crate::ObservationError;
use crate::model::{Run, RunFilter};

const KIND: u8 = 1;
const COMPONENT: u8 = 2;
const RIG: u8 = 4;
const STATUS: u8 = 8;

/// The filter values of a run, in mask order.
fn fields(run: &Run) -> [Option<&str>; 4] {
    [
        Some(run.kind.as_str()),
        Some(run.component_id.as_str()),
        run.rig_id.as_deref(),
        Some(run.status.as_str()),
    ]
}

/// Every index key of `run` (16 for a run with a rig, 8 without).
pub(crate) fn index_keys(run: &Run) -> Vec<Vec<u8>> {
    let values = fields(run);
    (0u8..16)
        .filter_map(|mask| {
            let mut key = vec![mask];
            for (bit, value) in [KIND, COMPONENT, RIG, STATUS].into_iter().zip(values) {
                if mask & bit != 0 {
                    key.extend_from_slice(value?.as_bytes());
                    key.push(0);
                }
            }
            key.extend_from_slice(run.id.as_bytes());
            Some(key)
        })
        .collect()
}

/// The index prefix that lists the runs matching `filter`.
pub(crate) fn filter_prefix(filter: &RunFilter) -> Result<Vec<u8>, ObservationError> {
    let status = filter.status.map(|s| s.as_str());
    let values = [
        ("kind", filter.kind.as_deref()),
        ("component", filter.component.as_deref()),
        ("rig", filter.rig.as_deref()),
        ("status", status),
    ];
    let mut mask = 0u8;
    let mut rest = Vec::new();
    for (bit, (field, value)) in [KIND, COMPONENT, RIG, STATUS].into_iter().zip(values) {
        if let Some(value) = value {
            if value.as_bytes().contains(&0) {
                return Err(ObservationError::Invalid {
                    field,
                    problem: "may not contain NUL".into(),
                });
            }
            mask |= bit;
            rest.extend_from_slice(value.as_bytes());
            rest.push(0);
        }
    }
    let mut prefix = vec![mask];
    prefix.extend_from_slice(&rest);
    Ok(prefix)
}

/// `[prefix, prefix ‖ cursor)` or the whole prefix: the index range of one listing page, scanned backwards.
pub(crate) fn page_bounds(prefix: &[u8], cursor: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let lower = prefix.to_vec();
    let upper = match cursor {
        Some(cursor) => {
            let mut upper = prefix.to_vec();
            upper.extend_from_slice(cursor.as_bytes());
            upper
        }
        None => {
            // Every key with this prefix is below the prefix followed by 0xff (run ids are ASCII).
            let mut upper = prefix.to_vec();
            upper.push(0xff);
            upper
        }
    };
    (lower, upper)
}

/// The run id at the end of an index key.
pub(crate) fn index_run_id(key: &[u8], prefix_len: usize) -> &str {
    std::str::from_utf8(key.get(prefix_len..).unwrap_or_default()).unwrap_or_default()
}

/// `run id ‖ 0x00 ‖ suffix`.
pub(crate) fn child_key(run_id: &str, suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(run_id.len() + 1 + suffix.len());
    key.extend_from_slice(run_id.as_bytes());
    key.push(0);
    key.extend_from_slice(suffix);
    key
}

/// The range of every child of `run_id`.
pub(crate) fn children(run_id: &str) -> (Vec<u8>, Vec<u8>) {
    let lower = child_key(run_id, &[]);
    let mut upper = run_id.as_bytes().to_vec();
    upper.push(1);
    (lower, upper)
}

/// A finding key: `run id ‖ 0x00 ‖ sequence (u32, big-endian)`.
pub(crate) fn finding_key(run_id: &str, sequence: u32) -> Vec<u8> {
    child_key(run_id, &sequence.to_be_bytes())
}

/// The sequence number at the end of a finding key.
pub(crate) fn finding_sequence(key: &[u8]) -> u32 {
    key.len()
        .checked_sub(4)
        .and_then(|start| key[start..].try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunStatus;

    fn run(id: &str, component: &str, rig: Option<&str>, status: RunStatus) -> Run {
        Run {
            id: id.into(),
            kind: "lint".into(),
            component_id: component.into(),
            rig_id: rig.map(str::to_string),
            status,
            started_at: String::new(),
            finished_at: None,
            command: String::new(),
            cwd: String::new(),
            homeboy_version: String::new(),
            git_sha: None,
            metadata: Default::default(),
            status_note: None,
        }
    }

    #[test]
    fn every_filter_combination_is_one_prefix() {
        let a = run("r1", "api", Some("dev"), RunStatus::Fail);
        assert_eq!(index_keys(&a).len(), 16);
        assert_eq!(
            index_keys(&run("r2", "api", None, RunStatus::Pass)).len(),
            8
        );
        let filter = RunFilter {
            component: Some("api".into()),
            status: Some(RunStatus::Fail),
            ..RunFilter::default()
        };
        let prefix = filter_prefix(&filter).unwrap();
        let matching: Vec<_> = index_keys(&a)
            .into_iter()
            .filter(|k| k.starts_with(&prefix))
            .collect();
        assert_eq!(matching.len(), 1);
        assert_eq!(index_run_id(&matching[0], prefix.len()), "r1");
        // A component whose name is a prefix of another does not match it.
        let other = run("r3", "api2", None, RunStatus::Fail);
        assert!(!index_keys(&other).iter().any(|k| k.starts_with(&prefix)));
        let (lo, hi) = page_bounds(&prefix, Some("r1"));
        assert!(lo.as_slice() <= matching[0].as_slice() && matching[0].as_slice() >= hi.as_slice());
        let (lo, hi) = page_bounds(&prefix, None);
        assert!(lo.as_slice() <= matching[0].as_slice() && matching[0].as_slice() < hi.as_slice());
    }

    #[test]
    fn children_stay_together() {
        assert!(finding_key("r", 9) < finding_key("r", 10));
        let (lo, hi) = children("r");
        assert!(finding_key("r", u32::MAX) < hi && finding_key("r", 0) >= lo);
        assert!(finding_key("r0", 0) >= hi || finding_key("r0", 0) < lo);
        assert_eq!(finding_sequence(&finding_key("run", 77)), 77);
    }
}
