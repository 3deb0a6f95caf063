//! The write-ahead log that gives the job store group commit.
//!
//! A redb commit with `Durability::Immediate` costs about two 4 KiB fdatasyncs on our disks, and every job
//! state change must be durable before it is acknowledged. So each batch of operations is appended here as
//! one record and made durable with one `fdatasync`, while redb receives the same changes as a fast
//! non-durable commit. The log is a fixed-size file, zero-filled once, so an append overwrites existing
//! blocks and `fdatasync` flushes data only (no metadata). When the next record does not fit, that batch is
//! committed to redb durably instead (a checkpoint recording the last log sequence number, `lsn`) and the
//! log starts again at offset 0.
//!
//! Record: `magic u32 | payload_len u32 | lsn u64 | crc32 u32 | payload`, little-endian; the CRC covers the
//! lsn and the payload. Recovery reads records from offset 0 while each is intact and carries exactly the
//! next lsn after the checkpoint; a torn write, stale data from an earlier cycle, or the zero fill ends it.
//!
//! The file is reached through redb's `StorageBackend` trait, like the database file: production passes
//! the real file, crash tests a file that fails on cue (`homeboy-faultfs`).

use std::fs::File;
use std::io;
#[cfg(test)]
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use redb::StorageBackend;
use redb::backends::FileBackend;

use crate::tables::Table;

const MAGIC: u32 = 0x314c_4a48; // "HJL1"
/// Bytes of a record header.
pub(crate) const RECORD_HEADER: usize = 20;
const HEADER: usize = RECORD_HEADER;
const DELETE: u32 = u32::MAX;

/// One change to one table: a put, or a delete when `value` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mutation {
    pub table: u8,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// A log file, shared by the writer and the flusher.
pub(crate) type LogFile = Arc<dyn StorageBackend>;

/// The open log.
pub(crate) struct Wal {
    file: LogFile,
    capacity: u64,
    offset: u64,
    next_lsn: u64,
}

impl Wal {
    /// Opens (creating and zero-filling as needed) the log at `path` with `capacity` bytes.
    pub fn open(path: &Path, capacity: u64) -> io::Result<Wal> {
        let file = homeboy_config::private_file::open_store(path)?;
        let grows = file.metadata()?.len() < capacity;
        let wal = Wal::on(
            Arc::new(FileBackend::new(file).map_err(io::Error::other)?),
            capacity,
        )?;
        if grows && let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(wal)
    }

    /// Opens the log on `file` (zero-filling it to `capacity` bytes as needed).
    pub fn on(file: LogFile, capacity: u64) -> io::Result<Wal> {
        let len = file.len()?;
        if len < capacity {
            // Write real zeros (not a sparse extent) so later overwrites need no metadata update.
            let chunk = vec![0u8; 256 * 1024];
            let mut at = len;
            while at < capacity {
                let n = chunk.len().min((capacity - at) as usize);
                file.write(at, &chunk[..n])?;
                at += n as u64;
            }
            file.sync_data()?;
        }
        Ok(Wal {
            file,
            capacity: capacity.max(len),
            offset: 0,
            next_lsn: 1,
        })
    }

    /// Reads the records written after checkpoint `checkpoint_lsn`, in order. Positions the log to append
    /// after them.
    pub fn recover(&mut self, checkpoint_lsn: u64) -> io::Result<Vec<(u64, Vec<Mutation>)>> {
        let mut bytes = vec![0u8; self.file.len()? as usize];
        self.file.read(0, &mut bytes)?;
        let mut records = Vec::new();
        let mut at = 0usize;
        // A checkpoint at the very end of the lsn space (only a damaged store says so) has no successor.
        let Some(mut expected) = checkpoint_lsn.checked_add(1) else {
            self.next_lsn = checkpoint_lsn;
            return Ok(records);
        };
        while let Some((lsn, payload, size)) = bytes.get(at..).and_then(parse_record) {
            if lsn != expected {
                break;
            }
            let Some(mutations) = decode_payload(payload) else {
                break;
            };
            records.push((lsn, mutations));
            at += size;
            match expected.checked_add(1) {
                Some(next) => expected = next,
                None => break,
            }
        }
        self.offset = at as u64;
        self.next_lsn = expected;
        Ok(records)
    }

    /// The lsn the next record will get.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Whether a record with these mutations fits in the remaining space.
    #[cfg(test)]
    pub fn fits(&self, encoded_len: usize) -> bool {
        self.offset + (HEADER + encoded_len) as u64 <= self.capacity
    }

    /// Appends one record and makes it durable. Returns its lsn.
    #[cfg(test)]
    pub fn append(&mut self, payload: &[u8]) -> io::Result<u64> {
        let lsn = self.next_lsn;
        self.write_record(lsn, payload)?;
        self.sync()?;
        Ok(lsn)
    }

    /// Writes record `lsn` (which must be the next one) after the previous one, without syncing.
    pub fn write_record(&mut self, lsn: u64, payload: &[u8]) -> io::Result<()> {
        if lsn != self.next_lsn {
            return Err(io::Error::other(format!(
                "log record {lsn} out of order (expected {})",
                self.next_lsn
            )));
        }
        if self.offset + (HEADER + payload.len()) as u64 > self.capacity {
            return Err(io::Error::other(
                "log record does not fit; a checkpoint was due",
            ));
        }
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&MAGIC.to_le_bytes());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&lsn.to_le_bytes());
        record.extend_from_slice(&crc(lsn, payload).to_le_bytes());
        record.extend_from_slice(payload);
        self.file.write(self.offset, &record)?;
        self.offset += record.len() as u64;
        self.next_lsn += 1;
        Ok(())
    }

    /// Makes every written record durable.
    #[cfg(test)]
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// A second handle on the log file, for flushing it without holding the log.
    pub fn file_handle(&self) -> LogFile {
        self.file.clone()
    }

    /// Where the next record goes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Makes the record at `offset` (and so every record after it) unreadable to recovery, and flushes:
    /// for records that must never replay because their batch was not acknowledged.
    pub fn erase_at(&self, offset: u64) -> io::Result<()> {
        if offset + HEADER as u64 > self.capacity {
            return Ok(());
        }
        self.file.write(offset, &[0u8; 4])?;
        self.file.sync_data()
    }

    /// After a checkpoint made everything up to `lsn` durable elsewhere: start again at offset 0.
    pub fn restart_after(&mut self, lsn: u64) {
        self.offset = 0;
        self.next_lsn = lsn + 1;
    }
}

fn crc(lsn: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// `(lsn, payload, total size)` of the intact record at the start of `bytes`.
fn parse_record(bytes: &[u8]) -> Option<(u64, &[u8], usize)> {
    if bytes.len() < HEADER {
        return None;
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    if word(0) != MAGIC {
        return None;
    }
    let len = word(4) as usize;
    let lsn = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let stored_crc = word(16);
    let payload = bytes.get(HEADER..HEADER + len)?;
    (crc(lsn, payload) == stored_crc).then_some((lsn, payload, HEADER + len))
}

/// Serialises mutations: `count u32`, then per mutation `table u8 | key_len u32 | key | value_len u32 | value`
/// (`value_len = u32::MAX` for a delete).
pub(crate) fn encode_payload(mutations: &[Mutation]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_len(mutations));
    out.extend_from_slice(&(mutations.len() as u32).to_le_bytes());
    for m in mutations {
        out.push(m.table);
        out.extend_from_slice(&(m.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&m.key);
        match &m.value {
            Some(v) => {
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&DELETE.to_le_bytes()),
        }
    }
    out
}

/// The encoded size of `mutations`, without encoding them.
pub(crate) fn payload_len(mutations: &[Mutation]) -> usize {
    4 + mutations
        .iter()
        .map(|m| 9 + m.key.len() + m.value.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
}

fn decode_payload(mut bytes: &[u8]) -> Option<Vec<Mutation>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = tail;
        Some(head)
    }
    fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
        take(bytes, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }
    let count = take_u32(&mut bytes)?;
    let mut mutations = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        let table = take(&mut bytes, 1)?[0];
        // A table this build does not know is a bad record like any other: recovery stops before it.
        Table::from_code(table)?;
        let key_len = take_u32(&mut bytes)? as usize;
        let key = take(&mut bytes, key_len)?.to_vec();
        let value = match take_u32(&mut bytes)? {
            DELETE => None,
            len => Some(take(&mut bytes, len as usize)?.to_vec()),
        };
        mutations.push(Mutation { table, key, value });
    }
    bytes.is_empty().then_some(mutations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn put(k: &str, v: &str) -> Mutation {
        Mutation {
            table: 1,
            key: k.as_bytes().to_vec(),
            value: Some(v.as_bytes().to_vec()),
        }
    }

    #[test]
    fn records_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut wal = Wal::open(&path, 64 * 1024).unwrap();
        assert!(wal.recover(0).unwrap().is_empty());
        let del = Mutation {
            table: 2,
            key: b"gone".to_vec(),
            value: None,
        };
        assert_eq!(wal.append(&encode_payload(&[put("a", "1")])).unwrap(), 1);
        assert_eq!(
            wal.append(&encode_payload(&[put("b", "2"), del.clone()]))
                .unwrap(),
            2
        );
        drop(wal);
        let mut wal = Wal::open(&path, 64 * 1024).unwrap();
        let records = wal.recover(0).unwrap();
        assert_eq!(
            records,
            vec![(1, vec![put("a", "1")]), (2, vec![put("b", "2"), del])]
        );
        assert_eq!(wal.next_lsn(), 3);
        // After a checkpoint covering both, nothing replays: records after a checkpoint start at offset 0.
        let mut wal = Wal::open(&path, 64 * 1024).unwrap();
        assert!(wal.recover(2).unwrap().is_empty());
        assert_eq!(wal.next_lsn(), 3);
    }

    #[test]
    fn stale_and_torn_records_end_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut wal = Wal::open(&path, 64 * 1024).unwrap();
        wal.recover(0).unwrap();
        for i in 0..5 {
            wal.append(&encode_payload(&[put(&format!("k{i}"), "old")]))
                .unwrap();
        }
        // Checkpoint at 5, new cycle from offset 0 with one shorter record.
        wal.restart_after(5);
        wal.append(&encode_payload(&[put("n", "new")])).unwrap();
        let mut reopened = Wal::open(&path, 64 * 1024).unwrap();
        let records = reopened.recover(5).unwrap();
        assert_eq!(
            records,
            vec![(6, vec![put("n", "new")])],
            "stale lsn 2.. must not replay"
        );
        // Corrupt one byte of the new record: nothing replays.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"X", (HEADER + 6) as u64).unwrap();
        let mut reopened = Wal::open(&path, 64 * 1024).unwrap();
        assert!(reopened.recover(5).unwrap().is_empty());
    }

    /// Writes `payload` as record `lsn` at `offset` with a valid header and CRC, as a hostile or buggy
    /// writer could.
    fn forge_record(path: &Path, offset: u64, lsn: u64, payload: &[u8]) {
        let mut record = Vec::new();
        record.extend_from_slice(&MAGIC.to_le_bytes());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&lsn.to_le_bytes());
        record.extend_from_slice(&crc(lsn, payload).to_le_bytes());
        record.extend_from_slice(payload);
        let file = OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(&record, offset).unwrap();
    }

    #[test]
    fn intact_records_naming_unknown_tables_end_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut wal = Wal::open(&path, 64 * 1024).unwrap();
        wal.recover(0).unwrap();
        wal.append(&encode_payload(&[put("a", "1")])).unwrap();
        let first_len = (HEADER + encode_payload(&[put("a", "1")]).len()) as u64;
        let unknown = Mutation {
            table: 200,
            key: b"k".to_vec(),
            value: Some(b"v".to_vec()),
        };
        forge_record(&path, first_len, 2, &encode_payload(&[unknown]));
        forge_record(
            &path,
            first_len * 3,
            3,
            &encode_payload(&[put("after", "x")]),
        );
        let mut reopened = Wal::open(&path, 64 * 1024).unwrap();
        let records = reopened.recover(0).unwrap();
        assert_eq!(records, vec![(1, vec![put("a", "1")])]);
        assert_eq!(
            reopened.next_lsn(),
            2,
            "appends continue after the last good record"
        );
    }

    #[test]
    fn a_checkpoint_at_the_end_of_the_lsn_space_does_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut wal = Wal::open(&path, 64 * 1024).unwrap();
        assert!(wal.recover(u64::MAX).unwrap().is_empty());
        forge_record(&path, 0, u64::MAX, &encode_payload(&[put("a", "1")]));
        let mut wal = Wal::open(&path, 64 * 1024).unwrap();
        assert_eq!(wal.recover(u64::MAX - 1).unwrap().len(), 1);
    }

    #[test]
    fn garbage_and_truncated_logs_recover_nothing_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        // Header fields at their extremes, and random bytes.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for case in 0..64u64 {
            let mut bytes = vec![0u8; 4096];
            for b in bytes.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            if case % 2 == 0 {
                bytes[..4].copy_from_slice(&MAGIC.to_le_bytes());
                bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
            }
            std::fs::write(&path, &bytes[..(case as usize * 61) % 4096]).unwrap();
            let mut wal = Wal::open(&path, 4096).unwrap();
            assert!(wal.recover(case).unwrap().is_empty());
        }
    }

    #[test]
    fn capacity_is_respected() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(&dir.path().join("wal"), 1024).unwrap();
        wal.recover(0).unwrap();
        let big = encode_payload(&[put("k", &"x".repeat(900))]);
        assert!(wal.fits(big.len()));
        wal.append(&big).unwrap();
        assert!(!wal.fits(big.len()));
    }
}
