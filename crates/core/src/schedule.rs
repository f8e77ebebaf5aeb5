//! A `SCHEDULE_TRIGGER`'s `cron` (SPEC §9: five fields, UTC): parsed by the croner crate,
//! never by hand, and asked for the next tick after a given time. No clock here: the caller
//! passes the time it counts from.

use std::fmt;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::time::Timestamp;

/// The longest cron expression, in bytes (five fields of lists and ranges fit many times).
pub const MAX_CRON: usize = 256;

/// A five-field cron expression (minute, hour, day of month, month, day of week) read in
/// UTC: the text as written and croner's parse of it. Two schedules are equal when their
/// texts are.
#[derive(Clone)]
pub struct Schedule {
    source: String,
    cron: Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.source).finish()
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Schedule {}

impl Schedule {
    /// Reads a cron expression: exactly five fields (croner's `@hourly`, `@daily`, `@weekly`,
    /// `@monthly`, `@yearly` stand for five), no seconds and no years, and at least one date
    /// it matches (`0 0 30 2 *` matches none). The message says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_CRON {
            return Err(format!("the cron expression is {} bytes long; at most {MAX_CRON} are allowed", text.len()));
        }
        let fields = text.split_whitespace().count();
        if fields == 0 {
            return Err("the cron expression is empty; it needs five fields: minute hour day-of-month month day-of-week".into());
        }
        let nickname = fields == 1 && text.trim_start().starts_with('@');
        if fields != 5 && !nickname {
            return Err(format!(
                "`{text}` has {fields} field{}; a cron expression has five (minute hour day-of-month month day-of-week, in UTC), without seconds or years",
                if fields == 1 { "" } else { "s" }
            ));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser.parse(text).map_err(|err| format!("`{text}` is not a valid cron expression: {err}"))?;
        // The fields name no year, so a pattern matching some date matches one within a few
        // years of any start: one search from a fixed date tells.
        let start = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default();
        if cron.find_next_occurrence(&start, false).is_err() {
            return Err(format!("`{text}` never matches a date"));
        }
        Ok(Self { source: text.to_owned(), cron })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first tick strictly after `after` (ticks fall on whole minutes). A schedule that
    /// missed ticks (the process was down) is asked from now and gives one tick in the future:
    /// missed ticks collapse. `None` if no tick follows (past the range croner searches).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        // Whole seconds: croner counts from the second that holds `after`, exclusive.
        let start = DateTime::<Utc>::from_timestamp(after.millis().div_euclid(1000), 0)?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(Timestamp::from_millis(next.timestamp_millis())).filter(|next| *next > after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(iso: &str) -> Timestamp {
        Timestamp::parse(iso).expect("a timestamp")
    }

    fn next(schedule: &Schedule, iso: &str) -> String {
        schedule.next_after(at(iso)).expect("a next tick").to_iso()
    }

    #[test]
    fn every_five_minutes() {
        let schedule = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(schedule.source(), "*/5 * * * *");
        assert_eq!(next(&schedule, "2026-03-01T10:01:00Z"), "2026-03-01T10:05:00.000Z");
        assert_eq!(next(&schedule, "2026-03-01T10:04:59.999Z"), "2026-03-01T10:05:00.000Z");
        assert_eq!(next(&schedule, "2026-03-01T23:58:00Z"), "2026-03-02T00:00:00.000Z");
    }

    #[test]
    fn next_is_strictly_after() {
        let schedule = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(next(&schedule, "2026-03-01T10:05:00Z"), "2026-03-01T10:10:00.000Z");
        assert_eq!(next(&schedule, "2026-03-01T10:05:00.001Z"), "2026-03-01T10:10:00.000Z");
        assert_eq!(next(&schedule, "2026-03-01T10:05:00.999Z"), "2026-03-01T10:10:00.000Z");
    }

    #[test]
    fn missed_ticks_collapse_into_one() {
        // The last tick was at 10:00; the process comes back three days later: the next tick
        // is one, in the future, not the hundreds missed.
        let schedule = Schedule::parse("0 * * * *").unwrap();
        let last = at("2026-03-01T10:00:00Z");
        let now = at("2026-03-04T16:20:00Z");
        let tick = schedule.next_after(now).unwrap();
        assert!(tick > now && tick > last);
        assert_eq!(tick.to_iso(), "2026-03-04T17:00:00.000Z");
    }

    #[test]
    fn reads_utc_weekdays_months_and_nicknames() {
        let schedule = Schedule::parse("30 9 * * MON-FRI").unwrap();
        // 2026-03-07 is a Saturday.
        assert_eq!(next(&schedule, "2026-03-07T00:00:00Z"), "2026-03-09T09:30:00.000Z");
        let schedule = Schedule::parse("0 0 1 JAN *").unwrap();
        assert_eq!(next(&schedule, "2026-03-07T00:00:00Z"), "2027-01-01T00:00:00.000Z");
        let schedule = Schedule::parse("@daily").unwrap();
        assert_eq!(next(&schedule, "2026-03-07T13:00:00Z"), "2026-03-08T00:00:00.000Z");
        // Leap days exist.
        let schedule = Schedule::parse("0 12 29 2 *").unwrap();
        assert_eq!(next(&schedule, "2026-03-07T00:00:00Z"), "2028-02-29T12:00:00.000Z");
    }

    #[test]
    fn refuses_seconds_years_and_nonsense() {
        let err = Schedule::parse("0 */5 * * * *").unwrap_err();
        assert!(err.contains("has 6 fields") && err.contains("without seconds"), "{err}");
        let err = Schedule::parse("0 0 12 * * * 2030").unwrap_err();
        assert!(err.contains("has 7 fields"), "{err}");
        let err = Schedule::parse("* * * *").unwrap_err();
        assert!(err.contains("has 4 fields"), "{err}");
        let err = Schedule::parse("  ").unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let err = Schedule::parse("61 * * * *").unwrap_err();
        assert!(err.starts_with("`61 * * * *` is not a valid cron expression"), "{err}");
        let err = Schedule::parse("a b c d e").unwrap_err();
        assert!(err.contains("is not a valid cron expression"), "{err}");
        let err = Schedule::parse("0 0 30 2 *").unwrap_err();
        assert!(err.contains("never matches"), "{err}");
        let err = Schedule::parse("@often").unwrap_err();
        assert!(err.contains("is not a valid cron expression"), "{err}");
        let err = Schedule::parse(&"1,".repeat(200)).unwrap_err();
        assert!(err.contains("at most 256"), "{err}");
    }

    #[test]
    fn equal_by_text() {
        assert_eq!(Schedule::parse("*/5 * * * *").unwrap(), Schedule::parse("*/5 * * * *").unwrap());
        assert_ne!(Schedule::parse("*/5 * * * *").unwrap(), Schedule::parse("0-59/5 * * * *").unwrap());
    }
}
