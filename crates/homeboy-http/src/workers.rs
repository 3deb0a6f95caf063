//! Worker threads: the ingress and the artifact origin run one single-threaded async runtime per worker
//! thread, each with its own `SO_REUSEPORT` listening socket on the same address and its own accept loop
//! ([`crate::serve`]), instead of one work-stealing runtime: the kernel spreads connections over the workers
//! and a request, the upstream connection it uses and their wake-ups stay on one thread (the nginx worker
//! model). Connection pools keep one idle list per worker and serve a request from its own worker's list
//! first ([`current`]).

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

/// `count` non-blocking listening sockets on one address with `SO_REUSEPORT` (and `SO_REUSEADDR`, for quick
/// restarts), so the kernel spreads connections over the workers. The first resolves port 0; the others join
/// it.
pub fn reuseport_listeners(
    addr: std::net::SocketAddr,
    count: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let first = reuseport_listener(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count.max(1) {
        listeners.push(reuseport_listener(bound)?);
    }
    Ok(listeners)
}

fn reuseport_listener(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let socket = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&socket, true)?;
    sockopt::set_socket_reuseport(&socket, true)?;
    rustix::net::bind(&socket, &addr)?;
    // As deep as the system allows (`net.core.somaxconn`): a thousand clients may arrive at once.
    rustix::net::listen(&socket, -1)?;
    Ok(std::net::TcpListener::from(socket))
}

/// Raises the soft open-file limit to the hard one (systemd starts services at 1,024; every preview
/// client's channel and every browser connection is a file). Returns the limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).ok()?;
    }
    limit.current
}

/// Deepens a listening socket's accept backlog from the standard library's 128 to the system's limit
/// (`net.core.somaxconn`): thousands of preview clients reconnect at once after a restart.
pub fn deep_backlog(listener: std::net::TcpListener) -> std::io::Result<std::net::TcpListener> {
    rustix::net::listen(&listener, -1)?;
    Ok(listener)
}

/// The number of available cores (at least 1): the default worker count.
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
