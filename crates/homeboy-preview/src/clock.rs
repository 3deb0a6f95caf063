//! Wall-clock time as the preview records show it: RFC 3339 in UTC, whole seconds.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current UTC time.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `t` as RFC 3339 (`2026-06-12T03:30:00Z`), truncated to whole seconds.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The current time as RFC 3339, formatted once per second per thread (for per-request log lines).
pub fn now_rfc3339() -> String {
    use std::cell::RefCell;
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

/// Parses an RFC 3339 timestamp.
pub fn parse(value: &str) -> Option<OffsetDateTime> {
    homeboy_config::tunnel_services::parse_rfc3339(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_seconds() {
        let t = parse("2026-06-12T03:30:00.750Z").unwrap();
        assert_eq!(rfc3339(t), "2026-06-12T03:30:00Z");
        assert_eq!(
            parse(&rfc3339(t)).unwrap().unix_timestamp(),
            t.unix_timestamp()
        );
        assert!(parse("yesterday").is_none());
    }
}
