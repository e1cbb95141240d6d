//! A disk probe: a thread that appends 4 KiB to a file next to the server's database and
//! fsyncs it every 20 ms, recording how long each fsync took. Durable writes (SQLite with
//! `synchronous = FULL` fsyncs at each commit) cannot be faster than this disk allows, and
//! other work on the machine shows up here: it tells a slow server from a slow disk.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// At most this long, whatever happens (one hour).
const MAX_SAMPLES: usize = 180_000;

pub struct FsyncProbe {
    samples: Arc<Mutex<Vec<(Instant, f64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FsyncProbe {
    pub fn start(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("fsync-probe");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, halt) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let block = [0u8; 4096];
            for i in 0..MAX_SAMPLES {
                if halt.load(Ordering::Relaxed) {
                    break;
                }
                if i % 1000 == 999 {
                    let _ = file.set_len(0);
                }
                let started = Instant::now();
                if file.write_all(&block).and_then(|_| file.sync_all()).is_err() {
                    break;
                }
                s.lock().unwrap().push((started, started.elapsed().as_secs_f64() * 1000.0));
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Ok(Self { samples, stop, thread: Some(thread) })
    }

    /// "p50 / p99 / max ms (n samples)" of the fsyncs started between `from` and `to`.
    pub fn summary(&self, from: Instant, to: Instant) -> String {
        let mut v: Vec<f64> = self
            .samples
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|(_, ms)| *ms)
            .collect();
        if v.is_empty() {
            return "no samples".into();
        }
        v.sort_by(f64::total_cmp);
        format!(
            "p50 / p99 / max {:.2} / {:.1} / {:.1} ms ({} fsyncs)",
            crate::pct(&v, 50.0),
            crate::pct(&v, 99.0),
            v[v.len() - 1],
            v.len()
        )
    }
}

impl Drop for FsyncProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
