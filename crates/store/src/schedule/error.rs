//! Bad schedule input, named by the field it is about.

/// Bad schedule input; each message starts with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// A cron string that does not parse, or never matches.
    #[error("cron: {0}")]
    Cron(String),
    /// Not an IANA time zone.
    #[error("tz: unknown time zone `{0}`; use an IANA name such as Europe/Amsterdam or UTC")]
    TimeZone(String),
    /// A bad `minutes` value, or one given for another type.
    #[error("minutes: {0}")]
    Minutes(String),
    /// A repeat count below -1.
    #[error("repeats: must be -1 (forever) or a count of 0 or more, got {0}")]
    Repeats(i64),
    /// An unknown schedule type.
    #[error(
        "kind: unknown schedule type `{0}`; expected one of once, minutes, hourly, daily, weekly, biweekly, monthly, bimonthly, quarterly, yearly, cron"
    )]
    Kind(String),
    /// A time that does not parse.
    #[error(
        "time: `{0}` is not a time; use RFC 3339 (2026-12-01T09:00:00Z) or a local `2026-12-01 09:00`"
    )]
    Time(String),
}
