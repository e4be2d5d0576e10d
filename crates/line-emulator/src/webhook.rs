//! Webhook events and their signed delivery.
//!
//! Body: `{"destination": <bot user id>, "events": [...]}` (webhook.yml `CallbackRequest`).
//! Header `x-line-signature`: Base64(HMAC-SHA256(channel secret, exact body bytes))
//! (<https://developers.line.biz/en/docs/messaging-api/verify-webhook-signature/>).
//! A delivery answered with anything but 2xx, or not answered, leaves its events
//! undelivered; `redeliver_undelivered` sends them again with
//! `deliveryContext.isRedelivery: true` and the same `webhookEventId`, as LINE's webhook
//! redelivery does.

use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::{EVENT_CAP, Emulator, Error, StoredEvent, WEBHOOK_LOG_CAP, ids, now_ms, now_rfc3339};

/// How long the emulator waits for the desk to answer a webhook.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Base64 of HMAC-SHA256 over `body` with `secret` as the key.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl Emulator {
    /// The fields every event has, in LINE's current shape.
    pub(crate) fn new_event(
        &self,
        kind: &str,
        user_id: &str,
        reply_token: Option<&str>,
    ) -> Map<String, Value> {
        let mut event = Map::new();
        event.insert("type".into(), json!(kind));
        event.insert("mode".into(), json!("active"));
        event.insert("timestamp".into(), json!(now_ms()));
        event.insert("source".into(), json!({"type": "user", "userId": user_id}));
        event.insert("webhookEventId".into(), json!(ids::ulid()));
        event.insert("deliveryContext".into(), json!({"isRedelivery": false}));
        if let Some(token) = reply_token {
            event.insert("replyToken".into(), json!(token));
        }
        event
    }

    /// Stores the event (for redelivery) and delivers it. Returns its id and the status.
    pub(crate) async fn emit(&self, event: Value) -> (String, Option<u16>) {
        let id = event["webhookEventId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        {
            let mut guard = self.state();
            let state = &mut *guard;
            if state.events.len() >= EVENT_CAP {
                let cutoff = state.event_order.len().saturating_sub(EVENT_CAP / 2);
                let events = &mut state.events;
                let mut index = 0;
                state.event_order.retain(|id| {
                    let old = index < cutoff;
                    index += 1;
                    if old && events.get(id).is_some_and(|e| e.delivered) {
                        events.remove(id);
                        false
                    } else {
                        true
                    }
                });
            }
            state.events.insert(
                id.clone(),
                StoredEvent {
                    event: event.clone(),
                    delivered: false,
                },
            );
            state.event_order.push(id.clone());
            state.stats.webhooks.events += 1;
        }
        let status = self.deliver(vec![event], false).await;
        (id, status)
    }

    /// POSTs one signed body with these events; records the attempt; marks the events
    /// delivered on a 2xx answer.
    async fn deliver(&self, mut events: Vec<Value>, redelivery: bool) -> Option<u16> {
        for event in &mut events {
            event["deliveryContext"] = json!({ "isRedelivery": redelivery });
        }
        let ids: Vec<String> = events
            .iter()
            .map(|e| e["webhookEventId"].as_str().unwrap_or_default().to_string())
            .collect();
        let types: Vec<Value> = events.iter().map(|e| e["type"].clone()).collect();
        let body = json!({
            "destination": self.inner.config.bot_user_id,
            "events": events,
        });
        let bytes = serde_json::to_vec(&body).expect("JSON values serialize");
        let url = self.webhook_url();
        let started = Instant::now();
        let (status, error) = match &url {
            None => (None, Some("no webhook URL is set".to_string())),
            Some(url) => {
                let signature = sign(&self.inner.config.channel_secret, &bytes);
                let sent = self
                    .inner
                    .http
                    .post(url)
                    .header("content-type", "application/json; charset=utf-8")
                    .header("x-line-signature", signature)
                    .header("user-agent", "LineBotWebhook/2.0")
                    .timeout(WEBHOOK_TIMEOUT)
                    .body(bytes)
                    .send()
                    .await;
                match sent {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        // Read the answer so the connection can be reused.
                        let _ = response.bytes().await;
                        (Some(status), None)
                    }
                    Err(e) => (None, Some(e.to_string())),
                }
            }
        };
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        if !ok {
            tracing::debug!(?status, ?error, ?ids, "webhook delivery failed");
        }
        let mut guard = self.state();
        let state = &mut *guard;
        let stats = &mut state.stats.webhooks;
        stats.deliveries += 1;
        if redelivery {
            stats.redeliveries += 1;
        }
        if ok {
            stats.ok += 1;
            for id in &ids {
                if let Some(stored) = state.events.get_mut(id) {
                    stored.delivered = true;
                }
            }
        } else {
            stats.failed += 1;
        }
        if state.webhook_log.len() >= WEBHOOK_LOG_CAP {
            state.webhook_log.pop_front();
        }
        state.webhook_log.push_back(json!({
            "at": now_rfc3339(),
            "url": url,
            "webhook_event_ids": ids,
            "event_types": types,
            "is_redelivery": redelivery,
            "status": status,
            "ok": ok,
            "error": error,
            "duration_ms": started.elapsed().as_millis() as u64,
        }));
        status
    }

    /// Sends every event that has not been delivered yet again, oldest first, as
    /// redeliveries (same `webhookEventId`, `isRedelivery: true`). With `batch`, all go in
    /// one body (LINE may put several events in one request); otherwise one body per event.
    /// Returns each event id with the status its delivery got.
    pub async fn redeliver_undelivered(&self, batch: bool) -> Vec<(String, Option<u16>)> {
        let pending: Vec<(String, Value)> = {
            let state = self.state();
            state
                .event_order
                .iter()
                .filter_map(|id| state.events.get(id).map(|e| (id, e)))
                .filter(|(_, e)| !e.delivered)
                .map(|(id, e)| (id.clone(), e.event.clone()))
                .collect()
        };
        if pending.is_empty() {
            return Vec::new();
        }
        if batch {
            let ids: Vec<String> = pending.iter().map(|(id, _)| id.clone()).collect();
            let status = self
                .deliver(pending.into_iter().map(|(_, e)| e).collect(), true)
                .await;
            ids.into_iter().map(|id| (id, status)).collect()
        } else {
            let mut results = Vec::new();
            for (id, event) in pending {
                let status = self.deliver(vec![event], true).await;
                results.push((id, status));
            }
            results
        }
    }

    /// Sends one event again as a redelivery, whether or not it was delivered before (so
    /// tests can check that the desk stores it once).
    pub async fn redeliver(&self, webhook_event_id: &str) -> Result<Option<u16>, Error> {
        let event = self
            .state()
            .events
            .get(webhook_event_id)
            .map(|e| e.event.clone())
            .ok_or_else(|| Error::UnknownEvent(webhook_event_id.to_string()))?;
        Ok(self.deliver(vec![event], true).await)
    }

    /// Ids of the events not delivered yet, oldest first.
    pub fn undelivered_events(&self) -> Vec<String> {
        let state = self.state();
        state
            .event_order
            .iter()
            .filter(|id| state.events.get(*id).is_some_and(|e| !e.delivered))
            .cloned()
            .collect()
    }

    /// The stored event (as first sent, `isRedelivery: false`).
    pub fn event(&self, webhook_event_id: &str) -> Option<Value> {
        self.state()
            .events
            .get(webhook_event_id)
            .map(|e| e.event.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::sign;

    /// Vectors from LINE's SDK test suites (see /work/shared/line-fixtures/README.md).
    #[test]
    fn signature_vectors() {
        assert_eq!(
            sign("channel_secret", b"bodybodybodybody"),
            "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="
        );
        assert_eq!(
            sign("SECRET", b"{}"),
            "3q8QXTAGaey18yL8FWTqdVlbMr6hcuNvM4tefa0o9nA="
        );
        assert_eq!(
            sign("test_secret", br#"{"hello":"world"}"#),
            "t7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyyE/tM="
        );
    }
}
