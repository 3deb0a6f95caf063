//! Change notifications across every store sharing the database, so a long poll at one daemon wakes when a
//! job is enqueued at another.
//!
//! - **Local**: after each commit the store calls its observer directly, as the redb store does.
//! - **Outgoing hints**: the same changes are queued for the *notifier*, a task with its own connection
//!   that sends them with `pg_notify` on the `homeboy_jobs` channel, at most once per [`NOTIFY_INTERVAL`],
//!   coalescing whatever queued up meanwhile. Hints are sent *after* the state change commits, from a session with
//!   `synchronous_commit=off`: PostgreSQL serialises the commits of notifying transactions under one lock
//!   held through their WAL flush, so a `NOTIFY` inside the job transaction would undo group commit. A hint
//!   is only a wake-up — readers always re-read the store — so it needs no durability; one lost to a crash
//!   costs a waiter its `wait_ms`, never a job or an event.
//! - **Incoming**: the *listener* holds a dedicated connection in `LISTEN homeboy_jobs` and hands other
//!   stores' hints (payload `<instance> <q|-> <job id>...`) to the observer; its own are skipped.
//! - **Fallback**: while the listener's connection is down, it polls `changed_at` (database time) through
//!   the pool every [`FALLBACK_POLL`] and reports what changed, and it reconnects with backoff; after
//!   reconnecting it polls once more to cover the gap.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use homeboy_jobs::{Changes, Observer};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::sql;

/// How often the fallback polls while the listener is disconnected.
pub(crate) const FALLBACK_POLL: Duration = Duration::from_millis(100);
/// Reconnect backoff of the listener and notifier: from this, doubling...
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ...up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A transaction may commit this long after it stamped `changed_at`; polls look back this far.
const COMMIT_MARGIN_US: i64 = 5_000_000;
/// When the listener's connection drops, changes this recent are reported once (the loss itself may have
/// taken a keepalive timeout to notice).
const OUTAGE_LOOKBACK_US: i64 = 30_000_000;
/// Payloads stay under PostgreSQL's 8000-byte limit.
const MAX_PAYLOAD: usize = 7800;
/// The notifier sends at most once per this interval: a hint waits at most this long behind the previous
/// send, and under load one notifying transaction carries many changes instead of one each.
const NOTIFY_INTERVAL: Duration = Duration::from_millis(5);

/// What the store, the notifier and the listener share.
pub(crate) struct Hub {
    /// This store instance's id (its own hints come back and are skipped).
    pub(crate) instance: String,
    observer: RwLock<Option<Observer>>,
    hints: mpsc::UnboundedSender<Changes>,
}

impl Hub {
    pub(crate) fn new(instance: String) -> (Arc<Hub>, mpsc::UnboundedReceiver<Changes>) {
        let (hints, rx) = mpsc::unbounded_channel();
        let hub = Hub {
            instance,
            observer: RwLock::new(None),
            hints,
        };
        (Arc::new(hub), rx)
    }

    pub(crate) fn set_observer(&self, observer: Observer) {
        if let Ok(mut slot) = self.observer.write() {
            *slot = Some(observer);
        }
    }

    /// A change committed here: tell the local observer and the other stores.
    pub(crate) fn publish(&self, changes: Changes) {
        if changes.jobs.is_empty() && !changes.queue_grew {
            return;
        }
        self.fire(&changes);
        let _ = self.hints.send(changes);
    }

    /// Tells the local observer only.
    fn fire(&self, changes: &Changes) {
        if let Ok(slot) = self.observer.read()
            && let Some(observer) = slot.as_ref()
        {
            observer(changes);
        }
    }

    /// A hint from the channel: another store's changes go to the observer.
    fn deliver(&self, payload: &str) {
        if let Some((instance, changes)) = decode(payload)
            && instance != self.instance
        {
            self.fire(&changes);
        }
    }
}

/// `<instance> <q|-> <id> <id>...`, split so every payload stays under [`MAX_PAYLOAD`].
fn encode(instance: &str, changes: &Changes) -> Vec<String> {
    let head = format!("{instance} {}", if changes.queue_grew { 'q' } else { '-' });
    let mut payloads = vec![head.clone()];
    for id in &changes.jobs {
        let current = payloads.last_mut().expect("one payload at least");
        if current.len() + 1 + id.len() > MAX_PAYLOAD {
            payloads.push(head.clone());
        }
        let current = payloads.last_mut().expect("one payload at least");
        current.push(' ');
        current.push_str(id);
    }
    payloads
}

fn decode(payload: &str) -> Option<(&str, Changes)> {
    let mut words = payload.split(' ');
    let instance = words.next()?;
    let queue_grew = match words.next()? {
        "q" => true,
        "-" => false,
        _ => return None,
    };
    let jobs = words
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    Some((instance, Changes { jobs, queue_grew }))
}

/// The notifier: sends queued hints, coalesced, from its own `synchronous_commit=off` session.
pub(crate) async fn notifier(
    mut config: tokio_postgres::Config,
    instance: String,
    mut rx: mpsc::UnboundedReceiver<Changes>,
) {
    let mut options = config.get_options().unwrap_or_default().to_string();
    options.push_str(" -c synchronous_commit=off");
    config.options(options.trim());
    let mut client: Option<Client> = None;
    let mut backoff = Backoff::default();
    let mut last_send: Option<Instant> = None;
    while let Some(first) = rx.recv().await {
        if let Some(at) = last_send {
            tokio::time::sleep_until((at + NOTIFY_INTERVAL).into()).await;
        }
        let mut jobs: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut queue_grew = false;
        let mut add = |changes: Changes| {
            queue_grew |= changes.queue_grew;
            for id in changes.jobs {
                if seen.insert(id.clone()) {
                    jobs.push(id);
                }
            }
        };
        add(first);
        while let Ok(more) = rx.try_recv() {
            add(more);
        }
        if client.as_ref().is_none_or(Client::is_closed) {
            client = None;
            if !backoff.may_try() {
                continue; // Down: this hint is dropped; the others' fallback covers it.
            }
            match connect(&config).await {
                Ok((c, _)) => {
                    backoff.succeeded();
                    client = Some(c);
                }
                Err(_) => {
                    backoff.failed();
                    continue;
                }
            }
        }
        let payloads = encode(&instance, &Changes { jobs, queue_grew });
        last_send = Some(Instant::now());
        if let Some(c) = &client
            && c.execute(sql::NOTIFY, &[&payloads]).await.is_err()
        {
            client = None;
        }
    }
}

/// The listener: `LISTEN` on a dedicated connection, the poll fallback while it is down.
pub(crate) async fn listener(config: tokio_postgres::Config, pool: Pool, hub: Arc<Hub>) {
    let mut backoff = Backoff::default();
    let mut fallback: Option<Fallback> = None;
    loop {
        if backoff.may_try() {
            match connect(&config).await {
                Ok((client, mut rx)) => match client
                    .batch_execute(&format!("LISTEN {}", sql::CHANNEL))
                    .await
                {
                    Ok(()) => {
                        backoff.succeeded();
                        // Listening again: cover what changed while we were not.
                        if let Some(mut gap) = fallback.take() {
                            gap.poll(&pool, &hub).await;
                        }
                        while let Some(payload) = rx.recv().await {
                            hub.deliver(&payload);
                        }
                        // The connection is gone.
                        fallback = Some(Fallback::default());
                    }
                    Err(_) => backoff.failed(),
                },
                Err(_) => backoff.failed(),
            }
        }
        let gap = fallback.get_or_insert_with(Fallback::default);
        gap.poll(&pool, &hub).await;
        tokio::time::sleep(FALLBACK_POLL).await;
    }
}

/// Connects and drives the connection in a task; notifications arrive on the returned receiver, which
/// ends when the connection does.
async fn connect(
    config: &tokio_postgres::Config,
) -> Result<(Client, mpsc::UnboundedReceiver<String>), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message
                && tx.send(n.payload().to_string()).is_err()
            {
                break;
            }
        }
    });
    Ok((client, rx))
}

/// Reconnect pacing.
struct Backoff {
    delay: Duration,
    retry_at: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            delay: BACKOFF_MIN,
            retry_at: None,
        }
    }
}

impl Backoff {
    fn may_try(&self) -> bool {
        self.retry_at.is_none_or(|at| Instant::now() >= at)
    }

    fn failed(&mut self) {
        self.retry_at = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }

    fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

/// The poll that stands in for notifications: what changed since the last poll, by database time.
#[derive(Default)]
struct Fallback {
    /// Changes after this time (µs, database clock) are reported.
    since_us: Option<i64>,
    /// What was reported lately (id → change time), so a change is reported once.
    reported: HashMap<String, i64>,
}

impl Fallback {
    async fn poll(&mut self, pool: &Pool, hub: &Hub) {
        let Ok(conn) = pool.get().await else {
            return; // The database itself is down; nothing can have changed.
        };
        let Ok(now) = conn.query_one(sql::NOW_US, &[]).await else {
            return;
        };
        let now: i64 = now.get(0);
        let since = *self.since_us.get_or_insert(now - OUTAGE_LOOKBACK_US);
        let Ok(rows) = conn
            .query(sql::CHANGED_SINCE, &[&(since - COMMIT_MARGIN_US)])
            .await
        else {
            return;
        };
        let mut changes = Changes::default();
        for row in rows {
            let (id, queued, at): (String, bool, i64) = (row.get(0), row.get(1), row.get(2));
            if self.reported.get(&id) == Some(&at) {
                continue;
            }
            changes.queue_grew |= queued;
            self.reported.insert(id.clone(), at);
            changes.jobs.push(id);
        }
        self.since_us = Some(now);
        self.reported
            .retain(|_, at| *at >= now - 2 * COMMIT_MARGIN_US);
        if !changes.jobs.is_empty() {
            hub.fire(&changes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_round_trip_and_stay_under_the_payload_limit() {
        let ids: Vec<String> = (0..1000)
            .map(|i| format!("0190aaaa-bbbb-7ccc-8ddd-{i:012}"))
            .collect();
        let changes = Changes {
            jobs: ids.clone(),
            queue_grew: true,
        };
        let payloads = encode("inst", &changes);
        assert!(payloads.len() > 1);
        let mut back = Vec::new();
        for p in &payloads {
            assert!(p.len() <= MAX_PAYLOAD);
            let (instance, c) = decode(p).unwrap();
            assert_eq!(instance, "inst");
            assert!(c.queue_grew);
            back.extend(c.jobs);
        }
        assert_eq!(back, ids);
        let quiet = encode("inst", &Changes::default());
        assert_eq!(decode(&quiet[0]).unwrap().1, Changes::default());
        assert!(decode("garbage").is_none());
    }
}
