//! Times shown to people: RFC 3339 in the desk's time zone (Asia/Tokyo by default), and the
//! day boundaries of the From/To history range (C8).

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, TimeZone};
use chrono_tz::Tz;

pub const DAY_MS: i64 = 86_400_000;

pub fn rfc3339(ms: i64, tz: Tz) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) => t.with_timezone(&tz).to_rfc3339(),
        None => String::new(),
    }
}

/// `2017-07-20 04:06`, as the manual shows a message's time.
pub fn short(ms: i64, tz: Tz) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
        None => String::new(),
    }
}

/// The day `ms` falls on in `tz`.
pub fn date_of(ms: i64, tz: Tz) -> NaiveDate {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .date_naive()
}

/// Start of the day in `tz`, as unix ms.
pub fn day_start_ms(date: NaiveDate, tz: Tz) -> i64 {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    tz.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.timestamp_millis())
        // A day that starts inside a DST gap: take the instant an hour later.
        .unwrap_or_else(|| {
            tz.from_local_datetime(&(midnight + Duration::hours(1)))
                .earliest()
                .map(|t| t.timestamp_millis())
                .unwrap_or(0)
        })
}

/// The `[from, to)` range in ms for the inclusive dates From/To; by default the last 7 days
/// (today and the 6 before it).
pub fn history_range(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    now_ms: i64,
    tz: Tz,
) -> Result<(i64, i64), String> {
    let today = date_of(now_ms, tz);
    let to = to.unwrap_or(today);
    let from = match from {
        Some(f) => f,
        None => week_before(to).ok_or("to is out of range")?,
    };
    if from > to {
        return Err(format!("from ({from}) is after to ({to})"));
    }
    let end = to.succ_opt().ok_or("to is out of range")?;
    Ok((day_start_ms(from, tz), day_start_ms(end, tz)))
}

/// A From/To date as typed: exactly `YYYY-MM-DD` with a four-digit year. chrono alone
/// also takes years like `-262143` or `+99999`, whose day arithmetic overflows (a panic in
/// the handler, issue 9); no chat history lies outside 0001–9999 anyway.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let date = shaped
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .filter(|d| d.year() >= 1);
    date.ok_or_else(|| format!("{s:?} is not a date YYYY-MM-DD"))
}

/// The first day of the default 7-day range ending on `to` (`None` at the calendar's edge).
pub fn week_before(to: NaiveDate) -> Option<NaiveDate> {
    to.checked_sub_days(Days::new(6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_range_is_the_last_seven_days_in_tokyo() {
        let tz = chrono_tz::Asia::Tokyo;
        // 2017-07-20 04:06 JST
        let now = tz
            .with_ymd_and_hms(2017, 7, 20, 4, 6, 0)
            .unwrap()
            .timestamp_millis();
        let (from, to) = history_range(None, None, now, tz).unwrap();
        assert_eq!(short(from, tz), "2017-07-14 00:00");
        assert_eq!(short(to, tz), "2017-07-21 00:00");
        assert_eq!(short(now, tz), "2017-07-20 04:06");
    }

    #[test]
    fn explicit_range_includes_both_days_and_rejects_reversed() {
        let tz = chrono_tz::Asia::Tokyo;
        let d = |s| parse_date(s).unwrap();
        let (from, to) =
            history_range(Some(d("2017-07-15")), Some(d("2017-07-20")), 0, tz).unwrap();
        assert_eq!(to - from, 6 * DAY_MS);
        assert!(history_range(Some(d("2017-07-21")), Some(d("2017-07-20")), 0, tz).is_err());
        assert!(parse_date("2017/07/20").is_err());
    }

    #[test]
    fn dates_at_the_calendars_edges_are_refused_not_panicked_on() {
        let tz = chrono_tz::Asia::Tokyo;
        for s in [
            "-262143-01-01",
            "+262142-12-31",
            "99999-01-01",
            "0000-01-01",
            "2017-7-20",
        ] {
            assert!(parse_date(s).is_err(), "{s}");
        }
        let first = parse_date("0001-01-01").unwrap();
        assert!(history_range(None, Some(first), 0, tz).is_ok());
        assert!(history_range(Some(NaiveDate::MIN), Some(NaiveDate::MIN), 0, tz).is_ok());
        assert!(history_range(None, Some(NaiveDate::MIN), 0, tz).is_err());
        assert!(history_range(None, Some(NaiveDate::MAX), 0, tz).is_err());
    }
}
