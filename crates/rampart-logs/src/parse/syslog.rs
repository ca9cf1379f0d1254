//! Syslog envelopes, parsed by hand: RFC 3164 (`Nov 21 06:34:06 host
//! sshd[123]: msg`), ISO 8601 / rsyslog high precision
//! (`2026-11-21T06:34:06.123456+01:00 host sshd[123]: msg`) and RFC 5424
//! (`<38>1 2026-11-21T06:34:06.003Z host sshd 1234 - - msg`, with or without
//! structured data). A `<PRI>` prefix is accepted on all three.
//!
//! Timestamps without a zone (RFC 3164, or ISO 8601 without an offset) are
//! read in the host's local zone (chrono's `Local`, which honours `TZ`).
//! RFC 3164 has no year either: the year chosen is the latest one that does
//! not put the time after the reference time plus one day, so December lines
//! read in January land in the previous year.
//!
//! The time helpers here (`parse_iso8601_prefix`, `local_to_utc`,
//! `month_from_abbr`) are shared with the access-log, error-log and JSON
//! parsers.

use std::cell::Cell;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, TimeZone, Utc};

use super::rules::ParserRules;
use super::{LineParser, ParseOptions, SyslogRecord, line_str};
use crate::SkipReason;
use rampart_core::Event;

/// Parses the syslog envelope of one line (without its terminator).
///
/// Accepts RFC 3164, ISO 8601 (rsyslog high precision) and RFC 5424
/// envelopes, each optionally behind a `<PRI>` prefix. `reference` picks the
/// year of RFC 3164 timestamps (the latest year that puts the time at or
/// before `reference` plus one day). Zone-less times are local time.
///
/// Errors: [`SkipReason::Unparsable`] when the line is not a syslog line,
/// [`SkipReason::BadTimestamp`] when its timestamp is malformed.
pub fn parse_syslog<'a>(
    line: &'a str,
    reference: DateTime<Utc>,
) -> Result<SyslogRecord<'a>, SkipReason> {
    parse_syslog_in(line, reference, &local_to_utc, true)
}

/// [`parse_syslog`] with the local zone given as a function (for tests).
pub(crate) fn parse_syslog_in<'a>(
    line: &'a str,
    reference: DateTime<Utc>,
    local: &dyn Fn(NaiveDateTime) -> Option<DateTime<Utc>>,
    cache: bool,
) -> Result<SyslogRecord<'a>, SkipReason> {
    let mut rest = line;
    if rest.as_bytes().first() == Some(&b'<') {
        let close = rest
            .as_bytes()
            .iter()
            .take(6)
            .position(|&b| b == b'>')
            .ok_or(SkipReason::Unparsable)?;
        let pri = rest.get(1..close).ok_or(SkipReason::Unparsable)?;
        if pri.is_empty() || !pri.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SkipReason::Unparsable);
        }
        rest = rest.get(close + 1..).ok_or(SkipReason::Unparsable)?;
        if let Some(after) = rest.strip_prefix("1 ") {
            return parse_rfc5424(after, local);
        }
    }
    let first = *rest.as_bytes().first().ok_or(SkipReason::Unparsable)?;
    let (time, after) = if first.is_ascii_digit() {
        let (wall, offset, used) = parse_iso8601_prefix(rest).ok_or(SkipReason::BadTimestamp)?;
        let time = wall.to_utc(offset, local).ok_or(SkipReason::BadTimestamp)?;
        (time, rest.get(used..).ok_or(SkipReason::Unparsable)?)
    } else if first.is_ascii_alphabetic() {
        let (time, used) = parse_rfc3164_time(rest, reference, local, cache)?;
        (time, rest.get(used..).ok_or(SkipReason::Unparsable)?)
    } else {
        return Err(SkipReason::Unparsable);
    };
    let after = after.strip_prefix(' ').ok_or(SkipReason::Unparsable)?;
    parse_header(time, after.trim_start_matches(' '))
}

/// Host, then tag (`program[pid]:` or `program:`), then message.
fn parse_header(time: DateTime<Utc>, rest: &str) -> Result<SyslogRecord<'_>, SkipReason> {
    let host_end = rest.find(' ').unwrap_or(rest.len());
    let host = rest.get(..host_end).ok_or(SkipReason::Unparsable)?;
    if host.is_empty() {
        return Err(SkipReason::Unparsable);
    }
    // A line without a host: the first token is already the tag.
    let (host, tag) = if host.ends_with(':') {
        ("", rest)
    } else {
        let tag = rest.get(host_end..).unwrap_or("").trim_start_matches(' ');
        (host, tag)
    };
    let (program, pid, message) = split_tag(tag);
    Ok(SyslogRecord {
        time,
        host,
        program,
        pid,
        message: message.trim_end(),
    })
}

/// Splits `program[pid]: message` / `program: message`. A first token that is
/// not a tag leaves the program empty and the whole text as message.
fn split_tag(tag: &str) -> (&str, Option<u32>, &str) {
    let bytes = tag.as_bytes();
    let Some(k) = bytes
        .iter()
        .position(|&b| b == b'[' || b == b':' || b == b' ')
    else {
        return ("", None, tag);
    };
    match bytes.get(k) {
        Some(b':') => {
            let program = tag.get(..k).unwrap_or("");
            let message = tag.get(k + 1..).unwrap_or("");
            (program, None, message.strip_prefix(' ').unwrap_or(message))
        }
        Some(b'[') => {
            let program = tag.get(..k).unwrap_or("");
            let after = tag.get(k + 1..).unwrap_or("");
            let Some(close) = after.find(']') else {
                return ("", None, tag);
            };
            let pid = parse_u32(after.get(..close).unwrap_or(""));
            let mut message = after.get(close + 1..).unwrap_or("");
            message = message.strip_prefix(':').unwrap_or(message);
            (program, pid, message.strip_prefix(' ').unwrap_or(message))
        }
        _ => ("", None, tag),
    }
}

/// RFC 5424 after `<PRI>1 `: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG].
fn parse_rfc5424<'a>(
    rest: &'a str,
    local: &dyn Fn(NaiveDateTime) -> Option<DateTime<Utc>>,
) -> Result<SyslogRecord<'a>, SkipReason> {
    let (stamp, rest) = rest.split_once(' ').ok_or(SkipReason::Unparsable)?;
    if stamp == "-" {
        return Err(SkipReason::BadTimestamp);
    }
    let (wall, offset, used) = parse_iso8601_prefix(stamp).ok_or(SkipReason::BadTimestamp)?;
    if used != stamp.len() {
        return Err(SkipReason::BadTimestamp);
    }
    let time = wall.to_utc(offset, local).ok_or(SkipReason::BadTimestamp)?;
    let (host, rest) = rest.split_once(' ').ok_or(SkipReason::Unparsable)?;
    let (app, rest) = rest.split_once(' ').ok_or(SkipReason::Unparsable)?;
    let (procid, rest) = rest.split_once(' ').ok_or(SkipReason::Unparsable)?;
    let (_msgid, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let message = skip_structured_data(rest).ok_or(SkipReason::Unparsable)?;
    let message = message.strip_prefix(' ').unwrap_or(message);
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    let nil = |s: &'a str| if s == "-" { "" } else { s };
    Ok(SyslogRecord {
        time,
        host: nil(host),
        program: nil(app),
        pid: parse_u32(procid),
        message: message.trim_end(),
    })
}

/// Skips RFC 5424 STRUCTURED-DATA (`-` or `[id k="v"]...`, with `\"`, `\\`
/// and `\]` escapes in values). Returns what follows.
fn skip_structured_data(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix('-') {
        return Some(rest);
    }
    if s.is_empty() {
        return Some(s);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while bytes.get(i) == Some(&b'[') {
        i += 1;
        let mut in_quotes = false;
        loop {
            match bytes.get(i)? {
                b'\\' if in_quotes => i += 2,
                b'"' => {
                    in_quotes = !in_quotes;
                    i += 1;
                }
                b']' if !in_quotes => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
    }
    if i == 0 {
        // No structured data at all: tolerate a message right away.
        return Some(s);
    }
    s.get(i..)
}

/// RFC 3164 `Mmm dd HH:MM:SS` (day space-padded or not). Returns the time
/// and the bytes used.
fn parse_rfc3164_time(
    s: &str,
    reference: DateTime<Utc>,
    local: &dyn Fn(NaiveDateTime) -> Option<DateTime<Utc>>,
    cache: bool,
) -> Result<(DateTime<Utc>, usize), SkipReason> {
    let b = s.as_bytes();
    let month = b
        .get(..3)
        .and_then(month_from_abbr)
        .ok_or(SkipReason::Unparsable)?;
    if b.get(3) != Some(&b' ') {
        return Err(SkipReason::Unparsable);
    }
    let mut i = 4;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut day = 0u32;
    let start = i;
    while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        day = day * 10 + u32::from(c - b'0');
        i += 1;
        if i - start > 2 {
            return Err(SkipReason::BadTimestamp);
        }
    }
    if i == start || b.get(i) != Some(&b' ') || day == 0 || day > 31 {
        return Err(SkipReason::BadTimestamp);
    }
    i += 1;
    let (clock, used) = parse_hms(b.get(i..).unwrap_or(&[])).ok_or(SkipReason::BadTimestamp)?;
    let utc = rfc3164_to_utc(month, day, clock, reference, local, cache)
        .ok_or(SkipReason::BadTimestamp)?;
    Ok((utc, i + used))
}

/// A time of day: seconds since midnight and nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    secs: u32,
    nanos: u32,
}

/// `HH:MM:SS[.frac]`; returns the time of day and the bytes used.
fn parse_hms(b: &[u8]) -> Option<(Clock, usize)> {
    let h = digits2(b, 0)?;
    let m = digits2(b, 3)?;
    let sec = digits2(b, 6)?;
    if b.get(2) != Some(&b':') || b.get(5) != Some(&b':') || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let (nanos, used) = parse_fraction(b, 8);
    // A leap second is read as the last instant of its minute.
    let (secs, nanos) = if sec == 60 {
        (h * 3600 + m * 60 + 59, 999_999_999)
    } else {
        (h * 3600 + m * 60 + sec, nanos)
    };
    Some((Clock { secs, nanos }, used))
}

/// An optional `.ddd…` fraction at `i`: nanoseconds and the end index.
fn parse_fraction(b: &[u8], i: usize) -> (u32, usize) {
    if b.get(i) != Some(&b'.') && b.get(i) != Some(&b',') {
        return (0, i);
    }
    let mut j = i + 1;
    let mut nanos = 0u32;
    let mut scale = 100_000_000u32;
    while let Some(&c) = b.get(j).filter(|c| c.is_ascii_digit()) {
        nanos += u32::from(c - b'0') * scale;
        scale /= 10;
        j += 1;
    }
    if j == i + 1 {
        return (0, i);
    }
    (nanos, j)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`). The date must be valid.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in a month (0 for a month that is not 1 to 12).
pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A wall-clock time as seconds since the epoch as if it were UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wall {
    pub(crate) secs: i64,
    pub(crate) nanos: u32,
}

impl Wall {
    /// A valid date and time of day, or `None`.
    pub(crate) fn new(
        year: i64,
        month: u32,
        day: u32,
        clock_secs: u32,
        nanos: u32,
    ) -> Option<Self> {
        if day == 0 || day > days_in_month(year, month) || !(-9999..=9999).contains(&year) {
            return None;
        }
        let secs = days_from_civil(year, month, day) * 86_400 + i64::from(clock_secs);
        Some(Self { secs, nanos })
    }

    /// As a naive date-time (for zone lookups).
    pub(crate) fn naive(self) -> Option<NaiveDateTime> {
        DateTime::from_timestamp(self.secs, self.nanos).map(|t| t.naive_utc())
    }

    /// The instant: with an offset (seconds east of UTC), or in the local zone.
    pub(crate) fn to_utc(
        self,
        offset: Option<i32>,
        local: &dyn Fn(NaiveDateTime) -> Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match offset {
            Some(off) => DateTime::from_timestamp(self.secs - i64::from(off), self.nanos),
            None => local(self.naive()?),
        }
    }
}

/// How many lines a cached year choice or local offset serves before it is
/// worked out again (so a changed `TZ` or `/etc/localtime` is noticed).
const CACHE_USES: u32 = 100_000;

thread_local! {
    /// RFC 3164 year choice: (month/day/hour key, UTC seconds of that hour's
    /// start in the chosen year, uses left).
    static YEAR_CHOICE: Cell<(u32, i64, u32)> = const { Cell::new((u32::MAX, 0, 0)) };
}

/// Picks the year of a year-less local time: the latest year that puts it
/// at or before `reference` plus one day. With `cache`, the choice for the
/// last month/day/hour seen is reused while it still holds.
fn rfc3164_to_utc(
    month: u32,
    day: u32,
    clock: Clock,
    reference: DateTime<Utc>,
    local: &dyn Fn(NaiveDateTime) -> Option<DateTime<Utc>>,
    cache: bool,
) -> Option<DateTime<Utc>> {
    const DAY: i64 = 86_400;
    let latest = reference.timestamp().checked_add(DAY)?;
    let hour = clock.secs / 3600;
    let within = i64::from(clock.secs % 3600);
    let key = (month << 16) | (day << 8) | hour;
    if cache {
        let (k, base, uses) = YEAR_CHOICE.with(Cell::get);
        let t = base + within;
        // Still at or before `latest`, and the next year's date (at least
        // 364 days later, whatever the zone does) still after it.
        if k == key && uses > 0 && t <= latest && t + 364 * DAY > latest {
            YEAR_CHOICE.with(|c| c.set((k, base, uses - 1)));
            return DateTime::from_timestamp(t, clock.nanos);
        }
    }
    let ref_year = i64::from(reference.year());
    for year in (ref_year - 7..=ref_year + 1).rev() {
        let Some(wall) = Wall::new(year, month, day, clock.secs, clock.nanos) else {
            continue;
        };
        // Zones are within a day of UTC: skip what is after `latest` in all.
        if wall.secs > latest + DAY {
            continue;
        }
        let utc = local(wall.naive()?)?;
        if utc.timestamp() <= latest {
            if cache {
                YEAR_CHOICE.with(|c| c.set((key, utc.timestamp() - within, CACHE_USES)));
            }
            return Some(utc);
        }
    }
    None
}

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM|±HHMM|±HH]` at the start
/// of `s`. Returns the wall-clock time, the offset in seconds east of UTC
/// when one is given, and the bytes used.
pub(crate) fn parse_iso8601_prefix(s: &str) -> Option<(Wall, Option<i32>, usize)> {
    let b = s.as_bytes();
    let year = digits4(b, 0)?;
    let month = digits2(b, 5)?;
    let day = digits2(b, 8)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (clock, mut i) = parse_hms(b.get(11..)?)?;
    i += 11;
    let wall = Wall::new(i64::from(year), month, day, clock.secs, clock.nanos)?;
    let offset = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            Some(0)
        }
        Some(&sign @ (b'+' | b'-')) => {
            let hh = digits2(b, i + 1)?;
            let (mm, used) = if b.get(i + 3) == Some(&b':') {
                (digits2(b, i + 4)?, 6)
            } else if let Some(mm) = digits2(b, i + 3) {
                (mm, 5)
            } else {
                (0, 3)
            };
            if hh > 23 || mm > 59 {
                return None;
            }
            i += used;
            let secs = i32::try_from(hh * 3600 + mm * 60).ok()?;
            Some(if sign == b'-' { -secs } else { secs })
        }
        _ => None,
    };
    Some((wall, offset, i))
}

/// The month number of a three-letter English abbreviation (any case).
pub(crate) fn month_from_abbr(b: &[u8]) -> Option<u32> {
    let [a, b2, c] = <[u8; 3]>::try_from(b).ok()?;
    let key = [
        a.to_ascii_lowercase(),
        b2.to_ascii_lowercase(),
        c.to_ascii_lowercase(),
    ];
    Some(match &key {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

/// Two ASCII digits at `i`.
pub(crate) fn digits2(b: &[u8], i: usize) -> Option<u32> {
    let x = *b.get(i)?;
    let y = *b.get(i + 1)?;
    if x.is_ascii_digit() && y.is_ascii_digit() {
        Some(u32::from(x - b'0') * 10 + u32::from(y - b'0'))
    } else {
        None
    }
}

/// Four ASCII digits at `i`.
pub(crate) fn digits4(b: &[u8], i: usize) -> Option<u32> {
    Some(digits2(b, i)? * 100 + digits2(b, i + 2)?)
}

/// A non-empty run of at most 10 ASCII digits that fits a `u32`.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

thread_local! {
    /// (hour since the epoch of the wall-clock time, its UTC offset in
    /// seconds, uses left). Offsets change on hour boundaries in practice.
    static LOCAL_OFFSET: Cell<(i64, i32, u32)> = const { Cell::new((i64::MIN, 0, 0)) };
}

/// Converts a wall-clock time in the host's local zone to UTC. An ambiguous
/// time (clocks going back) takes the earlier instant; a time in a gap
/// (clocks going forward) is read with the offset after the gap.
pub(crate) fn local_to_utc(naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    let wall = naive.and_utc().timestamp();
    let hour = wall.div_euclid(3600);
    let (cached_hour, offset, uses) = LOCAL_OFFSET.with(Cell::get);
    if cached_hour == hour && uses > 0 {
        LOCAL_OFFSET.with(|c| c.set((hour, offset, uses - 1)));
        return DateTime::from_timestamp(
            wall - i64::from(offset),
            naive.and_utc().timestamp_subsec_nanos(),
        );
    }
    let utc = resolve_in_zone(&chrono::Local, naive)?;
    let offset = i32::try_from(wall - utc.timestamp()).ok()?;
    LOCAL_OFFSET.with(|c| c.set((hour, offset, CACHE_USES)));
    Some(utc)
}

/// Converts a wall-clock time in `tz` to UTC (earlier instant when
/// ambiguous, offset after the gap when in a gap).
pub(crate) fn resolve_in_zone<Tz: TimeZone>(
    tz: &Tz,
    naive: NaiveDateTime,
) -> Option<DateTime<Utc>> {
    if let Some(t) = tz.from_local_datetime(&naive).earliest() {
        return Some(t.with_timezone(&Utc));
    }
    let later = naive.checked_add_signed(Duration::hours(1))?;
    let t = tz.from_local_datetime(&later).earliest()?;
    Some(t.with_timezone(&Utc) - Duration::hours(1))
}

/// The `sshd` format: a syslog envelope, then the syslog patterns of the
/// rules for the line's program.
pub(crate) struct SshdParser {
    rules: ParserRules,
    opts: ParseOptions,
    reference: DateTime<Utc>,
}

impl SshdParser {
    pub(crate) fn new(rules: ParserRules, opts: ParseOptions) -> Self {
        let reference = opts.reference;
        Self {
            rules,
            opts,
            reference,
        }
    }
}

impl LineParser for SshdParser {
    fn parse(&mut self, line: &[u8]) -> Result<Event, SkipReason> {
        let text = line_str(line)?;
        let record = parse_syslog(text, self.reference)?;
        let mut event = super::parse_program_message(
            &self.rules,
            &self.opts,
            record.time,
            record.program,
            record.message,
        )?;
        // Follow the log forward so a long-running source crosses New Year.
        if record.time > self.reference {
            self.reference = record.time;
        }
        if self.opts.keep_raw {
            event.raw = Some(std::sync::Arc::from(text));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn reference() -> DateTime<Utc> {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    fn utc(naive: NaiveDateTime) -> Option<DateTime<Utc>> {
        Some(naive.and_utc())
    }

    fn plus_one(naive: NaiveDateTime) -> Option<DateTime<Utc>> {
        resolve_in_zone(&FixedOffset::east_opt(3600).unwrap(), naive)
    }

    fn parse(line: &str) -> Result<SyslogRecord<'_>, SkipReason> {
        parse_syslog_in(line, reference(), &utc, false)
    }

    #[test]
    fn rfc3164_with_pid() {
        let r = parse("Nov 21 06:34:06 host sshd[123]: Failed password for root").unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-11-21T06:34:06+00:00");
        assert_eq!((r.host, r.program, r.pid), ("host", "sshd", Some(123)));
        assert_eq!(r.message, "Failed password for root");
    }

    #[test]
    fn rfc3164_space_padded_and_unpadded_day() {
        let r = parse("Nov  1 06:34:06 host sshd-session[9]: x").unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-11-01T06:34:06+00:00");
        assert_eq!(r.program, "sshd-session");
        let r = parse("Jun 7 01:11:58 host sshd[8783]: y").unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-06-07T01:11:58+00:00");
    }

    #[test]
    fn rfc3164_year_rolls_back_after_new_year() {
        let jan: DateTime<Utc> = "2027-01-02T00:00:00Z".parse().unwrap();
        let r = parse_syslog_in("Dec 31 23:59:59 h sshd: m", jan, &utc, false).unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-12-31T23:59:59+00:00");
        // A line up to a day ahead of the reference keeps the reference's year.
        let r = parse_syslog_in("Nov 22 06:00:00 h sshd: m", reference(), &utc, false).unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-11-22T06:00:00+00:00");
        let r = parse_syslog_in("Nov 23 06:00:00 h sshd: m", reference(), &utc, false).unwrap();
        assert_eq!(r.time.to_rfc3339(), "2025-11-23T06:00:00+00:00");
        // Just before midnight on New Year's Eve, a January line is next year.
        let eve: DateTime<Utc> = "2026-12-31T23:59:00Z".parse().unwrap();
        let r = parse_syslog_in("Jan  1 00:00:10 h sshd: m", eve, &utc, false).unwrap();
        assert_eq!(r.time.to_rfc3339(), "2027-01-01T00:00:10+00:00");
        // February 29th goes back to the last leap year.
        let r = parse_syslog_in("Feb 29 10:00:00 h sshd: m", reference(), &utc, false).unwrap();
        assert_eq!(r.time.to_rfc3339(), "2024-02-29T10:00:00+00:00");
    }

    #[test]
    fn rfc3164_uses_the_local_zone() {
        let r =
            parse_syslog_in("Nov 21 06:34:06 h sshd: m", reference(), &plus_one, false).unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-11-21T05:34:06+00:00");
    }

    #[test]
    fn iso8601_high_precision() {
        let r = parse("2026-11-21T06:34:06.123456+01:00 host sshd[123]: msg here").unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-11-21T05:34:06.123456+00:00");
        assert_eq!(
            (r.program, r.pid, r.message),
            ("sshd", Some(123), "msg here")
        );
        let r = parse("2026-11-21T06:34:06Z host sshd: m").unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-11-21T06:34:06+00:00");
        let r = parse("2026-11-21T06:34:06-0530 host sshd: m").unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-11-21T12:04:06+00:00");
    }

    #[test]
    fn rfc5424_with_and_without_structured_data() {
        let r = parse("<38>1 2026-11-21T06:34:06.003Z host sshd 1234 - - Failed x").unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-11-21T06:34:06.003+00:00");
        assert_eq!(
            (r.host, r.program, r.pid, r.message),
            ("host", "sshd", Some(1234), "Failed x")
        );
        let r = parse(
            r#"<38>1 2019-07-08T17:40:17.954167-04:00 h sshd 55555 - [timeQuality tzKnown="1"][x@1 t="[b\"r]"] Failed y"#,
        )
        .unwrap();
        assert_eq!(r.message, "Failed y");
        assert_eq!(r.time.to_rfc3339(), "2019-07-08T21:40:17.954167+00:00");
        let r = parse("<38>1 2026-11-21T06:34:06Z - - - - -").unwrap();
        assert_eq!((r.host, r.program, r.pid, r.message), ("", "", None, ""));
        assert_eq!(
            parse("<38>1 - h sshd 1 - - m"),
            Err(SkipReason::BadTimestamp)
        );
    }

    #[test]
    fn pri_before_rfc3164() {
        let r = parse("<38>Nov 21 06:34:06 host sshd[1]: m").unwrap();
        assert_eq!((r.program, r.message), ("sshd", "m"));
    }

    #[test]
    fn tags_without_pid_or_host() {
        let r = parse("Nov 21 06:34:06 host sshd: hello").unwrap();
        assert_eq!((r.program, r.pid), ("sshd", None));
        let r = parse("Mar  3 00:17:22 [sshd]: User root").unwrap();
        assert_eq!((r.host, r.program, r.message), ("", "", "User root"));
        let r = parse("Nov 21 06:34:06 host -- MARK --").unwrap();
        assert_eq!((r.program, r.message), ("", "-- MARK --"));
    }

    #[test]
    fn rejects_what_is_not_syslog() {
        assert_eq!(parse(""), Err(SkipReason::Unparsable));
        assert_eq!(parse("hello world"), Err(SkipReason::Unparsable));
        assert_eq!(
            parse("Nov 41 06:34:06 h p: m"),
            Err(SkipReason::BadTimestamp)
        );
        assert_eq!(
            parse("Nov 21 26:34:06 h p: m"),
            Err(SkipReason::BadTimestamp)
        );
        assert_eq!(
            parse("2026-13-01T00:00:00Z h p: m"),
            Err(SkipReason::BadTimestamp)
        );
        assert_eq!(parse("Nov 21 06:34:06"), Err(SkipReason::Unparsable));
        assert_eq!(parse("<999999>x"), Err(SkipReason::Unparsable));
        assert_eq!(parse("{\"a\":1}"), Err(SkipReason::Unparsable));
    }

    #[test]
    fn local_cache_agrees_with_chrono() {
        for s in [
            "2026-03-29T02:30:00",
            "2026-10-25T02:30:00",
            "2026-11-21T06:34:06",
        ] {
            let naive: NaiveDateTime = s.parse().unwrap();
            let direct = resolve_in_zone(&chrono::Local, naive);
            assert_eq!(local_to_utc(naive), direct);
            assert_eq!(local_to_utc(naive), direct, "cached");
        }
    }
}
