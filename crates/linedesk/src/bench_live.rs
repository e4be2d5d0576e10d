//! `linedesk bench-live`: how fast a customer's message reaches the agents' screens, and what
//! many open screens cost (docs/benchmarks.md, "Live updates" and "Fan-out"). A benchmark,
//! not a test: it prints figures and asserts nothing.
//!
//! Against a running desk (`scripts/bench-live.sh` starts one): it opens `--streams` event
//! streams (`GET /api/v1/events`, as each agent's browser does), sends background webhook
//! traffic at `--rate` events/s (signed, unique, 1,000 users, as `linedesk loadgen`), and
//! meanwhile a probe: one message every `--probe-every-ms` from a user of its own, one at a
//! time. For each probe it records when its 200 came and when its `message` event arrived
//! on every stream. Reported: the time from the 200 to the event on the first stream
//! (p50/p99; 0 when the event came before the 200 — the desk publishes right after the
//! commit, before answering) and to the *last* of all streams, and the desk's RSS and CPU
//! (from `/proc/<desk pid>`) while idle and under the load.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;

use crate::loadgen::{Ids, webhook_body};

#[derive(Args, Clone)]
pub struct BenchLiveArgs {
    /// The desk's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Where webhooks go (another instance on the same PostgreSQL); default `--url`.
    #[arg(long)]
    webhook_url: Option<String>,
    /// The desk's Channel Secret (signs each body).
    #[arg(long, env = "LINEDESK_LINE_CHANNEL_SECRET")]
    secret: String,
    /// An API token (any agent's) for the event streams.
    #[arg(long, env = "LINEDESK_BENCH_TOKEN")]
    token: String,
    /// Background ingest, events/s (comma-separated: one measurement each).
    #[arg(long, default_value = "0,1000,5000", value_delimiter = ',')]
    rate: Vec<u64>,
    /// Event streams open (agents' screens).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Seconds per rate.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// A probe message every this many milliseconds.
    #[arg(long, default_value_t = 50)]
    probe_every_ms: u64,
    /// The desk's process id: its RSS and CPU are read from /proc.
    #[arg(long)]
    desk_pid: Option<u32>,
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// The probe user's chat, once known (0 before).
static PROBE_CHAT: AtomicI64 = AtomicI64::new(0);

/// What the streams saw of the probes: per probe message (by the desk's message id), when it
/// arrived on each stream.
#[derive(Default)]
struct Seen {
    arrivals: std::collections::HashMap<i64, Vec<Instant>>,
}

pub async fn run(args: BenchLiveArgs) -> anyhow::Result<()> {
    let streams_base = args.url.trim_end_matches('/').to_owned();
    let base = args
        .webhook_url
        .as_deref()
        .unwrap_or(&args.url)
        .trim_end_matches('/')
        .to_owned();
    let http: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let resyncs = Arc::new(AtomicU64::new(0));
    let events_seen = Arc::new(AtomicU64::new(0));
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel::<(i64, i64)>();

    // The streams, each on a connection of its own (a browser each).
    let opened = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    for i in 0..args.streams {
        let url = format!("{streams_base}/api/v1/events");
        let token = args.token.clone();
        let seen = seen.clone();
        let resyncs = resyncs.clone();
        let events_seen = events_seen.clone();
        let opened = opened.clone();
        let first_tx = (i == 0).then(|| first_tx.clone());
        tokio::spawn(async move {
            if let Err(e) = stream(&url, &token, seen, resyncs, events_seen, opened, first_tx).await
            {
                eprintln!("stream {i}: {e}");
            }
        });
        if i % 200 == 199 {
            // Do not flood the listen backlog.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    while opened.load(Relaxed) < args.streams as u64 {
        if started.elapsed() > Duration::from_secs(120) {
            anyhow::bail!(
                "only {} of {} streams opened",
                opened.load(Relaxed),
                args.streams
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{} event stream(s) open after {:.1} s",
        args.streams,
        started.elapsed().as_secs_f64()
    );

    // The probe user's first message tells its chat's id.
    let mut probe_ids = Ids::new(0xFFFF);
    let probe_user = "Uffffffffffffffffffffffffffffffff";
    post_probe(&http, &base, &args.secret, &mut probe_ids, probe_user).await?;
    let chat = match tokio::time::timeout(Duration::from_secs(10), first_rx.recv()).await {
        Ok(Some((chat, _))) => chat,
        _ => anyhow::bail!("the probe's message never arrived on the event stream"),
    };
    PROBE_CHAT.store(chat, Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Some(pid) = args.desk_pid {
        let idle = sample(pid, Duration::from_secs(3)).await?;
        println!(
            "desk idle with {} stream(s): RSS {:.1} MB, CPU {:.1} %",
            args.streams, idle.rss_mb, idle.cpu_pct
        );
    }

    for &rate in &args.rate {
        seen.lock().await.arrivals.clear();
        while first_rx.try_recv().is_ok() {}
        let resyncs_before = resyncs.load(Relaxed);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = (rate > 0).then(|| {
            tokio::spawn(background(
                http.clone(),
                base.clone(),
                args.secret.clone(),
                rate,
                stop.clone(),
            ))
        });
        let usage = args
            .desk_pid
            .map(|pid| tokio::spawn(sample(pid, Duration::from_secs(args.duration))));
        let deadline = Instant::now() + Duration::from_secs(args.duration);
        let mut to_first = Vec::new();
        let mut sent_to_first = Vec::new();
        let mut answered: Vec<(i64, Instant)> = Vec::new();
        let mut lost = 0u64;
        while Instant::now() < deadline {
            let next = Instant::now() + Duration::from_millis(args.probe_every_ms);
            let (sent_at, ok_at) =
                post_probe(&http, &base, &args.secret, &mut probe_ids, probe_user).await?;
            // Its message event on the first stream (it may have come before the 200).
            match tokio::time::timeout(Duration::from_secs(5), first_rx.recv()).await {
                Ok(Some((_, id))) => {
                    let at = seen
                        .lock()
                        .await
                        .arrivals
                        .get(&id)
                        .and_then(|v| v.first().copied());
                    let at = at.unwrap_or_else(Instant::now);
                    to_first.push(at.saturating_duration_since(ok_at));
                    sent_to_first.push(at.saturating_duration_since(sent_at));
                    answered.push((id, sent_at));
                }
                _ => lost += 1,
            }
            tokio::time::sleep_until(next.into()).await;
        }
        stop.store(true, Relaxed);
        let sent = match load {
            Some(l) => l.await?,
            None => (0, 0),
        };
        let usage = match usage {
            Some(u) => Some(u.await??),
            None => None,
        };
        // Give the slowest streams a moment, then: the time to the last of them.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut to_last = Vec::new();
        let mut incomplete = 0;
        {
            let seen = seen.lock().await;
            for (id, sent_at) in &answered {
                match seen.arrivals.get(id) {
                    Some(v) if v.len() == args.streams => {
                        let last = v.iter().max().copied().unwrap_or(*sent_at);
                        to_last.push(last.saturating_duration_since(*sent_at));
                    }
                    _ => incomplete += 1,
                }
            }
        }
        println!(
            "background {rate} events/s ({:.0} sent/s, {} failed): {} probes{}",
            sent.0 as f64 / args.duration as f64,
            sent.1,
            to_first.len(),
            if lost > 0 {
                format!(", {lost} not seen within 5 s")
            } else {
                String::new()
            }
        );
        let before = to_first.iter().filter(|d| d.is_zero()).count();
        println!(
            "  200 -> event on the first stream: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({before} of {} came before the 200)",
            pct(&mut to_first, 0.50),
            pct(&mut to_first, 0.99),
            pct(&mut to_first, 1.0),
            to_first.len()
        );
        println!(
            "  sent -> event on the first stream: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(&mut sent_to_first, 0.50),
            pct(&mut sent_to_first, 0.99),
            pct(&mut sent_to_first, 1.0)
        );
        if args.streams > 1 {
            println!(
                "  sent -> event on the last of {} streams: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} probe(s) missing on some stream; {} resync(s)",
                args.streams,
                pct(&mut to_last, 0.50),
                pct(&mut to_last, 0.99),
                pct(&mut to_last, 1.0),
                incomplete,
                resyncs.load(Relaxed) - resyncs_before
            );
        }
        if let Some(u) = usage {
            println!(
                "  desk: RSS {:.1} MB (peak {:.1}), CPU {:.1} % (of one core)",
                u.rss_mb, u.peak_mb, u.cpu_pct
            );
        }
    }
    println!(
        "events received on all streams: {}",
        events_seen.load(Relaxed)
    );
    Ok(())
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

/// Sends one probe message; returns when it was sent and when its 200 came.
async fn post_probe(
    http: &Http,
    base: &str,
    secret: &str,
    ids: &mut Ids,
    user: &str,
) -> anyhow::Result<(Instant, Instant)> {
    let mut body = String::with_capacity(700);
    webhook_body(&mut body, ids, 1, 1);
    let body = body.replace(
        "U00000000000000000000000000000000\",\"events",
        "Ubench\",\"events",
    );
    let body = body.replace(
        "\"userId\":\"U00000000000000000000000000000000\"",
        &format!("\"userId\":\"{user}\""),
    );
    let sent = Instant::now();
    let status = post(http, base, secret, body).await?;
    anyhow::ensure!(status == 200, "probe answered {status}");
    Ok((sent, Instant::now()))
}

async fn post(http: &Http, base: &str, secret: &str, body: String) -> anyhow::Result<u16> {
    let signature = line_api::signature::sign(secret.as_bytes(), body.as_bytes());
    let req = hyper::Request::post(format!("{base}/line"))
        .header("content-type", "application/json; charset=utf-8")
        .header("x-line-signature", signature)
        .body(Full::new(Bytes::from(body)))?;
    let resp = http.request(req).await?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

/// Background webhook traffic at `rate` events/s (one event per request; one sender per 50
/// events/s, 32 to 256, each with one request in flight) until `stop`; returns (sent, failed).
async fn background(
    http: Http,
    base: String,
    secret: String,
    rate: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (u64, u64) {
    let workers = (rate as usize / 50).clamp(32, 256);
    let period = Duration::from_secs_f64(workers as f64 / rate as f64);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (http, base, secret, stop) = (http.clone(), base.clone(), secret.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Ids::new(w as u16);
            let mut due = start + period.mul_f64(w as f64 / workers as f64);
            let (mut sent, mut failed) = (0u64, 0u64);
            let mut body = String::with_capacity(700);
            while !stop.load(Relaxed) {
                tokio::time::sleep_until(due.into()).await;
                due += period;
                webhook_body(&mut body, &mut ids, 1, 1000);
                match post(&http, &base, &secret, body.clone()).await {
                    Ok(200) => sent += 1,
                    _ => failed += 1,
                }
            }
            (sent, failed)
        }));
    }
    let mut total = (0, 0);
    for t in tasks {
        if let Ok((s, f)) = t.await {
            total.0 += s;
            total.1 += f;
        }
    }
    total
}

/// One event stream: counts events, and records when each probe message arrived.
async fn stream(
    url: &str,
    token: &str,
    seen: Arc<Mutex<Seen>>,
    resyncs: Arc<AtomicU64>,
    events_seen: Arc<AtomicU64>,
    opened: Arc<AtomicU64>,
    first: Option<tokio::sync::mpsc::UnboundedSender<(i64, i64)>>,
) -> anyhow::Result<()> {
    // A connection of its own per stream, as browsers have.
    let http: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = hyper::Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/event-stream")
        .body(Empty::<Bytes>::new())?;
    let resp = http.request(req).await?;
    anyhow::ensure!(resp.status() == 200, "events answered {}", resp.status());
    opened.fetch_add(1, Relaxed);
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let at = Instant::now();
        buf.extend_from_slice(data);
        // Whole SSE events end with a blank line.
        let mut consumed = 0;
        while let Some(end) = find(&buf[consumed..], b"\n\n") {
            let event = &buf[consumed..consumed + end];
            consumed += end + 2;
            events_seen.fetch_add(1, Relaxed);
            if event.windows(13).any(|w| w == b"event: resync") {
                resyncs.fetch_add(1, Relaxed);
                continue;
            }
            if !event.windows(14).any(|w| w == b"event: message") {
                continue;
            }
            let Some((chat, id)) = message_ids(event) else {
                continue;
            };
            let probe = PROBE_CHAT.load(Relaxed);
            if probe == 0 || chat == probe {
                seen.lock().await.arrivals.entry(id).or_default().push(at);
                if let Some(tx) = &first {
                    let _ = tx.send((chat, id));
                }
            }
        }
        buf.drain(..consumed);
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `data: {"conversation_id":C,"id":M}` → (C, M).
fn message_ids(event: &[u8]) -> Option<(i64, i64)> {
    let text = std::str::from_utf8(event).ok()?;
    let data = text.lines().find_map(|l| l.strip_prefix("data:"))?;
    let v: serde_json::Value = serde_json::from_str(data.trim()).ok()?;
    Some((v["conversation_id"].as_i64()?, v["id"].as_i64()?))
}

struct Usage {
    rss_mb: f64,
    peak_mb: f64,
    cpu_pct: f64,
}

/// The desk's RSS (at the end, and the peak seen every 100 ms) and CPU over `span`.
async fn sample(pid: u32, span: Duration) -> anyhow::Result<Usage> {
    let ticks = |pid: u32| -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command (which may hold spaces) — utime, stime are 14th, 15th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
    };
    let rss = |pid: u32| -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        Ok(kb / 1024.0)
    };
    // Clock ticks per second: 100 on Linux unless configured otherwise.
    const HZ: f64 = 100.0;
    let t0 = ticks(pid)?;
    let start = Instant::now();
    let mut peak = 0.0f64;
    while start.elapsed() < span {
        peak = peak.max(rss(pid)?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t1 = ticks(pid)?;
    let rss_mb = rss(pid)?;
    Ok(Usage {
        rss_mb,
        peak_mb: peak.max(rss_mb),
        cpu_pct: (t1 - t0) as f64 / HZ / start.elapsed().as_secs_f64() * 100.0,
    })
}
