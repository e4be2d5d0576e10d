//! Webhook request bodies (`webhook.yml`).
//!
//! The one rule that shapes this module: **only a body that is not a webhook at all is an
//! error**. LINE redelivers a webhook that is not answered with 200, so if one event of a
//! type we do not know, or of a known type with a field we did not expect, failed the whole
//! body, that body would come back forever and the good events in it would be stuck with it.
//! Such events become [`EventKind::Other`] (or [`MessageContent::Other`]) and keep their exact
//! JSON text in [`ParsedEvent::raw`], so nothing is lost.
//!
//! Parsing is two-step and borrow-based: the body is split into one [`RawValue`] per event
//! (one pass, no tree built), then each event's top-level fields are captured as raw slices
//! and only the ones its type needs are decoded. A field of an unexpected JSON type therefore
//! only affects what needs that field. No `#[serde(flatten)]` or internally tagged enums,
//! which would buffer every event into a `serde_json::Value`-like tree first.
//!
//! Why one file of ~1,000 lines: the event and message types of `webhook.yml` and the one
//! parser that fills them are read side by side (each type's tolerance is decided where it is
//! parsed); a quarter of it is unit tests.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// Why a request body is not a webhook. The desk answers 400; `Display` says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not valid JSON (syntax error, truncated, not UTF-8).
    #[error("request body is not valid JSON: {0}")]
    NotJson(String),
    /// Valid JSON, but not an object with an `events` array.
    #[error("request body is not a LINE webhook: {0}")]
    NotWebhook(String),
}

/// A webhook request body.
#[derive(Debug, Clone)]
pub struct WebhookBody {
    /// The bot's user ID. Optional because some senders (old SDK fixtures) omit it.
    pub destination: Option<String>,
    /// May be empty: LINE sends an empty array to check the webhook URL.
    pub events: Vec<ParsedEvent>,
}

/// One event, typed, together with its exact JSON text.
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    pub event: Event,
    /// The exact bytes of this event in the request body (no re-serialization), to store
    /// as received and to re-read later with a newer parser.
    pub raw: Box<RawValue>,
}

/// The fields common to every webhook event, and the type-specific part in [`Event::kind`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// ULID identifying the event across redeliveries; the idempotency key. Absent in the
    /// older payload shape.
    pub webhook_event_id: Option<String>,
    /// Milliseconds since the epoch. 0 when the event lacks a usable timestamp.
    pub timestamp: i64,
    /// `active` or `standby` (module channels).
    pub mode: Option<String>,
    /// `deliveryContext.isRedelivery`; false when absent.
    pub is_redelivery: bool,
    pub source: Option<Source>,
    pub reply_token: Option<String>,
    pub kind: EventKind,
}

/// Where an event comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    User {
        user_id: String,
    },
    Group {
        group_id: String,
        /// Only in message events, and only for users of LINE for iOS/Android.
        user_id: Option<String>,
    },
    Room {
        room_id: String,
        user_id: Option<String>,
    },
    /// A source type we do not know, or a known one missing its ID.
    Other,
}

impl Source {
    /// The user behind the event, when LINE tells us.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Source::User { user_id } => Some(user_id),
            Source::Group { user_id, .. } | Source::Room { user_id, .. } => user_id.as_deref(),
            Source::Other => None,
        }
    }
}

/// The type-specific part of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Message(MessageContent),
    /// `messageEdited`: a user edited a message they sent. Not in LINE's OpenAPI document yet;
    /// the SDK fixtures send the edited message object in `message` (same shape as `message`
    /// events, but without `quoteToken`).
    MessageEdited(MessageContent),
    /// Added as a friend, or unblocked (`follow.isUnblocked`; false when absent).
    Follow {
        is_unblocked: bool,
    },
    /// Blocked.
    Unfollow,
    Join,
    Leave,
    Postback {
        data: String,
        /// `postback.params` as sent (date/time pickers, rich menu switches).
        params: Option<serde_json::Value>,
    },
    /// The user unsent one of their messages.
    Unsend {
        message_id: String,
    },
    VideoPlayComplete {
        tracking_id: String,
    },
    Beacon {
        hwid: String,
        /// `enter`, `banner` or `stay`.
        beacon_type: String,
        dm: Option<String>,
    },
    AccountLink {
        /// `ok` or `failed`.
        result: String,
        nonce: String,
    },
    MemberJoined {
        members: Vec<Source>,
    },
    MemberLeft {
        members: Vec<Source>,
    },
    Membership {
        /// `joined`, `left` or `renewed`.
        membership_type: String,
        membership_id: i64,
    },
    /// Module channels: `attached` (with `bot_id`, `scopes`) or `detached` (with `bot_id`,
    /// `reason`).
    Module {
        module_type: String,
        bot_id: Option<String>,
        scopes: Vec<String>,
        reason: Option<String>,
    },
    Activated,
    Deactivated,
    BotSuspended,
    BotResumed,
    /// `delivery`: a LINE notification message (PNP) was delivered.
    PnpDeliveryCompletion {
        data: String,
    },
    /// An event type we do not know, or a known type missing a field its typed form needs.
    /// Never a parse failure; the event is still in [`ParsedEvent::raw`].
    Other {
        event_type: String,
    },
}

impl EventKind {
    /// LINE's `type` string for this event (for logs and metrics).
    pub fn type_name(&self) -> &str {
        match self {
            EventKind::Message(_) => "message",
            EventKind::MessageEdited(_) => "messageEdited",
            EventKind::Follow { .. } => "follow",
            EventKind::Unfollow => "unfollow",
            EventKind::Join => "join",
            EventKind::Leave => "leave",
            EventKind::Postback { .. } => "postback",
            EventKind::Unsend { .. } => "unsend",
            EventKind::VideoPlayComplete { .. } => "videoPlayComplete",
            EventKind::Beacon { .. } => "beacon",
            EventKind::AccountLink { .. } => "accountLink",
            EventKind::MemberJoined { .. } => "memberJoined",
            EventKind::MemberLeft { .. } => "memberLeft",
            EventKind::Membership { .. } => "membership",
            EventKind::Module { .. } => "module",
            EventKind::Activated => "activated",
            EventKind::Deactivated => "deactivated",
            EventKind::BotSuspended => "botSuspended",
            EventKind::BotResumed => "botResumed",
            EventKind::PnpDeliveryCompletion { .. } => "delivery",
            EventKind::Other { event_type } => event_type,
        }
    }
}

/// The `message` object of a message event.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    Text {
        id: String,
        text: String,
        /// Token to quote this message in a reply; absent in older payloads.
        quote_token: Option<String>,
        /// The message this one quotes, if any.
        quoted_message_id: Option<String>,
        /// LINE emoji in `text`; empty when none (or when LINE's list was malformed: they
        /// are decoration, not worth losing the text for).
        emojis: Vec<Emoji>,
        /// Mentions in `text` (group chats); empty when none.
        mentionees: Vec<Mentionee>,
    },
    Image {
        id: String,
        content_provider: ContentProvider,
        /// Set when the user sent several images at once.
        image_set: Option<ImageSet>,
        quote_token: Option<String>,
    },
    Video {
        id: String,
        /// Milliseconds.
        duration: Option<i64>,
        content_provider: ContentProvider,
        quote_token: Option<String>,
    },
    Audio {
        id: String,
        /// Milliseconds.
        duration: Option<i64>,
        content_provider: ContentProvider,
    },
    File {
        id: String,
        file_name: String,
        /// Bytes.
        file_size: i64,
    },
    Location {
        id: String,
        title: Option<String>,
        address: Option<String>,
        latitude: f64,
        longitude: f64,
    },
    Sticker {
        id: String,
        package_id: String,
        sticker_id: String,
        /// `STATIC`, `ANIMATION`, `MESSAGE`, …
        sticker_resource_type: Option<String>,
        keywords: Option<Vec<String>>,
        /// Text the user typed into a message sticker.
        text: Option<String>,
        quote_token: Option<String>,
    },
    /// A message type we do not know, or a known type missing a field its typed form needs.
    /// Kept (the user did write something), never a parse failure.
    Other {
        id: Option<String>,
        message_type: String,
    },
}

impl MessageContent {
    /// LINE's message ID (the key to download content, and to deduplicate).
    pub fn id(&self) -> Option<&str> {
        match self {
            MessageContent::Text { id, .. }
            | MessageContent::Image { id, .. }
            | MessageContent::Video { id, .. }
            | MessageContent::Audio { id, .. }
            | MessageContent::File { id, .. }
            | MessageContent::Location { id, .. }
            | MessageContent::Sticker { id, .. } => Some(id),
            MessageContent::Other { id, .. } => id.as_deref(),
        }
    }

    /// LINE's `type` string (`text`, `image`, …, or the unknown type as sent).
    pub fn type_name(&self) -> &str {
        match self {
            MessageContent::Text { .. } => "text",
            MessageContent::Image { .. } => "image",
            MessageContent::Video { .. } => "video",
            MessageContent::Audio { .. } => "audio",
            MessageContent::File { .. } => "file",
            MessageContent::Location { .. } => "location",
            MessageContent::Sticker { .. } => "sticker",
            MessageContent::Other { message_type, .. } => message_type,
        }
    }
}

/// Who holds the media of an image, video or audio message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentProvider {
    /// `line`: download it with the content API. `external`: it is at the URLs below.
    #[serde(rename = "type")]
    pub kind: String,
    pub original_content_url: Option<String>,
    pub preview_image_url: Option<String>,
}

/// Position of an image in a set of images sent together.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageSet {
    pub id: String,
    /// 1-based; missing for senders on old Android versions.
    pub index: Option<i64>,
    pub total: Option<i64>,
}

/// A LINE emoji inside a text message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Emoji {
    /// Position in the text, in UTF-16 code units.
    pub index: i64,
    pub length: i64,
    pub product_id: String,
    pub emoji_id: String,
}

/// A mention inside a text message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mentionee {
    /// `user` or `all`.
    #[serde(rename = "type")]
    pub mentionee_type: String,
    pub index: i64,
    pub length: i64,
    /// Only when the mentioned user consented to share it.
    pub user_id: Option<String>,
    /// Whether the mention is of this bot.
    #[serde(default)]
    pub is_self: bool,
}

/// Parses a webhook request body. Call [`crate::signature::verify`] on the same bytes first.
///
/// Errors only when the body is not JSON, or not an object with an `events` array; see the
/// module documentation for why nothing inside an event is ever an error.
pub fn parse(body: &[u8]) -> Result<WebhookBody, ParseError> {
    // serde's derived structs also accept a JSON array (fields by position); a webhook is
    // an object, so say so before serde gets a chance to be clever.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => ParseError::NotWebhook("the top level is not a JSON object".into()),
            Err(e) => ParseError::NotJson(e.to_string()),
        });
    }
    let wire: WireBody<'_> = serde_json::from_slice(body).map_err(|e| match e.classify() {
        // A shape error can come before a syntax error further on; report the body as
        // not JSON when it is not (only on this error path is the body parsed twice).
        serde_json::error::Category::Data => match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => ParseError::NotWebhook(e.to_string()),
            Err(syntax) => ParseError::NotJson(syntax.to_string()),
        },
        _ => ParseError::NotJson(e.to_string()),
    })?;
    Ok(WebhookBody {
        destination: field(wire.destination),
        events: wire
            .events
            .into_iter()
            .map(|raw| ParsedEvent {
                event: parse_event(raw),
                raw: raw.to_owned(),
            })
            .collect(),
    })
}

/// Parses one event from its JSON text, as stored in [`ParsedEvent::raw`]. Never fails:
/// anything that is not a JSON object becomes `Other` with an empty type and timestamp 0.
pub fn parse_event(raw: &RawValue) -> Event {
    let wire = object::<WireEvent<'_>>(Some(raw)).unwrap_or_default();
    let event_type: String = field(wire.event_type).unwrap_or_default();
    let kind = event_kind(&event_type, &wire).unwrap_or(EventKind::Other { event_type });
    Event {
        webhook_event_id: field(wire.webhook_event_id),
        timestamp: field(wire.timestamp).unwrap_or(0),
        mode: field(wire.mode),
        is_redelivery: object::<DeliveryContext>(wire.delivery_context)
            .is_some_and(|d| d.is_redelivery),
        source: wire.source.map(parse_source),
        reply_token: field(wire.reply_token),
        kind,
    }
}

/// The typed form of a known event type; `None` for an unknown type, or a known one whose
/// fields do not fit (the caller turns both into `Other`).
fn event_kind(event_type: &str, w: &WireEvent<'_>) -> Option<EventKind> {
    Some(match event_type {
        "message" => EventKind::Message(parse_message(w.message?)?),
        "messageEdited" => EventKind::MessageEdited(parse_message(w.message?)?),
        "follow" => EventKind::Follow {
            // Older payloads have no `follow` object at all; that is still a follow.
            is_unblocked: object::<FollowDetail>(w.follow).is_some_and(|f| f.is_unblocked),
        },
        "unfollow" => EventKind::Unfollow,
        "join" => EventKind::Join,
        "leave" => EventKind::Leave,
        "postback" => {
            let p = object::<WirePostback>(w.postback)?;
            EventKind::Postback {
                data: p.data,
                params: p.params,
            }
        }
        "unsend" => EventKind::Unsend {
            message_id: object::<WireUnsend>(w.unsend)?.message_id,
        },
        "videoPlayComplete" => EventKind::VideoPlayComplete {
            tracking_id: object::<WireVideoPlayComplete>(w.video_play_complete)?.tracking_id,
        },
        "beacon" => {
            let b = object::<WireBeacon>(w.beacon)?;
            EventKind::Beacon {
                hwid: b.hwid,
                beacon_type: b.beacon_type,
                dm: b.dm,
            }
        }
        "accountLink" => {
            let l = object::<WireLink>(w.link)?;
            EventKind::AccountLink {
                result: l.result,
                nonce: l.nonce,
            }
        }
        "memberJoined" => EventKind::MemberJoined {
            members: members(w.joined)?,
        },
        "memberLeft" => EventKind::MemberLeft {
            members: members(w.left)?,
        },
        "membership" => {
            let m = object::<WireMembership>(w.membership)?;
            EventKind::Membership {
                membership_type: m.membership_type,
                membership_id: m.membership_id,
            }
        }
        "module" => {
            let m = object::<WireModule>(w.module)?;
            EventKind::Module {
                module_type: m.module_type,
                bot_id: m.bot_id,
                scopes: m.scopes.unwrap_or_default(),
                reason: m.reason,
            }
        }
        "activated" => EventKind::Activated,
        "deactivated" => EventKind::Deactivated,
        "botSuspended" => EventKind::BotSuspended,
        "botResumed" => EventKind::BotResumed,
        "delivery" => EventKind::PnpDeliveryCompletion {
            data: object::<WireDelivery>(w.delivery)?.data,
        },
        _ => return None,
    })
}

/// `None` only when `message` is not an object at all (the event then becomes `Other`);
/// an object of an unknown type or with missing fields is `MessageContent::Other`.
fn parse_message(raw: &RawValue) -> Option<MessageContent> {
    let m = object::<WireMessage<'_>>(Some(raw))?;
    let message_type: String = field(m.message_type).unwrap_or_default();
    let typed = typed_message(&message_type, &m);
    Some(typed.unwrap_or_else(|| MessageContent::Other {
        id: field(m.id),
        message_type,
    }))
}

fn typed_message(message_type: &str, m: &WireMessage<'_>) -> Option<MessageContent> {
    let id: String = field(m.id)?;
    Some(match message_type {
        "text" => MessageContent::Text {
            id,
            text: field(m.text)?,
            quote_token: field(m.quote_token),
            quoted_message_id: field(m.quoted_message_id),
            emojis: field(m.emojis).unwrap_or_default(),
            mentionees: object::<WireMention>(m.mention)
                .map(|m| m.mentionees)
                .unwrap_or_default(),
        },
        "image" => MessageContent::Image {
            id,
            content_provider: object(m.content_provider)?,
            image_set: object(m.image_set),
            quote_token: field(m.quote_token),
        },
        "video" => MessageContent::Video {
            id,
            duration: field(m.duration),
            content_provider: object(m.content_provider)?,
            quote_token: field(m.quote_token),
        },
        "audio" => MessageContent::Audio {
            id,
            duration: field(m.duration),
            content_provider: object(m.content_provider)?,
        },
        "file" => MessageContent::File {
            id,
            file_name: field(m.file_name)?,
            file_size: field::<IntOrString>(m.file_size)?.0,
        },
        "location" => MessageContent::Location {
            id,
            title: field(m.title),
            address: field(m.address),
            latitude: coordinate(m.latitude)?,
            longitude: coordinate(m.longitude)?,
        },
        "sticker" => MessageContent::Sticker {
            id,
            package_id: field(m.package_id)?,
            sticker_id: field(m.sticker_id)?,
            sticker_resource_type: field(m.sticker_resource_type),
            keywords: field(m.keywords),
            text: field(m.text),
            quote_token: field(m.quote_token),
        },
        _ => return None,
    })
}

fn parse_source(raw: &RawValue) -> Source {
    let Some(s) = object::<WireSource>(Some(raw)) else {
        return Source::Other;
    };
    match (s.source_type.as_deref(), s.user_id, s.group_id, s.room_id) {
        (Some("user"), Some(user_id), _, _) => Source::User { user_id },
        (Some("group"), user_id, Some(group_id), _) => Source::Group { group_id, user_id },
        (Some("room"), user_id, _, Some(room_id)) => Source::Room { room_id, user_id },
        _ => Source::Other,
    }
}

fn members(raw: Option<&RawValue>) -> Option<Vec<Source>> {
    let m = object::<WireMembers<'_>>(raw)?;
    Some(m.members.into_iter().map(parse_source).collect())
}

/// Decodes one captured field; `None` when absent, `null` or of an unexpected JSON type.
fn field<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    serde_json::from_str(raw?.get()).ok()
}

/// A JSON number as the nearest `f64`. serde_json's default float parser (without its
/// `float_roundtrip` feature) can be off in the last digit; std's parser is correctly
/// rounded, and every JSON number is valid input for it.
fn coordinate(raw: Option<&RawValue>) -> Option<f64> {
    let text = raw?.get();
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Like [`field`], for fields that must be JSON objects. Derived structs would also accept
/// an array (fields by position), which is never what LINE means.
fn object<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    let raw = raw?;
    // A RawValue never starts with whitespace.
    if !raw.get().starts_with('{') {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

// ---- wire shapes (private): top-level fields captured raw, decoded on demand ----

#[derive(Deserialize)]
struct WireBody<'a> {
    #[serde(borrow)]
    destination: Option<&'a RawValue>,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireEvent<'a> {
    #[serde(rename = "type", borrow)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    webhook_event_id: Option<&'a RawValue>,
    #[serde(borrow)]
    mode: Option<&'a RawValue>,
    #[serde(borrow)]
    delivery_context: Option<&'a RawValue>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    #[serde(borrow)]
    reply_token: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    follow: Option<&'a RawValue>,
    #[serde(borrow)]
    postback: Option<&'a RawValue>,
    #[serde(borrow)]
    unsend: Option<&'a RawValue>,
    #[serde(borrow)]
    video_play_complete: Option<&'a RawValue>,
    #[serde(borrow)]
    beacon: Option<&'a RawValue>,
    #[serde(borrow)]
    link: Option<&'a RawValue>,
    #[serde(borrow)]
    joined: Option<&'a RawValue>,
    #[serde(borrow)]
    left: Option<&'a RawValue>,
    #[serde(borrow)]
    membership: Option<&'a RawValue>,
    #[serde(borrow)]
    module: Option<&'a RawValue>,
    #[serde(borrow)]
    delivery: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage<'a> {
    #[serde(rename = "type", borrow)]
    message_type: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    text: Option<&'a RawValue>,
    #[serde(borrow)]
    quote_token: Option<&'a RawValue>,
    #[serde(borrow)]
    quoted_message_id: Option<&'a RawValue>,
    #[serde(borrow)]
    emojis: Option<&'a RawValue>,
    #[serde(borrow)]
    mention: Option<&'a RawValue>,
    #[serde(borrow)]
    content_provider: Option<&'a RawValue>,
    #[serde(borrow)]
    image_set: Option<&'a RawValue>,
    #[serde(borrow)]
    duration: Option<&'a RawValue>,
    #[serde(borrow)]
    file_name: Option<&'a RawValue>,
    #[serde(borrow)]
    file_size: Option<&'a RawValue>,
    #[serde(borrow)]
    title: Option<&'a RawValue>,
    #[serde(borrow)]
    address: Option<&'a RawValue>,
    #[serde(borrow)]
    latitude: Option<&'a RawValue>,
    #[serde(borrow)]
    longitude: Option<&'a RawValue>,
    #[serde(borrow)]
    package_id: Option<&'a RawValue>,
    #[serde(borrow)]
    sticker_id: Option<&'a RawValue>,
    #[serde(borrow)]
    sticker_resource_type: Option<&'a RawValue>,
    #[serde(borrow)]
    keywords: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSource {
    #[serde(rename = "type")]
    source_type: Option<String>,
    user_id: Option<String>,
    group_id: Option<String>,
    room_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryContext {
    #[serde(default)]
    is_redelivery: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FollowDetail {
    #[serde(default)]
    is_unblocked: bool,
}

#[derive(Deserialize)]
struct WirePostback {
    data: String,
    params: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUnsend {
    message_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireVideoPlayComplete {
    tracking_id: String,
}

#[derive(Deserialize)]
struct WireBeacon {
    hwid: String,
    #[serde(rename = "type")]
    beacon_type: String,
    dm: Option<String>,
}

#[derive(Deserialize)]
struct WireLink {
    result: String,
    nonce: String,
}

#[derive(Deserialize)]
struct WireMembers<'a> {
    #[serde(borrow)]
    members: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMembership {
    #[serde(rename = "type")]
    membership_type: String,
    membership_id: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireModule {
    #[serde(rename = "type")]
    module_type: String,
    bot_id: Option<String>,
    scopes: Option<Vec<String>>,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelivery {
    data: String,
}

#[derive(Deserialize)]
struct WireMention {
    mentionees: Vec<Mentionee>,
}

/// `fileSize` is an integer in the current spec; older LINE payloads sent it as a string.
struct IntOrString(i64);

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<'a> {
            Int(i64),
            Str(&'a str),
        }
        match Either::deserialize(d)? {
            Either::Int(n) => Ok(IntOrString(n)),
            Either::Str(s) => s.parse().map(IntOrString).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(event_json: &str) -> ParsedEvent {
        let body = format!(r#"{{"destination":"Uxx","events":[{event_json}]}}"#);
        let mut b = parse(body.as_bytes()).expect("parses");
        assert_eq!(b.events.len(), 1);
        b.events.remove(0)
    }

    #[test]
    fn body_errors() {
        assert!(matches!(parse(b""), Err(ParseError::NotJson(_))));
        assert!(matches!(
            parse(b"{\"events\":["),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(parse(b"nope"), Err(ParseError::NotJson(_))));
        assert!(matches!(parse(b"{} trailing"), Err(ParseError::NotJson(_))));
        assert!(matches!(parse(b"\xff{}"), Err(ParseError::NotJson(_))));
        assert!(matches!(
            parse(b"{\"events\":[\"\xff\"]}"),
            Err(ParseError::NotJson(_))
        ));
        for not_webhook in [
            &b"[]"[..],
            b"[null, []]",
            b"42",
            b"{}",
            b"{\"destination\":\"U\"}",
            b"{\"events\":null}",
            b"{\"events\":{}}",
            b"{\"events\":\"x\"}",
        ] {
            let err = parse(not_webhook).unwrap_err();
            assert!(matches!(err, ParseError::NotWebhook(_)), "{err:?}");
        }
        // Display says why.
        let msg = parse(b"{}").unwrap_err().to_string();
        assert!(msg.contains("events"), "{msg}");
    }

    #[test]
    fn empty_events_is_a_valid_webhook() {
        let b = parse(b" {\"destination\":\"U0\",\"events\":[]} \n").unwrap();
        assert_eq!(b.destination.as_deref(), Some("U0"));
        assert!(b.events.is_empty());
        // A destination of a strange type is dropped, not fatal.
        let b = parse(b"{\"destination\":7,\"events\":[]}").unwrap();
        assert_eq!(b.destination, None);
    }

    #[test]
    fn odd_events_are_other_never_errors() {
        let b =
            parse(br#"{"events":[1, "x", null, [], {}, {"type":5,"timestamp":"soon"}]}"#).unwrap();
        assert_eq!(b.events.len(), 6);
        for e in &b.events {
            assert_eq!(e.event.timestamp, 0);
            assert_eq!(
                e.event.kind,
                EventKind::Other {
                    event_type: String::new()
                }
            );
        }
        assert_eq!(b.events[1].raw.get(), "\"x\"");
    }

    #[test]
    fn known_type_with_missing_fields_is_other() {
        let e = one(r#"{"type":"postback","timestamp":1,"postback":{"params":{}}}"#);
        assert_eq!(
            e.event.kind,
            EventKind::Other {
                event_type: "postback".into()
            }
        );
        assert_eq!(e.event.timestamp, 1);
        let e = one(r#"{"type":"unsend","timestamp":1}"#);
        assert_eq!(
            e.event.kind,
            EventKind::Other {
                event_type: "unsend".into()
            }
        );
        let e = one(r#"{"type":"message","timestamp":1}"#);
        assert_eq!(
            e.event.kind,
            EventKind::Other {
                event_type: "message".into()
            }
        );
        let e = one(r#"{"type":"message","timestamp":1,"message":[]}"#);
        assert_eq!(
            e.event.kind,
            EventKind::Other {
                event_type: "message".into()
            }
        );
    }

    #[test]
    fn message_missing_fields_is_other_message() {
        let e = one(r#"{"type":"message","timestamp":1,"message":{"id":"9","type":"text"}}"#);
        assert_eq!(
            e.event.kind,
            EventKind::Message(MessageContent::Other {
                id: Some("9".into()),
                message_type: "text".into()
            })
        );
        let e = one(
            r#"{"type":"message","timestamp":1,"message":{"id":"9","type":"image","contentProvider":"line"}}"#,
        );
        let EventKind::Message(m) = e.event.kind else {
            panic!()
        };
        assert_eq!((m.id(), m.type_name()), (Some("9"), "image"));
        assert!(matches!(m, MessageContent::Other { .. }));
    }

    #[test]
    fn wrong_typed_optional_fields_do_not_spoil_the_event() {
        let e = one(
            r#"{"type":"message","timestamp":5,"webhookEventId":"01H","mode":7,
                "deliveryContext":{"isRedelivery":"yes"},"replyToken":"r",
                "source":{"type":"user","userId":"U1"},
                "message":{"id":"1","type":"text","text":"hi","quoteToken":1,
                           "emojis":"bad","mention":{"mentionees":[{"type":"user","index":0,"length":3,"userId":"U2","isSelf":true}]}}}"#,
        );
        let ev = &e.event;
        assert_eq!(ev.webhook_event_id.as_deref(), Some("01H"));
        assert_eq!(ev.mode, None);
        assert!(!ev.is_redelivery);
        assert_eq!(ev.source.as_ref().and_then(Source::user_id), Some("U1"));
        let EventKind::Message(MessageContent::Text {
            text,
            quote_token,
            emojis,
            mentionees,
            ..
        }) = &ev.kind
        else {
            panic!("{:?}", ev.kind)
        };
        assert_eq!(text, "hi");
        assert_eq!(*quote_token, None);
        assert!(emojis.is_empty());
        assert_eq!(mentionees[0].user_id.as_deref(), Some("U2"));
        assert!(mentionees[0].is_self);
    }

    #[test]
    fn sources() {
        let src = |s: &str| {
            one(&format!(
                r#"{{"type":"unfollow","timestamp":1,"source":{s}}}"#
            ))
            .event
            .source
        };
        assert_eq!(
            src(r#"{"type":"user","userId":"U1"}"#),
            Some(Source::User {
                user_id: "U1".into()
            })
        );
        assert_eq!(src(r#"{"type":"user"}"#), Some(Source::Other));
        assert_eq!(
            src(r#"{"type":"group","groupId":"C1"}"#),
            Some(Source::Group {
                group_id: "C1".into(),
                user_id: None
            })
        );
        assert_eq!(
            src(r#"{"type":"room","roomId":"R1","userId":"U1"}"#),
            Some(Source::Room {
                room_id: "R1".into(),
                user_id: Some("U1".into())
            })
        );
        assert_eq!(src(r#"{"type":"space"}"#), Some(Source::Other));
        assert_eq!(src("12"), Some(Source::Other));
        assert_eq!(src("null"), None);
    }

    #[test]
    fn file_size_as_string_and_escaped_strings() {
        let e = one(
            r#"{"type":"message","timestamp":1,"message":{"id":"1","type":"file","fileName":"a\"b\u3042.txt","fileSize":"2138"}}"#,
        );
        assert_eq!(
            e.event.kind,
            EventKind::Message(MessageContent::File {
                id: "1".into(),
                file_name: "a\"bあ.txt".into(),
                file_size: 2138
            })
        );
    }

    #[test]
    fn partner_events() {
        let k = |s: &str| one(s).event.kind;
        assert_eq!(
            k(
                r#"{"type":"membership","timestamp":1,"membership":{"type":"joined","membershipId":3}}"#
            ),
            EventKind::Membership {
                membership_type: "joined".into(),
                membership_id: 3
            }
        );
        assert_eq!(
            k(
                r#"{"type":"module","timestamp":1,"module":{"type":"attached","botId":"U1","scopes":["message:send"]}}"#
            ),
            EventKind::Module {
                module_type: "attached".into(),
                bot_id: Some("U1".into()),
                scopes: vec!["message:send".into()],
                reason: None
            }
        );
        assert_eq!(
            k(r#"{"type":"activated","timestamp":1,"chatControl":{"expireAt":1}}"#),
            EventKind::Activated
        );
        assert_eq!(
            k(r#"{"type":"botSuspended","timestamp":1}"#),
            EventKind::BotSuspended
        );
        assert_eq!(
            k(r#"{"type":"delivery","timestamp":1,"delivery":{"data":"abc"}}"#),
            EventKind::PnpDeliveryCompletion { data: "abc".into() }
        );
        assert_eq!(
            k(r#"{"type":"delivery","timestamp":1,"delivery":{"data":"abc"}}"#).type_name(),
            "delivery"
        );
    }
}
