//! A test fixture whose readiness is switched by signals, for each `--ready-when` source:
//! `ready_app tcp PORT`, `ready_app http PORT`, `ready_app notify`.
//! It starts not ready and says `waiting`; SIGUSR1 makes it ready (tcp: it listens on
//! 127.0.0.1:PORT; http: it listens and answers 200; notify: it sends READY=1 and a STATUS=),
//! SIGUSR2 unready (tcp: it closes the port; http: it answers 503; notify: STOPPING=1), each
//! followed by a line saying so. SIGTERM ends it with status 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::*;

fn main() {
    let set = block_all_signals(); // before any thread: they inherit the mask
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or_default();
    let port: u16 = args.get(1).map(|p| p.parse().unwrap()).unwrap_or(0);
    let healthy = Arc::new(AtomicBool::new(false));
    let mut listener = None;
    say("waiting");
    loop {
        match wait_signal(&set) {
            libc::SIGUSR1 => {
                match mode {
                    "tcp" => listener = Some(TcpListener::bind(("127.0.0.1", port)).unwrap()),
                    "http" => {
                        healthy.store(true, Ordering::SeqCst);
                        if listener.is_none() {
                            let bound = TcpListener::bind(("127.0.0.1", port)).unwrap();
                            let serving = bound.try_clone().unwrap();
                            let healthy = Arc::clone(&healthy);
                            std::thread::spawn(move || serve(&serving, &healthy));
                            listener = Some(bound);
                        }
                    }
                    "notify" => notify("READY=1\nSTATUS=serving requests\n"),
                    other => panic!("unknown mode {other:?}"),
                }
                say("now ready");
            }
            libc::SIGUSR2 => {
                match mode {
                    "tcp" => listener = None,
                    "http" => healthy.store(false, Ordering::SeqCst),
                    _ => notify("STOPPING=1\nSTATUS=shutting down\n"),
                }
                say("now unready");
            }
            libc::SIGTERM => exit_now(0),
            _ => {}
        }
    }
}

fn serve(listener: &TcpListener, healthy: &AtomicBool) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let status = if healthy.load(Ordering::SeqCst) {
            "200 OK"
        } else {
            "503 Service Unavailable"
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
}

/// One sd_notify datagram to the abstract socket named in NOTIFY_SOCKET (`@name`).
fn notify(message: &str) {
    let name = std::env::var("NOTIFY_SOCKET").expect("NOTIFY_SOCKET is set");
    let name = name.strip_prefix('@').expect("an abstract socket");
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::unbound().unwrap();
    socket.send_to_addr(message.as_bytes(), &addr).unwrap();
}
