//! The HTTP side: hyper on a current-thread tokio runtime in a thread of its own, so that the
//! child, the log relays or a stalled stdout never hold up a probe. Slow or idle clients are
//! timed out and connections are capped, so a probe is always answered.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use super::Health;
use super::routes;

/// Connections served at once; more are closed at once. Far above what 300 idle or half-sent
/// connections take, so they cannot starve a probe; lowered when the open-files limit is lower,
/// so that accept never runs out of descriptors (and fails over and over) first.
const MAX_CONNECTIONS: usize = 1024;
/// Descriptors left for everything else (pipes, the signalfd, sockets of the readiness checks).
const RESERVED_FILES: u64 = 64;
/// After a failed accept (out of descriptors, memory), wait this long: never spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// A client must send its request headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection lives longer than this, idle keep-alive included.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Binds the address before anything starts (a port in use is a configuration error, but see
/// [`taken`]).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
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
    let limit = crate::sys::open_files_limit()
        .map(|files| files.saturating_sub(RESERVED_FILES).max(16))
        .and_then(|files| usize::try_from(files).ok())
        .unwrap_or(MAX_CONNECTIONS);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS.min(limit)));
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
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let health = Arc::clone(&health);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let (method, path) = (request.method().as_str(), request.uri().path());
                let mut answer = routes::route(method, path, &health);
                let resources = routes::wants_resources(method, path)
                    .then(|| health.resources())
                    .flatten();
                async move {
                    // The container's and the app's figures, read off this thread.
                    if let Some(resources) = resources {
                        answer.body.push_str(&resources.text().await);
                    }
                    Ok::<_, Infallible>(to_hyper(answer))
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(permit);
        });
    }
}

/// accept(2) failed for want of a descriptor, usher's or the system's.
fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

fn to_hyper(answer: routes::Response) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = hyper::StatusCode::from_u16(answer.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
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
