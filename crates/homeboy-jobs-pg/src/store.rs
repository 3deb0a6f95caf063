//! [`PgJobStore`]: the [`JobStore`] contract on PostgreSQL, for several daemons sharing one queue.
//!
//! Transitions, events and refusals come from the shared state machine (`homeboy_jobs::machine`); this
//! file loads jobs, lets the machine decide, and saves. A save names the row's `rev` as read and writes the
//! job, its new events and the events retention dropped in **one statement**, so a state change and its
//! events commit together, and when another daemon changed the job in between the save matches nothing and
//! the operation starts again from a fresh read: a stale `claim_id` is refused exactly as on redb, event
//! sequences stay gap-free, and two sweepers of one expired lease requeue it once. Claims pick the oldest
//! eligible job with `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait on — or get — the same
//! job. Every operation's change is committed (`synchronous_commit` as the server has it, on by default)
//! before it returns.

use std::sync::{Arc, Once};

use futures_util::future::{try_join, try_join3};
use homeboy_jobs::machine::{self, Appended, JobMut};
use homeboy_jobs::{
    Actor, Changes, ClaimRequest, Claimed, Clock, Enqueued, Executor, Job, JobError, JobEvent,
    JobFilter, JobPage, JobResult, JobStatus, JobStore, NewEvent, NewJob, Observer, PrunePolicy,
    Recovery, StoreOptions, system_clock,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::PgOptions;
use crate::db::{self, Conn, Db, block_on, classify, prepared, retryable};
use crate::notify::{self, Hub};
use crate::schema::{self, Migrated};
use crate::sql;

/// How often a save that lost a race is retried before the operation gives up.
const MAX_ATTEMPTS: usize = 64;
/// Terminal jobs deleted per prune statement.
const PRUNE_SLICE: i64 = 500;

/// A job's stored state: the wire job plus the bookkeeping the state machine keeps with it (the
/// `record` column).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    job: Job,
    #[serde(default)]
    past_claims: Vec<String>,
    first_retained: u64,
}

impl Stored {
    fn view(&mut self) -> JobMut<'_> {
        JobMut {
            job: &mut self.job,
            past_claims: &mut self.past_claims,
            first_retained: &mut self.first_retained,
        }
    }
}

/// What a read-modify-write decided.
enum Step<R> {
    /// Nothing changed (a no-op or a refusal-free read): answer without writing.
    Keep(R),
    /// Save the job with these events.
    Save(R, Appended),
}

/// Save when the machine changed the job (`Some`), else keep it.
fn save_if(appended: Option<Appended>) -> Step<()> {
    match appended {
        Some(appended) => Step::Save((), appended),
        None => Step::Keep(()),
    }
}

/// The PostgreSQL job store.
pub struct PgJobStore {
    /// The runtime driving the connections (taken on drop to shut it down from any context).
    runtime: Option<tokio::runtime::Runtime>,
    db: Db,
    hub: Arc<Hub>,
    listener: Once,
    listen_config: tokio_postgres::Config,
    options: StoreOptions,
    node: String,
    clock: Clock,
    dsn: crate::Dsn,
}

impl PgJobStore {
    /// Connects, applies pending migrations (unless `options.migrate` is off, then an out-of-date schema is
    /// refused; a newer one is always refused), and fails daemon-executed jobs this node was running when
    /// it last stopped.
    pub fn open(options: PgOptions) -> Result<(PgJobStore, Recovery), JobError> {
        Self::open_with_clock(options, system_clock())
    }

    /// Like [`PgJobStore::open`] with an explicit clock (tests move time forward by hand). Every store
    /// sharing a database should share a clock: leases are compared with the clock of whoever looks.
    pub fn open_with_clock(
        options: PgOptions,
        clock: Clock,
    ) -> Result<(PgJobStore, Recovery), JobError> {
        Self::open_as(options, clock, Role::Daemon)
    }

    /// Connects for the credential and session routes only (`homeboy runner broker pair|list|revoke`):
    /// migrates like [`PgJobStore::open`], but never touches jobs (no stale-job recovery, no
    /// notifications).
    pub fn open_credentials(options: PgOptions) -> Result<PgJobStore, JobError> {
        Self::open_as(options, system_clock(), Role::Credentials).map(|(store, _)| store)
    }

    fn open_as(
        options: PgOptions,
        clock: Clock,
        role: Role,
    ) -> Result<(PgJobStore, Recovery), JobError> {
        let with_context = |e: JobError| with_dsn(&options.dsn, e);
        let runtime = db::runtime()?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let short = &instance[..12];
        let config = options.connect_config()?;
        let mut pool_config = config.clone();
        db::tune(&mut pool_config, &format!("homeboy-jobs/{short}"));
        let mut listen_config = config.clone();
        db::tune(&mut listen_config, &format!("homeboy-jobs-listen/{short}"));
        let mut notify_config = config;
        db::tune(&mut notify_config, &format!("homeboy-jobs-notify/{short}"));
        let db = Db::new(pool_config, options.pool_size)?;
        let (hub, hints) = Hub::new(instance.clone());
        let store = PgJobStore {
            runtime: Some(runtime),
            db,
            hub,
            listener: Once::new(),
            listen_config,
            options: options.store,
            node: options.node.clone(),
            clock,
            dsn: options.dsn.clone(),
        };
        let migrate = options.migrate;
        store
            .run(async |db: &Db| {
                let mut conn = db.conn().await?;
                if migrate {
                    schema::migrate(&mut conn).await.map(drop)
                } else {
                    schema::check(&conn).await
                }
            })
            .map_err(with_context)?;
        if role == Role::Credentials {
            return Ok((store, Recovery::default()));
        }
        store
            .handle()
            .spawn(notify::notifier(notify_config, instance, hints));
        let failed_stale = store.fail_stale_daemon_jobs().map_err(with_context)?;
        Ok((
            store,
            Recovery {
                // No write-ahead log of ours: PostgreSQL recovers its own.
                replayed_records: 0,
                failed_stale,
                log_wraps: 0,
                // Claims are shared by every broker on the database; none is this store's to keep.
                running_claims: 0,
            },
        ))
    }

    /// The database, as it may be shown (never with a password).
    pub fn dsn(&self) -> &crate::Dsn {
        &self.dsn
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
            .handle()
    }

    /// Runs an operation to completion on this thread.
    fn run<T>(&self, op: impl AsyncFnOnce(&Db) -> Result<T, JobError>) -> Result<T, JobError> {
        let _entered = self.handle().enter();
        block_on(op(&self.db))
    }

    /// Runs an operation on one pooled connection.
    pub(crate) fn with<T>(
        &self,
        op: impl AsyncFnOnce(&Conn) -> Result<T, JobError>,
    ) -> Result<T, JobError> {
        self.run(async |db: &Db| db.with(op).await)
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    fn touched(&self, jobs: Vec<String>, queue_grew: bool) {
        self.hub.publish(Changes { jobs, queue_grew });
    }

    /// Loads the job, lets `change` decide, and saves if it asks to — from a fresh read again when another
    /// writer moved the row first.
    async fn modify<R>(
        &self,
        c: &Conn,
        job_id: &str,
        mut change: impl FnMut(&mut Stored, u64) -> Result<Step<R>, JobError>,
    ) -> Result<(R, Stored, bool), JobError> {
        let load = prepared(c, sql::LOAD).await?;
        let save_statement = prepared(c, sql::SAVE).await?;
        for _ in 0..MAX_ATTEMPTS {
            let row = c
                .query_opt(&load, &[&job_id])
                .await
                .map_err(classify)?
                .ok_or_else(|| JobError::NotFound(job_id.to_string()))?;
            let rev: i64 = row.get(0);
            let mut stored: Stored = parse(row.get(1))?;
            match change(&mut stored, self.now())? {
                Step::Keep(answer) => return Ok((answer, stored, false)),
                Step::Save(answer, appended) => {
                    if save(c, &save_statement, job_id, rev, &stored, &appended, None).await? {
                        return Ok((answer, stored, true));
                    }
                }
            }
        }
        Err(JobError::Storage(format!(
            "job {job_id} kept changing under this write; gave up after {MAX_ATTEMPTS} attempts"
        )))
    }

    /// Claims (or starts, for daemon jobs) the oldest eligible queued job in one transaction:
    /// `BEGIN` + the sweep check + the locked pick in one round trip, the save + `COMMIT` in another.
    async fn take(&self, c: &Conn, pick: Pick<'_>) -> Result<Option<Claimed>, JobError> {
        // Prepared before the pipelines: a statement prepared inside one would reorder it after `COMMIT`.
        let soonest_lease = prepared(c, sql::SOONEST_LEASE).await?;
        let pick_statement = match pick {
            Pick::Runner { .. } => prepared(c, sql::PICK_RUNNER_JOB).await?,
            Pick::Daemon => prepared(c, sql::PICK_DAEMON_JOB).await?,
        };
        let save_statement = prepared(c, sql::SAVE).await?;
        let mut swept = false;
        loop {
            let now = self.now();
            let picked = match pick {
                Pick::Runner { req, .. } => {
                    let project = req.project_id.as_deref();
                    try_join3(
                        c.batch_execute("BEGIN"),
                        c.query_opt(&soonest_lease, &[]),
                        c.query_opt(&pick_statement, &[&req.runner_id, &project]),
                    )
                    .await
                    .map(|((), soonest, row)| {
                        let soonest = soonest.and_then(|r| r.get::<_, Option<i64>>(0));
                        (soonest.is_some_and(|t| t <= ms(now)), row)
                    })
                }
                Pick::Daemon => {
                    try_join(c.batch_execute("BEGIN"), c.query_opt(&pick_statement, &[]))
                        .await
                        .map(|((), row)| (false, row))
                }
            };
            let (expired, row) = match picked {
                Ok(picked) => picked,
                Err(e) => return Err(rollback_after(c, e).await),
            };
            if expired && !swept {
                // A claim sweeps expired leases first (as on redb), outside this transaction.
                rollback(c).await?;
                self.expire_on(c).await?;
                swept = true;
                continue;
            }
            let Some(row) = row else {
                rollback(c).await?;
                return Ok(None);
            };
            let (id, rev): (String, i64) = (row.get(0), row.get(1));
            let (mut stored, request) = match (parse::<Stored>(row.get(2)), parse(row.get(3))) {
                (Ok(stored), Ok(request)) => (stored, request),
                (Err(e), _) | (_, Err(e)) => {
                    rollback(c).await?;
                    return Err(e);
                }
            };
            let decided = match pick {
                Pick::Runner { req, lease_ms } => {
                    let claim_id = uuid::Uuid::new_v4().to_string();
                    machine::claim(&mut stored.view(), &req.runner_id, claim_id, now, lease_ms)
                }
                Pick::Daemon => machine::start_daemon(&mut stored.view(), now),
            };
            let appended = match decided {
                Ok(appended) => appended,
                Err(e) => {
                    rollback(c).await?;
                    return Err(e);
                }
            };
            let node = matches!(pick, Pick::Daemon).then_some(self.node.as_str());
            let saved = try_join(
                save(c, &save_statement, &id, rev, &stored, &appended, node),
                async { c.batch_execute("COMMIT").await.map_err(classify) },
            )
            .await;
            match saved {
                Ok((true, ())) => {
                    self.touched(vec![id], false);
                    return Ok(Some(Claimed {
                        job: stored.job,
                        request,
                    }));
                }
                // The row is locked by us, so this does not happen; start over if it does.
                Ok((false, ())) => continue,
                Err(e) => {
                    let _ = rollback(c).await;
                    return Err(e);
                }
            }
        }
    }

    /// Requeues (or fails) runner jobs whose lease has passed. Several stores may sweep at once: each job's
    /// save names the rev it read, so exactly one of them applies the expiry.
    async fn expire_on(&self, c: &Conn) -> Result<Vec<Job>, JobError> {
        let expired = prepared(c, sql::EXPIRED).await?;
        let rows = c
            .query(&expired, &[&ms(self.now())])
            .await
            .map_err(classify)?;
        let mut changed = Vec::new();
        let mut requeued = false;
        for row in rows {
            let id: String = row.get(0);
            let expired = self
                .modify(c, &id, |stored, now| {
                    Ok(save_if(machine::expire(&mut stored.view(), now)))
                })
                .await;
            match expired {
                Ok(((), stored, true)) => {
                    requeued |= stored.job.status == JobStatus::Queued;
                    changed.push(stored.job);
                }
                Ok((_, _, false)) | Err(JobError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if !changed.is_empty() {
            self.touched(changed.iter().map(|j| j.id.clone()).collect(), requeued);
        }
        Ok(changed)
    }

    fn fail_stale_daemon_jobs(&self) -> Result<Vec<String>, JobError> {
        self.with(async |c| {
            let running = prepared(c, sql::RUNNING_ON_NODE).await?;
            let rows = c.query(&running, &[&self.node]).await.map_err(classify)?;
            let mut failed = Vec::new();
            for row in rows {
                let id: String = row.get(0);
                let outcome = self
                    .modify(c, &id, |stored, now| {
                        Ok(save_if(machine::fail_stale_daemon(&mut stored.view(), now)))
                    })
                    .await?;
                if outcome.2 {
                    failed.push(id);
                }
            }
            self.touched(failed.clone(), false);
            Ok(failed)
        })
    }

    /// A read-modify-write of one job, published when it saved.
    fn change<R>(
        &self,
        job_id: &str,
        change: impl FnMut(&mut Stored, u64) -> Result<Step<R>, JobError>,
    ) -> Result<(R, Stored), JobError> {
        let (answer, stored, saved) = self.with(async |c| self.modify(c, job_id, change).await)?;
        if saved {
            self.touched(vec![job_id.to_string()], false);
        }
        Ok((answer, stored))
    }
}

impl Drop for PgJobStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Which queue a take reads.
#[derive(Clone, Copy)]
enum Pick<'a> {
    Runner {
        req: &'a ClaimRequest,
        lease_ms: u64,
    },
    Daemon,
}

impl JobStore for PgJobStore {
    fn enqueue(&self, new: NewJob) -> Result<Enqueued, JobError> {
        let max_attempts = machine::validate_new(&new, self.options.max_attempts)?;
        let digest = machine::request_digest(&new.request);
        let now = self.now();
        let id = uuid::Uuid::now_v7().to_string();
        let mut stored = Stored {
            job: machine::new_job(id.clone(), &new, max_attempts, now),
            past_claims: Vec::new(),
            first_retained: 1,
        };
        let appended = machine::enqueued(&mut stored.view(), now);
        let event = to_json(&appended.events[0])?;
        let record = to_json(&stored)?;
        let request = to_json(&new.request)?;
        let key = new.submission_key.as_deref();
        let executor = executor_name(new.executor);
        let keyed_digest = key.map(|_| digest.as_str());
        let found = self.with(async |c| {
            let insert = prepared(c, sql::INSERT).await?;
            for _ in 0..MAX_ATTEMPTS {
                let inserted: i64 = c
                    .query_one(
                        &insert,
                        &[
                            &id,
                            &executor,
                            &new.operation,
                            &new.target_runner_id,
                            &new.project_id,
                            &key,
                            &keyed_digest,
                            &record,
                            &request,
                            &event,
                        ],
                    )
                    .await
                    .map_err(classify)?
                    .get(0);
                if inserted == 1 {
                    return Ok(None);
                }
                // The key is taken: the same request gets the existing job, another one is refused.
                let by_key = prepared(c, sql::BY_KEY).await?;
                if let Some(row) = c.query_opt(&by_key, &[&key]).await.map_err(classify)? {
                    return Ok(Some((
                        row.get::<_, Option<String>>(0),
                        row.get(1),
                        row.get(2),
                    )));
                }
                // Pruned in between: try again.
            }
            Err(JobError::Storage(
                "a submission key kept changing hands".into(),
            ))
        })?;
        match found {
            None => {
                self.touched(vec![id], true);
                Ok(Enqueued {
                    job: stored.job,
                    request: new.request,
                    created: true,
                })
            }
            Some((existing_digest, record, request)) => {
                let existing: Stored = parse(record)?;
                if existing_digest.as_deref() != Some(digest.as_str()) {
                    return Err(JobError::SubmissionConflict {
                        key: key.unwrap_or_default().to_string(),
                        job_id: existing.job.id,
                    });
                }
                Ok(Enqueued {
                    job: existing.job,
                    request: parse(request)?,
                    created: false,
                })
            }
        }
    }

    fn claim(&self, req: ClaimRequest) -> Result<Option<Claimed>, JobError> {
        let lease_ms = machine::validate_claim(&req, &self.options)?;
        let pick = Pick::Runner {
            req: &req,
            lease_ms,
        };
        self.with(async |c| self.take(c, pick).await)
    }

    fn start_next_daemon_job(&self) -> Result<Option<Claimed>, JobError> {
        self.with(async |c| self.take(c, Pick::Daemon).await)
    }

    fn heartbeat(&self, job_id: &str, actor: &Actor, lease_ms: u64) -> Result<Job, JobError> {
        let lease_ms = machine::lease_ms(lease_ms, &self.options);
        let (_, stored) = self.change(job_id, |stored, now| {
            Ok(
                if machine::heartbeat(&mut stored.view(), actor, now, lease_ms)? {
                    Step::Save((), Appended::default())
                } else {
                    Step::Keep(())
                },
            )
        })?;
        Ok(stored.job)
    }

    fn append_events(
        &self,
        job_id: &str,
        actor: &Actor,
        events: Vec<NewEvent>,
    ) -> Result<Vec<JobEvent>, JobError> {
        machine::validate_events(&events)?;
        let retention = self.options.event_retention;
        let (appended, _) = self.change(job_id, |stored, now| {
            let appended =
                machine::append(&mut stored.view(), actor, events.clone(), now, retention)?;
            Ok(Step::Save(appended.events.clone(), appended))
        })?;
        Ok(appended)
    }

    fn finish(&self, job_id: &str, actor: &Actor, result: JobResult) -> Result<Job, JobError> {
        let retention = self.options.event_retention;
        let (_, stored) = self.change(job_id, |stored, now| {
            let appended =
                machine::finish(&mut stored.view(), actor, result.clone(), now, retention)?;
            Ok(Step::Save((), appended))
        })?;
        Ok(stored.job)
    }

    fn cancel(&self, job_id: &str) -> Result<Job, JobError> {
        let retention = self.options.event_retention;
        let (_, stored) = self.change(job_id, |stored, now| {
            Ok(save_if(machine::cancel(
                &mut stored.view(),
                now,
                retention,
            )?))
        })?;
        Ok(stored.job)
    }

    fn get(&self, job_id: &str) -> Result<Option<Job>, JobError> {
        let row = self.with(async |c| {
            let get = prepared(c, sql::GET).await?;
            c.query_opt(&get, &[&job_id]).await.map_err(classify)
        })?;
        row.map(|row| parse::<Stored>(row.get(0)).map(|s| s.job))
            .transpose()
    }

    fn request(&self, job_id: &str) -> Result<Option<Value>, JobError> {
        let row = self.with(async |c| {
            let request = prepared(c, sql::REQUEST).await?;
            c.query_opt(&request, &[&job_id]).await.map_err(classify)
        })?;
        row.map(|row| parse(row.get(0))).transpose()
    }

    fn list(&self, filter: &JobFilter) -> Result<JobPage, JobError> {
        let limit = if filter.limit == 0 { 50 } else { filter.limit };
        let cursor = filter
            .cursor
            .map_or(i64::MAX, |c| i64::try_from(c).unwrap_or(i64::MAX));
        let status = filter.status.map(JobStatus::as_str);
        let rows = self.with(async |c| {
            let list = prepared(c, sql::LIST).await?;
            c.query(
                &list,
                &[
                    &cursor,
                    &status,
                    &filter.operation,
                    &filter.runner_id,
                    &(limit as i64 + 1),
                ],
            )
            .await
            .map_err(classify)
        })?;
        let more = rows.len() > limit;
        let mut jobs = Vec::with_capacity(limit);
        let mut last_seq = None;
        for row in rows.into_iter().take(limit) {
            last_seq = Some(row.get::<_, i64>(0) as u64);
            jobs.push(parse::<Stored>(row.get(1))?.job);
        }
        Ok(JobPage {
            jobs,
            next_cursor: if more { last_seq } else { None },
        })
    }

    /// One `GROUP BY` instead of the default's paging through every job.
    fn count_by_status(&self) -> Result<[(JobStatus, u64); 5], JobError> {
        let rows = self.with(async |c| {
            let count = prepared(c, sql::COUNT_BY_STATUS).await?;
            c.query(&count, &[]).await.map_err(classify)
        })?;
        let mut counts = JobStatus::ALL.map(|s| (s, 0u64));
        for row in rows {
            let status: &str = row.get(0);
            let n: i64 = row.get(1);
            if let Some(slot) = counts.iter_mut().find(|(s, _)| s.as_str() == status) {
                slot.1 = u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(counts)
    }

    fn events(&self, job_id: &str, after: u64, limit: usize) -> Result<Vec<JobEvent>, JobError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (exists, rows) = self.with(async |c| {
            let (exists, events) = (
                prepared(c, sql::EXISTS).await?,
                prepared(c, sql::EVENTS).await?,
            );
            try_join(
                c.query_opt(&exists, &[&job_id]),
                c.query(&events, &[&job_id, &after, &limit]),
            )
            .await
            .map_err(classify)
        })?;
        if exists.is_none() {
            return Err(JobError::NotFound(job_id.to_string()));
        }
        rows.into_iter().map(|row| parse(row.get(0))).collect()
    }

    fn expire_leases(&self) -> Result<Vec<Job>, JobError> {
        self.with(async |c| self.expire_on(c).await)
    }

    fn prune(&self, policy: &PrunePolicy) -> Result<usize, JobError> {
        let keep = i64::try_from(policy.max_terminal_jobs).unwrap_or(i64::MAX);
        let cutoff = ms(self.now().saturating_sub(policy.max_terminal_age_ms));
        let mut total = 0;
        loop {
            let rows = self.with(async |c| {
                let prune = prepared(c, sql::PRUNE).await?;
                for _ in 0..MAX_ATTEMPTS {
                    match c.query(&prune, &[&keep, &cutoff, &PRUNE_SLICE]).await {
                        Err(e) if retryable(&e) => continue,
                        other => return other.map_err(classify),
                    }
                }
                Err(JobError::Storage("pruning kept deadlocking".into()))
            })?;
            let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            total += ids.len();
            let done = (ids.len() as i64) < PRUNE_SLICE;
            self.touched(ids, false);
            if done {
                return Ok(total);
            }
        }
    }

    fn set_observer(&self, observer: Observer) {
        self.hub.set_observer(observer);
        self.listener.call_once(|| {
            let listen = notify::listener(
                self.listen_config.clone(),
                self.db.pool().clone(),
                self.hub.clone(),
            );
            self.handle().spawn(listen);
        });
    }
}

/// Saves `stored` if the row is still at `rev`: the columns derived from the job, the record, the
/// appended events that are still retained, and the deletion of those retention dropped. `statement` is
/// [`sql::SAVE`], prepared beforehand (a statement prepared inside a pipeline would be reordered).
async fn save(
    c: &Conn,
    statement: &tokio_postgres::Statement,
    job_id: &str,
    rev: i64,
    stored: &Stored,
    appended: &Appended,
    daemon_node: Option<&str>,
) -> Result<bool, JobError> {
    let job = &stored.job;
    let status = job.status.as_str();
    let lease = machine::lease_of(job).map(ms);
    let finished = job
        .status
        .is_terminal()
        .then(|| ms(job.finished_at_ms.unwrap_or(job.updated_at_ms)));
    let record = to_json(stored)?;
    let mut sequences = Vec::new();
    let mut events = Vec::new();
    for event in appended.kept() {
        sequences.push(ms(event.sequence));
        events.push(to_json(event)?);
    }
    let (drop_from, drop_to) = (ms(appended.dropped.start), ms(appended.dropped.end));
    let saved: i64 = c
        .query_one(
            statement,
            &[
                &job_id,
                &rev,
                &status,
                &job.claimed_by_runner_id,
                &lease,
                &daemon_node,
                &finished,
                &record,
                &sequences,
                &events,
                &drop_from,
                &drop_to,
            ],
        )
        .await
        .map_err(classify)?
        .get(0);
    Ok(saved == 1)
}

async fn rollback(c: &Conn) -> Result<(), JobError> {
    c.batch_execute("ROLLBACK").await.map_err(classify)
}

/// Ends the transaction after `e` (best effort) and returns `e` as a store error.
async fn rollback_after(c: &Conn, e: tokio_postgres::Error) -> JobError {
    let _ = c.batch_execute("ROLLBACK").await;
    classify(e)
}

/// A store number (ms, sequence) as a PostgreSQL bigint.
fn ms(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn executor_name(executor: Executor) -> &'static str {
    match executor {
        Executor::Daemon => "daemon",
        Executor::Runner => "runner",
    }
}

fn to_json(value: &impl Serialize) -> Result<String, JobError> {
    serde_json::to_string(value).map_err(|e| JobError::Storage(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(text: String) -> Result<T, JobError> {
    serde_json::from_str(&text)
        .map_err(|e| JobError::Storage(format!("a stored job does not parse: {e}")))
}

/// Applies pending schema migrations to the database of `options` (what `homeboy-broker migrate` runs).
pub fn migrate(options: &PgOptions) -> Result<Migrated, JobError> {
    let runtime = db::runtime()?;
    let mut config = options.connect_config()?;
    db::tune(&mut config, "homeboy-jobs-migrate");
    let _entered = runtime.enter();
    let result = block_on(async {
        let (mut client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(classify)?;
        let driver = tokio::spawn(connection);
        let migrated = schema::migrate(&mut client).await;
        drop(client);
        let _ = driver.await;
        migrated
    });
    drop(_entered);
    runtime.shutdown_background();
    result.map_err(|e| with_dsn(&options.dsn, e))
}

/// What a store is opened for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A daemon's job store.
    Daemon,
    /// Credentials and sessions only.
    Credentials,
}

/// `e` with the database it concerns (shown without a password) in front of its text.
fn with_dsn(dsn: &crate::Dsn, e: JobError) -> JobError {
    match e {
        JobError::Unavailable(text) => JobError::Unavailable(format!("{dsn}: {text}")),
        JobError::Storage(text) => JobError::Storage(format!("{dsn}: {text}")),
        JobError::Invalid { field, problem } if field == schema::SCHEMA_FIELD => {
            JobError::Invalid {
                field,
                problem: format!("{dsn}: {problem}"),
            }
        }
        other => other,
    }
}
