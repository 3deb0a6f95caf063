//! The running ingress's view of the route table: the records of the routes directory, indexed by public
//! host, reloaded whenever the directory changes.
//!
//! Every lookup costs one `fstat` of the (open) directory: `route`, `unroute` and the ingress itself replace
//! records by renaming files into it, which changes its modification time, so a change made by the CLI a
//! moment ago is seen by the very next request. File times are coarse (one kernel tick), so a reload made
//! within a few milliseconds of the last change is "racy" and the next lookup reloads again, as git does for
//! its index. A directory that was removed (no links left) is opened again by path. A reload reads and parses
//! only the records whose file changed (records are replaced by renaming, so a new inode, size or time): with
//! thousands of preview clients registering, each registration costs a directory scan, not a full re-read.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use crate::clock;
use crate::host::Origin;
use crate::pool::Upstream;
use crate::routes::{RouteRecord, RouteStore};

/// How close to a directory change a reload must not be trusted.
const RACY: Duration = Duration::from_millis(50);

/// One route as the ingress uses it.
pub struct RouteEntry {
    pub record: RouteRecord,
    pub expires_at: Option<OffsetDateTime>,
    /// The pooled upstream of a direct route.
    pub upstream: Option<Arc<Upstream>>,
}

impl RouteEntry {
    /// Whether `expires_at` has passed.
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

type Table = Arc<HashMap<String, Arc<RouteEntry>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

/// What a record's file looked like when it was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

struct State {
    dir: Option<File>,
    stamp: Option<Stamp>,
    racy: bool,
    stale: bool,
    table: Table,
    /// The parsed records by session id, with the file they came from.
    parsed: HashMap<String, (FileStamp, RouteRecord)>,
}

/// The reloading route table.
pub struct RouteCache {
    store: RouteStore,
    connect_timeout: Duration,
    upstreams: Mutex<HashMap<String, Arc<Upstream>>>,
    state: RwLock<State>,
}

impl RouteCache {
    /// A cache over `store`; upstream connections use `connect_timeout`.
    pub fn new(store: RouteStore, connect_timeout: Duration) -> Self {
        RouteCache {
            store,
            connect_timeout,
            upstreams: Mutex::new(HashMap::new()),
            state: RwLock::new(State {
                dir: None,
                stamp: None,
                racy: false,
                stale: true,
                table: Arc::new(HashMap::new()),
                parsed: HashMap::new(),
            }),
        }
    }

    /// The store behind the cache.
    pub fn store(&self) -> &RouteStore {
        &self.store
    }

    /// The route serving `host`, current as of this call.
    pub fn lookup(&self, host: &str) -> Option<Arc<RouteEntry>> {
        self.table().get(host).cloned()
    }

    /// The whole table, current as of this call.
    pub fn table(&self) -> Table {
        {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            if !state.stale && !state.racy {
                let stamp = state.dir.as_ref().and_then(stamp_of);
                if stamp.is_some() && stamp == state.stamp {
                    return state.table.clone();
                }
            }
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut stamp = state.dir.as_ref().and_then(stamp_of);
        if stamp.is_none() {
            // Not opened yet, or removed since: open it by path again.
            state.dir = File::open(self.store.dir()).ok();
            stamp = state.dir.as_ref().and_then(stamp_of);
        }
        if state.stale || state.racy || state.stamp != stamp {
            let loaded_at = SystemTime::now();
            state.table = Arc::new(self.load(&mut state.parsed));
            state.stamp = stamp;
            state.stale = false;
            state.racy = stamp.is_some_and(|s| {
                let changed = UNIX_EPOCH
                    + Duration::new(
                        s.mtime.0.max(0) as u64,
                        s.mtime.1.clamp(0, 999_999_999) as u32,
                    );
                loaded_at
                    .duration_since(changed)
                    .map_or(true, |age| age < RACY)
            });
        }
        state.table.clone()
    }

    /// Forces a reload at the next lookup (after the ingress wrote a record itself).
    pub fn invalidate(&self) {
        self.state.write().unwrap_or_else(|p| p.into_inner()).stale = true;
    }

    /// The records now in the directory, parsing only files that changed since `parsed` was filled.
    fn scan(&self, parsed: &mut HashMap<String, (FileStamp, RouteRecord)>) -> Vec<RouteRecord> {
        let Ok(entries) = std::fs::read_dir(self.store.dir()) else {
            parsed.clear();
            return Vec::new();
        };
        let mut now = HashMap::with_capacity(parsed.len());
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if id.starts_with('.') {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let stamp = FileStamp {
                ino: meta.ino(),
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
            };
            let record = match parsed.remove(id) {
                Some((seen, record)) if seen == stamp => record,
                _ => match self.store.get(id) {
                    Ok(Some(record)) => record,
                    _ => continue,
                },
            };
            now.insert(id.to_string(), (stamp, record));
        }
        *parsed = now;
        parsed.values().map(|(_, record)| record.clone()).collect()
    }

    fn load(
        &self,
        parsed: &mut HashMap<String, (FileStamp, RouteRecord)>,
    ) -> HashMap<String, Arc<RouteEntry>> {
        let records = self.scan(parsed);
        let mut upstreams = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        let mut table = HashMap::with_capacity(records.len());
        for record in records {
            let upstream = if record.channel.is_none() {
                Origin::parse(&record.upstream_origin).ok().map(|origin| {
                    upstreams
                        .entry(origin.url())
                        .or_insert_with(|| Arc::new(Upstream::new(origin, self.connect_timeout)))
                        .clone()
                })
            } else {
                None
            };
            let entry = RouteEntry {
                expires_at: record.expires_at.as_deref().and_then(clock::parse),
                record,
                upstream,
            };
            table.insert(entry.record.public_host.clone(), Arc::new(entry));
        }
        // Upstreams no route uses any more close their pooled connections.
        upstreams.retain(|url, _| {
            table.values().any(|e| {
                e.upstream
                    .as_ref()
                    .is_some_and(|u| &u.origin().url() == url)
            })
        });
        table
    }
}

/// The directory's change stamp; `None` once it has been removed (no links left).
fn stamp_of(dir: &File) -> Option<Stamp> {
    let meta = dir.metadata().ok()?;
    (meta.nlink() > 0).then(|| Stamp {
        mtime: (meta.mtime(), meta.mtime_nsec()),
        ctime: (meta.ctime(), meta.ctime_nsec()),
        ino: meta.ino(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::RouteSpec;

    #[test]
    fn changes_are_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = RouteStore::at(dir.path().join("routes"));
        let cache = RouteCache::new(
            RouteStore::at(dir.path().join("routes")),
            Duration::from_secs(1),
        );
        assert!(cache.lookup("a.preview.test").is_none());
        for i in 0..20 {
            let session = format!("s{i}");
            let host = format!("h{i}.preview.test");
            store
                .route(&RouteSpec {
                    session_id: session.clone(),
                    public_host: host.clone(),
                    upstream_origin: format!("http://127.0.0.1:{}", 1000 + i),
                    expires_at: None,
                    inactive: false,
                })
                .unwrap();
            let entry = cache.lookup(&host).expect("new route visible");
            assert!(entry.upstream.is_some());
            // A replaced record is read again.
            store
                .route(&RouteSpec {
                    session_id: session.clone(),
                    public_host: host.clone(),
                    upstream_origin: format!("http://127.0.0.1:{}", 2000 + i),
                    expires_at: None,
                    inactive: false,
                })
                .unwrap();
            let entry = cache.lookup(&host).expect("replaced route visible");
            assert_eq!(
                entry.record.upstream_origin,
                format!("http://127.0.0.1:{}", 2000 + i)
            );
            store.unroute(&session).unwrap();
            assert!(cache.lookup(&host).is_none(), "removal visible");
        }
    }
}
