//! `homeboy jobs` for people: tables and lines rendered from the same JSON the HTTP routes return, and the
//! client side of the Server-Sent Events stream (`events --follow`).

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::ClientError;
use crate::client::DaemonClient;

/// A table of jobs: id, status, operation, runner, attempt, events, age.
pub fn jobs_table(jobs: &[Value], now_ms: u64) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "STATUS".into(),
        "OPERATION".into(),
        "RUNNER".into(),
        "ATTEMPT".into(),
        "EVENTS".into(),
        "AGE".into(),
    ]];
    for job in jobs {
        let text = |k: &str| job[k].as_str().unwrap_or("-").to_string();
        let runner = job["claimed_by_runner_id"]
            .as_str()
            .or_else(|| job["target_runner_id"].as_str())
            .unwrap_or("-")
            .to_string();
        rows.push([
            text("id"),
            text("status"),
            text("operation"),
            runner,
            format!("{}/{}", job["attempt"], job["max_attempts"]),
            job["event_count"].to_string(),
            age(job["created_at_ms"].as_u64().unwrap_or(now_ms), now_ms),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A job's fields, one per line.
pub fn job_details(job: &Value, request: &Value) -> String {
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
pub fn event_line(event: &Value) -> String {
    let seq = event["sequence"].as_u64().unwrap_or(0);
    let kind = event["kind"].as_str().unwrap_or("?");
    let message = event["message"].as_str().unwrap_or("");
    match kind {
        "stdout" => format!("{seq:>5} | {message}"),
        "stderr" => format!("{seq:>5} ! {message}"),
        _ => {
            let data = if event["data"].is_null() {
                String::new()
            } else {
                format!(" {}", event["data"])
            };
            format!("{seq:>5} [{kind}] {message}{data}")
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
    mut on_event: impl FnMut(&Value),
) -> Result<(), ClientError> {
    let url = client.url(&format!("/jobs/{job_id}/events?follow=true&after={after}"));
    let unreachable = |e: reqwest::Error| ClientError::Unreachable {
        url: client.base_url().to_string(),
        message: e.to_string(),
    };
    let resp = client
        .authorize(client.http().get(url))
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status().as_u16();
    let is_stream = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_stream {
        let body = resp.bytes().await.map_err(unreachable)?;
        homeboy_api::decode_envelope(status, &body)?;
        return Ok(());
    }
    let mut stream = resp.bytes_stream();
    let mut buffer = Vec::new();
    let mut searched: usize = 0;
    let too_large = || ClientError::Unreachable {
        url: client.base_url().to_string(),
        message: format!("the event stream sent a frame larger than {MAX_FRAME_BYTES} bytes"),
    };
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .map_err(|_| ClientError::Unreachable {
            url: client.base_url().to_string(),
            message: "the event stream went silent".into(),
        })?
    {
        buffer.extend_from_slice(&chunk.map_err(unreachable)?);
        // Only the bytes that arrived since the last search (and the one before them) can end a frame.
        while let Some(end) = buffer[searched.saturating_sub(1)..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|at| at + searched.saturating_sub(1))
        {
            searched = 0;
            let frame: Vec<u8> = buffer.drain(..end + 2).collect();
            let frame = String::from_utf8_lossy(&frame);
            let (mut name, mut data) = (String::new(), String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            match name.as_str() {
                "end" => return Ok(()),
                "stream_error" => {
                    return Err(match homeboy_api::decode_envelope(404, data.as_bytes()) {
                        Err(api) => ClientError::Api(api),
                        Ok(_) => ClientError::NotRunning,
                    });
                }
                _ if !data.is_empty() => {
                    if let Ok(event) = serde_json::from_str::<Value>(&data) {
                        on_event(&event);
                    }
                }
                _ => {}
            }
        }
        searched = buffer.len();
        if buffer.len() > MAX_FRAME_BYTES {
            return Err(too_large());
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
        let job = json!({"id": "j1", "status": "running", "operation": "runner.exec", "claimed_by_runner_id": "lab",
                         "attempt": 1, "max_attempts": 3, "event_count": 4, "created_at_ms": 1000});
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
        assert_eq!(
            event_line(&json!({"sequence": 3, "kind": "stdout", "message": "hi"})),
            "    3 | hi"
        );
        assert!(event_line(&json!({"sequence": 1, "kind": "status", "message": "job queued", "data": {"status": "queued"}})).contains("[status] job queued"));
    }
}
