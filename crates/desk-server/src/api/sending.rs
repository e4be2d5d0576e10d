//! The write side of a chat: sending text and images (C4, C6, C7), resending a failed
//! message. Each message is queued in the outbox (so nothing is lost), then one delivery
//! attempt runs at once so the answer can already say `sent` — or `unsent` when it waits
//! for a reply token (M4).

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use axum::{Json, Router};
use desk_store::outbox::{NewOutgoing, NotHandler};
use serde::Deserialize;
use serde_json::json;

use super::views::MessageView;
use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::images::{self, ImageError};
use crate::{ApiError, AppState, sender};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/conversations/{id}/messages",
            post(send).layer(DefaultBodyLimit::max(images::MAX_UPLOAD_BYTES + 64 * 1024)),
        )
        .route("/messages/{id}/resend", post(resend))
}

#[derive(Deserialize)]
struct TextBody {
    text: String,
}

/// How long the API waits for the first delivery attempt before answering `unsent`.
const FIRST_ATTEMPT_WAIT: Duration = Duration::from_secs(5);

async fn send(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
    req: Request,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let is_multipart = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let retry_key = uuid::Uuid::new_v4().to_string();
    let queued = if is_multipart {
        let mut form = Multipart::from_request(req, &st)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let mut image = None;
        while let Some(field) = form.next_field().await.map_err(multipart_error)? {
            if field.name() == Some("image") {
                image = Some(field.bytes().await.map_err(multipart_error)?);
            }
        }
        let bytes = image
            .filter(|b| !b.is_empty())
            .ok_or_else(|| ApiError::bad_request("choose an image file (form field `image`)"))?;
        let prepared = tokio::task::spawn_blocking(move || images::prepare(&bytes))
            .await
            .map_err(ApiError::internal)?
            .map_err(image_error)?;
        let now = st.now_ms();
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
        let (_, preview_key) = st
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
        let payload = json!({"original_key": original_key, "preview_key": preview_key}).to_string();
        st.store
            .queue_outgoing(
                id,
                user.id,
                NewOutgoing {
                    kind: "image",
                    text: None,
                    payload: Some(&payload),
                    media_id: Some(original_id),
                },
                &retry_key,
                now,
            )
            .await?
    } else {
        let Json(body) = Json::<TextBody>::from_request(req, &st)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        desk_core::planner::check_agent_text(&body.text)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        st.store
            .queue_outgoing(
                id,
                user.id,
                NewOutgoing {
                    kind: "text",
                    text: Some(&body.text),
                    payload: None,
                    media_id: None,
                },
                &retry_key,
                st.now_ms(),
            )
            .await?
    };
    let message_id = match queued {
        Ok(id) => id,
        Err(e) => return Err(not_handler(&st, e).await),
    };
    attempt_now(&st, id, message_id).await;
    let row = st
        .store
        .message(message_id)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    Ok((
        StatusCode::CREATED,
        Json(MessageView::new(row, st.config.time_zone)),
    ))
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

async fn resend(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<MessageView>> {
    let retry_key = uuid::Uuid::new_v4().to_string();
    let conversation_id = match st.store.resend(id, user.id, &retry_key, st.now_ms()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(not_handler(&st, e).await),
        Err(desk_store::StoreError::NotFound) => return Err(ApiError::not_found("message")),
        Err(e) => return Err(e.into()),
    };
    attempt_now(&st, conversation_id, id).await;
    let row = st
        .store
        .message(id)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    Ok(Json(MessageView::new(row, st.config.time_zone)))
}

/// 409: only the handling agent of an in-progress chat may send (C4). The message names
/// who holds it; the UI shows it.
pub async fn not_handler(st: &AppState, e: NotHandler) -> ApiError {
    match (e.status.as_str(), e.agent_id) {
        ("in_progress", Some(agent)) => held_by(st, agent).await,
        _ => ApiError::conflict(
            "not_in_progress",
            "press 対応中 first: only the handling agent of an in-progress chat can send",
        ),
    }
}

fn image_error(e: ImageError) -> ApiError {
    match e {
        ImageError::TooLarge => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
        }
        ImageError::NotAnImage => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_an_image",
            e.to_string(),
        ),
        ImageError::Unreadable(_) => ApiError::bad_request(e.to_string()),
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "too_large",
            format!(
                "the file is larger than {} MB",
                images::MAX_UPLOAD_BYTES / 1024 / 1024
            ),
        )
    } else {
        ApiError::bad_request(e.body_text())
    }
}

/// 409 naming the agent who holds the chat.
pub async fn held_by(st: &AppState, agent_id: i64) -> ApiError {
    let who = match st.store.user_by_id(agent_id).await {
        Ok(Some(u)) => format!("{} ({})", u.name, u.login),
        _ => format!("agent {agent_id}"),
    };
    ApiError::conflict(
        "held_by_other",
        format!("{who} is handling this chat (対応中); nobody else can take it or send until 完了"),
    )
}
