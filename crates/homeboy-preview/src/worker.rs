//! Worker threads: the ingress runs one single-threaded async runtime per worker thread (each with its own
//! accept loop on the shared listening socket) instead of one work-stealing runtime, so a request, the
//! upstream connection it uses and their wake-ups stay on one thread. Connection pools keep one idle list
//! per worker and serve a request from its own worker's list first.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNT: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// How many workers this process runs (1 unless [`run`] said otherwise).
pub fn count() -> usize {
    COUNT.load(Ordering::Relaxed).max(1)
}

/// The calling thread's worker index (0 outside workers).
pub fn current() -> usize {
    INDEX.with(Cell::get).min(count() - 1)
}

/// Runs `make(i)` on `threads` workers, each a thread with its own single-threaded runtime; worker 0 is
/// the calling thread. Returns worker 0's result once every worker has finished.
pub fn run<T, F, Fut>(threads: usize, make: F) -> std::io::Result<T>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let threads = threads.max(1);
    COUNT.store(threads, Ordering::Relaxed);
    let make = std::sync::Arc::new(make);
    let mut handles = Vec::new();
    for i in 1..threads {
        let make = make.clone();
        let runtime = runtime()?;
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    INDEX.with(|c| c.set(i));
                    runtime.block_on(make(i));
                })?,
        );
    }
    INDEX.with(|c| c.set(0));
    let result = runtime()?.block_on(make(0));
    for handle in handles {
        let _ = handle.join();
    }
    Ok(result)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
