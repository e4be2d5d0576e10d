//! The write side of a chat: sending text and images (C4, C6, C7) — one press of 送信 as one
//! group —, resending a failed message, taking back (取消) one that waits. Each message is
//! queued in the outbox (so nothing is lost), then one delivery attempt runs at once so the
//! answer can already say `sent` — or `unsent` when it waits for a reply token (M4). Errors
//! carry a locale key (the UI words them in the agent's language).

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use axum::{Json, Router};
use desk_core::MessageKind;
use desk_core::planner::{MAX_OBJECTS_PER_CALL, TextInputError, check_agent_text};
use desk_core::status::{ConversationState, ConversationStatus};
use desk_store::messages::MessageRow;
use desk_store::outbox::{CancelOutcome, HandlerWrite, NewOutgoing, NotHandler};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::extract::Path;
use super::views::MessageView;
use crate::auth::AuthUser;
use crate::error::{ApiResult, ErrorBody};
use crate::images::{self, ImageError};
use crate::{ApiError, AppState, sender};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/conversations/{id}/messages",
            post(send).layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES)),
        )
        .route("/messages/{id}/resend", post(resend))
        .route("/messages/{id}/cancel", post(cancel))
}

/// One request carries at most this much: one image of the largest size, and its text.
const MAX_REQUEST_BYTES: usize = images::MAX_UPLOAD_BYTES + 1024 * 1024;

/// One text.
#[derive(Deserialize, ToSchema)]
#[schema(as = SendText)]
pub(crate) struct TextBody {
    /// At most 5000 characters (LINE counts UTF-16 units).
    #[schema(max_length = 5000)]
    text: String,
}

/// One press of 送信: parts named `text` or `image`, repeated, in the order composed (at most
/// 5 parts, at most 20 MB in all).
#[derive(ToSchema)]
#[schema(as = SendParts)]
#[allow(dead_code)] // describes the multipart form `send` reads part by part
pub(crate) struct SendForm {
    /// A text part (its place among the parts is its place in the group).
    text: Option<String>,
    /// An image part (JPEG, PNG, GIF, WebP or BMP; re-encoded for LINE).
    #[schema(value_type = Option<String>, format = Binary)]
    image: Option<Vec<u8>>,
}

/// What one press of 送信 sent: one message, or the group.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Sent {
    One(Box<MessageView>),
    Group(SentGroup),
}

/// Several messages sent as one group.
#[derive(Serialize, ToSchema)]
pub(crate) struct SentGroup {
    /// The id of the group's first message (every message's `group_id`).
    group_id: i64,
    messages: Vec<MessageView>,
}

/// How long the API waits for the first delivery attempt before answering `unsent`.
const FIRST_ATTEMPT_WAIT: Duration = Duration::from_secs(5);

/// One part of a press of 送信, as received.
enum Part {
    Text(String),
    Image(bytes::Bytes),
}

/// A part checked and ready to write.
enum Ready {
    Text(String),
    Image { payload: String, media_id: i64 },
}

fn bad(key: &'static str, args: Vec<(&'static str, String)>) -> ApiError {
    ApiError::localized(StatusCode::BAD_REQUEST, "bad_request", key, args)
}

/// Send (送信): one text, or one press of 送信 — a text and images — as one group
///
/// JSON `{"text"}` sends one text. Multipart sends one press: `text` and `image` parts in
/// the order composed (at most 5 parts, at most 20 MB in all); its messages are written
/// together (all or nothing), go in that order, and in Reply mode travel in one reply call
/// whenever they fit (never split across reply tokens). A single part answers the message;
/// several answer `{group_id, messages}`. Only the handling agent of an in-progress chat may
/// send (409 `held_by_other` | `not_in_progress`). One delivery attempt runs before the
/// answer: `delivery` is `sent`, or `unsent` with `waiting_reason`. The right to send is
/// checked before an uploaded image is read, decoded or stored. Images are sniffed from
/// their bytes; at most 20 MB and 25 megapixels (the size is read from the header before
/// decoding); one image is decoded at a time, a few more wait, beyond that 503 `busy`.
/// (C6, C7; issue 10)
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "sending",
    params(("id" = i64, Path, description = "Conversation id")),
    request_body(content(
        (TextBody = "application/json"),
        (SendForm = "multipart/form-data"),
    )),
    responses(
        (status = 201, description = "The message, or the group", body = Sent),
        (status = 400, description = "Blank or too long a text, no parts, more than 5, an unreadable image or form", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 409, description = "`held_by_other` | `not_in_progress`: only the handling agent may send", body = ErrorBody),
        (status = 413, description = "`too_large` | `too_many_pixels`", body = ErrorBody),
        (status = 415, description = "`not_an_image`, or neither JSON nor multipart", body = ErrorBody),
        (status = 503, description = "`busy`: too many images being decoded; try again", body = ErrorBody),
    ))]
pub(crate) async fn send(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
    req: Request,
) -> ApiResult<(StatusCode, Json<Sent>)> {
    let is_multipart = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let parts = if is_multipart {
        // The right to send first (issue 9, item 8): nothing is read, decoded or stored for
        // a chat that does not exist or that the caller does not hold. queue_group checks
        // again atomically; a chat released in between leaves its files removed.
        may_send(&st, id, user.id).await?;
        let mut form = Multipart::from_request(req, &st)
            .await
            .map_err(|_| bad("send-error-bad_form", vec![]))?;
        let mut parts = Vec::new();
        while let Some(field) = form.next_field().await.map_err(multipart_error)? {
            match field.name() {
                Some("text") => {
                    let text = field.text().await.map_err(multipart_error)?;
                    parts.push(Part::Text(text));
                }
                Some("image") => {
                    let bytes = field.bytes().await.map_err(multipart_error)?;
                    if !bytes.is_empty() {
                        parts.push(Part::Image(bytes));
                    }
                }
                _ => {}
            }
            if parts.len() > MAX_OBJECTS_PER_CALL {
                return Err(too_many());
            }
        }
        parts
    } else {
        let Json(body) = Json::<TextBody>::from_request(req, &st)
            .await
            .map_err(|_| bad("send-error-bad_json", vec![]))?;
        vec![Part::Text(body.text)]
    };
    if parts.is_empty() {
        return Err(bad("send-error-empty", vec![]));
    }
    // Everything is checked before anything is written: a press goes whole or not at all.
    for part in &parts {
        if let Part::Text(text) = part {
            check_agent_text(text).map_err(text_error)?;
        }
    }
    let now = st.now_ms();
    let mut ready = Vec::with_capacity(parts.len());
    // Files saved for this press: removed again if it cannot be queued (they belong to no
    // message then, and are public).
    let mut saved = Vec::new();
    for part in parts {
        ready.push(match part {
            Part::Text(text) => Ready::Text(text),
            Part::Image(bytes) => match store_image(&st, bytes, now, &mut saved).await {
                Ok((payload, media_id)) => Ready::Image { payload, media_id },
                Err(e) => {
                    remove_files(&st, &saved).await;
                    return Err(e);
                }
            },
        });
    }
    let keys: Vec<String> = ready
        .iter()
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let new: Vec<(NewOutgoing<'_>, &str)> = ready
        .iter()
        .zip(&keys)
        .map(|(r, key)| {
            let m = match r {
                Ready::Text(text) => NewOutgoing {
                    kind: MessageKind::Text,
                    text: Some(text),
                    payload: None,
                    media_id: None,
                },
                Ready::Image { payload, media_id } => NewOutgoing {
                    kind: MessageKind::Image,
                    text: None,
                    payload: Some(payload),
                    media_id: Some(*media_id),
                },
            };
            (m, key.as_str())
        })
        .collect();
    let queued = st.store.queue_group(id, user.id, &new, now).await;
    if !matches!(queued, Ok(HandlerWrite::Queued(_))) {
        remove_files(&st, &saved).await;
    }
    let ids = match queued {
        Ok(HandlerWrite::Queued(ids)) => ids,
        Ok(HandlerWrite::NotHandler(e)) => return Err(not_handler(&st, e).await),
        Ok(HandlerWrite::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    attempt_now(&st, id, *ids.last().expect("at least one part")).await;
    let mut views = Vec::with_capacity(ids.len());
    for message_id in &ids {
        let row = st.store.message(*message_id).await?.ok_or_else(not_found)?;
        views.push(message_view(&st, row).await?);
    }
    let body = if views.len() == 1 {
        Sent::One(Box::new(views.remove(0)))
    } else {
        Sent::Group(SentGroup {
            group_id: ids[0],
            messages: views,
        })
    };
    Ok((StatusCode::CREATED, Json(body)))
}

/// A message as the API shows it, with why it waits.
pub async fn message_view(st: &AppState, row: MessageRow) -> ApiResult<MessageView> {
    let state = st
        .store
        .send_context(row.conversation_id)
        .await?
        .map(|c| c.state)
        .unwrap_or_default();
    Ok(MessageView::with_wait(
        row,
        st.config.time_zone,
        st.line.current().mode,
        &state,
        st.now_ms(),
    ))
}

/// Sniffs, re-encodes and stores an agent's image (public, for LINE to fetch); the payload
/// the sender needs and the original's media id.
/// Every file saved is pushed onto `saved` (for [`remove_files`]).
async fn store_image(
    st: &AppState,
    bytes: bytes::Bytes,
    now: i64,
    saved: &mut Vec<(i64, String)>,
) -> ApiResult<(String, i64)> {
    // Bounded: one decode at a time, with a memory limit (issue 9, item 8).
    let prepared = st.images.prepare(bytes).await.map_err(image_error)?;
    let (original_id, original_key) = st
        .media
        .save(
            &st.store,
            &prepared.original,
            prepared.original_type,
            true,
            now,
        )
        .await
        .map_err(ApiError::internal)?;
    saved.push((original_id, original_key.clone()));
    let (preview_id, preview_key) = st
        .media
        .save(
            &st.store,
            &prepared.preview,
            prepared.preview_type,
            true,
            now,
        )
        .await
        .map_err(ApiError::internal)?;
    saved.push((preview_id, preview_key.clone()));
    let payload = json!({"original_key": original_key, "preview_key": preview_key}).to_string();
    Ok((payload, original_id))
}

/// Removes the files of a press that was not queued.
async fn remove_files(st: &AppState, saved: &[(i64, String)]) {
    for (media_id, key) in saved {
        if let Err(e) = st.media.delete(&st.store, *media_id, key).await {
            tracing::warn!(%e, "could not remove an unsent upload");
        }
    }
}

fn too_many() -> ApiError {
    bad(
        "send-error-too_many",
        vec![("max", MAX_OBJECTS_PER_CALL.to_string())],
    )
}

fn not_found() -> ApiError {
    ApiError::localized(
        StatusCode::NOT_FOUND,
        "not_found",
        "send-error-not_found",
        vec![],
    )
}

fn text_error(e: TextInputError) -> ApiError {
    match e {
        TextInputError::Blank => bad("send-error-blank", vec![]),
        TextInputError::TooLong { units, max } => bad(
            "send-error-too_long",
            vec![("units", units.to_string()), ("max", max.to_string())],
        ),
    }
}

/// One delivery attempt right away, in its own task: if LINE is slow the answer comes back
/// `unsent` while the attempt finishes in the background (never abandoned half-way). When
/// the worker is already sending for this chat, waits for it to settle this message.
async fn attempt_now(st: &AppState, conversation_id: i64, message_id: i64) {
    let deadline = tokio::time::Instant::now() + FIRST_ATTEMPT_WAIT;
    let task = tokio::spawn(sender::send_now(st.clone(), conversation_id));
    match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(false)) => {}
        _ => return,
    }
    // Another worker holds the chat: wait until it has looked at this message (sent it,
    // failed it, or put it back to wait), which may already have happened.
    let mut changes = st.store.notifier.subscribe();
    loop {
        match st.store.outgoing_settled(message_id).await {
            Ok(false) => {}
            _ => return,
        }
        let tick = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
        match tokio::time::timeout_at(tick, changes.recv()).await {
            Err(_) if tick == deadline => return,
            _ => {}
        }
    }
}

/// 再送: queue a failed or uncertain message again (the handling agent only)
#[utoipa::path(post, path = "/messages/{id}/resend", tag = "sending",
    params(("id" = i64, Path, description = "Message id")),
    responses(
        (status = 200, description = "The message", body = MessageView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such message, or not one to resend", body = ErrorBody),
        (status = 409, description = "`held_by_other` | `not_in_progress`: only the handling agent may resend", body = ErrorBody),
    ))]
pub(crate) async fn resend(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<MessageView>> {
    let retry_key = uuid::Uuid::new_v4().to_string();
    let conversation_id = match st
        .store
        .resend(id, user.id, &retry_key, st.now_ms())
        .await?
    {
        HandlerWrite::Queued(c) => c,
        HandlerWrite::NotHandler(e) => return Err(not_handler(&st, e).await),
        HandlerWrite::NotFound => return Err(not_found()),
    };
    attempt_now(&st, conversation_id, id).await;
    let row = st.store.message(id).await?.ok_or_else(not_found)?;
    Ok(Json(message_view(&st, row).await?))
}

/// 取消: take back a message that still waits
///
/// Its author may at any time, the agent handling the chat now may (messages kept from an
/// earlier handling), admins may. It stays in the history as `cancelled` and is never sent.
/// 409 `already_sending` once a request carrying it is under way (it can no longer be taken
/// back), 409 `not_waiting` when it no longer waits, 403 for anyone else.
#[utoipa::path(post, path = "/messages/{id}/cancel", tag = "sending",
    params(("id" = i64, Path, description = "Message id")),
    responses(
        (status = 200, description = "The message, cancelled", body = MessageView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not the author, the handling agent or an admin", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody),
        (status = 409, description = "`already_sending` | `not_waiting`", body = ErrorBody),
    ))]
pub(crate) async fn cancel(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<MessageView>> {
    let outcome = st
        .store
        .cancel_message(id, user.id, user.is_admin(), st.now_ms())
        .await?;
    let conflict = |code, key| ApiError::localized(StatusCode::CONFLICT, code, key, vec![]);
    match outcome {
        CancelOutcome::Cancelled { .. } => {}
        CancelOutcome::AlreadySending => {
            return Err(conflict("already_sending", "send-error-already_sending"));
        }
        CancelOutcome::NotWaiting => return Err(conflict("not_waiting", "send-error-not_waiting")),
        CancelOutcome::NotAllowed => {
            return Err(ApiError::localized(
                StatusCode::FORBIDDEN,
                "forbidden",
                "send-error-cancel_not_allowed",
                vec![],
            ));
        }
        CancelOutcome::NotFound => return Err(not_found()),
    }
    let row = st.store.message(id).await?.ok_or_else(not_found)?;
    Ok(Json(message_view(&st, row).await?))
}

/// 404 for a chat that does not exist, 409 unless `agent_id` is its handling agent (C4).
async fn may_send(st: &AppState, conversation_id: i64, agent_id: i64) -> ApiResult<()> {
    let conv = st
        .store
        .conversation(conversation_id)
        .await?
        .ok_or_else(not_found)?;
    let state = ConversationState {
        status: conv.status,
        agent_id: conv.agent_id,
        started_at: conv.started_at,
    };
    match desk_core::status::can_send(&state, agent_id) {
        Ok(()) => Ok(()),
        Err(_) => Err(not_handler(
            st,
            NotHandler {
                status: conv.status,
                agent_id: conv.agent_id,
            },
        )
        .await),
    }
}

/// 409: only the handling agent of an in-progress chat may send (C4). The message names
/// who holds it; the UI shows it.
pub async fn not_handler(st: &AppState, e: NotHandler) -> ApiError {
    match (e.status, e.agent_id) {
        (ConversationStatus::InProgress, Some(agent)) => held_by(st, agent).await,
        _ => ApiError::localized(
            StatusCode::CONFLICT,
            "not_in_progress",
            "send-error-not_in_progress",
            vec![],
        ),
    }
}

fn image_error(e: ImageError) -> ApiError {
    match e {
        ImageError::TooLarge => ApiError::localized(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "send-error-too_large",
            vec![("mb", (images::MAX_UPLOAD_BYTES / 1024 / 1024).to_string())],
        ),
        ImageError::NotAnImage => ApiError::localized(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_an_image",
            "send-error-not_an_image",
            vec![],
        ),
        ImageError::Unreadable(why) => {
            tracing::info!(%why, "an unreadable image was refused");
            bad("send-error-unreadable", vec![])
        }
        ImageError::TooManyPixels => ApiError::localized(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_pixels",
            "sec-upload-too_many_pixels",
            vec![],
        ),
        ImageError::Busy => ApiError::localized(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "sec-upload-busy",
            vec![],
        ),
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::localized(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "send-error-too_large",
            vec![("mb", (images::MAX_UPLOAD_BYTES / 1024 / 1024).to_string())],
        )
    } else {
        bad("send-error-bad_form", vec![])
    }
}

/// 409 naming the agent who holds the chat.
pub async fn held_by(st: &AppState, agent_id: i64) -> ApiError {
    let who = match st.store.user_by_id(agent_id).await {
        Ok(Some(u)) => u.name,
        _ => format!("#{agent_id}"),
    };
    ApiError::localized(
        StatusCode::CONFLICT,
        "held_by_other",
        "send-error-held_by",
        vec![("agent", who)],
    )
}
