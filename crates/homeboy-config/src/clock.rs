//! Wall-clock time as homeboy writes it: RFC 3339 in UTC — whole seconds for records and logs, milliseconds
//! where runs need them — and milliseconds since the epoch for the job store's numbers. Every crate asks
//! this module; nothing else formats a timestamp.

use std::cell::RefCell;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current UTC time.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `t` as RFC 3339 (`2026-06-12T03:30:00Z`), truncated to whole seconds.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Now as RFC 3339 in whole seconds, formatted at most once per second per thread (it is called for
/// per-request log lines).
pub fn now_rfc3339() -> String {
    thread_local! {
        static LAST: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = now();
    let second = now.unix_timestamp();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != second {
            *last = (second, rfc3339(now));
        }
        last.1.clone()
    })
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds (`2026-01-01T12:00:00.123Z`).
pub fn format_ms(ms: u64) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_default()
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339_ms() -> String {
    format_ms(now_ms())
}

/// Parses an RFC 3339 timestamp.
pub fn parse_rfc3339(value: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(format_ms(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        let t = parse_rfc3339("2026-06-12T03:30:00.750Z").unwrap();
        assert_eq!(rfc3339(t), "2026-06-12T03:30:00Z");
        assert!(parse_rfc3339("yesterday").is_none());
        let now = now_rfc3339();
        assert!(parse_rfc3339(&now).is_some() && now.ends_with('Z'), "{now}");
        assert!(now_ms() > 1_767_225_600_000);
    }
}
