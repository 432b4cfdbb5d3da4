//! The per-host pure work (parsing facts, diffing, rendering scripts) run off the task that drives the sessions,
//! on as many threads as the machine has cores: at 1,000 hosts it is seconds of CPU that otherwise ran on one.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

/// How many pieces of pure work run at once: one per core. More would only hold more hosts' steps in memory.
fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(cores()))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `f` on tokio's blocking threads (at most one per core at a time) and waits for it; outside a tokio
/// runtime (tests driving a future by hand) it runs right here. A panic in `f` is the caller's panic.
pub async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return f();
    };
    let _permit = permits().acquire().await.expect("the semaphore is never closed");
    match rt.spawn_blocking(f).await {
        Ok(t) => t,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("pure work on a blocking thread was cancelled: {e}"),
    }
}

/// `f` over `items` on every core, results in the order of `items`.
pub fn par_map<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let threads = cores().min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    // Interleaved shares: neighbouring hosts cost about the same, so each thread gets an even part.
    let mut shares: Vec<Vec<(usize, T)>> = (0..threads).map(|_| vec![]).collect();
    for (i, t) in items.into_iter().enumerate() {
        shares[i % threads].push((i, t));
    }
    let f = &f;
    let mut done: Vec<(usize, U)> = std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| s.spawn(move || share.into_iter().map(|(i, t)| (i, f(t))).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, u)| u).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_map_keeps_the_order_of_its_items() {
        let out = par_map((0..1000).collect(), |i: u32| i * 2);
        assert_eq!(out, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(par_map(Vec::<u32>::new(), |i| i), Vec::<u32>::new());
    }

    #[test]
    fn off_thread_runs_on_a_runtime_and_without_one() {
        assert_eq!(futures::executor::block_on(off_thread(|| 7)), 7);
        let rt = tokio::runtime::Builder::new_multi_thread().build().unwrap();
        let main = std::thread::current().id();
        let (v, other) = rt.block_on(off_thread(move || (8, std::thread::current().id() != main)));
        assert_eq!((v, other), (8, true));
    }
}
