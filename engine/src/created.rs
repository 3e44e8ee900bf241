//! The `created` times of a built image, as BuildKit's exporter sets
//! them: a step that made a layer keeps the time its layer was made (kept
//! in its cache entry, so a hit replays it), a step without one takes the
//! time of the first new layer or of the entry before it, and the config's
//! own `created` is the last entry's. A rebuild wholly from the cache is
//! then byte for byte the same image, not a new one per build.

use crate::image_config::History;

/// Fills the entries that have no time and returns the image's `created`.
pub fn fill(history: &mut [History]) -> Option<String> {
    // The first time after the first entry without one: the first new
    // layer's, not a base image layer's.
    let mut created = None;
    let mut gap = false;
    for h in history.iter() {
        match &h.created {
            Some(c) => {
                created = Some(c.clone());
                if gap {
                    break;
                }
            }
            None => gap = true,
        }
    }
    let mut gap = false;
    for h in history.iter_mut() {
        match &h.created {
            Some(c) if gap => created = Some(c.clone()),
            Some(_) => {}
            None => {
                gap = true;
                h.created = created.clone();
            }
        }
    }
    history.iter().rev().find_map(|h| h.created.clone())
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(created: Option<&str>) -> History {
        History {
            created: created.map(Into::into),
            ..History::default()
        }
    }

    fn times(history: &[History]) -> Vec<Option<&str>> {
        history.iter().map(|h| h.created.as_deref()).collect()
    }

    #[test]
    fn steps_without_a_layer_take_the_first_new_layer_time_then_the_one_before() {
        // base, ENV, RUN (t2), ENV, RUN (t3), CMD
        let mut history = vec![
            h(Some("t0")),
            h(None),
            h(Some("t2")),
            h(None),
            h(Some("t3")),
            h(None),
        ];
        assert_eq!(fill(&mut history).as_deref(), Some("t3"));
        assert_eq!(
            times(&history),
            [
                Some("t0"),
                Some("t2"),
                Some("t2"),
                Some("t2"),
                Some("t3"),
                Some("t3")
            ]
        );
    }

    #[test]
    fn without_a_new_layer_the_base_time_is_used_and_with_no_time_none() {
        let mut history = vec![h(Some("t0")), h(None)];
        assert_eq!(fill(&mut history).as_deref(), Some("t0"));
        assert_eq!(times(&history), [Some("t0"), Some("t0")]);
        let mut history = vec![h(None)];
        assert_eq!(fill(&mut history), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
