//! Engine actors: model inference on dedicated OS threads behind a bounded queue.
//!
//! Inference never runs on the async runtime (a 50 ms model call would stall every other
//! request on that worker). Each worker thread owns its own state (an ONNX session needs `&mut`
//! to run); callers `await` a oneshot reply. A full queue answers `Overloaded` at once — the HTTP
//! layer turns that into 503 + Retry-After instead of letting a backlog grow without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError, bounded};
use tokio::sync::oneshot;

/// What a worker thread does with one request.
pub trait Worker: Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    fn handle(&mut self, request: Self::Request) -> Result<Self::Response, String>;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("engine `{engine}` is busy: {depth} requests queued")]
    Overloaded { engine: String, depth: usize },
    #[error("engine `{engine}` stopped")]
    Stopped { engine: String },
    #[error("inference failed in `{engine}`: {message}")]
    Inference { engine: String, message: String },
}

/// A reply with where its time went (exported as `x-queue-time` / `x-inference-time`).
#[derive(Debug)]
pub struct Timed<T> {
    pub value: T,
    pub queued: Duration,
    pub inference: Duration,
}

struct Job<Req, Resp> {
    request: Req,
    reply: oneshot::Sender<Result<Timed<Resp>, String>>,
    enqueued: Instant,
    span: tracing::Span,
}

/// One request through `worker`, timed. A panicking model call fails this request, not the
/// thread (or, for callers that run a worker inline, not the lock that guards it).
pub(crate) fn handle_guarded<W: Worker>(
    worker: &mut W,
    request: W::Request,
) -> (Result<W::Response, String>, Duration) {
    let started = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.handle(request)))
        .unwrap_or_else(|_| Err("engine panicked".to_string()));
    (result, started.elapsed())
}

pub struct Actor<Req, Resp> {
    name: String,
    tx: Sender<Job<Req, Resp>>,
    depth: Arc<AtomicUsize>,
    /// Workers inside a request.
    busy: Arc<AtomicUsize>,
    workers: usize,
    /// Metric handles are looked up once: per call they cost a label allocation and a registry
    /// lookup, which shows at thousands of calls a second (keypoint streams).
    depth_gauge: metrics::Gauge,
}

impl<Req: Send + 'static, Resp: Send + 'static> Actor<Req, Resp> {
    /// One thread per worker; `capacity` requests may wait in the queue.
    pub fn spawn<W>(name: &str, workers: Vec<W>, capacity: usize) -> Result<Self, String>
    where
        W: Worker<Request = Req, Response = Resp>,
    {
        let (tx, rx) = bounded::<Job<Req, Resp>>(capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let busy = Arc::new(AtomicUsize::new(0));
        let count = workers.len();
        for (i, mut worker) in workers.into_iter().enumerate() {
            let rx = rx.clone();
            let depth = Arc::clone(&depth);
            let busy = Arc::clone(&busy);
            let engine = name.to_string();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    let queue_seconds = metrics::histogram!("timbre_engine_queue_seconds", "engine" => engine.clone());
                    let inference_seconds =
                        metrics::histogram!("timbre_engine_inference_seconds", "engine" => engine.clone());
                    while let Ok(job) = rx.recv() {
                        // Busy before it leaves the queue, so `idle_workers` never counts it twice.
                        busy.fetch_add(1, Ordering::AcqRel);
                        depth.fetch_sub(1, Ordering::AcqRel);
                        let queued = job.enqueued.elapsed();
                        let _entered = job.span.enter();
                        let (result, inference) = handle_guarded(&mut worker, job.request);
                        queue_seconds.record(queued.as_secs_f64());
                        inference_seconds.record(inference.as_secs_f64());
                        busy.fetch_sub(1, Ordering::AcqRel);
                        let _ = job.reply.send(result.map(|value| Timed { value, queued, inference }));
                    }
                })
                .map_err(|e| format!("cannot start engine thread: {e}"))?;
        }
        let depth_gauge = metrics::gauge!("timbre_engine_queue_depth", "engine" => name.to_string());
        Ok(Self { name: name.to_string(), tx, depth, busy, workers: count, depth_gauge })
    }

    pub async fn call(&self, request: Req) -> Result<Timed<Resp>, EngineError> {
        let (reply, rx) = oneshot::channel();
        let job = Job { request, reply, enqueued: Instant::now(), span: tracing::Span::current() };
        self.depth.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let depth = self.depth.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
                return Err(EngineError::Overloaded { engine: self.name.clone(), depth });
            }
            Err(TrySendError::Disconnected(_)) => {
                self.depth.fetch_sub(1, Ordering::AcqRel);
                return Err(EngineError::Stopped { engine: self.name.clone() });
            }
        }
        self.depth_gauge.set(self.queue_depth() as f64);
        match rx.await {
            Ok(Ok(timed)) => Ok(timed),
            Ok(Err(message)) => Err(EngineError::Inference { engine: self.name.clone(), message }),
            Err(_) => Err(EngineError::Stopped { engine: self.name.clone() }),
        }
    }

    /// Blocking call for synchronous callers (CLI, warm-up on a loader thread).
    pub fn call_blocking(&self, request: Req) -> Result<Timed<Resp>, EngineError> {
        let (reply, rx) = oneshot::channel();
        let job = Job { request, reply, enqueued: Instant::now(), span: tracing::Span::current() };
        self.depth.fetch_add(1, Ordering::AcqRel);
        self.tx.send(job).map_err(|_| EngineError::Stopped { engine: self.name.clone() })?;
        match rx.blocking_recv() {
            Ok(Ok(timed)) => Ok(timed),
            Ok(Err(message)) => Err(EngineError::Inference { engine: self.name.clone(), message }),
            Err(_) => Err(EngineError::Stopped { engine: self.name.clone() }),
        }
    }

    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Acquire)
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Workers with nothing to do: neither in a request nor with one waiting for them. A
    /// snapshot (it may change at once); callers use it to spread a request over idle workers,
    /// where a wrong guess costs a little time, never correctness.
    pub fn idle_workers(&self) -> usize {
        self.workers.saturating_sub(self.busy.load(Ordering::Acquire) + self.depth.load(Ordering::Acquire))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Sleepy;
    impl Worker for Sleepy {
        type Request = u64;
        type Response = u64;
        fn handle(&mut self, ms: u64) -> Result<u64, String> {
            if ms == 999 {
                panic!("boom");
            }
            std::thread::sleep(Duration::from_millis(ms));
            Ok(ms * 2)
        }
    }

    #[tokio::test]
    async fn bounded_queue_overloads_and_survives_panics() {
        let actor = Arc::new(Actor::spawn("sleepy", vec![Sleepy], 1).unwrap());
        let first = tokio::spawn({
            let a = Arc::clone(&actor);
            async move { a.call(300).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await; // worker busy with the first
        let second = tokio::spawn({
            let a = Arc::clone(&actor);
            async move { a.call(1).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await; // second waits in the queue
        let third = actor.call(1).await;
        assert!(matches!(third, Err(EngineError::Overloaded { .. })), "{third:?}");
        let first = first.await.unwrap().unwrap();
        assert_eq!(first.value, 600);
        assert!(first.inference >= Duration::from_millis(290));
        let second = second.await.unwrap().unwrap();
        assert!(second.queued >= Duration::from_millis(150), "waited behind the first: {:?}", second.queued);
        let boom = actor.call(999).await;
        assert!(matches!(boom, Err(EngineError::Inference { ref message, .. }) if message.contains("panicked")));
        assert_eq!(actor.call(2).await.unwrap().value, 4, "worker survived the panic");
    }

    #[tokio::test]
    async fn workers_run_in_parallel() {
        let actor = Arc::new(Actor::spawn("pair", vec![Sleepy, Sleepy], 8).unwrap());
        let started = Instant::now();
        let (a, b) = tokio::join!(actor.call(200), actor.call(200));
        assert!(a.is_ok() && b.is_ok());
        assert!(started.elapsed() < Duration::from_millis(380), "two workers overlap: {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn idle_workers_counts_busy_and_queued() {
        let actor = Arc::new(Actor::spawn("idle", vec![Sleepy, Sleepy], 8).unwrap());
        assert_eq!(actor.idle_workers(), 2);
        let call = |ms| {
            let a = Arc::clone(&actor);
            tokio::spawn(async move { a.call(ms).await })
        };
        let one = call(300);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(actor.idle_workers(), 1, "one in a request");
        let (two, three) = (call(300), call(300));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(actor.idle_workers(), 0, "both busy and one queued");
        for h in [one, two, three] {
            h.await.unwrap().unwrap();
        }
        assert_eq!(actor.idle_workers(), 2, "all done");
    }
}
