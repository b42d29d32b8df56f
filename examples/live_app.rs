//! A test fixture for `--live-when`, switched by signals; each change is followed by a line
//! saying so. SIGTERM ends it with status 0 after saying `stopping on SIGTERM`.
//!
//! - `live_app http PORT`: serves `GET /healthz` (200) on 127.0.0.1:PORT, one thread per
//!   connection, and says `serving`. SIGUSR1: every request from then on is read and never
//!   answered (a deadlocked handler), `hanging`; SIGUSR2: answered again, `answering`.
//! - `live_app watchdog [ready]`: says `watchdog WATCHDOG_USEC pid=WATCHDOG_PID` (`unset` when
//!   a variable is), sends `READY=1` with `ready`, then `WATCHDOG=1` every quarter of the
//!   interval, saying `ping` after each. SIGUSR1: it stops pinging, `paused`; SIGUSR2: it pings
//!   again at once, `pinging`; SIGHUP: it sends `WATCHDOG=trigger`, `triggered`.
//! - `live_app send MESSAGE`: sends MESSAGE (`\n` for newlines) to NOTIFY_SOCKET, says `sent`,
//!   and waits for SIGTERM (alive, so that usher can still find whose it was).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::*;

fn main() {
    let set = block_all_signals(); // before any thread: they inherit the mask
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or_default();
    let switch = Arc::new(AtomicBool::new(false));
    match mode {
        "http" => {
            let port: u16 = args[1].parse().unwrap();
            let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
            let hang = Arc::clone(&switch);
            std::thread::spawn(move || serve(&listener, &hang));
            say("serving");
        }
        "watchdog" => {
            let usec = std::env::var("WATCHDOG_USEC").unwrap_or_else(|_| "unset".into());
            let pid = std::env::var("WATCHDOG_PID").unwrap_or_else(|_| "unset".into());
            say(&format!("watchdog {usec} pid={pid}"));
            if args.get(1).map(String::as_str) == Some("ready") {
                notify("READY=1\nSTATUS=ready and pinging");
            }
            let interval = Duration::from_micros(usec.parse().unwrap()) / 4;
            let paused = Arc::clone(&switch);
            std::thread::spawn(move || ping(interval, &paused));
        }
        "send" => {
            notify(&args[1].replace("\\n", "\n"));
            say("sent");
        }
        other => panic!("unknown mode {other:?}"),
    }
    loop {
        match wait_signal(&set) {
            libc::SIGUSR1 => {
                switch.store(true, Ordering::SeqCst);
                say(if mode == "http" { "hanging" } else { "paused" });
            }
            libc::SIGUSR2 => {
                switch.store(false, Ordering::SeqCst);
                if mode == "watchdog" {
                    notify("WATCHDOG=1");
                }
                say(if mode == "http" {
                    "answering"
                } else {
                    "pinging"
                });
            }
            libc::SIGHUP if mode == "watchdog" => {
                notify("WATCHDOG=trigger");
                say("triggered");
            }
            libc::SIGTERM => {
                say("stopping on SIGTERM");
                exit_now(0);
            }
            _ => {}
        }
    }
}

fn serve(listener: &TcpListener, hang: &Arc<AtomicBool>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let hang = Arc::clone(hang);
        std::thread::spawn(move || answer(stream, &hang));
    }
}

fn answer(mut stream: TcpStream, hang: &AtomicBool) {
    let mut request = [0u8; 1024];
    let _ = stream.read(&mut request);
    if hang.load(Ordering::SeqCst) {
        // Holds the connection open, answering nothing, as a deadlocked handler does.
        loop {
            std::thread::park();
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
    );
}

fn ping(interval: Duration, paused: &AtomicBool) {
    loop {
        if !paused.load(Ordering::SeqCst) {
            notify("WATCHDOG=1");
            say("ping");
        }
        std::thread::sleep(interval);
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
