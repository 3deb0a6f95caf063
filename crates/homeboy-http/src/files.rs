//! File responses per RFC 9110, once for every server that sends a file: the daemon's artifact byte route
//! and the artifact origin. [`respond`] answers a `GET` or `HEAD` for an already opened [`FileEntity`]:
//!
//! - **Validators**: a strong `ETag` (the caller's, such as an artifact's SHA-256, or one made of the file's
//!   modification time and length) and `Last-Modified` (never later than now).
//! - **Preconditions**, in the order of RFC 9110 §13.2.2: `If-Match` (strong comparison) or else
//!   `If-Unmodified-Since` → 412; `If-None-Match` (weak comparison) or else `If-Modified-Since` → 304 with
//!   the validators.
//! - **Ranges** (`GET` only, §14): `If-Range` with a strong entity tag or the exact date of a file unchanged
//!   for a second (a strong date), else the whole file;
//!   the range unit is case-insensitive and an unknown unit or a malformed set is ignored (200 with the whole
//!   file); single, open-ended and suffix ranges (a suffix longer than the file is the whole file); several
//!   ranges are sorted and coalesced where they overlap or touch, and answered as `multipart/byteranges`
//!   when more than one remains; more than [`MAX_RANGES`] ranges are ignored; none satisfiable → 416 with
//!   `Content-Range: bytes */<size>` (an empty file has no satisfiable byte range).
//! - **Bodies** stream the file in [`READ_CHUNK`] pieces with positioned reads (`pread`), so memory stays
//!   bounded whatever the file's size, and a file that shrinks under a response ends it with an error
//!   rather than a short body. Reads are synchronous on the calling worker: the files served are
//!   page-cached artifacts, where a read costs microseconds and a hand-off to a blocking pool costs more (a
//!   cold read of a slow disk stalls that worker for its duration, as nginx without `aio threads` does).
//!
//! Opening the file (path safety, index files, refusals) is the caller's. Why this is ours and not
//! tower-http's `ServeDir`: `docs/decisions/0003-file-responses.md`.

use std::collections::VecDeque;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::{Frame, SizeHint};

/// Bytes read from a file per body chunk: big enough that streaming a large file costs few syscalls and
/// frames, small enough to keep a response's memory far below a server's budget.
pub const READ_CHUNK: usize = 64 * 1024;

/// More ranges than this in one `Range` header and the header is ignored (RFC 9110 §14.2 lets a server
/// refuse many small ranges, which cost more in part headers than they save).
pub const MAX_RANGES: usize = 64;

/// A file about to be sent, with what describes it.
#[derive(Debug)]
pub struct FileEntity {
    file: File,
    len: u64,
    last_modified: Option<SystemTime>,
    /// Whether `last_modified` is a strong validator: the file was last changed at least a second ago, so no
    /// other change can share the date (RFC 9110 §8.8.2.2). Only a strong date may satisfy `If-Range`.
    date_is_strong: bool,
    content_type: HeaderValue,
    /// The opaque part of the strong entity tag (between the quotes).
    etag: String,
    headers: HeaderMap,
}

impl FileEntity {
    /// A file of `len` bytes last modified at `modified`, sent as `content_type`. Its `ETag` is made of the
    /// modification time and the length until [`FileEntity::with_strong_etag`] names another.
    pub fn new(
        file: File,
        len: u64,
        modified: Option<SystemTime>,
        content_type: HeaderValue,
    ) -> FileEntity {
        let since_epoch = modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok());
        let etag = match since_epoch {
            Some(d) => format!("{:x}.{:x}-{len:x}", d.as_secs(), d.subsec_nanos()),
            None => format!("{len:x}"),
        };
        // Last-Modified is whole seconds and never in the future (RFC 9110 §8.8.2.1).
        let now = SystemTime::now();
        let last_modified = since_epoch.map(|d| {
            let at = UNIX_EPOCH + Duration::from_secs(d.as_secs());
            at.min(now)
        });
        let date_is_strong = modified.is_some_and(|m| m + Duration::from_secs(1) <= now);
        FileEntity {
            file,
            len,
            last_modified,
            date_is_strong,
            content_type,
            etag,
            headers: HeaderMap::new(),
        }
    }

    /// [`FileEntity::new`] from the file's metadata.
    pub fn from_metadata(file: File, metadata: &Metadata, content_type: HeaderValue) -> FileEntity {
        FileEntity::new(file, metadata.len(), metadata.modified().ok(), content_type)
    }

    /// Uses `opaque` (such as a content hash) as the strong entity tag. A value that cannot be one (a quote,
    /// a control character, empty) is ignored and the default tag stays.
    pub fn with_strong_etag(mut self, opaque: &str) -> FileEntity {
        let valid = !opaque.is_empty()
            && opaque
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b));
        if valid {
            self.etag = opaque.to_string();
        }
        self
    }

    /// Adds a header to the responses that carry the file (200 and 206), such as `Content-Disposition`.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> FileEntity {
        self.headers.insert(name, value);
        self
    }

    /// The `ETag` header value (`"<opaque>"`).
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.etag)
    }
}

/// Answers a `GET` or `HEAD` request (`method`, `request` headers) with `entity`. Other methods are the
/// caller's to refuse; here anything but `HEAD` is answered like `GET`.
pub fn respond(method: &Method, request: &HeaderMap, entity: FileEntity) -> Response<FileBody> {
    let head = method == Method::HEAD;
    let etag = entity.etag();
    let etag_value = HeaderValue::from_str(&etag).ok();
    let last_modified = entity
        .last_modified
        .and_then(|at| HeaderValue::from_str(&httpdate::fmt_http_date(at)).ok());

    match preconditions(request, &entity) {
        Precondition::Failed => return bare(StatusCode::PRECONDITION_FAILED),
        Precondition::NotModified => {
            // The validators a 200 would carry; no Content-Length (it would describe a body not sent).
            let mut headers = HeaderMap::new();
            if let Some(etag) = etag_value {
                headers.insert(header::ETAG, etag);
            }
            if let Some(at) = last_modified {
                headers.insert(header::LAST_MODIFIED, at);
            }
            return with_parts(StatusCode::NOT_MODIFIED, headers, FileBody::empty());
        }
        Precondition::Passed => {}
    }

    let size = entity.len;
    let ranges = match request.get(header::RANGE) {
        Some(range) if !head && if_range_holds(request, &entity) => {
            parse_ranges(range.as_bytes(), size)
        }
        _ => Ranges::Whole,
    };

    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let parts = match ranges {
        Ranges::Unsatisfiable => {
            insert_display(
                &mut headers,
                header::CONTENT_RANGE,
                format!("bytes */{size}"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return with_parts(
                StatusCode::RANGE_NOT_SATISFIABLE,
                headers,
                FileBody::empty(),
            );
        }
        Ranges::Whole => None,
        Ranges::Parts(parts) => Some(parts),
    };
    if let Some(etag) = etag_value {
        headers.insert(header::ETAG, etag);
    }
    if let Some(at) = last_modified {
        headers.insert(header::LAST_MODIFIED, at);
    }
    for (name, value) in &entity.headers {
        headers.insert(name, value.clone());
    }
    let mut segments = VecDeque::new();
    let status = match parts.as_deref() {
        None => {
            headers.insert(header::CONTENT_TYPE, entity.content_type.clone());
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            segments.push_back(Segment::File {
                offset: 0,
                len: size,
            });
            StatusCode::OK
        }
        Some(&[(start, end)]) => {
            headers.insert(header::CONTENT_TYPE, entity.content_type.clone());
            insert_display(
                &mut headers,
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{size}"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
            segments.push_back(Segment::File {
                offset: start,
                len: end - start + 1,
            });
            StatusCode::PARTIAL_CONTENT
        }
        Some(parts) => {
            let boundary = format!("{:016x}", fastrand::u64(..));
            let content_type = String::from_utf8_lossy(entity.content_type.as_bytes());
            let mut total = 0u64;
            for &(start, end) in parts {
                let head = format!(
                    "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {start}-{end}/{size}\r\n\r\n"
                );
                total += head.len() as u64 + (end - start + 1);
                segments.push_back(Segment::Bytes(Bytes::from(head)));
                segments.push_back(Segment::File {
                    offset: start,
                    len: end - start + 1,
                });
            }
            let tail = format!("\r\n--{boundary}--\r\n");
            total += tail.len() as u64;
            segments.push_back(Segment::Bytes(Bytes::from(tail)));
            insert_display(
                &mut headers,
                header::CONTENT_TYPE,
                format!("multipart/byteranges; boundary={boundary}"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            StatusCode::PARTIAL_CONTENT
        }
    };
    let body = if head {
        FileBody::empty()
    } else {
        FileBody {
            file: Some(entity.file),
            segments,
        }
    };
    with_parts(status, headers, body)
}

fn with_parts(status: StatusCode, headers: HeaderMap, body: FileBody) -> Response<FileBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn bare(status: StatusCode) -> Response<FileBody> {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    with_parts(status, headers, FileBody::empty())
}

fn insert_display(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Preconditions

enum Precondition {
    Passed,
    NotModified,
    Failed,
}

/// RFC 9110 §13.2.2, steps 1–4 (step 5, `If-Range`, is [`if_range_holds`]).
fn preconditions(request: &HeaderMap, entity: &FileEntity) -> Precondition {
    let last_modified = entity.last_modified;
    if request.contains_key(header::IF_MATCH) {
        let holds = match entity_tags(request, &header::IF_MATCH) {
            Some(Tags::Any) => true,
            Some(Tags::List(tags)) => tags.iter().any(|t| !t.weak && t.opaque == entity.etag),
            None => false,
        };
        if !holds {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(modified)) =
        (date(request, &header::IF_UNMODIFIED_SINCE), last_modified)
        && modified > since
    {
        return Precondition::Failed;
    }
    if request.contains_key(header::IF_NONE_MATCH) {
        let matches = match entity_tags(request, &header::IF_NONE_MATCH) {
            Some(Tags::Any) => true,
            Some(Tags::List(tags)) => tags.iter().any(|t| t.opaque == entity.etag),
            None => false,
        };
        if matches {
            return Precondition::NotModified;
        }
    } else if let (Some(since), Some(modified)) =
        (date(request, &header::IF_MODIFIED_SINCE), last_modified)
        && modified <= since
    {
        return Precondition::NotModified;
    }
    Precondition::Passed
}

/// Whether a `Range` may be honoured: no `If-Range`, or one that matches (a strong entity tag, or exactly
/// the `Last-Modified` date of a file unchanged for at least a second). A weak or malformed validator never
/// matches.
fn if_range_holds(request: &HeaderMap, entity: &FileEntity) -> bool {
    let Some(value) = request.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return matches!(
            parse_tags(value),
            Some(Tags::List(tags)) if tags.len() == 1 && !tags[0].weak && tags[0].opaque == entity.etag
        );
    }
    match (httpdate::parse_http_date(value), entity.last_modified) {
        (Ok(at), Some(modified)) => entity.date_is_strong && at == modified,
        _ => false,
    }
}

fn date(request: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut values = request.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

#[derive(Debug, PartialEq, Eq)]
struct Tag {
    weak: bool,
    opaque: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Tags {
    Any,
    List(Vec<Tag>),
}

/// The entity tags of every `name` field line; `None` when one is malformed.
fn entity_tags(request: &HeaderMap, name: &HeaderName) -> Option<Tags> {
    let mut all = Vec::new();
    for value in request.get_all(name) {
        match parse_tags(value.to_str().ok()?)? {
            Tags::Any => return Some(Tags::Any),
            Tags::List(tags) => all.extend(tags),
        }
    }
    Some(Tags::List(all))
}

/// `"*"` or a comma-separated list of `[W/]"opaque"` (an opaque tag may itself hold commas).
fn parse_tags(value: &str) -> Option<Tags> {
    if value.trim() == "*" {
        return Some(Tags::Any);
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let inner = quoted.strip_prefix('"')?;
        let close = inner.find('"')?;
        let opaque = &inner[..close];
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        tags.push(Tag {
            weak,
            opaque: opaque.to_string(),
        });
        rest = &inner[close + 1..];
        let after = rest.trim_start_matches([' ', '\t']);
        if !(after.is_empty() || after.starts_with(',')) {
            return None;
        }
    }
    if tags.is_empty() {
        return None;
    }
    Some(Tags::List(tags))
}

// ---------------------------------------------------------------------------------------------------------
// Ranges

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Send the whole file (no usable range: unknown unit, malformed, too many ranges, or an empty file
    /// asked for a suffix).
    Whole,
    /// No range overlaps the file.
    Unsatisfiable,
    /// These inclusive byte ranges, sorted, coalesced, non-empty.
    Parts(Vec<(u64, u64)>),
}

/// Interprets a `Range` field value for a file of `size` bytes (RFC 9110 §14.1–14.2).
pub fn parse_ranges(value: &[u8], size: u64) -> Ranges {
    let Ok(value) = std::str::from_utf8(value) else {
        return Ranges::Whole;
    };
    let Some((unit, set)) = value.split_once('=') else {
        return Ranges::Whole;
    };
    if !unit.trim_start().eq_ignore_ascii_case("bytes") {
        return Ranges::Whole;
    }
    let mut resolved = Vec::new();
    let mut specs = 0;
    let mut whole_of_empty = false;
    for spec in set.split(',') {
        let spec = spec.trim_matches([' ', '\t']);
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return Ranges::Whole;
        }
        let Some((first, last)) = spec.split_once('-') else {
            return Ranges::Whole;
        };
        if first.is_empty() {
            let Some(suffix) = digits(last) else {
                return Ranges::Whole;
            };
            if suffix > 0 && size == 0 {
                whole_of_empty = true;
            } else if suffix > 0 {
                resolved.push((size.saturating_sub(suffix), size - 1));
            }
            continue;
        }
        let Some(first) = digits(first) else {
            return Ranges::Whole;
        };
        let last = if last.is_empty() {
            None
        } else {
            match digits(last) {
                Some(last) if last >= first => Some(last),
                _ => return Ranges::Whole,
            }
        };
        if first < size {
            let end = last.map_or(size - 1, |last| last.min(size - 1));
            resolved.push((first, end));
        }
    }
    if specs == 0 {
        return Ranges::Whole;
    }
    if resolved.is_empty() {
        return if whole_of_empty {
            Ranges::Whole
        } else {
            Ranges::Unsatisfiable
        };
    }
    resolved.sort_unstable();
    let mut coalesced: Vec<(u64, u64)> = Vec::with_capacity(resolved.len());
    for (start, end) in resolved {
        match coalesced.last_mut() {
            Some(previous) if start <= previous.1.saturating_add(1) => {
                previous.1 = previous.1.max(end);
            }
            _ => coalesced.push((start, end)),
        }
    }
    Ranges::Parts(coalesced)
}

/// `1*DIGIT` as a number, saturating (a position past `u64::MAX` is past every file).
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

// ---------------------------------------------------------------------------------------------------------
// Body

/// The body of a file response: parts of the file (read as they are sent) and the multipart framing.
#[derive(Debug)]
pub struct FileBody {
    file: Option<File>,
    segments: VecDeque<Segment>,
}

#[derive(Debug)]
enum Segment {
    Bytes(Bytes),
    File { offset: u64, len: u64 },
}

impl FileBody {
    /// A body with nothing in it (HEAD, 304, 412, 416).
    pub fn empty() -> FileBody {
        FileBody {
            file: None,
            segments: VecDeque::new(),
        }
    }

    fn remaining(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) => b.len() as u64,
                Segment::File { len, .. } => *len,
            })
            .sum()
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(segment) = this.segments.front_mut() else {
                this.file = None;
                return Poll::Ready(None);
            };
            match segment {
                Segment::Bytes(bytes) => {
                    let bytes = std::mem::take(bytes);
                    this.segments.pop_front();
                    if !bytes.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                }
                Segment::File { len: 0, .. } => {
                    this.segments.pop_front();
                }
                Segment::File { offset, len } => {
                    let Some(file) = &this.file else {
                        return Poll::Ready(Some(Err(io::Error::other("no file to read"))));
                    };
                    let want = usize::try_from(*len).unwrap_or(usize::MAX).min(READ_CHUNK);
                    let mut buf = vec![0u8; want];
                    let n = match file.read_at(&mut buf, *offset) {
                        Ok(0) => {
                            this.segments.clear();
                            return Poll::Ready(Some(Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the file became shorter while it was being sent",
                            ))));
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            this.segments.clear();
                            return Poll::Ready(Some(Err(e)));
                        }
                    };
                    buf.truncate(n);
                    *offset += n as u64;
                    *len -= n as u64;
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.segments.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;

    const TEXT: &[u8] = b"0123456789abcdefghij";

    struct Fixture {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    }

    impl Fixture {
        fn with(content: &[u8]) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.txt");
            std::fs::write(&path, content).unwrap();
            // An hour old, so its Last-Modified date is a strong validator.
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(SystemTime::now() - Duration::from_secs(3600))
                .unwrap();
            Fixture { _dir: dir, path }
        }

        fn entity(&self) -> FileEntity {
            let file = File::open(&self.path).unwrap();
            let metadata = file.metadata().unwrap();
            FileEntity::from_metadata(file, &metadata, HeaderValue::from_static("text/plain"))
        }

        fn send(&self, method: Method, headers: &[(&str, &str)]) -> Answer {
            send(method, headers, self.entity())
        }

        fn get(&self, headers: &[(&str, &str)]) -> Answer {
            self.send(Method::GET, headers)
        }
    }

    struct Answer {
        status: u16,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).map(|v| v.to_str().unwrap())
        }
    }

    fn send(method: Method, headers: &[(&str, &str)], entity: FileEntity) -> Answer {
        let mut request = HeaderMap::new();
        for (name, value) in headers {
            request.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let response = respond(&method, &request, entity);
        let (parts, body) = response.into_parts();
        let hint = body.size_hint().exact();
        let body = block_on(body.collect()).unwrap().to_bytes().to_vec();
        if let Some(length) = parts.headers.get(header::CONTENT_LENGTH)
            && method != Method::HEAD
        {
            assert_eq!(
                length.to_str().unwrap(),
                body.len().to_string(),
                "Content-Length is exact"
            );
            assert_eq!(hint, Some(body.len() as u64));
        }
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    /// Drives a future that never waits (file bodies read synchronously).
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(future)
    }

    #[test]
    fn whole_file_with_validators_and_head() {
        let f = Fixture::with(TEXT);
        let a = f.get(&[]);
        assert_eq!(a.status, 200);
        assert_eq!(a.body, TEXT);
        assert_eq!(a.header("content-type"), Some("text/plain"));
        assert_eq!(a.header("content-length"), Some("20"));
        assert_eq!(a.header("accept-ranges"), Some("bytes"));
        assert!(a.header("etag").unwrap().starts_with('"'));
        assert!(a.header("last-modified").unwrap().ends_with(" GMT"));
        let head = f.send(Method::HEAD, &[]);
        assert_eq!((head.status, head.body.len()), (200, 0));
        assert_eq!(head.header("content-length"), Some("20"));
        assert_eq!(head.header("etag"), a.header("etag"));
    }

    #[test]
    fn single_open_ended_and_suffix_ranges() {
        let f = Fixture::with(TEXT);
        for (range, body, content_range) in [
            ("bytes=1-4", &b"1234"[..], "bytes 1-4/20"),
            ("bytes=18-", b"ij", "bytes 18-19/20"),
            ("bytes=-3", b"hij", "bytes 17-19/20"),
            ("bytes=-100", TEXT, "bytes 0-19/20"),
            ("bytes=15-1000", b"fghij", "bytes 15-19/20"),
            ("bytes=0-0", b"0", "bytes 0-0/20"),
            ("bytes=19-19", b"j", "bytes 19-19/20"),
            ("bytes=007-008", b"78", "bytes 7-8/20"),
            (
                "bytes=3-99999999999999999999999",
                b"3456789abcdefghij",
                "bytes 3-19/20",
            ),
        ] {
            let a = f.get(&[("range", range)]);
            assert_eq!(a.status, 206, "{range}");
            assert_eq!(a.body, body, "{range}");
            assert_eq!(a.header("content-range"), Some(content_range), "{range}");
            assert_eq!(a.header("content-type"), Some("text/plain"));
        }
    }

    #[test]
    fn the_range_unit_is_case_insensitive_and_unknown_units_are_ignored() {
        let f = Fixture::with(TEXT);
        for range in ["BYTES=0-1", "Bytes=0-1", "bYtEs=0-1"] {
            let a = f.get(&[("range", range)]);
            assert_eq!((a.status, a.body.as_slice()), (206, &b"01"[..]), "{range}");
        }
        for range in [
            "items=0-1",
            "bits=0-1",
            "none",
            "bytes",
            "bytes=",
            "bytes= ,",
            "bytes=5-2",
            "bytes=x-1",
            "bytes=1-x",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=-x",
            "bytes=+1-2",
            "bytes=0-1,junk",
        ] {
            let a = f.get(&[("range", range)]);
            assert_eq!(
                (a.status, a.body.as_slice()),
                (200, TEXT),
                "{range}: ignored"
            );
            assert!(a.header("content-range").is_none(), "{range}");
        }
    }

    #[test]
    fn unsatisfiable_ranges_are_416_with_the_size() {
        let f = Fixture::with(TEXT);
        for range in ["bytes=20-", "bytes=100-200", "bytes=-0", "bytes=20-20,30-"] {
            let a = f.get(&[("range", range)]);
            assert_eq!(a.status, 416, "{range}");
            assert_eq!(a.header("content-range"), Some("bytes */20"), "{range}");
            assert!(a.body.is_empty());
        }
        // A satisfiable member makes the set satisfiable: the others are dropped.
        let a = f.get(&[("range", "bytes=100-200, 2-3")]);
        assert_eq!((a.status, a.body.as_slice()), (206, &b"23"[..]));
        assert_eq!(a.header("content-range"), Some("bytes 2-3/20"));
    }

    #[test]
    fn an_empty_file_has_no_byte_to_range_over() {
        let f = Fixture::with(b"");
        let a = f.get(&[("range", "bytes=0-0")]);
        assert_eq!(a.status, 416, "never 206 bytes 0-0/0");
        assert_eq!(a.header("content-range"), Some("bytes */0"));
        let a = f.get(&[("range", "bytes=-5")]);
        assert_eq!(
            (a.status, a.body.len()),
            (200, 0),
            "a suffix of nothing is the whole of nothing"
        );
        assert_eq!(a.header("content-length"), Some("0"));
        let a = f.get(&[]);
        assert_eq!((a.status, a.header("content-length")), (200, Some("0")));
    }

    #[test]
    fn several_ranges_are_coalesced_and_sent_as_multipart() {
        let f = Fixture::with(TEXT);
        let a = f.get(&[("range", "bytes=15-16, 0-1")]);
        assert_eq!(a.status, 206);
        let content_type = a.header("content-type").unwrap();
        let boundary = content_type
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap();
        let expected = format!(
            "\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/20\r\n\r\n01\
             \r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 15-16/20\r\n\r\nfg\
             \r\n--{boundary}--\r\n"
        );
        assert_eq!(String::from_utf8(a.body.clone()).unwrap(), expected);
        assert!(a.header("content-range").is_none());
        // Overlapping and touching ranges merge; if one remains it is a plain 206.
        for (range, body, content_range) in [
            ("bytes=0-5,3-8", &b"012345678"[..], "bytes 0-8/20"),
            ("bytes=0-1,2-3", b"0123", "bytes 0-3/20"),
            ("bytes=4-6,0-9,5-", TEXT, "bytes 0-19/20"),
            ("bytes=-2,18-", b"ij", "bytes 18-19/20"),
        ] {
            let a = f.get(&[("range", range)]);
            assert_eq!(a.status, 206, "{range}");
            assert_eq!(a.body, body, "{range}");
            assert_eq!(a.header("content-range"), Some(content_range), "{range}");
        }
        assert_eq!(
            parse_ranges(b"bytes=0-0,2-2,4-4", 20),
            Ranges::Parts(vec![(0, 0), (2, 2), (4, 4)])
        );
    }

    #[test]
    fn too_many_ranges_are_ignored() {
        let f = Fixture::with(&[b'x'; 1000]);
        let many: Vec<String> = (0..=MAX_RANGES)
            .map(|i| format!("{}-{}", i * 3, i * 3))
            .collect();
        let a = f.get(&[("range", &format!("bytes={}", many.join(",")))]);
        assert_eq!((a.status, a.body.len()), (200, 1000));
        let enough: Vec<String> = (0..MAX_RANGES)
            .map(|i| format!("{}-{}", i * 3, i * 3))
            .collect();
        let a = f.get(&[("range", &format!("bytes={}", enough.join(",")))]);
        assert_eq!(a.status, 206);
    }

    #[test]
    fn head_ignores_range() {
        let f = Fixture::with(TEXT);
        let a = f.send(Method::HEAD, &[("range", "bytes=0-1")]);
        assert_eq!((a.status, a.header("content-length")), (200, Some("20")));
    }

    #[test]
    fn if_none_match_and_if_modified_since_answer_304() {
        let f = Fixture::with(TEXT);
        let first = f.get(&[]);
        let etag = first.header("etag").unwrap().to_string();
        let last_modified = first.header("last-modified").unwrap().to_string();
        let weak = format!("W/{etag}");
        let listed = format!("\"other\", {etag}");
        for headers in [
            vec![("if-none-match", etag.as_str())],
            vec![("if-none-match", "*")],
            vec![("if-none-match", weak.as_str())],
            vec![("if-none-match", listed.as_str())],
            vec![
                ("if-none-match", "\"other\""),
                ("if-none-match", etag.as_str()),
            ],
            vec![("if-modified-since", last_modified.as_str())],
            vec![("if-modified-since", "Fri, 31 Dec 9999 23:59:59 GMT")],
            vec![("if-none-match", etag.as_str()), ("range", "bytes=0-1")],
        ] {
            let a = f.get(&headers);
            assert_eq!(a.status, 304, "{headers:?}");
            assert!(a.body.is_empty());
            assert_eq!(a.header("etag"), Some(etag.as_str()));
            assert_eq!(a.header("last-modified"), Some(last_modified.as_str()));
            assert!(a.header("content-length").is_none());
            let head = f.send(Method::HEAD, &headers);
            assert_eq!(head.status, 304, "HEAD {headers:?}");
        }
        for headers in [
            vec![("if-none-match", "\"other\"")],
            vec![("if-none-match", "garbage")],
            vec![("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
            vec![("if-modified-since", "not a date")],
            // If-None-Match wins over If-Modified-Since.
            vec![
                ("if-none-match", "\"other\""),
                ("if-modified-since", last_modified.as_str()),
            ],
        ] {
            let a = f.get(&headers);
            assert_eq!((a.status, a.body.as_slice()), (200, TEXT), "{headers:?}");
        }
    }

    #[test]
    fn if_match_and_if_unmodified_since_answer_412() {
        let f = Fixture::with(TEXT);
        let first = f.get(&[]);
        let etag = first.header("etag").unwrap().to_string();
        let last_modified = first.header("last-modified").unwrap().to_string();
        let weak = format!("W/{etag}");
        for headers in [
            vec![("if-match", "\"other\"")],
            vec![("if-match", weak.as_str())],
            vec![("if-match", "garbage")],
            vec![("if-unmodified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
            vec![("if-match", "\"other\""), ("if-none-match", etag.as_str())],
        ] {
            let a = f.get(&headers);
            assert_eq!((a.status, a.body.len()), (412, 0), "{headers:?}");
        }
        for headers in [
            vec![("if-match", etag.as_str())],
            vec![("if-match", "*")],
            vec![("if-unmodified-since", last_modified.as_str())],
            vec![("if-unmodified-since", "not a date")],
            // If-Match wins over If-Unmodified-Since.
            vec![
                ("if-match", etag.as_str()),
                ("if-unmodified-since", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ],
        ] {
            let a = f.get(&headers);
            assert_eq!((a.status, a.body.as_slice()), (200, TEXT), "{headers:?}");
        }
    }

    #[test]
    fn if_range_honours_the_range_only_for_a_matching_strong_validator() {
        let f = Fixture::with(TEXT);
        let first = f.get(&[]);
        let etag = first.header("etag").unwrap().to_string();
        let last_modified = first.header("last-modified").unwrap().to_string();
        let weak = format!("W/{etag}");
        for if_range in [etag.as_str(), last_modified.as_str()] {
            let a = f.get(&[("range", "bytes=0-1"), ("if-range", if_range)]);
            assert_eq!(
                (a.status, a.body.as_slice()),
                (206, &b"01"[..]),
                "{if_range}"
            );
        }
        for if_range in [
            "\"other\"",
            weak.as_str(),
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "garbage",
        ] {
            let a = f.get(&[("range", "bytes=0-1"), ("if-range", if_range)]);
            assert_eq!((a.status, a.body.as_slice()), (200, TEXT), "{if_range}");
        }
        // A date within the second the file last changed cannot tell two versions apart: weak, no range.
        let fresh = Fixture::with(TEXT);
        let file = File::options().write(true).open(&fresh.path).unwrap();
        file.set_modified(SystemTime::now()).unwrap();
        let date = httpdate::fmt_http_date(SystemTime::now());
        let a = fresh.get(&[("range", "bytes=0-1"), ("if-range", &date)]);
        assert_eq!(
            a.status, 200,
            "a weak date validator never satisfies If-Range"
        );
        // A failed If-Range also cancels a 416: the client gets the current file.
        let a = f.get(&[("range", "bytes=500-"), ("if-range", "\"other\"")]);
        assert_eq!(a.status, 200);
    }

    #[test]
    fn a_callers_etag_and_headers() {
        let f = Fixture::with(TEXT);
        let entity = f.entity().with_strong_etag("abc123").with_header(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("inline"),
        );
        let a = send(Method::GET, &[], entity);
        assert_eq!(a.header("etag"), Some("\"abc123\""));
        assert_eq!(a.header("content-disposition"), Some("inline"));
        let entity = f.entity().with_strong_etag("abc123");
        let a = send(Method::GET, &[("if-none-match", "\"abc123\"")], entity);
        assert_eq!(a.status, 304);
        let entity = f.entity().with_strong_etag("abc123");
        let a = send(
            Method::GET,
            &[("range", "bytes=0-1"), ("if-range", "\"abc123\"")],
            entity,
        );
        assert_eq!(a.status, 206);
        let entity = f.entity().with_strong_etag("a\"b");
        assert_ne!(entity.etag(), "\"a\"b\"", "an unquotable tag is refused");
    }

    #[test]
    fn large_files_stream_in_bounded_chunks() {
        let content: Vec<u8> = (0..(READ_CHUNK * 3 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let f = Fixture::with(&content);
        let mut request = HeaderMap::new();
        request.insert(header::RANGE, HeaderValue::from_static("bytes=5-"));
        let response = respond(&Method::GET, &request, f.entity());
        let mut body = response.into_body();
        let mut got = Vec::new();
        block_on(async {
            while let Some(frame) = body.frame().await {
                let data = frame.unwrap().into_data().unwrap();
                assert!(data.len() <= READ_CHUNK);
                got.extend_from_slice(&data);
            }
        });
        assert_eq!(got, &content[5..]);
    }

    #[test]
    fn a_file_that_shrinks_ends_the_body_with_an_error() {
        let f = Fixture::with(&[b'x'; 1000]);
        let entity = f.entity();
        std::fs::write(&f.path, b"short").unwrap();
        let response = respond(&Method::GET, &HeaderMap::new(), entity);
        let result = block_on(response.into_body().collect());
        assert!(result.is_err(), "a short body must not pass as complete");
    }
}
