//! The delivery planner: which queued agent messages go to LINE in which call (M2–M7).
//!
//! # Reply mode (M3–M5)
//!
//! LINE lets the account answer a customer message once, with that message's reply token,
//! shortly after it arrived. The desk keeps every agent message it could not send yet (未送信 /
//! "Unsent", M4) in a per-conversation queue, in the order written, and whenever a usable token
//! and a non-empty queue meet — the agent sends inside the window (M3, "immediate send"), or the
//! customer writes again (M5) — [`plan_reply`] decides what that one reply call carries:
//!
//! * **one press of 送信 is one group** ([`Outgoing::group`]): a text and the images sent with
//!   it go in the order the agent composed them, and a group that fits one call (≤ 5 objects)
//!   is never split across calls — it goes whole with this token, or waits whole for the next;
//!   a group larger than one call (only possible from old data: the API takes at most 5 parts)
//!   goes message by message;
//! * groups leave **in the order written**; a group never jumps ahead of an earlier one of the
//!   same [`Origin`] that is still queued, even when a later one would fit;
//! * **who goes first** ([`Origin`]): the desk's own answer to a customer message (the passcode
//!   confirmation) rides *that* message's token and goes first; then the messages of the agent
//!   handling the chat now; then messages kept from an earlier handling (the agent chose
//!   そのまま送る at 完了/未読). Kept messages go only in a call that also carries a message of the
//!   current handler, until the handler has answered once since taking the chat
//!   (`handler_answered`; then they go like any waiting message, after the handler's): a
//!   previous handler's queue never uses up the token the current handler needs for their own
//!   answer, and nothing goes out while nobody handles the chat;
//! * **consecutive texts are joined** with `"\n"` into one text object when they are of the
//!   same origin (never the current handler's answer and a previous handler's text in one
//!   bubble); an image between texts stays in its place (`text, image, text`, the manual's
//!   example);
//! * at most [`MAX_OBJECTS_PER_CALL`] (5) objects per call, and no text object over
//!   [`MAX_TEXT_UNITS`] (5,000 UTF-16 code units — LINE counts UTF-16, see [`text_units`]);
//!   a join that would exceed it starts a new object at the message boundary;
//! * a single message longer than 5,000 units is cut into several text objects by
//!   [`split_text`]; it counts as delivered only when **all** its parts are in the same call;
//!   if they do not fit in the slots left, it waits for the next token;
//! * what does not fit waits for the next token.
//!
//! The plan's [`ReplyPlan::message_ids`] are the messages the call delivers completely; every
//! object also names the messages it carries ([`PlannedObject::message_ids`]), which matches
//! LINE's `sentMessages` (one entry per object) to desk messages.
//!
//! ## What the caller does with a plan
//!
//! 1. Pick the token (and plan) with [`plan_next`] — or [`pick_token`] and [`plan_reply`] —
//!    and claim it (`UPDATE … SET used = true WHERE … AND NOT
//!    used`) *before* calling LINE: a reply token is single-use, whatever the outcome.
//! 2. Call LINE's reply API with the objects. Then, by outcome:
//!    * accepted → the plan's messages are `Sent` (M6);
//!    * "Invalid reply token" (expired or used on LINE's side) → nothing went out: the messages
//!      stay `Unsent` and queued for the next token (M7);
//!    * ambiguous (timeout, 5xx) → the messages may have arrived: mark them `Uncertain`, take
//!      them out of the queue, and never resend them automatically (a reply cannot be retried
//!      with a retry key). They stay visible to the agent, who may resend by hand (M7);
//!    * any other refusal (400 for the content) → `Failed`, out of the queue, visible.
//! 3. Plan again while usable tokens and queued messages remain (several customer messages give
//!    several tokens; each answers once, M3).
//!
//! Two workers must not plan with the same token; claiming it in step 1 settles that.
//!
//! ## Too long to deliver at all
//!
//! The desk refuses an agent text that is blank or over 5,000 units at input
//! ([`check_agent_text`]), so a queued text always fits one object. The planner still handles
//! longer ones (from the API of an older version, or an import): up to 5 objects per message,
//! which is every message up to 22,500 units and most up to 25,000. A message that needs more
//! than 5 objects — or an empty text, which LINE refuses — can never be delivered in one call;
//! the planner returns [`PlanError`] naming it, and the caller marks it `Failed` and plans again.
//! (Spreading one message over several calls would break "delivered only when all its parts
//! went", and a partial delivery would be invisible to the agent.)
//!
//! # Push mode (M2)
//!
//! [`plan_push`]: **one push request per agent message**, each with its own retry key (the
//! caller's UUID, stored with the message), even for consecutive texts. Decision: batching
//! several messages into one push would save requests, but then one failure or one retry would
//! speak for several messages, and the delivery mark would no longer be per message. A long
//! message's parts go in its one request. The worker sends a conversation's messages one after
//! the other, the next only after the previous one is settled, so they arrive in order.
//!
//! Why one file of ~1,050 lines: the planner is one algorithm; 450 lines are its unit tests.

use serde::{Deserialize, Serialize};

/// LINE accepts at most 5 message objects per reply or push call.
pub const MAX_OBJECTS_PER_CALL: usize = 5;
/// LINE's limit for one text message object, in UTF-16 code units.
pub const MAX_TEXT_UNITS: usize = 5_000;
/// How long after an incoming message the desk still uses its reply token. LINE guarantees
/// about one minute today (the manual's "about 30 seconds" is older); 50 s leaves a margin for
/// clock and network delay (docs/interface.md, `LINEDESK_REPLY_WINDOW_SECS`).
pub const DEFAULT_REPLY_WINDOW_MS: i64 = 50_000;
/// When a text must be cut, a newline or whitespace within this many units before the limit is
/// preferred over a hard cut.
pub const SPLIT_LOOKBACK_UNITS: usize = 500;
/// What joins consecutive texts in one object (M5).
pub const JOIN: &str = "\n";

/// The length of a text the way LINE counts it: UTF-16 code units. The one place that counts.
/// (`"あ"` is 1, `"😀"` is 2, `"👨‍👩‍👧"` is 8.)
pub fn text_units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Content of an agent message, and of a message object sent to LINE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutContent {
    Text(String),
    /// LINE's image message: both URLs are HTTPS URLs LINE fetches from the desk.
    Image {
        original_url: String,
        preview_url: String,
    },
}

/// Whose message it is, which decides its place in a reply call (see the [module docs](self)).
/// Ordered by priority: `Desk` before `Handler` before `Kept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The desk's own answer to a customer message (the passcode confirmation).
    Desk,
    /// Written by the agent who handles the chat now.
    Handler,
    /// Kept from an earlier handling: the chat was completed or released with it waiting, or
    /// another agent handles it now. Goes only along with the current handler's messages.
    Kept,
}

/// One undelivered message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    pub id: i64,
    /// The messages of one press of 送信 share a group (the id of its first message).
    pub group: i64,
    pub origin: Origin,
    /// For a [`Origin::Desk`] answer: the reply token of the customer message it answers, which
    /// it rides. [`plan_next`] drops the binding once that token is no longer usable (the answer
    /// then goes with the next token); [`plan_reply`] leaves a message bound to another token
    /// for that token.
    pub reply_to: Option<String>,
    pub content: OutContent,
}

impl Outgoing {
    /// A message of the current handler, alone in its group.
    pub fn new(id: i64, content: OutContent) -> Outgoing {
        Outgoing {
            id,
            group: id,
            origin: Origin::Handler,
            reply_to: None,
            content,
        }
    }
}

/// The reply token of a customer message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyToken {
    pub token: String,
    /// When the desk received the message (unix ms); the window counts from here.
    pub received_at_ms: i64,
    pub used: bool,
}

impl ReplyToken {
    /// Unused and `now_ms` is before [`expires_at`].
    pub fn is_usable(&self, now_ms: i64, window_ms: i64) -> bool {
        !self.used && now_ms < expires_at(self, window_ms)
    }
}

/// The first instant (unix ms) at which the desk no longer uses `token`.
pub fn expires_at(token: &ReplyToken, window_ms: i64) -> i64 {
    token.received_at_ms.saturating_add(window_ms)
}

/// Of a conversation's reply tokens, the one to use now: the usable one that expires first, so
/// the fresher ones stay for messages the agent writes later.
pub fn pick_token(tokens: &[ReplyToken], now_ms: i64, window_ms: i64) -> Option<&ReplyToken> {
    tokens
        .iter()
        .filter(|t| t.is_usable(now_ms, window_ms))
        .min_by_key(|t| t.received_at_ms)
}

/// One message object of a LINE call, and the desk messages whose content it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedObject {
    pub content: OutContent,
    /// In order. Several for joined texts; one message appears in several consecutive objects
    /// when it was cut into parts.
    pub message_ids: Vec<i64>,
}

/// What one reply call carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyPlan {
    pub token: String,
    /// 1 to [`MAX_OBJECTS_PER_CALL`] objects.
    pub objects: Vec<PlannedObject>,
    /// The messages this call delivers completely, in the order written: a prefix of the queue.
    pub message_ids: Vec<i64>,
}

/// One push request: one agent message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushPlan {
    pub message_id: i64,
    /// 1 to [`MAX_OBJECTS_PER_CALL`] objects (several only for a text over 5,000 units).
    pub objects: Vec<PlannedObject>,
}

/// A queued message that can never be delivered; mark it `Failed` and plan again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("message {message_id} is an empty text, which LINE refuses")]
    EmptyText { message_id: i64 },
    #[error(
        "message {message_id} has {units} UTF-16 units and needs {objects} text objects; \
         one call carries at most {MAX_OBJECTS_PER_CALL}"
    )]
    TooLong {
        message_id: i64,
        units: usize,
        objects: usize,
    },
}

/// Why the desk refuses what an agent typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextInputError {
    #[error("the message is empty")]
    Blank,
    #[error(
        "the message has {units} characters (UTF-16 units); at most {max} fit one LINE message"
    )]
    TooLong { units: usize, max: usize },
}

/// The input rule for agent texts: not blank, at most [`MAX_TEXT_UNITS`] UTF-16 units, so every
/// message the desk accepts fits one LINE text object.
pub fn check_agent_text(text: &str) -> Result<(), TextInputError> {
    if text.trim().is_empty() {
        return Err(TextInputError::Blank);
    }
    let units = text_units(text);
    if units > MAX_TEXT_UNITS {
        return Err(TextInputError::TooLong {
            units,
            max: MAX_TEXT_UNITS,
        });
    }
    Ok(())
}

/// Cuts a text into parts of at most [`MAX_TEXT_UNITS`] units whose concatenation is exactly
/// `text` (nothing added, nothing dropped). A text that fits is returned whole.
///
/// Cuts fall on `char` boundaries, so never inside a surrogate pair. Within the last
/// [`SPLIT_LOOKBACK_UNITS`] units before the limit, a cut after a newline is preferred, then
/// after whitespace (the ideographic space too), then after sentence-ending punctuation
/// (`。．！？!?.`); the separator stays at the end of the earlier part. Failing those, the cut is as
/// late as possible but not inside an obvious grapheme cluster (before a combining mark,
/// variation selector, skin-tone modifier, or ZWJ, or after a ZWJ). Regional-indicator flags
/// may still be cut in a hard cut; only a 5,000-unit run without a space can hit that.
pub fn split_text(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while text_units(rest) > MAX_TEXT_UNITS {
        let cut = cut_point(rest);
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    parts.push(rest);
    parts
}

/// Byte index at which to cut `s` (which is longer than the limit): `0 < cut < s.len()` and
/// `text_units(&s[..cut]) <= MAX_TEXT_UNITS`.
fn cut_point(s: &str) -> usize {
    let preferred_from = MAX_TEXT_UNITS - SPLIT_LOOKBACK_UNITS;
    let (mut after_newline, mut after_space, mut after_sentence) = (None, None, None);
    let mut units = 0;
    let mut hard = s.len();
    for (i, c) in s.char_indices() {
        if units + c.len_utf16() > MAX_TEXT_UNITS {
            hard = i;
            break;
        }
        units += c.len_utf16();
        if units >= preferred_from {
            let end = i + c.len_utf8();
            if c == '\n' {
                after_newline = Some(end);
            } else if c.is_whitespace() {
                after_space = Some(end);
            } else if matches!(c, '。' | '．' | '！' | '？' | '!' | '?' | '.') {
                after_sentence = Some(end);
            }
        }
    }
    after_newline
        .or(after_space)
        .or(after_sentence)
        .unwrap_or_else(|| soft_hard_cut(s, hard))
}

/// Moves a hard cut back (a little) so it does not separate a character from what modifies it.
fn soft_hard_cut(s: &str, hard: usize) -> usize {
    const MAX_STEPS: usize = 32;
    let mut cut = hard;
    for _ in 0..MAX_STEPS {
        let next = s[cut..].chars().next();
        let prev = s[..cut].chars().next_back();
        let inside = next.is_some_and(extends_previous) || prev == Some('\u{200D}');
        if !inside {
            return cut;
        }
        match prev {
            Some(p) if cut - p.len_utf8() > 0 => cut -= p.len_utf8(),
            _ => break,
        }
    }
    hard
}

/// Characters that belong to the character before them (a heuristic for grapheme extenders).
fn extends_previous(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'      // combining diacritical marks
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{200D}'                 // zero-width joiner
        | '\u{20D0}'..='\u{20FF}'    // combining marks for symbols (keycap ⃣)
        | '\u{3099}'..='\u{309A}'    // combining (han)dakuten
        | '\u{FE00}'..='\u{FE0F}'    // variation selectors
        | '\u{FE20}'..='\u{FE2F}'
        | '\u{1F3FB}'..='\u{1F3FF}'  // skin tones
        | '\u{E0020}'..='\u{E007F}'  // tags (subdivision flags)
        | '\u{E0100}'..='\u{E01EF}')
}

/// A message cut into the objects it needs on its own.
struct Pieces<'a> {
    id: i64,
    pieces: Vec<OutContentRef<'a>>,
}

#[derive(Clone, Copy)]
enum OutContentRef<'a> {
    Text(&'a str),
    Image(&'a OutContent),
}

fn pieces_of(message: &Outgoing) -> Result<Pieces<'_>, PlanError> {
    let pieces = match &message.content {
        OutContent::Text(text) => {
            if text.is_empty() {
                return Err(PlanError::EmptyText {
                    message_id: message.id,
                });
            }
            let parts = split_text(text);
            if parts.len() > MAX_OBJECTS_PER_CALL {
                return Err(PlanError::TooLong {
                    message_id: message.id,
                    units: text_units(text),
                    objects: parts.len(),
                });
            }
            parts.into_iter().map(OutContentRef::Text).collect()
        }
        image @ OutContent::Image { .. } => vec![OutContentRef::Image(image)],
    };
    Ok(Pieces {
        id: message.id,
        pieces,
    })
}

/// Places all pieces of one message after `objects`, joining its first text piece to a text
/// object of an earlier message when `can_join` (same origin) and it fits. `None` when the
/// message does not fit whole.
fn place(
    objects: &[PlannedObject],
    message: &Pieces<'_>,
    can_join: bool,
) -> Option<Vec<PlannedObject>> {
    let mut out = objects.to_vec();
    for piece in &message.pieces {
        match *piece {
            OutContentRef::Text(part) => {
                let joinable = match out.last_mut() {
                    Some(PlannedObject {
                        content: OutContent::Text(text),
                        message_ids,
                    }) if message_ids.last() != Some(&message.id)
                        && can_join
                        && text_units(text) + text_units(JOIN) + text_units(part)
                            <= MAX_TEXT_UNITS =>
                    {
                        Some((text, message_ids))
                    }
                    _ => None,
                };
                if let Some((text, message_ids)) = joinable {
                    text.push_str(JOIN);
                    text.push_str(part);
                    message_ids.push(message.id);
                } else {
                    out.push(PlannedObject {
                        content: OutContent::Text(part.to_owned()),
                        message_ids: vec![message.id],
                    });
                }
            }
            OutContentRef::Image(image) => out.push(PlannedObject {
                content: image.clone(),
                message_ids: vec![message.id],
            }),
        }
        if out.len() > MAX_OBJECTS_PER_CALL {
            return None;
        }
    }
    Some(out)
}

/// How many objects `messages` need in one call on their own, in this order, texts joined
/// (a group's size). Over [`MAX_OBJECTS_PER_CALL`] means they cannot go in one call.
pub fn objects_needed(messages: &[Outgoing]) -> Result<usize, PlanError> {
    let mut objects = Vec::new();
    for m in messages {
        let pieces = pieces_of(m)?;
        objects = place_unbounded(objects, &pieces);
    }
    Ok(objects.len())
}

/// [`place`] without the object limit (for counting).
fn place_unbounded(mut objects: Vec<PlannedObject>, message: &Pieces<'_>) -> Vec<PlannedObject> {
    for piece in &message.pieces {
        let single = Pieces {
            id: message.id,
            pieces: vec![*piece],
        };
        let tail = objects.split_off(objects.len().saturating_sub(1));
        let mut placed = place(&tail, &single, true).expect("two objects fit a call");
        objects.append(&mut placed);
    }
    objects
}

/// The groups a call with `token` may carry, by priority ([`Origin`]), each as indices into
/// the queue in the order written. Desk answers bound to another token are left for it.
fn call_order(queue: &[Outgoing], token: &str) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Origin, i64, Vec<usize>)> = Vec::new();
    for (i, m) in queue.iter().enumerate() {
        if m.reply_to.as_deref().is_some_and(|t| t != token) {
            continue;
        }
        match groups
            .iter_mut()
            .find(|(origin, group, _)| *origin == m.origin && *group == m.group)
        {
            Some((_, _, members)) => members.push(i),
            None => groups.push((m.origin, m.group, vec![i])),
        }
    }
    // Stable: within an origin, the order written.
    groups.sort_by_key(|(origin, _, _)| *origin);
    groups.into_iter().map(|(_, _, members)| members).collect()
}

/// Plans one reply call (M3–M5) with `token`: whole groups by priority and in the order
/// written, as many as fit (see the [module docs](self)); `None` when there is no usable token
/// (none, used, or `now_ms` at or past [`expires_at`]) or nothing may go with it. `queue` is the
/// conversation's undelivered messages in the order written.
///
/// `handler_answered`: the agent handling the chat has answered since taking it (a message of
/// theirs reached LINE); until then kept messages go only along with the handler's own.
///
/// An `Err` names a message that can never be delivered (see the [module docs](self)); the
/// whole queue is checked first, so the error does not depend on the token.
pub fn plan_reply(
    queue: &[Outgoing],
    token: Option<&ReplyToken>,
    now_ms: i64,
    window_ms: i64,
    handler_answered: bool,
) -> Result<Option<ReplyPlan>, PlanError> {
    let messages = queue.iter().map(pieces_of).collect::<Result<Vec<_>, _>>()?;
    let Some(token) = token.filter(|t| t.is_usable(now_ms, window_ms)) else {
        return Ok(None);
    };
    let mut objects = Vec::new();
    let mut message_ids = Vec::new();
    let mut last_origin = None;
    let mut handler_placed = false;
    'groups: for group in call_order(queue, &token.token) {
        let origin = queue[group[0]].origin;
        if origin == Origin::Kept && !handler_placed && !handler_answered {
            break;
        }
        // The whole group, or (if it fits a call on its own) nothing: it waits whole.
        let mut placed = objects.clone();
        let mut previous = last_origin;
        let mut whole = true;
        for &i in &group {
            match place(&placed, &messages[i], previous == Some(origin)) {
                Some(p) => {
                    placed = p;
                    previous = Some(origin);
                }
                None => {
                    whole = false;
                    break;
                }
            }
        }
        if whole {
            objects = placed;
            last_origin = Some(origin);
            message_ids.extend(group.iter().map(|&i| queue[i].id));
            handler_placed |= origin == Origin::Handler;
            continue;
        }
        let group_messages: Vec<Outgoing> = group.iter().map(|&i| queue[i].clone()).collect();
        if objects_needed(&group_messages)? <= MAX_OBJECTS_PER_CALL {
            break;
        }
        // Larger than any call: message by message, as many as fit, then the next call.
        for &i in &group {
            match place(&objects, &messages[i], last_origin == Some(origin)) {
                Some(p) => {
                    objects = p;
                    last_origin = Some(origin);
                    message_ids.push(queue[i].id);
                }
                None => break 'groups,
            }
        }
        break;
    }
    if message_ids.is_empty() {
        return Ok(None);
    }
    Ok(Some(ReplyPlan {
        token: token.token.clone(),
        objects,
        message_ids,
    }))
}

/// Reply mode's decision for a conversation now: which of its `tokens` to use and what that
/// call carries. A desk answer's own token comes first while it is usable; otherwise (and
/// for everything else) the usable token that expires first ([`pick_token`]). A desk answer
/// whose token is no longer usable goes with the next one.
pub fn plan_next(
    queue: &[Outgoing],
    tokens: &[ReplyToken],
    now_ms: i64,
    window_ms: i64,
    handler_answered: bool,
) -> Result<Option<ReplyPlan>, PlanError> {
    let usable = |t: &str| {
        tokens
            .iter()
            .any(|x| x.token == t && x.is_usable(now_ms, window_ms))
    };
    let queue: Vec<Outgoing> = queue
        .iter()
        .cloned()
        .map(|mut m| {
            if m.reply_to.as_deref().is_some_and(|t| !usable(t)) {
                m.reply_to = None;
            }
            m
        })
        .collect();
    let bound = queue
        .iter()
        .filter_map(|m| m.reply_to.as_deref())
        .filter_map(|t| tokens.iter().find(|x| x.token == t))
        .min_by_key(|t| t.received_at_ms);
    let token = bound.or_else(|| pick_token(tokens, now_ms, window_ms));
    plan_reply(&queue, token, now_ms, window_ms, handler_answered)
}

/// Plans push mode (M2): one request per message, in the order written (see the
/// [module docs](self)).
pub fn plan_push(queue: &[Outgoing]) -> Result<Vec<PushPlan>, PlanError> {
    queue
        .iter()
        .map(|message| {
            let pieces = pieces_of(message)?;
            let objects = place(&[], &pieces, false).expect(
                "pieces_of allows at most MAX_OBJECTS_PER_CALL pieces, which fit an empty call",
            );
            Ok(PushPlan {
                message_id: message.id,
                objects,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_500_000_000_000;
    const W: i64 = DEFAULT_REPLY_WINDOW_MS;

    fn text(id: i64, s: &str) -> Outgoing {
        Outgoing::new(id, OutContent::Text(s.to_owned()))
    }

    fn image(id: i64) -> Outgoing {
        Outgoing::new(id, img(id))
    }

    /// `m` as part of group `g`.
    fn in_group(g: i64, m: Outgoing) -> Outgoing {
        Outgoing { group: g, ..m }
    }

    fn kept(m: Outgoing) -> Outgoing {
        Outgoing {
            origin: Origin::Kept,
            ..m
        }
    }

    fn img(id: i64) -> OutContent {
        OutContent::Image {
            original_url: format!("https://desk.example/m/{id}.jpg"),
            preview_url: format!("https://desk.example/m/{id}-p.jpg"),
        }
    }

    fn token(received_at_ms: i64) -> ReplyToken {
        ReplyToken {
            token: format!("tok-{received_at_ms}"),
            received_at_ms,
            used: false,
        }
    }

    fn contents(plan: &ReplyPlan) -> Vec<OutContent> {
        plan.objects.iter().map(|o| o.content.clone()).collect()
    }

    fn t(s: &str) -> OutContent {
        OutContent::Text(s.to_owned())
    }

    fn plan(queue: &[Outgoing], tok: &ReplyToken, now: i64) -> Option<ReplyPlan> {
        plan_reply(queue, Some(tok), now, W, false).unwrap()
    }

    #[test]
    fn counts_utf16_units() {
        assert_eq!(text_units(""), 0);
        assert_eq!(text_units("abc"), 3);
        assert_eq!(text_units("もしお留守でも"), 7);
        assert_eq!(text_units("😀"), 2);
        assert_eq!(text_units("👨‍👩‍👧"), 8);
    }

    #[test]
    fn the_manuals_example_text_text_image_text() {
        // The agent writes text, text, image, text after the window; the customer's next
        // message delivers them as [text\ntext, image, text] (M5).
        let queue = [
            text(1, "お問い合わせありがとうございます。"),
            text(2, "確認いたします。"),
            image(3),
            text(4, "こちらの画像をご覧ください。"),
        ];
        let p = plan(&queue, &token(T0), T0 + 100).unwrap();
        assert_eq!(
            contents(&p),
            vec![
                t("お問い合わせありがとうございます。\n確認いたします。"),
                img(3),
                t("こちらの画像をご覧ください。"),
            ]
        );
        assert_eq!(p.message_ids, vec![1, 2, 3, 4]);
        assert_eq!(p.objects[0].message_ids, vec![1, 2]);
        assert_eq!(p.token, "tok-1500000000000");
    }

    #[test]
    fn immediate_send_inside_the_window() {
        // M3: the first answer after a customer message goes out at once with its token.
        let p = plan(&[text(7, "はい")], &token(T0), T0 + 10_000).unwrap();
        assert_eq!(contents(&p), vec![t("はい")]);
        assert_eq!(p.message_ids, vec![7]);
    }

    #[test]
    fn no_plan_without_a_usable_token_or_messages() {
        let q = [text(1, "a")];
        assert_eq!(plan_reply(&q, None, T0, W, false).unwrap(), None);
        assert_eq!(
            plan(&q, &token(T0), T0 + W),
            None,
            "expired at the window's end"
        );
        assert!(plan(&q, &token(T0), T0 + W - 1).is_some());
        let used = ReplyToken {
            used: true,
            ..token(T0)
        };
        assert_eq!(plan(&q, &used, T0), None);
        assert_eq!(plan(&[], &token(T0), T0), None);
        assert_eq!(expires_at(&token(T0), W), T0 + W);
    }

    #[test]
    fn pick_token_prefers_the_usable_one_that_expires_first() {
        let tokens = [
            ReplyToken {
                used: true,
                ..token(T0 + 30_000)
            },
            token(T0),
            token(T0 + 20_000),
            token(T0 + 10_000),
        ];
        assert_eq!(
            pick_token(&tokens, T0 + 55_000, W).unwrap().received_at_ms,
            T0 + 10_000
        );
        assert_eq!(
            pick_token(&tokens, T0 + 1_000, W).unwrap().received_at_ms,
            T0
        );
        assert!(pick_token(&tokens, T0 + 80_000, W).is_none());
    }

    #[test]
    fn at_most_five_objects_the_rest_waits() {
        // text, image ×5, text: the first call carries text + 4 images.
        let mut queue = vec![text(1, "a")];
        queue.extend((2..=6).map(image));
        queue.push(text(7, "b"));
        let p = plan(&queue, &token(T0), T0).unwrap();
        assert_eq!(p.objects.len(), 5);
        assert_eq!(p.message_ids, vec![1, 2, 3, 4, 5]);
        let p = plan(&queue[5..], &token(T0), T0).unwrap();
        assert_eq!(contents(&p), vec![img(6), t("b")]);
    }

    #[test]
    fn one_press_text_then_image_goes_in_one_call_in_the_order_composed() {
        // Issue 10, item 1: 見積書を添付します。 + an image, one press of 送信.
        let queue = [
            in_group(1, text(1, "見積書を添付します。")),
            in_group(1, image(2)),
        ];
        let p = plan(&queue, &token(T0), T0 + 100).unwrap();
        assert_eq!(contents(&p), vec![t("見積書を添付します。"), img(2)]);
        assert_eq!(p.message_ids, vec![1, 2]);
    }

    #[test]
    fn a_group_that_fits_a_call_is_never_split_across_tokens() {
        // Four images already wait; the next press (text + image) needs two slots, one is
        // left: the group waits whole for the next token instead of leaving its image behind.
        let mut queue: Vec<Outgoing> = (1..=4).map(image).collect();
        queue.push(in_group(5, text(5, "こちらもご確認ください。")));
        queue.push(in_group(5, image(6)));
        let p = plan(&queue, &token(T0), T0).unwrap();
        assert_eq!(p.message_ids, vec![1, 2, 3, 4]);
        let p = plan(&queue[4..], &token(T0), T0).unwrap();
        assert_eq!(p.message_ids, vec![5, 6]);
        assert_eq!(objects_needed(&queue[4..]).unwrap(), 2);
    }

    #[test]
    fn a_group_larger_than_a_call_goes_message_by_message() {
        let queue: Vec<Outgoing> = (1..=7).map(|i| in_group(1, image(i))).collect();
        assert_eq!(objects_needed(&queue).unwrap(), 7);
        let p = plan(&queue, &token(T0), T0).unwrap();
        assert_eq!(p.message_ids, vec![1, 2, 3, 4, 5]);
        let p = plan(&queue[5..], &token(T0), T0).unwrap();
        assert_eq!(p.message_ids, vec![6, 7]);
    }

    #[test]
    fn kept_messages_never_take_the_token_alone_and_follow_the_handlers_answer() {
        // Agent A completed the chat with two texts waiting (そのまま送る): nobody handles
        // the chat, so the customer's next message does not release them.
        let a1 = kept(text(1, "Aの回答1"));
        let a2 = kept(text(2, "Aの回答2"));
        assert_eq!(plan(&[a1.clone(), a2.clone()], &token(T0), T0), None);
        // Agent B takes the chat and answers: B's answer goes first, A's follow, not joined
        // with B's (other agent, other bubble).
        let b = text(3, "Bです。ご用件を承ります。");
        let p = plan(&[a1, a2, b], &token(T0), T0).unwrap();
        assert_eq!(p.message_ids, vec![3, 1, 2]);
        assert_eq!(
            contents(&p),
            vec![t("Bです。ご用件を承ります。"), t("Aの回答1\nAの回答2")]
        );
    }

    #[test]
    fn once_the_handler_answered_kept_messages_go_on_their_own() {
        // A kept press of five objects can never ride with an answer: after B's answer went,
        // it takes the next token.
        let queue: Vec<Outgoing> = std::iter::once(in_group(1, text(1, "A")))
            .chain((2..=5).map(|i| in_group(1, image(i))))
            .map(kept)
            .collect();
        assert_eq!(plan(&queue, &token(T0), T0), None);
        let p = plan_reply(&queue, Some(&token(T0)), T0, W, true)
            .unwrap()
            .unwrap();
        assert_eq!(p.message_ids, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_handlers_answer_is_never_starved_by_a_full_kept_queue() {
        let mut queue: Vec<Outgoing> = (1..=5).map(|i| kept(image(i))).collect();
        queue.push(in_group(6, text(6, "B")));
        queue.push(in_group(6, image(7)));
        let p = plan(&queue, &token(T0), T0).unwrap();
        assert_eq!(p.message_ids, vec![6, 7, 1, 2, 3]);
    }

    #[test]
    fn a_desk_answer_rides_its_own_token_first() {
        let confirm = Outgoing {
            origin: Origin::Desk,
            reply_to: Some(token(T0 + 5_000).token),
            ..text(9, "連携が完了しました。")
        };
        let queue = [text(1, "お待たせしました。"), confirm.clone()];
        let tokens = [token(T0), token(T0 + 5_000)];
        let p = plan_next(&queue, &tokens, T0 + 6_000, W, false)
            .unwrap()
            .unwrap();
        assert_eq!(p.token, tokens[1].token, "the passcode message's own token");
        assert_eq!(p.message_ids, vec![9, 1]);
        assert_eq!(
            contents(&p),
            vec![t("連携が完了しました。"), t("お待たせしました。")]
        );
        // With another token, the bound answer is left for its own.
        let p = plan(&queue, &tokens[0], T0 + 6_000).unwrap();
        assert_eq!(p.message_ids, vec![1]);
        // Its token expired: it goes with the next one.
        let later = [token(T0 + W + 10_000)];
        let p = plan_next(&[confirm], &later, T0 + W + 11_000, W, false)
            .unwrap()
            .unwrap();
        assert_eq!(p.message_ids, vec![9]);
    }

    #[test]
    fn a_join_that_would_exceed_the_limit_starts_a_new_object() {
        let a = "a".repeat(3000);
        let b = "b".repeat(1999);
        let c = "c".to_owned();
        // 3000 + 1 + 1999 = 5000 fits exactly; the next one does not.
        let p = plan(&[text(1, &a), text(2, &b), text(3, &c)], &token(T0), T0).unwrap();
        assert_eq!(contents(&p), vec![t(&format!("{a}\n{b}")), t(&c)]);
        for o in &p.objects {
            let OutContent::Text(s) = &o.content else {
                unreachable!()
            };
            assert!(text_units(s) <= MAX_TEXT_UNITS);
        }
    }

    #[test]
    fn a_long_message_is_split_and_delivered_whole() {
        let long = format!("{}\n{}", "あ".repeat(4600), "い".repeat(3000));
        let p = plan(&[text(1, &long), text(2, "end")], &token(T0), T0).unwrap();
        // Cut after the newline; the second part absorbs the next text.
        assert_eq!(
            contents(&p),
            vec![
                t(&format!("{}\n", "あ".repeat(4600))),
                t(&format!("{}\nend", "い".repeat(3000))),
            ]
        );
        assert_eq!(p.objects[0].message_ids, vec![1]);
        assert_eq!(p.objects[1].message_ids, vec![1, 2]);
        assert_eq!(p.message_ids, vec![1, 2]);
    }

    #[test]
    fn a_long_message_that_does_not_fit_the_slots_left_waits() {
        // 3 images, then a message needing 3 objects: only 2 slots left, so it waits — and the
        // short text after it must not jump ahead.
        let long = "x".repeat(12_000);
        let queue = [
            image(1),
            image(2),
            image(3),
            text(4, &long),
            text(5, "short"),
        ];
        let p = plan(&queue, &token(T0), T0).unwrap();
        assert_eq!(p.message_ids, vec![1, 2, 3]);
        assert_eq!(p.objects.len(), 3);
        let p = plan(&queue[3..], &token(T0), T0).unwrap();
        assert_eq!(p.message_ids, vec![4, 5]);
        assert_eq!(p.objects.len(), 3);
    }

    #[test]
    fn undeliverable_messages_are_reported() {
        let huge = "x".repeat(5 * MAX_TEXT_UNITS + 1);
        assert_eq!(
            plan_reply(
                &[text(1, "ok"), text(2, &huge)],
                Some(&token(T0)),
                T0,
                W,
                false
            ),
            Err(PlanError::TooLong {
                message_id: 2,
                units: 25_001,
                objects: 6
            })
        );
        assert_eq!(
            plan_reply(&[text(3, "")], None, T0, W, false),
            Err(PlanError::EmptyText { message_id: 3 })
        );
        assert!(plan_push(&[text(2, &huge)]).is_err());
        // Exactly 25,000 units of a hard-cut text still fits.
        let max = "x".repeat(5 * MAX_TEXT_UNITS);
        assert_eq!(
            plan(&[text(4, &max)], &token(T0), T0)
                .unwrap()
                .objects
                .len(),
            5
        );
    }

    #[test]
    fn split_prefers_newline_then_space_then_sentence_end() {
        let s = format!(
            "{}\n{} {}",
            "a".repeat(4600),
            "b".repeat(200),
            "c".repeat(800)
        );
        let parts = split_text(&s);
        assert_eq!(parts.len(), 2);
        assert!(
            parts[0].ends_with('\n'),
            "newline preferred over the later space"
        );

        let s = format!("{} {}", "a".repeat(4800), "b".repeat(800));
        assert_eq!(split_text(&s)[0], format!("{} ", "a".repeat(4800)));

        let s = format!("{}。{}", "あ".repeat(4700), "い".repeat(800));
        assert_eq!(split_text(&s)[0], format!("{}。", "あ".repeat(4700)));

        // A newline too far back (before the lookback) is not used: hard cut at the limit.
        let s = format!("{}\n{}", "a".repeat(100), "b".repeat(6000));
        assert_eq!(text_units(split_text(&s)[0]), MAX_TEXT_UNITS);
    }

    #[test]
    fn split_never_cuts_a_surrogate_pair_or_an_emoji_sequence() {
        // 4999 units then emoji: the 2-unit emoji does not fit in the last unit.
        let s = format!("{}{}", "a".repeat(4999), "😀".repeat(10));
        let parts = split_text(&s);
        assert_eq!(parts[0], "a".repeat(4999));
        assert_eq!(parts.concat(), s);

        // A family emoji (ZWJ sequence) straddling the limit moves whole to the next part.
        let family = "👨\u{200D}👩\u{200D}👧";
        let s = format!("{}{}{}", "a".repeat(4996), family, "b".repeat(100));
        let parts = split_text(&s);
        assert_eq!(parts[0], "a".repeat(4996));
        assert!(parts[1].starts_with(family));

        // A kana with a combining dakuten stays together.
        let s = format!("{}か\u{3099}{}", "a".repeat(4999), "b".repeat(10));
        assert_eq!(split_text(&s)[0], "a".repeat(4999));
    }

    #[test]
    fn push_is_one_request_per_message() {
        let long = "x".repeat(7_000);
        let plans = plan_push(&[text(1, "a"), text(2, "b"), image(3), text(4, &long)]).unwrap();
        assert_eq!(
            plans.iter().map(|p| p.message_id).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(plans[0].objects[0].content, t("a"));
        assert_eq!(plans[1].objects[0].content, t("b"));
        assert_eq!(plans[2].objects[0].content, img(3));
        assert_eq!(plans[3].objects.len(), 2);
        assert!(plans[3].objects.iter().all(|o| o.message_ids == vec![4]));
    }

    #[test]
    fn agent_input_rule() {
        assert_eq!(check_agent_text("こんにちは"), Ok(()));
        assert_eq!(check_agent_text(" \n　"), Err(TextInputError::Blank));
        assert_eq!(check_agent_text(&"😀".repeat(2500)), Ok(()));
        assert_eq!(
            check_agent_text(&"😀".repeat(2501)),
            Err(TextInputError::TooLong {
                units: 5002,
                max: 5000
            })
        );
    }
}

#[cfg(test)]
mod split_proptests {
    use super::*;
    use proptest::prelude::*;

    /// Long texts built from runs of awkward characters.
    fn long_text() -> impl Strategy<Value = String> {
        let ch = prop::sample::select(vec![
            'a', ' ', '\n', 'あ', '。', '😀', '\u{200D}', '\u{3099}', '\u{FE0F}', '　', '🇯',
        ]);
        prop::collection::vec((ch, 1usize..3000), 1..10).prop_map(|runs| {
            runs.into_iter()
                .map(|(c, n)| c.to_string().repeat(n))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn split_keeps_every_character_and_respects_the_limit(s in long_text()) {
            let parts = split_text(&s);
            prop_assert_eq!(parts.concat(), s.clone());
            for p in &parts {
                prop_assert!(!p.is_empty());
                prop_assert!(text_units(p) <= MAX_TEXT_UNITS);
            }
            // Every part but the last is at least the lookback short of the limit, minus a
            // soft hard cut's few characters: the cut never wastes whole objects.
            for p in &parts[..parts.len() - 1] {
                prop_assert!(text_units(p) >= MAX_TEXT_UNITS - SPLIT_LOOKBACK_UNITS - 64);
            }
            if text_units(&s) <= MAX_TEXT_UNITS {
                prop_assert_eq!(parts.len(), 1);
            }
        }
    }
}
