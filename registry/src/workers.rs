//! A few threads working through a list, stopping at the first error:
//! how pull and push move several blobs at once (each thread drives its
//! own transfer on the shared runtime, and unpacks on its own CPU).

use std::sync::Mutex;

use crate::error::{Error, Result};

/// Runs `work` on every item, on up to `threads` threads; after an error
/// no new item starts, and the first error is returned.
pub(crate) fn for_each<T: Sync>(
    threads: usize,
    items: &[T],
    work: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let queue = Mutex::new(items.iter());
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let next = || {
        if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
            return None;
        }
        queue.lock().ok()?.next()
    };
    std::thread::scope(|scope| {
        for _ in 0..threads.min(items.len()) {
            scope.spawn(|| {
                while let Some(item) = next() {
                    if let Err(e) = work(item) {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    match failed.into_inner() {
        Ok(None) => Ok(()),
        Ok(Some(e)) => Err(e),
        Err(_) => Err(Error::io(
            "a transfer thread panicked",
            std::io::Error::other("panic"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn all_items_once_and_the_first_error() {
        let seen = AtomicUsize::new(0);
        for_each(3, &[1, 2, 3, 4, 5], |n| {
            seen.fetch_add(*n, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.load(Ordering::Relaxed), 15);
        let err = for_each(2, &[1, 2, 3], |n| match n {
            2 => Err(Error::io("two", std::io::Error::other("x"))),
            _ => Ok(()),
        });
        assert!(err.unwrap_err().to_string().contains("two"));
        assert!(for_each(4, &[] as &[u8], |_| Ok(())).is_ok());
    }
}
