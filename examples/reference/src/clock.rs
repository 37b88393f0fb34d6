//! UTC calendar date and wall-clock time from Unix seconds, without a date-time crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
pub fn date(epoch_seconds: u64) -> String {
    let (y, m, d) = civil_from_days(epoch_seconds / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `HH:MM:SS` (UTC) of a Unix time.
pub fn time(epoch_seconds: u64) -> String {
    let s = epoch_seconds % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (non-negative).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(time(0), "00:00:00");
        // 2000-02-29T12:34:56Z: a leap day in a century leap year.
        assert_eq!(date(951_827_696), "2000-02-29");
        assert_eq!(time(951_827_696), "12:34:56");
        // 2024-12-31T23:59:59Z
        assert_eq!(date(1_735_689_599), "2024-12-31");
        assert_eq!(time(1_735_689_599), "23:59:59");
    }
}
