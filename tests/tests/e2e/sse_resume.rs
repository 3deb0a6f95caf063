//! Resuming `GET /jobs/:id/events?follow=true` on a real broker: with `after=N`, with `Last-Event-ID: N`,
//! and as a browser's `EventSource` reconnects (the original URL, `after=0` included, plus
//! `Last-Event-ID`). Each stream must deliver exactly the events after N, once each and in order, across
//! more than one page of stored events (the stream reads 500 per store call) and while new events arrive —
//! both while it is still paging through the stored ones and after it has caught up.
//!
//! The job's events come from the runner API itself (a claim taken over HTTP, events posted in batches), so
//! the test decides exactly when each one arrives.

use std::io::{BufRead, BufReader};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use homeboy_e2e::{Broker, Home, Http};
use serde_json::{Value, json};

/// Events the stream reads per store call (`STREAM_PAGE` in the daemon's `jobs_runtime.rs`).
const STREAM_PAGE: u64 = 500;

/// One Server-Sent Events frame.
#[derive(Debug)]
struct Frame {
    id: Option<u64>,
    event: String,
    data: String,
}

/// A followed event stream, read on its own thread; frames arrive on `frames`.
struct Follow {
    frames: Receiver<Result<Frame, String>>,
}

impl Follow {
    fn open(url: &str, headers: &[(&str, &str)]) -> Follow {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(120)))
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let mut request = agent.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (sender, frames) = channel();
        let url = url.to_string();
        std::thread::spawn(move || {
            let response = match request.call() {
                Ok(response) => response,
                Err(e) => {
                    let _ = sender.send(Err(format!("GET {url}: {e}")));
                    return;
                }
            };
            if response.status() != 200 {
                let _ = sender.send(Err(format!("GET {url}: HTTP {}", response.status())));
                return;
            }
            let mut reader = BufReader::new(response.into_body().into_reader());
            let (mut id, mut event, mut data) = (None, String::new(), String::new());
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) => {
                        let _ = sender.send(Err("the stream ended without `event: end`".into()));
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = sender.send(Err(format!("reading the stream: {e}")));
                        return;
                    }
                }
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if event.is_empty() && data.is_empty() {
                        continue; // a frame of comments or `retry` only
                    }
                    let frame = Frame {
                        id: id.take(),
                        event: std::mem::take(&mut event),
                        data: std::mem::take(&mut data),
                    };
                    let end = frame.event == "end";
                    if sender.send(Ok(frame)).is_err() || end {
                        return;
                    }
                } else if let Some(value) = line.strip_prefix("id: ") {
                    id = Some(value.parse().expect("a numeric event id"));
                } else if let Some(value) = line.strip_prefix("event: ") {
                    event = value.to_string();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
        });
        Follow { frames }
    }

    /// The next frame; fails the test on an error, or if none comes within 30 s.
    fn next(&self) -> Frame {
        match self.frames.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => panic!("{e}"),
            Err(RecvTimeoutError::Timeout) => panic!("no frame within 30 s"),
            Err(RecvTimeoutError::Disconnected) => panic!("the stream reader stopped"),
        }
    }
}

/// A broker keeping every event, and one job claimed over HTTP whose events the test posts.
struct Fixture {
    _home: Home,
    broker: Broker,
    http: Http,
    work: String,
    job: String,
    claim: String,
    posted: u64,
}

impl Fixture {
    fn new() -> Fixture {
        let home = Home::new();
        let submit = home.pair("lab", "submit");
        let work = home.pair("lab", "work");
        let broker = Broker::start(&home, &["--event-retention", "100000"]);
        let http = Http::new();
        let r = http.post_auth(
            &format!("{}/runner/jobs", broker.url),
            &submit,
            &json!({"runner_id": "lab", "command": ["true"]}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let job = r.json()["data"]["job"]["id"].as_str().unwrap().to_string();
        let r = http.post_auth(
            &format!("{}/runner/jobs/claim", broker.url),
            &work,
            &json!({"runner_id": "lab", "lease_ms": 600_000}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let claimed = &r.json()["data"]["claim"]["job"];
        assert_eq!(claimed["id"], job.as_str());
        let claim = claimed["claim_id"].as_str().unwrap().to_string();
        Fixture {
            _home: home,
            broker,
            http,
            work,
            job,
            claim,
            posted: 0,
        }
    }

    /// Posts `count` stdout events (`line-<n>`, numbered across calls) in one batch.
    fn post(&mut self, count: u64) {
        let events: Vec<Value> = (0..count)
            .map(|i| json!({"kind": "stdout", "message": format!("line-{}", self.posted + i)}))
            .collect();
        let r = self.http.post_auth(
            &format!("{}/runner/jobs/{}/events", self.broker.url, self.job),
            &self.work,
            &json!({"runner_id": "lab", "claim_id": self.claim, "events": events}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        self.posted += count;
    }

    fn finish(&self) {
        let r = self.http.post_auth(
            &format!("{}/runner/jobs/{}/finish", self.broker.url, self.job),
            &self.work,
            &json!({"runner_id": "lab", "claim_id": self.claim, "result": {"exit_code": 0}}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    fn last_sequence(&self) -> u64 {
        let r = self
            .http
            .get(&format!("{}/jobs/{}", self.broker.url, self.job));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["data"]["job"]["last_sequence"].as_u64().unwrap()
    }

    /// Every stored event, from the plain paged listing.
    fn stored(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let r = self.http.get(&format!(
                "{}/jobs/{}/events?after={after}&limit=500",
                self.broker.url, self.job
            ));
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let page = r.json()["data"]["events"].as_array().cloned().unwrap();
            match page.last() {
                Some(last) => after = last["sequence"].as_u64().unwrap(),
                None => return all,
            }
            all.extend(page);
        }
    }

    fn events_url(&self, query: &str) -> String {
        format!(
            "{}/jobs/{}/events?follow=true{query}",
            self.broker.url, self.job
        )
    }
}

/// Follows from `n` (as `query` and `headers` say) while events keep arriving: 1,600 stored before the
/// stream opens, 100 more as soon as its first frame arrives (it is still paging), 300 more once it has
/// caught up; then the job finishes. The stream must carry exactly the events after `n`, once each.
fn resume_case(n: u64, query: &str, headers: &[(&str, &str)]) {
    let mut fixture = Fixture::new();
    for _ in 0..4 {
        fixture.post(400);
    }
    let stored_before = fixture.last_sequence();
    assert!(
        stored_before - n > 2 * STREAM_PAGE,
        "the stream must read more than two pages"
    );
    let follow = Follow::open(&fixture.events_url(query), headers);
    let mut frames = vec![follow.next()];
    // New events while the stream is still in its first page of stored ones.
    fixture.post(100);
    let caught_up = fixture.last_sequence();
    while frames.last().and_then(|f| f.id) != Some(caught_up) {
        frames.push(follow.next());
    }
    // New events after it has caught up (it is waiting for the job to change now).
    for _ in 0..3 {
        fixture.post(100);
    }
    fixture.finish();
    let last = fixture.last_sequence();
    loop {
        let frame = follow.next();
        let end = frame.event == "end";
        frames.push(frame);
        if end {
            break;
        }
    }
    let ids: Vec<u64> = frames.iter().filter_map(|f| f.id).collect();
    assert_eq!(
        ids,
        ((n + 1)..=last).collect::<Vec<_>>(),
        "the events after {n}, each once, in order (query {query:?}, headers {headers:?})"
    );
    // Each frame carries the stored event of its id, and only the final `end` has no id.
    let stored = fixture.stored();
    for frame in &frames[..frames.len() - 1] {
        let event: Value = serde_json::from_str(&frame.data).unwrap();
        let id = frame.id.expect("every event frame has an id");
        assert_eq!(event, stored[(id - 1) as usize], "frame {id}");
        assert_eq!(frame.event, event["kind"].as_str().unwrap());
    }
    assert_eq!(frames.last().unwrap().event, "end");
    assert_eq!(stored.len() as u64, last);
}

#[test]
fn follow_resumes_after_n_across_pages_while_events_arrive() {
    resume_case(37, "&after=37", &[]);
}

#[test]
fn follow_resumes_from_last_event_id_across_pages_while_events_arrive() {
    // On a page boundary of the stored events, too.
    resume_case(STREAM_PAGE, "", &[("last-event-id", "500")]);
}

/// A browser's `EventSource` reconnects to the URL it was opened with — `after=0` included — and says where
/// it got to in `Last-Event-ID`: the header is where the stream resumes.
#[test]
fn a_reconnect_resumes_from_last_event_id_not_the_urls_after() {
    resume_case(123, "&after=0", &[("last-event-id", "123")]);
}

/// A cursor that is not a sequence number is refused with the envelope, whichever way it comes, and so
/// is any parameter a page would refuse (a stream has no pages, but `limit` is still checked).
#[test]
fn a_bad_resume_cursor_is_refused() {
    let fixture = Fixture::new();
    let http = Http::new();
    for (query, header) in [
        ("&after=x", None),
        ("", Some("seven")),
        ("&after=1", Some("-1")),
        ("&limit=%C2%B7", None),
        ("&limit=0", None),
    ] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("last-event-id", h)).into_iter().collect();
        let r = http.request("GET", &fixture.events_url(query), &headers, None);
        assert_eq!(r.status, 400, "{query} {header:?}: {r:?}");
        assert_eq!(
            r.json()["error"]["code"],
            "validation.invalid_argument",
            "{r:?}"
        );
    }
}
