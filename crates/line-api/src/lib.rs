//! LINE Messaging API, and nothing of the desk.
//!
//! - [`signature`]: the `X-Line-Signature` check over the raw request bytes.
//! - [`webhook`]: webhook bodies, tolerant of event and message types we do not know
//!   (LINE redelivers a webhook that is not answered with 200, so one odd event must never
//!   make the whole body fail).
//! - [`message`]: the outgoing message objects we send.
//! - [`client`]: a thin typed client for reply, push, profile, content and bot info, with
//!   errors typed by what the caller must do next.
//!
//! Reference: LINE's OpenAPI documents (`webhook.yml`, `messaging-api.yml`).

pub mod client;
pub mod message;
pub mod signature;
pub mod webhook;

pub use client::{BotInfo, Client, Content, LineError, Profile, SentMessages, Timeouts};
pub use message::OutMessage;
pub use webhook::{ParseError, WebhookBody};
