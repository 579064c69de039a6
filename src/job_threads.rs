//! A fixed set of named threads that take jobs from one queue, each job by the first free thread
//! (the password-hashing pool and the database's pooled-job threads).

use std::sync::{Arc, Mutex, mpsc};

/// Start `count` threads named `{name}-0`… that each run `on_start` once and then `handle` for
/// every job sent on the returned queue. The threads end when every sender is dropped.
pub fn start<J: Send + 'static>(
    name: &str,
    count: usize,
    on_start: fn(),
    handle: impl Fn(J) + Clone + Send + 'static,
) -> std::io::Result<mpsc::Sender<J>> {
    let (jobs, receiver) = mpsc::channel::<J>();
    let receiver = Arc::new(Mutex::new(receiver));
    for n in 0..count {
        let (receiver, handle) = (Arc::clone(&receiver), handle.clone());
        std::thread::Builder::new()
            .name(format!("{name}-{n}"))
            .spawn(move || {
                on_start();
                loop {
                    // The lock is held only while waiting for the next job, not while running it.
                    let job = match receiver.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => handle(job),
                        Err(_) => return,
                    }
                }
            })?;
    }
    Ok(jobs)
}
