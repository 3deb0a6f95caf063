//! Connections: the store's own small tokio runtime that drives them, the pool, reconnecting with backoff,
//! the bound on every operation, and the one mapping from client errors to [`JobError`].
//!
//! The [`homeboy_jobs::JobStore`] trait is synchronous (the daemon calls it from blocking threads), so an
//! operation is an async block run to completion on the calling thread by [`block_on`] while the runtime's
//! two worker threads drive the sockets. Unlike `Runtime::block_on`, this works from any thread, even one
//! inside another runtime.
//!
//! Losing the database is [`JobError::Unavailable`], never a hang: connecting is bounded
//! ([`CONNECT_TIMEOUT`]), every operation is bounded ([`OP_TIMEOUT`]), dead peers are noticed by TCP
//! keepalives and `tcp_user_timeout`, and after a failed connection attempt further attempts wait out a
//! backoff (50 ms doubling to 2 s) instead of piling onto a database that is down — callers are answered
//! "unavailable" at once meanwhile. A connection that timed out mid-operation is thrown away, never reused.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use homeboy_jobs::JobError;
use tokio_postgres::{NoTls, Statement};

/// A pooled connection (a client with its prepared-statement cache).
pub(crate) type Conn = deadpool_postgres::ClientWrapper;

/// `sql` prepared on `c` (once per connection; cached after).
pub(crate) async fn prepared(c: &Conn, sql: &str) -> Result<Statement, JobError> {
    c.prepare_cached(sql).await.map_err(classify)
}

/// Longest wait for a new connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest any store operation may take, connection included.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(20);
/// Backoff after a failed connection attempt: from this, doubling...
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// ...up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Runs `future` to completion on this thread.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

/// The runtime that drives the store's connections.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, JobError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("homeboy-jobs-pg")
        .enable_all()
        .build()
        .map_err(|e| JobError::Storage(format!("cannot start the job store's runtime: {e}")))
}

/// Connection settings every store connection shares: bounded connects, keepalives, a bound on
/// statements and on idle transactions (so a stuck client cannot hold a job's lock for long).
pub(crate) fn tune(config: &mut tokio_postgres::Config, application_name: &str) {
    config
        .application_name(application_name)
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_user_timeout(Duration::from_secs(15))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    let mut options = config.get_options().unwrap_or_default().to_string();
    options.push_str(" -c statement_timeout=15000 -c idle_in_transaction_session_timeout=15000");
    config.options(options.trim());
}

/// The pool, behind the reconnect backoff.
pub(crate) struct Db {
    pool: Pool,
    gate: Mutex<Gate>,
}

#[derive(Default)]
struct Gate {
    failures: u32,
    retry_at: Option<Instant>,
}

impl Db {
    pub(crate) fn new(config: tokio_postgres::Config, size: usize) -> Result<Db, JobError> {
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(OP_TIMEOUT / 2))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| JobError::Storage(format!("cannot build the connection pool: {e}")))?;
        Ok(Db {
            pool,
            gate: Mutex::new(Gate::default()),
        })
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A pooled connection, or `Unavailable` (at once while backing off after a failed attempt).
    pub(crate) async fn conn(&self) -> Result<Object, JobError> {
        if let Some(at) = self.lock_gate().retry_at
            && Instant::now() < at
        {
            return Err(JobError::Unavailable(
                "the database was unreachable a moment ago; reconnecting".into(),
            ));
        }
        match self.pool.get().await {
            Ok(conn) => {
                *self.lock_gate() = Gate::default();
                Ok(conn)
            }
            Err(e) => {
                let mut gate = self.lock_gate();
                let backoff = BACKOFF_MIN
                    .saturating_mul(1 << gate.failures.min(8))
                    .min(BACKOFF_MAX);
                gate.failures += 1;
                gate.retry_at = Some(Instant::now() + backoff);
                Err(pool_error(e))
            }
        }
    }

    /// Runs `op` on a pooled connection, bounded by [`OP_TIMEOUT`]. A connection whose operation timed out
    /// is closed rather than returned, since its state is unknown.
    pub(crate) async fn with<T>(
        &self,
        op: impl AsyncFnOnce(&Conn) -> Result<T, JobError>,
    ) -> Result<T, JobError> {
        let started = Instant::now();
        let conn = tokio::time::timeout(OP_TIMEOUT, self.conn())
            .await
            .map_err(|_| JobError::Unavailable("timed out waiting for a connection".into()))??;
        let left = OP_TIMEOUT.saturating_sub(started.elapsed());
        let outcome = tokio::time::timeout(left, op(&conn)).await;
        match outcome {
            Ok(result) => result,
            Err(_) => {
                drop(Object::take(conn));
                Err(JobError::Unavailable(
                    "the database did not answer in time".into(),
                ))
            }
        }
    }

    fn lock_gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// SQLSTATE classes and codes that mean "the database is not reachable or not accepting work right now".
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("57P") // admin/crash shutdown, cannot connect now
        || code == "53300" // too many connections
        || code == "53000" // insufficient resources
        || code == "57014" // statement timeout / cancelled
}

/// The one mapping from a client error to a store error: connection-level trouble is `Unavailable`,
/// anything else is `Storage`. Neither carries the password (the client never prints it).
pub(crate) fn classify(e: tokio_postgres::Error) -> JobError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let text = format!("database error {code}: {}", db.message());
        return if unavailable_code(code) {
            JobError::Unavailable(text)
        } else {
            JobError::Storage(text)
        };
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io || e.to_string().contains("connect") {
        JobError::Unavailable(e.to_string())
    } else {
        JobError::Storage(e.to_string())
    }
}

/// Whether a failed statement may simply be tried again (a deadlock or serialization failure).
pub(crate) fn retryable(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| matches!(db.code().code(), "40001" | "40P01"))
}

fn pool_error(e: PoolError) -> JobError {
    match e {
        PoolError::Backend(e) => match classify(e) {
            JobError::Storage(text) => JobError::Unavailable(text),
            other => other,
        },
        PoolError::Timeout(_) => {
            JobError::Unavailable("timed out connecting to the database".into())
        }
        PoolError::Closed => JobError::Storage("the connection pool is closed".into()),
        PoolError::NoRuntimeSpecified => JobError::Storage("the pool has no runtime".into()),
        PoolError::PostCreateHook(e) => JobError::Unavailable(e.to_string()),
    }
}
