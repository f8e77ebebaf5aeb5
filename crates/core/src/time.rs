//! Timestamps: stored as Unix milliseconds, shown as ISO 8601 with milliseconds and `Z`
//! (`2024-06-09T12:28:18.663Z`), the shape Port's API uses.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A point in time with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub const fn millis(self) -> i64 {
        self.0
    }
    /// Parses RFC 3339 / ISO 8601 (`2024-01-01T00:00:00Z`, offsets, fractions) or a bare date
    /// (`2024-01-01`, midnight UTC).
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(dt) = OffsetDateTime::parse(text, &Rfc3339) {
            return Some(Self::from_datetime(dt));
        }
        let date = time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
        Some(Self::from_datetime(date.midnight().assume_utc()))
    }
    fn from_datetime(dt: OffsetDateTime) -> Self {
        Self((dt.unix_timestamp_nanos() / 1_000_000) as i64)
    }
    /// The timestamp shifted by a number of milliseconds.
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
    pub fn to_iso(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        let dt = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH).to_offset(UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond()
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_iso())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an ISO 8601 timestamp")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        assert_eq!(Timestamp::from_millis(1_717_936_098_663).to_iso(), "2024-06-09T12:28:18.663Z");
        assert_eq!(Timestamp::from_millis(0).to_iso(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_offsets_fractions_and_dates() {
        let t = Timestamp::parse("2024-06-09T14:28:18.663+02:00").unwrap();
        assert_eq!(t.to_iso(), "2024-06-09T12:28:18.663Z");
        assert_eq!(Timestamp::parse("2024-06-09").unwrap().to_iso(), "2024-06-09T00:00:00.000Z");
        assert!(Timestamp::parse("yesterday").is_none());
    }
}
