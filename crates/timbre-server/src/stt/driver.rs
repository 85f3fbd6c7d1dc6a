//! The socket side of both speech-streaming protocols: moves client messages into a
//! [`Protocol`] state machine, runs the VAD and transcription work it asks for, and sends what it
//! answers. Generic over the message sink/stream and over [`Engines`], so the loop is tested over
//! in-memory channels as well as through a real WebSocket.
//!
//! Transcriptions run concurrently with reading (a decode never stalls the socket) and report
//! in the order they were asked for, so a partial can never overtake its final.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, close_code};
use futures_util::stream::FuturesOrdered;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::Value;
use timbre_engines::actor::EngineError;
use timbre_engines::vad::{SileroVad, VadState};
use timbre_engines::whisper::Transcriber;
use timbre_engines::whisper::api::{TranscribeError, TranscribeOptions, Transcript};
use tokio::sync::watch;

use super::dictation::{Job, JobError};

/// What the socket loop must do next.
#[derive(Debug, PartialEq)]
pub enum Action {
    Send(Value),
    /// Run the VAD over these 16 kHz samples (whole chunks) and report with `on_speech`.
    Detect(Vec<f32>),
    Transcribe(Job),
    /// Start the VAD's recurrent state afresh (the client cleared its audio).
    ResetVad,
    /// The input is over: call `on_end_of_input` (after the actions queued before this one, so
    /// a last `Detect` is reported first).
    EndOfInput,
    Close(u16, &'static str),
}

/// A streaming protocol as a state machine: messages and results in, actions out.
pub trait Protocol {
    /// Actions when the socket opens (a greeting).
    fn on_open(&mut self) -> Vec<Action> {
        Vec::new()
    }
    fn on_text(&mut self, text: &str) -> Vec<Action>;
    fn on_binary(&mut self, bytes: &[u8]) -> Vec<Action>;
    /// VAD probabilities for the samples of a `Detect`.
    fn on_speech(&mut self, samples: &[f32], probabilities: &[f32]) -> Vec<Action>;
    /// The VAD failed for a `Detect`; the samples must still advance the stream clock.
    fn on_speech_error(&mut self, samples: &[f32], error: JobError) -> Vec<Action>;
    fn on_end_of_input(&mut self) -> Vec<Action>;
    fn on_result(&mut self, job: u64, result: Result<Transcript, JobError>) -> Vec<Action>;
}

/// The models a live session uses.
pub trait Engines: Send + Sync + 'static {
    fn detect(
        &self,
        samples: Vec<f32>,
        state: VadState,
    ) -> impl Future<Output = Result<(Vec<f32>, VadState), JobError>> + Send;
    fn transcribe(
        &self,
        audio: Vec<f32>,
        options: TranscribeOptions,
    ) -> impl Future<Output = Result<Transcript, JobError>> + Send + 'static;
}

/// The real ones: a Whisper transcriber and Silero VAD from the registry.
pub struct LiveEngines {
    pub stt: Arc<Transcriber>,
    pub vad: Arc<SileroVad>,
}

pub fn engine_job_error(e: &EngineError) -> JobError {
    let code = match e {
        EngineError::Overloaded { .. } => "overloaded",
        EngineError::Stopped { .. } => "model_unavailable",
        EngineError::Inference { .. } => "inference_failed",
    };
    JobError { code, message: e.to_string() }
}

pub fn transcribe_job_error(e: &TranscribeError) -> JobError {
    match e {
        TranscribeError::InvalidOption { .. } => JobError { code: "invalid_value", message: e.to_string() },
        TranscribeError::Engine(e) => engine_job_error(e),
    }
}

impl Engines for LiveEngines {
    async fn detect(&self, samples: Vec<f32>, state: VadState) -> Result<(Vec<f32>, VadState), JobError> {
        let out = self.vad.probabilities(samples, state).await.map_err(|e| engine_job_error(&e))?;
        Ok((out.value.probabilities, out.value.state))
    }

    fn transcribe(
        &self,
        audio: Vec<f32>,
        options: TranscribeOptions,
    ) -> impl Future<Output = Result<Transcript, JobError>> + Send + 'static {
        let stt = Arc::clone(&self.stt);
        async move { stt.transcribe(audio, options, None).await.map(|t| t.value).map_err(|e| transcribe_job_error(&e)) }
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

type Pending = Pin<Box<dyn Future<Output = (u64, Result<Transcript, JobError>)> + Send>>;

/// Run a session until the protocol closes it, the client leaves or idles out, or the server
/// shuts down (1001).
pub async fn run<P, E, W, R, X>(
    mut protocol: P,
    engines: Arc<E>,
    mut write: W,
    mut read: R,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) where
    P: Protocol,
    E: Engines,
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, X>> + Unpin,
{
    let mut vad_state = VadState::default();
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut queue: VecDeque<Action> = protocol.on_open().into();
    loop {
        while let Some(action) = queue.pop_front() {
            let more = match action {
                Action::Send(v) => {
                    if write.send(Message::Text(v.to_string().into())).await.is_err() {
                        return;
                    }
                    Vec::new()
                }
                Action::Close(code, reason) => {
                    let _ = write.send(close(code, reason)).await;
                    return;
                }
                Action::Detect(samples) => match engines.detect(samples.clone(), vad_state.clone()).await {
                    Ok((probabilities, state)) => {
                        vad_state = state;
                        protocol.on_speech(&samples, &probabilities)
                    }
                    Err(e) => protocol.on_speech_error(&samples, e),
                },
                Action::Transcribe(job) => {
                    let work = engines.transcribe(job.audio, job.options);
                    let id = job.id;
                    pending.push_back(Box::pin(async move { (id, work.await) }));
                    Vec::new()
                }
                Action::ResetVad => {
                    vad_state = VadState::default();
                    Vec::new()
                }
                Action::EndOfInput => protocol.on_end_of_input(),
            };
            for a in more.into_iter().rev() {
                queue.push_front(a);
            }
        }
        tokio::select! {
            () = crate::sessions::shutting_down(&mut shutdown) => {
                let _ = write.send(close(close_code::AWAY, "server shutting down")).await;
                return;
            }
            Some((id, result)) = pending.next(), if !pending.is_empty() => {
                queue.extend(protocol.on_result(id, result));
            }
            next = tokio::time::timeout(idle, read.next()) => match next {
                Err(_) => {
                    let _ = write.send(close(close_code::NORMAL, "idle timeout")).await;
                    return;
                }
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return,
                Ok(Some(Ok(Message::Text(text)))) => queue.extend(protocol.on_text(text.as_str())),
                Ok(Some(Ok(Message::Binary(bytes)))) => queue.extend(protocol.on_binary(&bytes)),
                Ok(Some(Ok(_))) => {}
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! The loop over in-memory channels. `Scripted` stands in for the two models (speech is
    //! any chunk louder than 0.05 RMS; a transcript says how long its audio was) so the loop's
    //! ordering, concurrency and endings are checked exactly; the models themselves are tested
    //! through the real server in `tests/stt.rs`.

    use std::convert::Infallible;

    use serde_json::json;
    use timbre_engines::whisper::api::{Segment, Word};
    use tokio::sync::mpsc;

    use super::*;
    use crate::stt::live::LiveSession;
    use crate::stt::realtime::RealtimeSession;

    struct Scripted {
        delay: Duration,
    }

    impl Engines for Scripted {
        async fn detect(&self, samples: Vec<f32>, state: VadState) -> Result<(Vec<f32>, VadState), JobError> {
            let probs = samples
                .chunks(super::super::turns::CHUNK)
                .map(|c| {
                    let rms = (c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32).sqrt();
                    if rms > 0.05 { 0.95 } else { 0.02 }
                })
                .collect();
            Ok((probs, state))
        }

        fn transcribe(
            &self,
            audio: Vec<f32>,
            options: TranscribeOptions,
        ) -> impl Future<Output = Result<Transcript, JobError>> + Send + 'static {
            let delay = self.delay;
            async move {
                tokio::time::sleep(delay).await;
                let secs = audio.len() as f64 / 16_000.0;
                let text = format!(" {secs:.2} seconds");
                let words = if options.word_timestamps {
                    vec![Word { start: 0.0, end: secs, word: text.clone(), probability: 1.0 }]
                } else {
                    vec![]
                };
                let segment = Segment {
                    id: 0,
                    seek: 0,
                    start: 0.0,
                    end: secs,
                    text: text.clone(),
                    tokens: vec![],
                    temperature: 0.0,
                    avg_logprob: 0.0,
                    compression_ratio: 1.0,
                    no_speech_prob: 0.0,
                    words,
                };
                Ok(Transcript { text, language: "en".into(), duration: secs, segments: vec![segment] })
            }
        }
    }

    type Read = Pin<Box<dyn Stream<Item = Result<Message, Infallible>> + Send>>;
    type Write = Pin<Box<dyn Sink<Message, Error = ()> + Send>>;

    struct Client {
        tx: Option<mpsc::Sender<Message>>,
        rx: mpsc::Receiver<Message>,
        shutdown: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    fn connect<P: Protocol + Send + 'static>(protocol: P, delay_ms: u64) -> Client {
        let (client_tx, server_rx) = mpsc::channel::<Message>(1024);
        let (server_tx, client_rx) = mpsc::channel::<Message>(1024);
        let read: Read =
            Box::pin(futures_util::stream::unfold(
                server_rx,
                |mut rx| async move { rx.recv().await.map(|m| (Ok(m), rx)) },
            ));
        let write: Write = Box::pin(futures_util::sink::unfold(server_tx, |tx, m: Message| async move {
            tx.send(m).await.map_err(|_| ())?;
            Ok::<_, ()>(tx)
        }));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let engines = Arc::new(Scripted { delay: Duration::from_millis(delay_ms) });
        let task = tokio::spawn(run(protocol, engines, write, read, Duration::from_secs(30), shutdown_rx));
        Client { tx: Some(client_tx), rx: client_rx, shutdown, task }
    }

    impl Client {
        async fn send(&self, m: Message) {
            self.tx.as_ref().unwrap().send(m).await.unwrap();
        }
        async fn text(&self, v: Value) {
            self.send(Message::Text(v.to_string().into())).await;
        }
        async fn recv(&mut self) -> Message {
            tokio::time::timeout(Duration::from_secs(10), self.rx.recv()).await.expect("no reply in 10 s").unwrap()
        }
        async fn json(&mut self) -> Value {
            match self.recv().await {
                Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
                other => panic!("expected text, got {other:?}"),
            }
        }
        /// Messages until the close frame: (texts, close code).
        async fn until_close(&mut self) -> (Vec<Value>, u16) {
            let mut out = Vec::new();
            loop {
                match self.recv().await {
                    Message::Text(t) => out.push(serde_json::from_str(t.as_str()).unwrap()),
                    Message::Close(Some(f)) => return (out, f.code),
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    /// PCM16 at 16 kHz: `speech` seconds of a loud tone after and before `silence` seconds.
    fn pcm(pattern: &[(bool, f32)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(loud, secs) in pattern {
            for i in 0..(secs * 16_000.0) as usize {
                let v = if loud { ((i as f32 * 0.2).sin() * 12_000.0) as i16 } else { 0 };
                out.extend(v.to_le_bytes());
            }
        }
        out
    }

    #[tokio::test]
    async fn live_partials_finals_in_order_then_close_after_eof() {
        let mut c = connect(LiveSession::new("m", vec!["en".into()]), 30);
        c.text(json!({"sample_rate": 16000, "encoding": "pcm16"})).await;
        assert_eq!(c.json().await["type"], "ready");
        // 0.5 s silence, 1.2 s speech, 0.6 s silence, 0.7 s speech, then eof while speaking.
        let audio = pcm(&[(false, 0.5), (true, 1.2), (false, 0.6), (true, 0.7)]);
        // 20 ms frames at twice real time: partials have time to come back while speech goes on.
        for frame in audio.chunks(640) {
            c.send(Message::Binary(frame.to_vec().into())).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        c.text(json!({"type": "eof"})).await;
        let (msgs, code) = c.until_close().await;
        assert_eq!(code, close_code::NORMAL);
        let kinds: Vec<&str> = msgs.iter().map(|m| m["type"].as_str().unwrap()).collect();
        let finals: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "final").collect();
        assert_eq!(finals.len(), 2, "{kinds:?}");
        assert!(
            kinds.iter().position(|k| *k == "partial").unwrap() < kinds.iter().position(|k| *k == "final").unwrap()
        );
        let last_partial_of_first = kinds.iter().take_while(|k| **k != "final").filter(|k| **k == "partial").count();
        assert!(last_partial_of_first >= 1, "{kinds:?}");
        let (start, end) = (finals[0]["start"].as_f64().unwrap(), finals[0]["end"].as_f64().unwrap());
        assert!((start - 0.5).abs() < 0.04 && (end - 1.7).abs() < 0.1, "{start}–{end}");
        let first_word = finals[0]["words"][0]["start"].as_f64().unwrap();
        assert!(
            (first_word - (start - 0.3)).abs() < 1e-3,
            "word times are absolute (audio began 0.3 s early): {first_word}"
        );
        let (start, end) = (finals[1]["start"].as_f64().unwrap(), finals[1]["end"].as_f64().unwrap());
        assert!((start - 2.3).abs() < 0.04 && (end - 3.0).abs() < 0.05, "flushed at eof: {start}–{end}");
        c.task.await.unwrap();
    }

    #[tokio::test]
    async fn leaving_mid_stream_or_shutdown_ends_the_session() {
        let mut c = connect(LiveSession::new("m", vec![]), 200);
        c.text(json!({"sample_rate": 16000})).await;
        c.json().await;
        c.send(Message::Binary(pcm(&[(true, 1.0)]).into())).await;
        c.tx = None; // the client vanishes while a transcription is running
        tokio::time::timeout(Duration::from_secs(5), c.task).await.expect("session ended").unwrap();

        let mut c = connect(LiveSession::new("m", vec![]), 0);
        c.text(json!({"sample_rate": 16000})).await;
        c.json().await;
        c.shutdown.send_replace(true);
        let (_, code) = c.until_close().await;
        assert_eq!(code, close_code::AWAY);

        let mut c = connect(LiveSession::new("m", vec![]), 0);
        c.text(json!({"sample_rate": 7})).await;
        let (msgs, code) = c.until_close().await;
        assert_eq!((msgs[0]["param"].as_str(), code), (Some("sample_rate"), close_code::UNSUPPORTED));
    }

    #[tokio::test]
    async fn realtime_server_vad_session() {
        let mut c = connect(RealtimeSession::new("sess_1", "m", vec!["en".into()]).unwrap(), 20);
        assert_eq!(c.json().await["type"], "transcription_session.created");
        c.text(json!({"type": "transcription_session.update", "session": {"input_audio_format": "pcm16",
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}))
            .await;
        assert_eq!(c.json().await["type"], "transcription_session.updated");
        // 24 kHz: resampled to 16 kHz inside.
        let mut audio = Vec::new();
        for &(loud, secs) in &[(false, 0.4f32), (true, 1.0), (false, 0.8)] {
            for i in 0..(secs * 24_000.0) as usize {
                let v = if loud { ((i as f32 * 0.13).sin() * 12_000.0) as i16 } else { 0 };
                audio.extend(v.to_le_bytes());
            }
        }
        use base64::Engine as _;
        for piece in audio.chunks(4800) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(piece);
            c.text(json!({"type": "input_audio_buffer.append", "audio": b64})).await;
        }
        let mut got = Vec::new();
        while got.last().is_none_or(|v: &Value| v["type"] != "conversation.item.input_audio_transcription.completed") {
            got.push(c.json().await);
        }
        let kinds: Vec<&str> = got.iter().map(|m| m["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            vec![
                "input_audio_buffer.speech_started",
                "input_audio_buffer.speech_stopped",
                "input_audio_buffer.committed",
                "conversation.item.created",
                "conversation.item.input_audio_transcription.delta",
                "conversation.item.input_audio_transcription.completed"
            ]
        );
        let started = got[0]["audio_start_ms"].as_u64().unwrap();
        assert!((60..=110).contains(&started), "speech at 400 ms (to the chunk) minus 300 ms padding: {started}");
        let stopped = got[1]["audio_end_ms"].as_u64().unwrap();
        assert!((1680..=1780).contains(&stopped), "1400 ms + 300 ms silence: {stopped}");
        assert_eq!(got[4]["delta"], got[5]["transcript"]);
        assert_eq!(got[2]["item_id"], got[5]["item_id"]);
        c.text(json!({"type": "input_audio_buffer.commit", "event_id": "mine"})).await;
        let err = c.json().await;
        assert_eq!((err["type"].as_str(), err["error"]["event_id"].as_str()), (Some("error"), Some("mine")));
    }
}
