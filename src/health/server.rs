//! The HTTP side: hyper on a current-thread tokio runtime in a thread of its own, so that the
//! child, the log relays or a stalled stdout never hold up a probe. Slow or idle clients are
//! timed out, request heads are small, and connections are capped: when the cap is reached a
//! new connection closes the oldest one that is not answering a request and has had its chance
//! to send one (a slowloris client's, usually), so a probe is always answered, and usher's
//! descriptors and memory stay bounded whatever clients do (README, "Under load and attack").

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::task::AbortHandle;

use super::Health;
use super::routes;

/// Connections served at once: past it, a new connection closes an older one (see
/// [`Open::make_room`]). Above what 300 idle or half-sent connections take; lowered when the
/// open-files limit is lower, so that accept never runs out of descriptors (and fails over and
/// over) first. With [`MAX_HEAD`] it bounds the server's memory: a connection holds at most a
/// read and a write buffer of that size, about 10 MiB for all of them (measured).
const MAX_CONNECTIONS: usize = 512;
/// The largest request head (request line and headers) read: hyper's smallest buffer. A
/// probe's or a scrape's is a few hundred bytes; a longer one is answered 431 and closed
/// rather than buffered (hyper's default would take 400 KiB per connection).
const MAX_HEAD: usize = 8192;
/// Connections the kernel completes before usher accepts them (listen(2)'s backlog, capped by
/// `net.core.somaxconn`): std's 128 overflows under a burst of connections, and a probe whose
/// SYN is dropped then waits a second for its retransmission, past a 1 s probe timeout.
const BACKLOG: i32 = 4096;
/// A new connection that has sent nothing is not closed for a newer one before this (see
/// [`Open::make_room`]): a probe's request follows its connection at once. Also how long a
/// burst of connections that send nothing can hold up accepting others.
const FRESH_GRACE: Duration = Duration::from_millis(250);
/// With no room, how long the accept loop waits before it looks again for a connection to
/// close (one that has ended, or grown old, since).
const SLOT_WAIT: Duration = Duration::from_millis(20);

/// Descriptors left for everything else (pipes, the signalfd, sockets of the readiness checks).
const RESERVED_FILES: u64 = 64;
/// After a failed accept (out of descriptors, memory), wait this long: never spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// A client must send its request headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed after answering this many requests (the last answer says
/// `Connection: close`): a client that pipelines requests and never reads the answers makes
/// usher render this many (a `/metrics` costs about 0.25 ms in a debug build), not as many as
/// the socket's buffers hold. Probes make one request per connection; a scraper that keeps
/// its connection makes a new one every tenth scrape.
const MAX_REQUESTS: u32 = 10;
/// No connection lives longer than this, idle keep-alive included.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Binds the address before anything starts (a port in use is a configuration error, but see
/// [`taken`]).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // listen(2) again on a listening socket only sets its backlog.
    let backlog = nix::sys::socket::Backlog::new(BACKLOG).map_err(io::Error::from)?;
    nix::sys::socket::listen(&listener, backlog).map_err(io::Error::from)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Whether a [`bind`] error says the address is taken (`EADDRINUSE`, bind(2)): with the
/// default address, another usher in the same network namespace (two containers of one pod,
/// Compose `network_mode: service:`) serves there, and usher runs without its own server.
/// Any other error (`EACCES` from a security policy, `EADDRNOTAVAIL`) says the environment is
/// not what usher expects, and stays a configuration error even for the default address.
pub fn taken(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::AddrInUse
}

/// Serves on `listener` from a thread of its own. Started once usher has dropped its
/// privileges: capabilities are per thread. Errors: no descriptor to spare (see `serve`), the
/// runtime cannot be built, the listener cannot be registered with it (epoll), or the thread
/// cannot be spawned; the io::Error as is (the caller says what failed).
pub fn start(listener: TcpListener, health: Arc<Health>) -> io::Result<()> {
    // Without a descriptor to spare the server could accept nothing, and every probe would
    // hang in the listen backlog: better refused at once (the listener closes with the error).
    let spare = listener.as_fd().try_clone_to_owned()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    // Registered here, where a failure is still reported, rather than in the thread, where it
    // would leave usher running without its health server and nothing said.
    let listener = {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    std::thread::Builder::new()
        .name("usher-health".into())
        .spawn(move || {
            runtime.block_on(serve(listener, health, spare));
        })?;
    Ok(())
}

/// Accepts and serves connections. `spare` holds a descriptor for when every other is taken
/// (EMFILE, ENFILE: a low RLIMIT_NOFILE, or many open connections): it is closed to accept the
/// waiting connection in its place, which is served, and taken again once descriptors are
/// free, rather than leave the probe waiting in the backlog while accept fails over and over.
async fn serve(listener: tokio::net::TcpListener, health: Arc<Health>, spare: OwnedFd) {
    // The cap and the connections being closed beyond it (an eighth of it) must fit in the
    // descriptors left.
    let limit = crate::sys::open_files_limit()
        .map(|files| files.saturating_sub(RESERVED_FILES).saturating_mul(8) / 9)
        .map(|files| files.max(16))
        .and_then(|files| usize::try_from(files).ok())
        .unwrap_or(MAX_CONNECTIONS);
    let open = Arc::new(Open {
        cap: MAX_CONNECTIONS.min(limit),
        connections: Mutex::default(),
    });
    let mut spare = Some(spare);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // The next accept takes the connection in the spare's place.
            Err(e) if out_of_descriptors(&e) && spare.is_some() => {
                drop(spare.take());
                continue;
            }
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                spare = spare.or_else(|| listener.as_fd().try_clone_to_owned().ok());
                continue;
            }
        };
        spare = spare.or_else(|| listener.as_fd().try_clone_to_owned().ok());
        // No room: the connections it has are served meanwhile (those that send nothing end,
        // the others grow old enough to be closed), and the kernel's backlog holds newer ones.
        while !open.make_room() {
            tokio::time::sleep(SLOT_WAIT).await;
        }
        let state = Arc::new(State {
            accepted: Instant::now(),
            heard: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            requests: AtomicU32::new(0),
        });
        let id = open.lock().next_id();
        let ended = Ended {
            open: Arc::clone(&open),
            id,
        };
        let connection = serve_connection(stream, Arc::clone(&health), Arc::clone(&state));
        let task = tokio::spawn(async move {
            connection.await;
            drop(ended);
        });
        // Before the task can run and end (a current-thread runtime runs it only once this
        // loop awaits), so that its end always finds its entry.
        let task = task.abort_handle();
        open.lock().by_age.push(Entry { id, task, state });
    }
}

/// accept(2) failed for want of a descriptor, usher's or the system's.
fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// One connection, from its first byte to its end (or until it is closed for a newer one:
/// then the task is dropped where it waits, which closes the socket).
async fn serve_connection(stream: tokio::net::TcpStream, health: Arc<Health>, state: Arc<State>) {
    // The first bytes, or the end: a client that has sent something may be closed for a newer
    // one (see [`Open::make_room`]); one that closes at once is done with.
    match tokio::time::timeout(HEADER_TIMEOUT, stream.peek(&mut [0; 1])).await {
        Ok(Ok(1..)) => state.heard.store(true, Ordering::Relaxed),
        _ => return,
    }
    let state_accepted = state.accepted;
    let service = service_fn(move |request: Request<Incoming>| {
        state.busy.store(true, Ordering::Relaxed);
        let last = state.requests.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_REQUESTS;
        let (method, path) = (request.method().as_str(), request.uri().path());
        let mut answer = routes::route(method, path, &health);
        let resources = routes::wants_resources(method, path)
            .then(|| health.resources())
            .flatten();
        let state = Arc::clone(&state);
        async move {
            // The container's and the app's figures, read off this thread.
            if let Some(resources) = resources {
                answer.body.push_str(&resources.text().await);
            }
            state.busy.store(false, Ordering::Relaxed);
            Ok::<_, Infallible>(to_hyper(answer, last))
        }
    });
    // The time to send the first head counts from the connection, not from the first byte
    // (hyper applies it to every head after that too).
    let head_timeout = HEADER_TIMEOUT.saturating_sub(state_accepted.elapsed());
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout.max(Duration::from_millis(1)))
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
}

/// Where a connection stands, for choosing which to close when the cap is reached.
struct State {
    accepted: Instant,
    /// The client has sent something.
    heard: AtomicBool,
    /// A request is being answered.
    busy: AtomicBool,
    /// Requests answered or being answered.
    requests: AtomicU32,
}

/// The connections being served, oldest first. A std mutex: only the server's one thread
/// takes it, never across an await.
struct Open {
    /// Connections served at once ([`MAX_CONNECTIONS`], or fewer for the open-files limit).
    cap: usize,
    connections: Mutex<Connections>,
}

#[derive(Default)]
struct Connections {
    last_id: u64,
    by_age: Vec<Entry>,
    /// Connections closed for newer ones whose task the runtime has not dropped yet: their
    /// sockets are still open.
    closing: usize,
}

struct Entry {
    id: u64,
    task: AbortHandle,
    state: Arc<State>,
}

impl Connections {
    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }
}

impl Open {
    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a new connection may be served: there is room under the cap, or the oldest
    /// connection that may be closed is closed for it. A connection may be closed unless it is
    /// answering a request, or came less than [`FRESH_GRACE`] ago and has sent nothing yet: a
    /// probe sends its request at once and is answered in the same turn, however many
    /// connections arrive meanwhile, while a client that sends part of a request and waits
    /// (slowloris), waits between requests, or sends nothing, is closed, oldest first. Its
    /// socket is closed when the runtime drops its task, at its next turn, so that a burst of
    /// new connections is accepted without waiting a turn each; at most an eighth of the cap
    /// is left open that way.
    fn make_room(&self) -> bool {
        let mut connections = self.lock();
        if connections.by_age.len() < self.cap {
            return true;
        }
        if connections.closing >= (self.cap / 8).max(1) {
            return false;
        }
        let closable = |entry: &Entry| {
            let state = &entry.state;
            !state.busy.load(Ordering::Relaxed)
                && (state.heard.load(Ordering::Relaxed) || state.accepted.elapsed() >= FRESH_GRACE)
        };
        let Some(oldest) = connections.by_age.iter().position(closable) else {
            return false;
        };
        connections.by_age.remove(oldest).task.abort();
        connections.closing += 1;
        true
    }
}

/// When a connection's task ends: its entry goes, or, for a connection closed for a newer one
/// (its entry already gone), its socket is counted closed.
struct Ended {
    open: Arc<Open>,
    id: u64,
}

impl Drop for Ended {
    fn drop(&mut self) {
        let mut connections = self.open.lock();
        // From the newest: most connections that end by themselves are young.
        match connections
            .by_age
            .iter()
            .rposition(|entry| entry.id == self.id)
        {
            Some(at) => drop(connections.by_age.remove(at)),
            None => connections.closing = connections.closing.saturating_sub(1),
        }
    }
}

/// The answer as hyper's response; `last` closes the connection after it.
fn to_hyper(answer: routes::Response, last: bool) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = hyper::StatusCode::from_u16(answer.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if last {
        let close = hyper::header::HeaderValue::from_static("close");
        headers.insert(hyper::header::CONNECTION, close);
    }
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(answer.content_type),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    if let Some(allow) = answer.allow {
        headers.insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static(allow),
        );
    }
    response
}
