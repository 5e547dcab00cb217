//! Shared by the api tests and the property tests: one instant in every
//! HTTP-date form.

use std::time::SystemTime;

/// IMF-fixdate, RFC 850 and asctime renderings of the same instant
/// (RFC 9110 §5.6.7).
pub fn date_forms(time: SystemTime) -> [String; 3] {
    let imf = httpdate::fmt_http_date(time);
    let parts: Vec<&str> = imf.split(' ').collect();
    let (wkday, day, month, year, clock) = (&parts[0][..3], parts[1], parts[2], parts[3], parts[4]);
    let weekday = match wkday {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    };
    let rfc850 = format!("{weekday}, {day}-{month}-{} {clock} GMT", &year[2..]);
    let asctime = format!(
        "{wkday} {month} {:>2} {clock} {year}",
        day.trim_start_matches('0')
    );
    [imf, rfc850, asctime]
}
