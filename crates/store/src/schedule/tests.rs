//! Schedule arithmetic against an injected clock.

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn local(text: &str, tz: &str) -> Timestamp {
    parse_time(text, tz).unwrap()
}

fn runs(frequency: Frequency, tz: &str, anchor: Timestamp, n: usize) -> Vec<String> {
    let recurrence = Recurrence::new(frequency, tz, anchor).unwrap();
    let zone = TimeZone::get(tz).unwrap();
    let mut out = Vec::new();
    let mut t = anchor;
    out.push(
        t.to_zoned_datetime(zone.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
    );
    for _ in 1..n {
        t = recurrence.next_after(t).unwrap();
        out.push(
            t.to_zoned_datetime(zone.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string(),
        );
    }
    out
}

fn freq(kind: &str) -> Frequency {
    Frequency::parse(kind, None, None).unwrap()
}

fn cron(expr: &str) -> Frequency {
    Frequency::parse("cron", None, Some(expr)).unwrap()
}

#[test]
fn once_runs_once() {
    let r = Recurrence::new(Frequency::Once, "UTC", at("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        r.next_after(at("2025-12-31T00:00:00Z")),
        Some(at("2026-01-01T00:00:00Z"))
    );
    assert_eq!(r.next_after(at("2026-01-01T00:00:00Z")), None);
}

#[test]
fn minutes_and_hourly_are_exact_intervals_across_dst() {
    let tz = "Europe/Amsterdam";
    let anchor = local("2026-03-29 01:30", tz);
    assert_eq!(
        runs(freq("hourly"), tz, anchor, 3),
        [
            "2026-03-29 01:30 CET",
            "2026-03-29 03:30 CEST",
            "2026-03-29 04:30 CEST"
        ]
    );
    let anchor = local("2026-10-25 01:30", tz);
    assert_eq!(
        runs(freq("hourly"), tz, anchor, 4),
        [
            "2026-10-25 01:30 CEST",
            "2026-10-25 02:30 CEST",
            "2026-10-25 02:30 CET",
            "2026-10-25 03:30 CET"
        ]
    );
    let every = Frequency::parse("minutes", Some(45), None).unwrap();
    let r = Recurrence::new(
        every,
        "America/New_York",
        local("2026-03-08 01:00", "America/New_York"),
    )
    .unwrap();
    let next = r
        .next_after(local("2026-03-08 01:00", "America/New_York"))
        .unwrap();
    assert_eq!(
        next.duration_since(local("2026-03-08 01:00", "America/New_York"))
            .as_mins(),
        45
    );
    // A late look (catch-up off) lands on the grid, not at the look.
    let late = at("2026-03-08T07:00:01Z");
    let n = r.next_after(late).unwrap();
    assert!(n > late && n.duration_since(late).as_mins() < 45);
}

#[test]
fn daily_keeps_the_wall_clock_through_both_transitions() {
    let tz = "Europe/Amsterdam";
    assert_eq!(
        runs(freq("daily"), tz, local("2026-03-28 02:30", tz), 3),
        [
            "2026-03-28 02:30 CET",
            "2026-03-29 03:30 CEST",
            "2026-03-30 02:30 CEST"
        ]
    );
    assert_eq!(
        runs(freq("daily"), tz, local("2026-10-24 02:30", tz), 3),
        [
            "2026-10-24 02:30 CEST",
            "2026-10-25 02:30 CEST",
            "2026-10-26 02:30 CET"
        ]
    );
    let ny = "America/New_York";
    assert_eq!(
        runs(freq("daily"), ny, local("2026-03-07 02:30", ny), 3),
        [
            "2026-03-07 02:30 EST",
            "2026-03-08 03:30 EDT",
            "2026-03-09 02:30 EDT"
        ]
    );
    assert_eq!(
        runs(freq("daily"), ny, local("2026-10-31 01:30", ny), 3),
        [
            "2026-10-31 01:30 EDT",
            "2026-11-01 01:30 EDT",
            "2026-11-02 01:30 EST"
        ]
    );
}

#[test]
fn weekly_and_biweekly_keep_the_wall_clock() {
    let ny = "America/New_York";
    assert_eq!(
        runs(freq("weekly"), ny, local("2026-03-01 09:00", ny), 3),
        [
            "2026-03-01 09:00 EST",
            "2026-03-08 09:00 EDT",
            "2026-03-15 09:00 EDT"
        ]
    );
    assert_eq!(
        runs(freq("biweekly"), "UTC", at("2026-01-01T12:00:00Z"), 3),
        [
            "2026-01-01 12:00 UTC",
            "2026-01-15 12:00 UTC",
            "2026-01-29 12:00 UTC"
        ]
    );
}

#[test]
fn month_ends_clamp_without_drift() {
    assert_eq!(
        runs(freq("monthly"), "UTC", at("2026-01-31T08:00:00Z"), 5),
        [
            "2026-01-31 08:00 UTC",
            "2026-02-28 08:00 UTC",
            "2026-03-31 08:00 UTC",
            "2026-04-30 08:00 UTC",
            "2026-05-31 08:00 UTC"
        ]
    );
    assert_eq!(
        runs(freq("monthly"), "UTC", at("2028-01-31T08:00:00Z"), 2)[1],
        "2028-02-29 08:00 UTC"
    );
    assert_eq!(
        runs(freq("bimonthly"), "UTC", at("2026-12-31T08:00:00Z"), 3),
        [
            "2026-12-31 08:00 UTC",
            "2027-02-28 08:00 UTC",
            "2027-04-30 08:00 UTC"
        ]
    );
    assert_eq!(
        runs(freq("quarterly"), "UTC", at("2026-01-31T08:00:00Z"), 4),
        [
            "2026-01-31 08:00 UTC",
            "2026-04-30 08:00 UTC",
            "2026-07-31 08:00 UTC",
            "2026-10-31 08:00 UTC"
        ]
    );
}

#[test]
fn yearly_on_a_leap_day() {
    assert_eq!(
        runs(freq("yearly"), "UTC", at("2028-02-29T00:00:00Z"), 5),
        [
            "2028-02-29 00:00 UTC",
            "2029-02-28 00:00 UTC",
            "2030-02-28 00:00 UTC",
            "2031-02-28 00:00 UTC",
            "2032-02-29 00:00 UTC"
        ]
    );
}

#[test]
fn a_late_look_finds_the_next_occurrence_not_one_per_period() {
    let r = Recurrence::new(freq("daily"), "UTC", at("2026-01-01T06:00:00Z")).unwrap();
    assert_eq!(
        r.next_after(at("2026-06-15T07:00:00Z")),
        Some(at("2026-06-16T06:00:00Z"))
    );
    assert_eq!(
        r.next_after(at("2026-06-15T05:00:00Z")),
        Some(at("2026-06-15T06:00:00Z"))
    );
    assert_eq!(
        r.next_after(at("2025-01-01T00:00:00Z")),
        Some(at("2026-01-01T06:00:00Z"))
    );
}

#[test]
fn cron_five_and_six_fields_names_steps_lists() {
    let utc = "UTC";
    assert_eq!(
        runs(
            cron("*/20 9-10 * * mon-fri"),
            utc,
            at("2026-11-27T10:40:00Z"),
            4
        ),
        [
            "2026-11-27 10:40 UTC",
            "2026-11-30 09:00 UTC",
            "2026-11-30 09:20 UTC",
            "2026-11-30 09:40 UTC"
        ]
    );
    let r = Recurrence::new(cron("*/15 * * * * *"), utc, at("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        r.next_after(at("2026-01-01T00:00:00Z")),
        Some(at("2026-01-01T00:00:15Z"))
    );
    let r = Recurrence::new(cron("0 12 1,15 JAN,jul *"), utc, at("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        r.next_after(at("2026-01-15T12:00:00Z")),
        Some(at("2026-07-01T12:00:00Z"))
    );
    // Day of month and day of week both restricted: either matches.
    let r = Recurrence::new(cron("0 0 13 * 5"), utc, at("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        r.next_after(at("2026-02-01T00:00:00Z")),
        Some(at("2026-02-06T00:00:00Z"))
    );
    assert_eq!(
        r.next_after(at("2026-02-12T00:00:00Z")),
        Some(at("2026-02-13T00:00:00Z"))
    );
    // Sunday is 0 and 7.
    let r = Recurrence::new(cron("0 0 * * 7"), utc, at("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        r.next_after(at("2026-11-23T00:00:00Z")),
        Some(at("2026-11-29T00:00:00Z"))
    );
    assert_eq!(
        Recurrence::first_due(&cron("0 3 * * *"), utc, at("2026-11-24T05:00:00Z")).unwrap(),
        at("2026-11-25T03:00:00Z")
    );
}

#[test]
fn cron_fixed_times_run_once_on_dst_days() {
    let tz = "Europe/Amsterdam";
    assert_eq!(
        runs(cron("30 2 * * *"), tz, local("2026-03-28 02:30", tz), 3),
        [
            "2026-03-28 02:30 CET",
            "2026-03-29 03:30 CEST",
            "2026-03-30 02:30 CEST"
        ]
    );
    assert_eq!(
        runs(cron("30 2 * * *"), tz, local("2026-10-24 02:30", tz), 3),
        [
            "2026-10-24 02:30 CEST",
            "2026-10-25 02:30 CEST",
            "2026-10-26 02:30 CET"
        ]
    );
}

#[test]
fn cron_steps_keep_their_cadence_through_both_transitions() {
    let tz = "Europe/Amsterdam";
    // Autumn back: the repeated hour runs in both passes, nothing twice.
    let back = runs(cron("*/15 * * * *"), tz, local("2026-10-25 01:45", tz), 10);
    assert_eq!(
        back,
        [
            "2026-10-25 01:45 CEST",
            "2026-10-25 02:00 CEST",
            "2026-10-25 02:15 CEST",
            "2026-10-25 02:30 CEST",
            "2026-10-25 02:45 CEST",
            "2026-10-25 02:00 CET",
            "2026-10-25 02:15 CET",
            "2026-10-25 02:30 CET",
            "2026-10-25 02:45 CET",
            "2026-10-25 03:00 CET"
        ]
    );
    // Spring forward: the missing hour is skipped, no instant twice.
    let forward = runs(cron("*/15 * * * *"), tz, local("2026-03-29 01:45", tz), 3);
    assert_eq!(
        forward,
        [
            "2026-03-29 01:45 CET",
            "2026-03-29 03:00 CEST",
            "2026-03-29 03:15 CEST"
        ]
    );
    // A whole 23-hour day holds 92 quarter hours, each once.
    let r = Recurrence::new(cron("*/15 * * * *"), tz, local("2026-03-29 00:00", tz)).unwrap();
    let (mut t, end, mut n) = (
        local("2026-03-29 00:00", tz),
        local("2026-03-30 00:00", tz),
        1,
    );
    while let Some(next) = r.next_after(t).filter(|x| *x < end) {
        assert!(next > t);
        t = next;
        n += 1;
    }
    assert_eq!(n, 92);
}

#[test]
fn errors_name_the_field() {
    let message = |e: ScheduleError| e.to_string();
    assert_eq!(
        message(Frequency::parse("cron", None, Some("0 25 * * *")).unwrap_err()),
        "cron: hour field `25` is out of range 0-23"
    );
    assert_eq!(
        message(Frequency::parse("cron", None, Some("0 0 30 2 *")).unwrap_err()),
        "cron: `0 0 30 2 *` never matches"
    );
    assert!(
        message(Frequency::parse("cron", None, Some("* * *")).unwrap_err())
            .starts_with("cron: `* * *` has 3 fields")
    );
    assert_eq!(
        message(Frequency::parse("cron", None, Some("*/0 * * * *")).unwrap_err()),
        "cron: minute field `*/0` has a bad step `0`"
    );
    assert_eq!(
        message(Recurrence::new(Frequency::Daily, "Mars/Base", Timestamp::UNIX_EPOCH).unwrap_err()),
        "tz: unknown time zone `Mars/Base`; use an IANA name such as Europe/Amsterdam or UTC"
    );
    assert_eq!(
        message(parse_repeats(-5).unwrap_err()),
        "repeats: must be -1 (forever) or a count of 0 or more, got -5"
    );
    assert_eq!(parse_repeats(-1), Ok(-1));
    assert!(
        message(Frequency::parse("fortnightly", None, None).unwrap_err())
            .starts_with("kind: unknown schedule type `fortnightly`")
    );
    assert!(
        message(Frequency::parse("minutes", Some(0), None).unwrap_err()).starts_with("minutes:")
    );
    assert!(message(Frequency::parse("minutes", None, None).unwrap_err()).starts_with("minutes:"));
    assert!(message(parse_time("tomorrow", "UTC").unwrap_err()).starts_with("time:"));
}

#[test]
fn times_parse_with_offsets_or_in_a_zone() {
    assert_eq!(
        parse_time("2026-11-24T15:00:00Z", "UTC").unwrap(),
        at("2026-11-24T15:00:00Z")
    );
    assert_eq!(
        parse_time("2026-11-24T15:00:00+01:00", "America/New_York").unwrap(),
        at("2026-11-24T14:00:00Z")
    );
    assert_eq!(
        parse_time("2026-11-24 15:00", "Europe/Amsterdam").unwrap(),
        at("2026-11-24T14:00:00Z")
    );
    assert_eq!(
        parse_time("2026-11-24T15:00:30", "UTC").unwrap(),
        at("2026-11-24T15:00:30Z")
    );
    // In the spring-forward gap: moved forward by the gap.
    assert_eq!(
        parse_time("2026-03-29 02:30", "Europe/Amsterdam").unwrap(),
        at("2026-03-29T01:30:00Z")
    );
}
