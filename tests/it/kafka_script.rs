//! `scripts/kafka.sh` runs a second broker beside the one the suite uses, on its own ports and data
//! dir: start is idempotent, status tells, stop waits for the exit.

use crate::common::{free_ports, text};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

fn kafka_sh(action: &str, client_port: u16, controller_port: u16, data_dir: &Path) -> Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh"))
        .arg(action)
        .env("KAFKA_PORT", client_port.to_string())
        .env("KAFKA_CONTROLLER_PORT", controller_port.to_string())
        .env("KAFKA_DATA_DIR", data_dir)
        .env("KAFKA_HEAP_OPTS", "-Xms128m -Xmx384m")
        .output()
        .expect("running scripts/kafka.sh")
}

#[test]
fn a_second_broker_starts_once_answers_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let [client, controller] = free_ports();

    let started = kafka_sh("start", client, controller, dir.path());
    assert!(started.status.success(), "{}", text(&started));
    assert!(std::net::TcpStream::connect(("127.0.0.1", client)).is_ok());
    let pid = std::fs::read_to_string(dir.path().join("kafka.pid")).unwrap();

    let again = kafka_sh("start", client, controller, dir.path());
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("already running"), "{}", text(&again));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("kafka.pid")).unwrap(),
        pid
    );

    let status = kafka_sh("status", client, controller, dir.path());
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));

    let stopped = kafka_sh("stop", client, controller, dir.path());
    assert!(stopped.status.success(), "{}", text(&stopped));
    let pid_alive = Path::new("/proc").join(pid.trim()).exists();
    assert!(!pid_alive, "stop waits until the broker has exited");
    let status = kafka_sh("status", client, controller, dir.path());
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
}

#[test]
fn start_refuses_a_port_that_another_process_holds() {
    let dir = tempfile::tempdir().unwrap();
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    let [controller] = free_ports();
    let refused = kafka_sh("start", taken, controller, dir.path());
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("already taken"),
        "{}",
        text(&refused)
    );
}
