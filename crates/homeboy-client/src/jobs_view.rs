//! `homeboy jobs` for people: tables and lines rendered from the same JSON the HTTP routes return, and the
//! client side of the Server-Sent Events stream (`events --follow`).

use std::time::Duration;

use futures_util::StreamExt;
use homeboy_api::jobs::{EventKind, Job, JobEvent};
use serde_json::Value;

use crate::ClientError;
use crate::client::DaemonClient;
use crate::sse::{SseError, SseParser};
use crate::text_table::table;

/// A table of jobs: id, status, operation, runner, attempt, events, age.
pub fn jobs_table(jobs: &[Job], now_ms: u64) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            let runner = job
                .claimed_by_runner_id
                .as_deref()
                .or(job.target_runner_id.as_deref())
                .unwrap_or("-");
            vec![
                job.id.clone(),
                job.status.as_str().to_string(),
                job.operation.clone(),
                runner.to_string(),
                format!("{}/{}", job.attempt, job.max_attempts),
                job.event_count.to_string(),
                age(job.created_at_ms, now_ms),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATUS",
            "OPERATION",
            "RUNNER",
            "ATTEMPT",
            "EVENTS",
            "AGE",
        ],
        &rows,
    )
}

/// A job's fields, one per line.
pub fn job_details(job: &Job, request: &Value) -> String {
    let job = serde_json::to_value(job).unwrap_or_default();
    let mut lines = Vec::new();
    for key in [
        "id",
        "status",
        "operation",
        "executor",
        "target_runner_id",
        "claimed_by_runner_id",
        "attempt",
        "max_attempts",
        "exit_code",
        "stale_reason",
        "event_count",
        "events_dropped",
        "created_at_ms",
        "started_at_ms",
        "finished_at_ms",
        "claim_expires_at_ms",
    ] {
        let value = &job[key];
        if !value.is_null() {
            let shown = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            lines.push(format!("{key}: {shown}"));
        }
    }
    if let Some(command) = request["command"].as_array() {
        let argv: Vec<&str> = command.iter().filter_map(Value::as_str).collect();
        lines.push(format!("command: {}", argv.join(" ")));
    }
    lines.join("\n")
}

/// One event as a line: output verbatim, everything else tagged.
pub fn event_line(event: &JobEvent) -> String {
    let seq = event.sequence;
    let message = event.message.as_deref().unwrap_or("");
    match event.kind {
        EventKind::Stdout => format!("{seq:>5} | {message}"),
        EventKind::Stderr => format!("{seq:>5} ! {message}"),
        kind => {
            let data = match &event.data {
                None | Some(Value::Null) => String::new(),
                Some(data) => format!(" {data}"),
            };
            format!("{seq:>5} [{}] {message}{data}", kind.as_str())
        }
    }
}

fn age(then_ms: u64, now_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// The largest Server-Sent Events frame a follower buffers (an event is at most a job event's JSON; a
/// stream that never ends its frame is not a homeboy daemon).
const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Follows `GET /jobs/:id/events?follow=true`, calling `on_event` for each event until the stream ends
/// after the terminal status.
pub async fn follow_events(
    client: &DaemonClient,
    job_id: &str,
    after: u64,
    mut on_event: impl FnMut(&JobEvent),
) -> Result<(), ClientError> {
    let url = client.url(&format!("/jobs/{job_id}/events?follow=true&after={after}"));
    let resp = client
        .authorize(client.http().get(url))
        .send()
        .await
        .map_err(|e| client.unreachable(&e))?;
    let status = resp.status().as_u16();
    let is_stream = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_stream {
        let body = resp.bytes().await.map_err(|e| client.unreachable(&e))?;
        homeboy_api::decode_envelope(status, &body)?;
        return Ok(());
    }
    let broken = |message: String| ClientError::Unreachable {
        url: client.base_url().to_string(),
        message,
    };
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::new(MAX_FRAME_BYTES);
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .map_err(|_| broken("the event stream went silent".into()))?
    {
        let chunk = chunk.map_err(|e| client.unreachable(&e))?;
        let frames = parser
            .feed(&chunk)
            .map_err(|SseError::FrameTooLarge { limit }| {
                broken(format!(
                    "the event stream sent a frame larger than {limit} bytes"
                ))
            })?;
        for frame in frames {
            match frame.event.as_str() {
                "end" => return Ok(()),
                "stream_error" => {
                    return Err(
                        match homeboy_api::decode_envelope(404, frame.data.as_bytes()) {
                            Err(api) => ClientError::Api(api),
                            Ok(_) => ClientError::NotRunning,
                        },
                    );
                }
                _ => {
                    let event: JobEvent = serde_json::from_str(&frame.data).map_err(|e| {
                        broken(format!(
                            "the event stream sent an event that is not a job event: {e}"
                        ))
                    })?;
                    on_event(&event);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_stream_that_never_ends_its_frame_is_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 4096];
            let _ = conn.read(&mut head).await;
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: ")
                .await;
            let junk = vec![b'x'; 1024 * 1024];
            for _ in 0..(MAX_FRAME_BYTES / junk.len() + 8) {
                if conn.write_all(&junk).await.is_err() {
                    return;
                }
            }
        });
        let client = DaemonClient::new(format!("http://{addr}")).unwrap();
        let result = follow_events(&client, "job", 0, |_| {}).await;
        match result {
            Err(ClientError::Unreachable { message, .. }) => {
                assert!(message.contains("larger than"), "{message}")
            }
            other => panic!("an endless frame was accepted: {other:?}"),
        }
    }

    #[test]
    fn renders_for_people() {
        let job: Job = serde_json::from_value(json!({"id": "j1", "status": "running", "operation": "runner.exec",
            "claimed_by_runner_id": "lab", "attempt": 1, "max_attempts": 3, "event_count": 4, "created_at_ms": 1000,
            "updated_at_ms": 1000, "executor": "runner", "last_sequence": 4}))
        .unwrap();
        let table = jobs_table(std::slice::from_ref(&job), 61_000);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ID"));
        assert!(
            lines[1].contains("j1")
                && lines[1].contains("running")
                && lines[1].contains("1/3")
                && lines[1].ends_with("1m")
        );
        let details = job_details(&job, &json!({"command": ["echo", "hi"]}));
        assert!(details.contains("status: running") && details.contains("command: echo hi"));
        let event = |v: Value| -> JobEvent { serde_json::from_value(v).unwrap() };
        assert_eq!(
            event_line(&event(
                json!({"sequence": 3, "job_id": "j1", "kind": "stdout", "message": "hi", "timestamp_ms": 1})
            )),
            "    3 | hi"
        );
        assert!(
            event_line(&event(
                json!({"sequence": 1, "job_id": "j1", "kind": "status", "message": "job queued",
            "timestamp_ms": 1, "data": {"status": "queued"}})
            ))
            .contains("[status] job queued")
        );
    }
}
