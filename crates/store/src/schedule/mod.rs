//! Schedule arithmetic: when a schedule is due next, in its time zone.
//! Pure: callers pass the times in, so tests inject any clock.
//!
//! - `minutes` (every N) and `hourly` are exact intervals from the
//!   schedule's anchor (its first due time): they do not move with DST.
//! - `daily`, `weekly`, `biweekly`, `monthly`, `bimonthly`, `quarterly`
//!   and `yearly` keep the anchor's wall-clock time in the schedule's zone.
//!   Occurrence `k` is always the anchor's civil time plus `k` periods, so
//!   there is no drift: 31 January monthly gives 28 (29) February, then 31
//!   March; 29 February yearly gives 28 February in common years.
//! - A wall-clock time in a DST gap (spring forward) moves forward by the
//!   gap (02:30 becomes 03:30), so it runs once that day; one in a fold
//!   (autumn back) takes the earlier instant, so it does not run twice.
//! - `cron` matches civil times. A fixed-time entry (`30 2 * * *`) runs
//!   once in a gap (shifted) and once in a fold (the first time); an
//!   entry whose minute or hour field starts with `*` keeps its cadence
//!   through the repeated hour of a fold, as Vixie cron does.

mod cron;
mod error;
#[cfg(test)]
mod tests;

pub use cron::Cron;
pub use error::ScheduleError;
pub use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Span};

/// How often a schedule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frequency {
    /// Once, at its anchor.
    Once,
    /// Every N minutes.
    Minutes(u32),
    /// Every hour.
    Hourly,
    /// Every day at the same wall-clock time.
    Daily,
    /// Every 7 days.
    Weekly,
    /// Every 14 days.
    Biweekly,
    /// Every month on the same day (or the month's last).
    Monthly,
    /// Every 2 months.
    Bimonthly,
    /// Every 3 months.
    Quarterly,
    /// Every year.
    Yearly,
    /// A cron expression.
    Cron(Cron),
}

impl Frequency {
    /// From the words people and the store use; `minutes` only (and
    /// required) for `minutes`, `cron` only (and required) for `cron`.
    pub fn parse(
        kind: &str,
        minutes: Option<u32>,
        cron: Option<&str>,
    ) -> Result<Self, ScheduleError> {
        let kind_lower = kind.trim().to_ascii_lowercase();
        if kind_lower != "cron" && cron.is_some() {
            return Err(ScheduleError::Cron(format!(
                "given for a `{kind}` schedule; use --every cron"
            )));
        }
        if kind_lower != "minutes" && minutes.is_some() {
            return Err(ScheduleError::Minutes(format!(
                "given for a `{kind}` schedule; use --every minutes"
            )));
        }
        Ok(match kind_lower.as_str() {
            "once" => Self::Once,
            "minutes" => match minutes {
                Some(0) => return Err(ScheduleError::Minutes("must be 1 or more, got 0".into())),
                Some(n) => Self::Minutes(n),
                None => {
                    return Err(ScheduleError::Minutes(
                        "a `minutes` schedule needs --minutes N".into(),
                    ));
                }
            },
            "hourly" => Self::Hourly,
            "daily" => Self::Daily,
            "weekly" => Self::Weekly,
            "biweekly" => Self::Biweekly,
            "monthly" => Self::Monthly,
            "bimonthly" => Self::Bimonthly,
            "quarterly" => Self::Quarterly,
            "yearly" => Self::Yearly,
            "cron" => match cron {
                Some(text) => Self::Cron(text.parse()?),
                None => {
                    return Err(ScheduleError::Cron(
                        "a `cron` schedule needs --cron EXPR".into(),
                    ));
                }
            },
            _ => return Err(ScheduleError::Kind(kind.to_owned())),
        })
    }

    /// The word for it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Minutes(_) => "minutes",
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Biweekly => "biweekly",
            Self::Monthly => "monthly",
            Self::Bimonthly => "bimonthly",
            Self::Quarterly => "quarterly",
            Self::Yearly => "yearly",
            Self::Cron(_) => "cron",
        }
    }

    /// The interval of a `minutes` schedule.
    pub fn minutes(&self) -> Option<u32> {
        match self {
            Self::Minutes(n) => Some(*n),
            _ => None,
        }
    }

    /// The expression of a `cron` schedule.
    pub fn cron(&self) -> Option<&str> {
        match self {
            Self::Cron(cron) => Some(cron.source()),
            _ => None,
        }
    }

    /// The civil period of a wall-clock schedule.
    fn civil_period(&self) -> Option<Span> {
        Some(match self {
            Self::Daily => Span::new().days(1),
            Self::Weekly => Span::new().days(7),
            Self::Biweekly => Span::new().days(14),
            Self::Monthly => Span::new().months(1),
            Self::Bimonthly => Span::new().months(2),
            Self::Quarterly => Span::new().months(3),
            Self::Yearly => Span::new().years(1),
            _ => return None,
        })
    }
}

/// A schedule's recurrence: frequency, time zone and anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrence {
    frequency: Frequency,
    tz: String,
    zone: TimeZone,
    anchor: Timestamp,
}

/// The time zone named `tz`.
fn zone(tz: &str) -> Result<TimeZone, ScheduleError> {
    TimeZone::get(tz).map_err(|_| ScheduleError::TimeZone(tz.to_owned()))
}

/// The instant of a civil time: after the gap in a gap, the earlier one in
/// a fold.
fn resolve(zone: &TimeZone, civil: DateTime) -> Option<Timestamp> {
    zone.to_ambiguous_timestamp(civil).compatible().ok()
}

/// Every instant of a civil time (two in a fold), earliest first.
fn instants(zone: &TimeZone, civil: DateTime) -> Vec<Timestamp> {
    let ambiguous = zone.to_ambiguous_timestamp(civil);
    match ambiguous.offset() {
        AmbiguousOffset::Fold { before, after } => [before, after]
            .into_iter()
            .filter_map(|offset| offset.to_timestamp(civil).ok())
            .collect(),
        _ => ambiguous.compatible().ok().into_iter().collect(),
    }
}

impl Recurrence {
    /// `tz` an IANA name; `anchor` the first due instant.
    pub fn new(frequency: Frequency, tz: &str, anchor: Timestamp) -> Result<Self, ScheduleError> {
        Ok(Self {
            zone: zone(tz)?,
            tz: tz.to_owned(),
            frequency,
            anchor,
        })
    }

    /// The first due time of a new schedule: the next cron match after
    /// `now` for cron, `now` for the others.
    pub fn first_due(
        frequency: &Frequency,
        tz: &str,
        now: Timestamp,
    ) -> Result<Timestamp, ScheduleError> {
        let recurrence = Self::new(frequency.clone(), tz, now)?;
        match frequency {
            Frequency::Cron(cron) => recurrence
                .next_cron(cron, now)
                .ok_or_else(|| ScheduleError::Cron(format!("`{}` never matches", cron.source()))),
            _ => Ok(now),
        }
    }

    /// The frequency.
    pub fn frequency(&self) -> &Frequency {
        &self.frequency
    }

    /// The time zone's name.
    pub fn tz(&self) -> &str {
        &self.tz
    }

    /// The first due instant.
    pub fn anchor(&self) -> Timestamp {
        self.anchor
    }

    /// The next due time strictly after `after`, or `None` when there is
    /// none (a `once` schedule after its anchor).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match &self.frequency {
            Frequency::Once => (self.anchor > after).then_some(self.anchor),
            Frequency::Minutes(n) => {
                self.next_interval(after, SignedDuration::from_mins(i64::from(*n)))
            }
            Frequency::Hourly => self.next_interval(after, SignedDuration::from_hours(1)),
            Frequency::Cron(cron) => self.next_cron(cron, after),
            civil => self.next_civil(after, civil.civil_period()?),
        }
    }

    fn next_interval(&self, after: Timestamp, period: SignedDuration) -> Option<Timestamp> {
        if after < self.anchor {
            return Some(self.anchor);
        }
        let elapsed = after.duration_since(self.anchor).as_millis();
        let period_ms = period.as_millis();
        let k = elapsed / period_ms + 1;
        let ms = i64::try_from(self.anchor.as_millisecond() as i128 + k * period_ms).ok()?;
        Timestamp::from_millisecond(ms).ok()
    }

    fn next_civil(&self, after: Timestamp, period: Span) -> Option<Timestamp> {
        let start = self.zone.to_datetime(self.anchor);
        // An estimate of the occurrence just before `after`, then forward.
        let approx_days = match self.frequency {
            Frequency::Daily => 1,
            Frequency::Weekly => 7,
            Frequency::Biweekly => 14,
            Frequency::Monthly => 28,
            Frequency::Bimonthly => 59,
            Frequency::Quarterly => 89,
            _ => 365,
        };
        let elapsed_days = after.duration_since(self.anchor).as_secs() / 86_400;
        let mut k = (elapsed_days / approx_days - 2).max(0);
        loop {
            let civil = start.checked_add(period.checked_mul(k).ok()?).ok()?;
            let at = resolve(&self.zone, civil)?;
            if at > after {
                // The estimate may have overshot: step back while the
                // one before is also after `after`.
                if k > 0 {
                    let before = start.checked_add(period.checked_mul(k - 1).ok()?).ok()?;
                    if resolve(&self.zone, before).is_some_and(|b| b > after) {
                        k -= 1;
                        continue;
                    }
                }
                return Some(at);
            }
            k += 1;
        }
    }

    fn next_cron(&self, cron: &Cron, after: Timestamp) -> Option<Timestamp> {
        // A civil time before `after`'s own can still have an instant
        // after it (the second pass of a fold): start a little earlier.
        let from = after.checked_sub(SignedDuration::from_hours(3)).ok()?;
        let mut civil = self.zone.to_datetime(from);
        let mut best: Option<Timestamp> = None;
        loop {
            let found = cron.next_civil(civil)?;
            let all = instants(&self.zone, found);
            let mut candidates = if cron.is_wildcard() {
                all
            } else {
                all.into_iter().take(1).collect()
            };
            candidates.retain(|t| *t > after);
            if let Some(first) = candidates.into_iter().min() {
                best = Some(best.map_or(first, |b| b.min(first)));
            }
            // Past the best by more than any fold: nothing earlier is left.
            if let Some(best) = best
                && resolve(&self.zone, found)
                    .is_some_and(|t| t > best + SignedDuration::from_hours(3))
            {
                return Some(best);
            }
            civil = found.checked_add(SignedDuration::from_secs(1)).ok()?;
        }
    }
}

/// Checks a repeat count: -1 (forever) or 0 and up.
pub fn parse_repeats(n: i64) -> Result<i64, ScheduleError> {
    if n < -1 {
        return Err(ScheduleError::Repeats(n));
    }
    Ok(n)
}

/// Parses a time for `--at` and `--next-run`: RFC 3339 with an offset or
/// `Z`, or a civil `2026-11-24 15:00[:00]` / `2026-11-24T15:00` in `tz`
/// (a time in a DST gap moves forward by the gap).
pub fn parse_time(text: &str, tz: &str) -> Result<Timestamp, ScheduleError> {
    let text = text.trim();
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let zone = zone(tz)?;
    let civil: DateTime = text
        .replacen(' ', "T", 1)
        .parse()
        .map_err(|_| ScheduleError::Time(text.to_owned()))?;
    resolve(&zone, civil).ok_or_else(|| ScheduleError::Time(text.to_owned()))
}
