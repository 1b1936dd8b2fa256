//! Bounded work, from outside over raw TCP: idle and trickling connections are closed, the
//! number of open connections is capped, a saturated server sheds load with 503, a request past
//! its deadline is answered 503, a trickling body holds no request slot and gets 408, and
//! requests hyper cannot parse get problem documents.

use crate::common::{kafka_bootstrap, unique_topic, Registry, PATIENCE};
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn start(test: &str, flags: &[&str]) -> (Registry, tempfile::TempDir) {
    start_failing(test, flags, "")
}

fn connect(registry: &Registry) -> TcpStream {
    let address = registry.base_url.trim_start_matches("http://");
    let stream = TcpStream::connect(address).expect("connecting to the registry");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads one whole answer (the server closes the connection after it: every request here says
/// `Connection: close`), returning its status line, its headers and its body.
fn answer(stream: &mut TcpStream) -> (u16, String, String) {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("reading the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn request(registry: &Registry, raw: &str) -> (u16, String, String) {
    let mut stream = connect(registry);
    stream.write_all(raw.as_bytes()).unwrap();
    answer(&mut stream)
}

/// Whether the server closed `stream` (a read gives end of file or a reset) before `patience`.
fn closed_by_server(stream: &mut TcpStream, patience: Duration) -> bool {
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut buffer = [0; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn idle_and_trickling_connections_are_closed() {
    let (registry, _dir) = start("limits-idle", &["--header-read-timeout-ms", "500"]);
    // Nothing sent at all.
    let mut silent = connect(&registry);
    assert!(closed_by_server(&mut silent, PATIENCE));

    // A header line now and then, never the end of the head: closed while it still trickles.
    let mut trickling = connect(&registry);
    trickling
        .write_all(b"GET /api/v01/customers HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(100));
        if trickling.write_all(b"X-Trickle: 1\r\n").is_err() {
            closed = true;
            break;
        }
        trickling.set_nonblocking(true).unwrap();
        let mut probe = [0; 512];
        let read = trickling.read(&mut probe);
        trickling.set_nonblocking(false).unwrap();
        match read {
            Ok(_) => {
                closed = true;
                break;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "a trickling head kept its connection for {PATIENCE:?}"
    );

    // A normal request on a fresh connection is still served.
    let (status, _, _) = request(
        &registry,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
}

/// Reads one answer of a kept-alive connection: its head, then as many body bytes as its
/// `content-length` says; returns the status.
fn read_one_answer(stream: &mut TcpStream) -> u16 {
    let mut raw = Vec::new();
    let mut byte = [0; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).expect("reading a head"),
            1,
            "closed early"
        );
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |length| length.trim().parse().unwrap());
    let mut body = vec![0; length];
    stream.read_exact(&mut body).expect("reading a body");
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn connections_past_the_cap_wait_until_one_closes() {
    let (registry, _dir) = start(
        "limits-connections",
        &[
            "--max-connections",
            "3",
            "--header-read-timeout-ms",
            "60000",
        ],
    );
    // Three connections, each shown to be accepted by an answer, then kept open and idle.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = connect(&registry);
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert_eq!(read_one_answer(&mut stream), 200);
            stream
        })
        .collect();
    let mut waiting = connect(&registry);
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting.set_nonblocking(true).unwrap();
    // Half a second for a wrong answer to show: a server that answers would do so at once; a
    // slow machine can only make this pass wrongly, never fail wrongly.
    std::thread::sleep(Duration::from_millis(500));
    let mut buffer = [0; 64];
    let read = waiting.read(&mut buffer);
    assert!(
        matches!(&read, Err(error) if error.kind() == ErrorKind::WouldBlock),
        "answered while 3 connections were open: {read:?}"
    );
    waiting.set_nonblocking(false).unwrap();
    drop(held);
    let (status, _, _) = answer(&mut waiting);
    assert_eq!(status, 200, "answered once a connection closed");
}

/// [`start`], with failpoints set (`FAILPOINTS`, a test build's only; empty for none).
fn start_failing(test: &str, flags: &[&str], failpoints: &str) -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start_with_env(
        &kafka_bootstrap(),
        &unique_topic(test),
        &dir.path().join("data"),
        flags,
        &[("FAILPOINTS", failpoints)],
    );
    (registry, dir)
}

const LIST: &str = "GET /api/v01/customers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn a_saturated_server_sheds_load_and_still_answers_probes() {
    // The first request the routes get takes 3 s (a failpoint), holding the one slot.
    let (registry, _dir) = start_failing(
        "limits-shedding",
        &["--max-in-flight", "1", "--request-deadline-ms", "60000"],
        "http-delay=1*return(3000)",
    );
    let mut slow = connect(&registry);
    slow.write_all(LIST.as_bytes()).unwrap();
    // Its head start, so that it is the request the failpoint delays.
    std::thread::sleep(Duration::from_millis(500));
    let deadline = Instant::now() + PATIENCE;
    let (status, head, problem) = loop {
        assert!(Instant::now() < deadline, "no request was ever shed");
        let answered = request(&registry, LIST);
        if answered.0 == 503 {
            break answered;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status, 503, "{problem}");
    assert!(head.contains("retry-after: 1"), "{head}");
    let problem: Value = serde_json::from_str(&problem).unwrap();
    assert_eq!(problem["type"], "/problems/overloaded");
    let (status, _, _) = request(
        &registry,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "probes are never shed");
    let (status, _, metrics) = request(
        &registry,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "metrics are never shed");
    let refused = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(r#"registry_http_requests_refused_total{reason="overloaded"} "#)
        })
        .and_then(|count| count.parse::<u64>().ok());
    assert!(refused.is_some_and(|count| count >= 1), "{metrics}");

    let (status, _, listed) = answer(&mut slow);
    assert_eq!(status, 200, "{listed}");
    assert_eq!(request(&registry, LIST).0, 200, "the slot is free again");
}

#[test]
fn a_request_past_its_deadline_is_answered_503() {
    let (registry, _dir) = start_failing(
        "limits-deadline",
        &["--request-deadline-ms", "300"],
        "http-delay=return(2000)",
    );
    let (status, head, body) = request(&registry, LIST);
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("retry-after"), "{head}");
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["type"], "/problems/deadline-exceeded");
}

/// One API key's client holds at most its share of the request slots: past it, 429 at once,
/// while another key's requests still get slots.
#[test]
fn one_key_holds_at_most_its_share_of_the_slots() {
    // Every request the routes get takes 2 s (a failpoint): slots stay held.
    let (registry, _dir) = start_failing(
        "limits-per-key",
        &["--max-in-flight", "8", "--max-in-flight-per-key", "2"],
        "http-delay=return(2000)",
    );
    let with_key = |key: &str| {
        format!(
            "GET /api/v01/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Connection: close\r\n\r\n"
        )
    };
    let mut greedy: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut held = connect(&registry);
            held.write_all(with_key("greedy").as_bytes()).unwrap();
            held
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (status, head, problem) = request(&registry, &with_key("greedy"));
    assert_eq!(status, 429, "{problem}");
    assert!(head.contains("retry-after: 1"), "{head}");
    let problem: Value = serde_json::from_str(&problem).unwrap();
    assert_eq!(problem["type"], "/problems/too-many-requests");
    let (status, _, listed) = request(&registry, &with_key("modest"));
    assert_eq!(status, 200, "another key still gets a slot: {listed}");
    for held in &mut greedy {
        assert_eq!(answer(held).0, 200);
    }
    assert_eq!(
        request(&registry, &with_key("greedy")).0,
        200,
        "its share is back"
    );
}

/// A body that trickles in holds its connection only: not one of the request slots (read
/// before one is taken), and not past the body read timeout (408).
#[test]
fn slow_bodies_hold_no_request_slot_and_time_out_with_408() {
    let (registry, _dir) = start(
        "limits-slow-body",
        &["--max-in-flight", "2", "--body-read-timeout-ms", "1500"],
    );
    let body = r#"{"accountId": 5, "lastName": "Slow"}"#;
    let mut stalled: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut slow = connect(&registry);
            write!(
                slow,
                "PUT /api/v01/customers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                body.len(),
                &body[..5]
            )
            .unwrap();
            slow
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, listed) = request(&registry, LIST);
    assert_eq!(
        status, 200,
        "six stalled bodies must not fill two slots: {listed}"
    );
    for slow in &mut stalled {
        let (status, head, problem) = answer(slow);
        assert_eq!(status, 408, "{problem}");
        assert!(head.contains("connection: close"), "{head}");
        let problem: Value = serde_json::from_str(&problem).unwrap();
        assert_eq!(problem["type"], "/problems/body-timeout");
    }
}

#[test]
fn requests_the_http_library_refuses_get_problem_documents() {
    let (registry, _dir) = start("limits-parse", &[]);
    let huge_header = format!(
        "GET /api/v01/customers HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let long_uri = format!(
        "GET /api/v01/customers?firstName={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let many_headers = format!(
        "GET /api/v01/customers HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        (0..101)
            .map(|n| format!("X-{n}: 1\r\n"))
            .collect::<String>()
    );
    let cases = [
        (huge_header, 431),
        (long_uri, 414),
        (many_headers, 431),
        (
            "GET /api/v01/customers HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
            400,
        ),
        (
            "GET /api/v01/customers HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n"
                .to_owned(),
            400,
        ),
        (
            "PUT /api/v01/customers HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_owned(),
            400,
        ),
        (
            "PUT /api/v01/customers HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\
             Content-Length: 3\r\n\r\n{}"
                .to_owned(),
            400,
        ),
        ("GARBAGE\r\n\r\n".to_owned(), 400),
    ];
    for (raw, expected) in cases {
        let (status, head, body) = request(&registry, &raw);
        let shown = &raw[..raw.len().min(60)];
        assert_eq!(status, expected, "{shown:?}");
        assert!(
            head.contains("content-type: application/problem+json"),
            "{shown:?}: {head}"
        );
        let problem: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body:?}"));
        assert_eq!(problem["status"], expected, "{problem}");
        if raw.contains("X-100") {
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap()
                    .contains("100 header fields"),
                "{problem}"
            );
        }
        assert!(problem["type"].as_str().unwrap().starts_with("/problems/"));
    }
}
