//! The client side of Server-Sent Events (`GET /jobs/:id/events?follow=true`): frames parsed as the
//! WHATWG event-stream format says (`event`, `data` lines joined with `\n`, `id`, comments ignored, CR/LF/CRLF
//! line ends), with a bound on how much one frame may buffer. The server side is axum's `Sse`; why this side
//! is ours is in `docs/decisions/0005-sse.md` (the parser crates buffer an unterminated frame without limit).

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `message` when the frame named none.
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// A frame grew past the limit without ending.
    FrameTooLarge { limit: usize },
}

/// An incremental parser: feed it bytes as they arrive, take the events it completes.
#[derive(Debug)]
pub struct SseParser {
    buffer: Vec<u8>,
    /// How far `buffer` was already searched for a line end.
    searched: usize,
    pending: SseEvent,
    has_data: bool,
    limit: usize,
}

impl SseParser {
    /// A parser that refuses a frame larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SseParser {
            buffer: Vec::new(),
            searched: 0,
            pending: SseEvent::default(),
            has_data: false,
            limit,
        }
    }

    /// Adds `bytes`; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(offset) = self.buffer[self.searched..]
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
        {
            let end = self.searched + offset;
            // A CR at the very end may be the first half of a CRLF: wait for the next byte.
            if self.buffer[end] == b'\r' && end + 1 == self.buffer.len() {
                break;
            }
            let skip = if self.buffer[end] == b'\r' && self.buffer.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.buffer.drain(..end + skip).take(end).collect();
            self.searched = 0;
            if let Some(event) = self.line(&String::from_utf8_lossy(&line)) {
                events.push(event);
            }
        }
        self.searched = self.buffer.len().saturating_sub(1).max(self.searched);
        if self.buffer.len() + self.pending.data.len() > self.limit {
            return Err(SseError::FrameTooLarge { limit: self.limit });
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.pending);
            let dispatch = std::mem::take(&mut self.has_data);
            return dispatch.then(|| SseEvent {
                event: if event.event.is_empty() {
                    "message".into()
                } else {
                    event.event
                },
                ..event
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.pending.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.pending.id = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_parse_the_same() {
        let stream = b"retry: 2000\n\n: keep-alive\n\nid: 3\r\nevent: stdout\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nevent: end\ndata: {}\n\n";
        for split in 1..stream.len() {
            let mut parser = SseParser::new(1024);
            let mut events = parser.feed(&stream[..split]).unwrap();
            events.extend(parser.feed(&stream[split..]).unwrap());
            assert_eq!(events.len(), 2, "split at {split}: {events:?}");
            assert_eq!(events[0].event, "stdout");
            assert_eq!(events[0].data, "{\"a\":\n1}");
            assert_eq!(events[0].id.as_deref(), Some("3"));
            assert_eq!(events[1].event, "end");
        }
    }

    #[test]
    fn an_endless_frame_is_refused() {
        let mut parser = SseParser::new(64);
        assert!(parser.feed(b"data: ").unwrap().is_empty());
        assert_eq!(
            parser.feed(&[b'x'; 100]).unwrap_err(),
            SseError::FrameTooLarge { limit: 64 }
        );
        let mut parser = SseParser::new(64);
        let many_lines = "data: x\n".repeat(40);
        assert!(parser.feed(many_lines.as_bytes()).is_err());
    }
}
