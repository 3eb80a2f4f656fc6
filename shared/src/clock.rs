//! Time, in one place: the system clock read at the edges ([`now`]), and calendar days (UTC)
//! for the report's days and Meta's version calendar ([`Day`]). Everything below the edges takes
//! time as a value, so tests and `--now` pin it.

use std::fmt;

/// Unix seconds by the system clock (0 if it reads before 1970).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix milliseconds by the system clock (EMF timestamps).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A calendar day of the proleptic Gregorian calendar, in UTC; written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day {
    year: i32,
    month: u8,
    day: u8,
}

impl Day {
    /// The day `year`-`month`-`day`, as written (constant tables; [`Day::parse`] checks).
    pub const fn new(year: i32, month: u8, day: u8) -> Self {
        Self { year, month, day }
    }

    /// The UTC day a unix time (seconds) falls on. Howard Hinnant's `civil_from_days`: exact for
    /// every day, with no date library; any `i64` is taken (the year saturates).
    pub fn from_unix_seconds(seconds: i64) -> Self {
        let z = seconds.div_euclid(86_400) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe.saturating_add(era.saturating_mul(400)) + i64::from(month <= 2);
        Self {
            year: i32::try_from(year).unwrap_or(if year < 0 { i32::MIN } else { i32::MAX }),
            month: u8::try_from(month).unwrap_or(1),
            day: u8::try_from(day).unwrap_or(1),
        }
    }

    /// Today by the system clock.
    pub fn today() -> Self {
        Self::from_unix_seconds(now())
    }

    /// A `YYYY-MM-DD` day; `None` unless it is a real date.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 10 || text.as_bytes()[4] != b'-' || text.as_bytes()[7] != b'-' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = text.get(range)?;
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let day = Self {
            year: i32::try_from(number(0..4)?).ok()?,
            month: u8::try_from(number(5..7)?).ok()?,
            day: u8::try_from(number(8..10)?).ok()?,
        };
        // A real date reads back as itself (no 2026-02-30).
        (Self::from_unix_seconds(day.start()) == day).then_some(day)
    }

    /// Days since 1970-01-01 (Hinnant's `days_from_civil`).
    fn days(self) -> i64 {
        let (month, day) = (i64::from(self.month), i64::from(self.day));
        let year = i64::from(self.year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let yoe = year - era * 400;
        let mp = (month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Unix seconds of the day's start (00:00 UTC).
    pub fn start(self) -> i64 {
        self.days().saturating_mul(86_400)
    }

    /// Days from `self` to `later` (negative when `later` is earlier).
    pub fn days_until(self, later: Day) -> i64 {
        later.days() - self.days()
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days_both_ways() {
        for (secs, day) in [
            (0, "1970-01-01"),
            (1_750_100_000, "2025-06-16"),
            (951_782_400, "2000-02-29"),
            (1_798_761_599, "2026-12-31"),
            (-1, "1969-12-31"),
        ] {
            assert_eq!(Day::from_unix_seconds(secs).to_string(), day, "{secs}");
            let start = Day::parse(day).unwrap().start();
            assert!(start <= secs && secs < start + 86_400, "{day}");
        }
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-01-01",
            "2026-1-1",
            "x",
            "2026-01-01-01",
            "2026-0a-01",
            "+026-01-01",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Day::new(2026, 11, 10).days_until(Day::new(2027, 2, 23)),
            105
        );
        // Any i64 reads as some day.
        let _ = Day::from_unix_seconds(i64::MIN).to_string();
        let _ = Day::from_unix_seconds(i64::MAX).to_string();
    }
}
