mod database_unavailable;
mod health;
mod lifecycle;
mod metrics;
mod pool;
mod request_id;
mod request_log;
mod request_metrics;
mod writer;

/// Holds a database job on its thread until the test releases it, so that other jobs queue behind
/// it: `let (gate, held) = gate();`, then `held.wait()` inside the job and
/// `gate.started().await` in the test, which returns the sender that releases the job.
fn gate() -> (Gate, Held) {
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    (
        Gate {
            started: started_rx,
            release: release_tx,
        },
        Held {
            started: started_tx,
            release: release_rx,
        },
    )
}

/// The test's side of a `gate`.
struct Gate {
    started: std::sync::mpsc::Receiver<()>,
    release: std::sync::mpsc::Sender<()>,
}

impl Gate {
    /// Wait until the job is held, then hand back what releases it (`send(())`).
    async fn started(self) -> std::sync::mpsc::Sender<()> {
        let started = self.started;
        tokio::task::spawn_blocking(move || {
            started.recv_timeout(std::time::Duration::from_secs(10))
        })
        .await
        .expect("join")
        .expect("the holding job started");
        self.release
    }
}

/// The job's side of a `gate`.
struct Held {
    started: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

impl Held {
    /// Say the job has started, then block its thread until released (30 s at most).
    fn wait(self) {
        let _ = self.started.send(());
        let _ = self
            .release
            .recv_timeout(std::time::Duration::from_secs(30));
    }
}
