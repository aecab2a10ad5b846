//! Cron expressions: 5 fields (`minute hour day-of-month month
//! day-of-week`) or 6 with seconds first; `*`, lists, ranges, steps,
//! month and weekday names, `?` as `*`. Day of month and day of week both
//! restricted match either (Vixie cron). Matching is on civil time; the
//! caller turns matches into instants in a time zone.

use jiff::civil::{Date, DateTime, Time};

use super::error::ScheduleError;

/// How far ahead a search looks before it gives up (about 5 years).
const SEARCH_DAYS: i64 = 5 * 366;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    source: String,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    dom_any: bool,
    dow_any: bool,
    /// The minute or hour field starts with `*`: such entries keep their
    /// cadence through a repeated (autumn) hour; fixed-time ones run once.
    wildcard: bool,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl std::str::FromStr for Cron {
    type Err = ScheduleError;

    fn from_str(source: &str) -> Result<Self, ScheduleError> {
        let bad = |message: String| ScheduleError::Cron(message);
        let fields: Vec<&str> = source.split_whitespace().collect();
        let (seconds, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(bad(format!(
                    "`{source}` has {n} fields; expected 5 (minute hour day month weekday) or 6 (seconds first)"
                )));
            }
        };
        let mut weekdays = parse_field(rest[4], &DOW)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        let cron = Self {
            source: source.split_whitespace().collect::<Vec<_>>().join(" "),
            seconds: parse_field(seconds, &SECOND)?,
            minutes: parse_field(rest[0], &MINUTE)?,
            hours: parse_field(rest[1], &HOUR)?,
            days: parse_field(rest[2], &DOM)?,
            months: parse_field(rest[3], &MONTH)?,
            weekdays,
            dom_any: is_any(rest[2]),
            dow_any: is_any(rest[4]),
            wildcard: rest[0].starts_with('*') || rest[1].starts_with('*'),
        };
        if cron.dow_any && !cron.dom_any {
            // Only days of the month count: one must exist in a month.
            let longest = |month: u32| match month {
                2 => 29,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let possible = (1..=12u32)
                .filter(|m| cron.months & (1 << m) != 0)
                .any(|m| (1..=longest(m)).any(|d| cron.days & (1 << d) != 0));
            if !possible {
                return Err(bad(format!("`{}` never matches", cron.source)));
            }
        }
        Ok(cron)
    }
}

fn is_any(field: &str) -> bool {
    field == "*" || field == "?"
}

/// One field as a bit set.
fn parse_field(text: &str, field: &Field) -> Result<u64, ScheduleError> {
    let bad = |message: String| ScheduleError::Cron(format!("{} field {message}", field.name));
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad(format!("`{part}` has a bad step `{step}`")))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (low, high) = if range == "*" || range == "?" {
            (
                field.min,
                if field.name == "day-of-week" {
                    6
                } else {
                    field.max
                },
            )
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, field)?, value(b, field)?)
        } else {
            let v = value(range, field)?;
            // `5/15` means from 5 to the end, every 15.
            (v, if step > 1 { field.max } else { v })
        };
        if low > high {
            return Err(bad(format!("`{part}` is an empty range")));
        }
        let mut v = low;
        while v <= high {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

fn value(text: &str, field: &Field) -> Result<u32, ScheduleError> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + if field.name == "month" { 1 } else { 0 });
    }
    let v: u32 = text.parse().map_err(|_| {
        ScheduleError::Cron(format!("{} field `{text}` is not a number", field.name))
    })?;
    if !(field.min..=field.max).contains(&v) {
        return Err(ScheduleError::Cron(format!(
            "{} field `{text}` is out of range {}-{}",
            field.name, field.min, field.max
        )));
    }
    Ok(v)
}

fn bits(set: u64, from: u32, to: u32) -> impl Iterator<Item = u32> {
    (from..=to).filter(move |v| set & (1 << v) != 0)
}

impl Cron {
    /// The expression as written (whitespace normalised).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the minute or hour field starts with `*`.
    pub(crate) fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }

    /// The first civil time at or after `from` that matches.
    pub(crate) fn next_civil(&self, from: DateTime) -> Option<DateTime> {
        let mut date = from.date();
        for day in 0..SEARCH_DAYS {
            if self.day_matches(date) {
                let first_day = day == 0;
                let start = if first_day {
                    from.time()
                } else {
                    Time::midnight()
                };
                for h in bits(self.hours, start.hour() as u32, 23) {
                    let same_hour = first_day && h == start.hour() as u32;
                    let m0 = if same_hour { start.minute() as u32 } else { 0 };
                    for m in bits(self.minutes, m0, 59) {
                        let s0 = if same_hour && m == start.minute() as u32 {
                            start.second() as u32 + u32::from(start.subsec_nanosecond() > 0)
                        } else {
                            0
                        };
                        if let Some(s) = bits(self.seconds, s0, 59).next() {
                            return Some(date.at(h as i8, m as i8, s as i8, 0));
                        }
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}
