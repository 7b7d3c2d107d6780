//! Timestamps as the Python server writes them.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// A point in time, in UTC, with microsecond precision.
///
/// It reads any RFC 3339 timestamp and writes the form Python's `datetime.isoformat()` gives
/// for UTC, which is what `langgraph-api` sends: `2026-11-23T19:00:18.366014+00:00`, with the
/// fraction left out when it is zero. Clients that compare or sort the strings see the same
/// text from errand as from the Python server.
///
/// ```
/// use errand_protocol::Timestamp;
/// let t: Timestamp = "2026-11-23T19:00:18.366014+00:00".parse().unwrap();
/// assert_eq!(t.to_string(), "2026-11-23T19:00:18.366014+00:00");
/// let z: Timestamp = "2026-11-23T19:00:18Z".parse().unwrap();
/// assert_eq!(z.to_string(), "2026-11-23T19:00:18+00:00");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, cut to whole microseconds so it survives a round trip through text.
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    /// Wraps a chrono time, cut to whole microseconds.
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        Self(at.trunc_subsecs(6))
    }

    /// The chrono value.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Microseconds since the Unix epoch.
    pub fn timestamp_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// This time moved `by` later, saturating at the end of chrono's range.
    pub fn after(&self, by: std::time::Duration) -> Self {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        Self::from_timestamp_micros(self.timestamp_micros().saturating_add(micros))
            .unwrap_or(Self(DateTime::<Utc>::MAX_UTC))
    }

    /// The time from microseconds since the Unix epoch, if it is in chrono's range.
    pub fn from_timestamp_micros(micros: i64) -> Option<Self> {
        DateTime::from_timestamp_micros(micros).map(Self)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        Self::from_datetime(at)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = if self.0.timestamp_subsec_micros() == 0 {
            SecondsFormat::Secs
        } else {
            SecondsFormat::Micros
        };
        f.write_str(&self.0.to_rfc3339_opts(format, false))
    }
}

impl FromStr for Timestamp {
    type Err = chrono::ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(text).map(|at| Self::from_datetime(at.with_timezone(&Utc)))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "date-time" })
    }
}
