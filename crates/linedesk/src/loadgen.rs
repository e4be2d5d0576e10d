//! `linedesk loadgen`: signed, unique LINE message events against a desk's `/line`, at a
//! target rate or as fast as the desk answers; reports events/s and the time to the 200.
//!
//! At a target rate the schedule is fixed in advance and each latency is measured from the
//! moment the request was *due*, so a stalled desk shows up in p99 instead of silently
//! slowing the generator down (no coordinated omission).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::Rng;

#[derive(Args, Clone)]
pub struct LoadgenArgs {
    /// The desk's webhook URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/line")]
    url: String,
    /// The desk's Channel Secret (signs each body).
    #[arg(long, env = "LINEDESK_LINE_CHANNEL_SECRET")]
    secret: String,
    /// Target events per second; 0 sends as fast as the desk answers.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Events in each webhook body (LINE batches events; 1 is the worst case).
    #[arg(long, default_value_t = 1)]
    events_per_request: usize,
    /// Distinct LINE users writing.
    #[arg(long, default_value_t = 1000)]
    users: u64,
}

#[derive(Default)]
struct WorkerResult {
    latencies_us: Vec<u64>,
    ok: u64,
    failed: u64,
}

pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.connections)
        .build_http();
    let run_id: u32 = rand::thread_rng().r#gen();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration);
    let per_request = args.events_per_request.max(1);
    // Each worker's gap between requests, for the target rate.
    let period = (args.rate > 0).then(|| {
        Duration::from_secs_f64(args.connections as f64 * per_request as f64 / args.rate as f64)
    });
    let mut tasks = Vec::new();
    for w in 0..args.connections {
        let client = client.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let mut res = WorkerResult::default();
            let mut ids = Ids {
                run: run_id,
                worker: w as u16,
                seq: 0,
            };
            let mut body = String::with_capacity(600 * per_request + 100);
            // Spread the workers' first sends over one period.
            let mut due = start
                + period.map_or(Duration::ZERO, |p| {
                    p.mul_f64(w as f64 / args.connections as f64)
                });
            loop {
                if period.is_some() {
                    if due >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                } else {
                    due = Instant::now();
                    if due >= deadline {
                        break;
                    }
                }
                webhook_body(&mut body, &mut ids, per_request, args.users);
                let signature = line_api::signature::sign(args.secret.as_bytes(), body.as_bytes());
                let req = hyper::Request::post(&args.url)
                    .header("content-type", "application/json; charset=utf-8")
                    .header("x-line-signature", signature)
                    .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
                    .expect("request");
                match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.into_body().collect().await;
                        if status.is_success() {
                            res.ok += 1;
                        } else {
                            res.failed += 1;
                        }
                    }
                    Err(_) => res.failed += 1,
                }
                res.latencies_us.push(due.elapsed().as_micros() as u64);
                if let Some(p) = period {
                    due += p;
                }
            }
            res
        }));
    }
    let mut all = WorkerResult::default();
    for t in tasks {
        let r = t.await?;
        all.ok += r.ok;
        all.failed += r.failed;
        all.latencies_us.extend(r.latencies_us);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((all.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        all.latencies_us[i] as f64 / 1000.0
    };
    let events = all.ok * per_request as u64;
    println!(
        "target: {} events/s, {} connections, {} event(s)/request, {} users, {:.1} s",
        if args.rate == 0 {
            "max".to_string()
        } else {
            args.rate.to_string()
        },
        args.connections,
        per_request,
        args.users,
        elapsed
    );
    println!(
        "requests: {} ok, {} failed; events stored: {events} = {:.0} events/s",
        all.ok,
        all.failed,
        events as f64 / elapsed
    );
    println!(
        "time to 200: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    if all.failed > 0 {
        anyhow::bail!("{} requests failed", all.failed);
    }
    Ok(())
}

/// Ids in the shapes LINE uses, unique and increasing with time as LINE's are (a webhook
/// event id is a ULID, a message id a long decimal number), so they land at the end of the
/// desk's unique indexes as real traffic does.
pub(crate) struct Ids {
    run: u32,
    worker: u16,
    seq: u32,
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl Ids {
    /// A fresh sequence for one sender, in a random run (so reruns never collide).
    pub(crate) fn new(worker: u16) -> Ids {
        Ids {
            run: rand::thread_rng().r#gen(),
            worker,
            seq: 0,
        }
    }

    /// The event id: 48 bits of milliseconds, then 80 bits that are unique in the run
    /// (run, worker, sequence) where a ULID has random bits.
    fn push_event_id(&self, out: &mut String, now_ms: u64) {
        let low =
            (u128::from(self.run) << 48) | (u128::from(self.worker) << 32) | u128::from(self.seq);
        let v = (u128::from(now_ms & 0xFFFF_FFFF_FFFF) << 80) | low;
        for i in (0..26).rev() {
            out.push(CROCKFORD[((v >> (i * 5)) & 31) as usize] as char);
        }
    }

    /// The message id: the time, then the run, the worker and its sequence.
    fn push_message_id(&self, out: &mut String, now_ms: u64) {
        let _ = write!(
            out,
            "{now_ms}{:05}{:05}{:010}",
            self.run % 100_000,
            self.worker,
            self.seq
        );
    }
}

/// A body of `n` unique text-message events in LINE's current shape, written into `out`.
pub(crate) fn webhook_body(out: &mut String, ids: &mut Ids, n: usize, users: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    out.clear();
    out.push_str(r#"{"destination":"U00000000000000000000000000000000","events":["#);
    for i in 0..n {
        ids.seq += 1;
        let user = (u64::from(ids.worker) * 7919 + u64::from(ids.seq) * 104_729) % users.max(1);
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"type":"message","mode":"active","timestamp":{now},"source":{{"type":"user","userId":"U{user:032x}"}},"webhookEventId":""#
        );
        ids.push_event_id(out, now);
        let _ = write!(
            out,
            r#"","deliveryContext":{{"isRedelivery":false}},"replyToken":"{:08x}{:04x}{:020x}","message":{{"id":""#,
            ids.run, ids.worker, ids.seq
        );
        ids.push_message_id(out, now);
        let _ = write!(
            out,
            r#"","type":"text","quoteToken":"q{:08x}{:04x}{:010x}","text":"負荷試験のメッセージ {}"}}}}"#,
            ids.run, ids.worker, ids.seq, ids.seq
        );
    }
    out.push_str("]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_webhooks_whose_ids_are_unique_and_increasing() {
        let mut ids = Ids {
            run: 0xDEAD_BEEF,
            worker: 7,
            seq: 0,
        };
        let mut body = String::new();
        let mut event_ids = Vec::new();
        let mut message_ids = Vec::new();
        for _ in 0..3 {
            webhook_body(&mut body, &mut ids, 4, 1000);
            let parsed = line_api::webhook::parse(body.as_bytes()).expect("a webhook body");
            assert_eq!(parsed.events.len(), 4);
            for p in parsed.events {
                let id = p.event.webhook_event_id.clone().expect("an event id");
                assert_eq!(id.len(), 26, "a ULID: {id}");
                event_ids.push(id);
                match &p.event.kind {
                    line_api::webhook::EventKind::Message(m) => {
                        message_ids.push(m.id().expect("a message id").to_owned())
                    }
                    other => panic!("not a message: {other:?}"),
                }
            }
        }
        for v in [&event_ids, &message_ids] {
            let mut sorted = v.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(&sorted, v, "unique and in order");
        }
    }
}
