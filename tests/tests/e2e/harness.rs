//! The harness itself cannot pass vacuously: a body cut short is an error (not an empty body), a leak scan
//! refuses a haystack that is missing or empty, and every wait on a process is bounded.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::time::Duration;

use homeboy_e2e::{Bounded, Http, banner, haystack, pid_alive, wait_until};

/// A one-shot server that promises 100 bytes of body, sends 5, and hangs up.
fn short_body_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort");
    });
    format!("http://{addr}/")
}

#[test]
fn a_body_cut_short_is_an_error_not_an_empty_body() {
    let url = short_body_server();
    let answer = Http::new().try_request("GET", &url, &[], None);
    let error = answer.expect_err("a truncated body must not read as a response");
    assert!(error.contains("reading the body"), "{error}");
    let url = short_body_server();
    let failed = catch_unwind(AssertUnwindSafe(|| Http::new().get(&url)));
    assert!(failed.is_err(), "`get` must fail the test");
}

#[test]
fn a_leak_scan_refuses_a_missing_or_empty_haystack() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    for path in [dir.path().join("missing.log"), empty] {
        assert!(
            catch_unwind(|| haystack(&path)).is_err(),
            "{} was accepted",
            path.display()
        );
    }
    let real = dir.path().join("real.log");
    std::fs::write(&real, "something").unwrap();
    assert_eq!(haystack(&real), "something");
}

#[test]
fn waits_on_processes_are_bounded() {
    // A process that never prints its banner.
    let mut silent = Command::new("sleep")
        .arg("30")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = silent.id();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        banner(&mut silent, Duration::from_millis(300), "sleep")
    }));
    assert!(outcome.is_err(), "a missing banner must fail the test");
    assert!(
        wait_until(Duration::from_secs(5), || !pid_alive(u64::from(pid))),
        "the silent process was left running"
    );
    // A command that does not end.
    let outcome = catch_unwind(|| {
        Command::new("sleep")
            .arg("30")
            .output_within(Duration::from_millis(300))
    });
    assert!(outcome.is_err(), "a hung command must fail the test");
    // And one that ends is answered as `output` would be.
    let out = Command::new("sh")
        .args(["-c", "echo out; echo err >&2; exit 3"])
        .output_bounded()
        .unwrap();
    assert_eq!(
        (
            out.status.code(),
            out.stdout.as_slice(),
            out.stderr.as_slice()
        ),
        (Some(3), &b"out\n"[..], &b"err\n"[..])
    );
}
