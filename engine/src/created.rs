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
}
