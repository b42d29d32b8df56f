//! Fixture: tries to listen on 0.0.0.0:PORT; prints `bound PORT` and exits 0, or
//! `bind failed: ERROR` and exits 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .expect("usage: bind_port PORT")
        .parse()
        .unwrap();
    match std::net::TcpListener::bind(("0.0.0.0", port)) {
        Ok(_) => println!("bound {port}"),
        Err(e) => {
            println!("bind failed: {e}");
            std::process::exit(1);
        }
    }
}
