//! The testkit's `redis-server` harness: it answers, stops, restarts on the same port, keeps
//! its data across a restart only with the append-only file, and is gone after drop.

use std::net::TcpStream;

use reauth_testkit::redis_server::{Persistence, RedisServer};

#[test]
fn server_answers_stops_restarts_on_its_port_and_is_gone_after_drop() {
    let Some(mut server) = RedisServer::start_or_skip("harness_lifecycle") else { return };
    let port = server.port();
    assert!(server.is_running());
    server.ping().unwrap();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(server.command(&["SET", "k", "v"]).unwrap(), "+OK\r\n");
    server.stop();
    assert!(!server.is_running());
    assert!(server.ping().is_err());
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(server.command(&["GET", "k"]).unwrap(), "$-1\r\n", "no persistence: data gone");
    drop(server);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn append_only_server_keeps_its_data_and_ttls_across_a_kill() {
    let Some(mut server) = RedisServer::start_or_skip_with("harness_aof", Persistence::Aof) else {
        return;
    };
    assert_eq!(server.command(&["SET", "k", "v", "PX", "600000"]).unwrap(), "+OK\r\n");
    server.restart().unwrap();
    assert_eq!(server.command(&["GET", "k"]).unwrap(), "$1\r\nv\r\n");
    let ttl = server.command(&["PTTL", "k"]).unwrap();
    let ttl: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "{ttl}");
}
