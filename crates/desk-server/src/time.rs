//! Times shown to people: RFC 3339 in the desk's time zone (Asia/Tokyo by default), and the
//! day boundaries of the From/To history range (C8).

use chrono::{DateTime, Duration, NaiveDate, TimeZone};
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
    let from = from.unwrap_or(to - Duration::days(6));
    if from > to {
        return Err(format!("from ({from}) is after to ({to})"));
    }
    let end = to.succ_opt().ok_or("to is out of range")?;
    Ok((day_start_ms(from, tz), day_start_ms(end, tz)))
}

pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date YYYY-MM-DD"))
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
}
