//! How the API document (api/doc.rs) describes the values the desk sends as plain strings:
//! desk-core's enums (status, delivery, direction, …) from their own `ALL` lists, so desk-core
//! needs no utoipa and a value added there is in the document at once; and the strings the
//! store keeps as text (message type, media state, history action…) by the values the desk
//! writes. Used by the views (`api/`), the query types (`input/`) and the error body.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};

/// A string schema with a fixed set of values, named `$name` in the document; `$values`
/// is evaluated when the document is built (e.g. a desk-core enum's `ALL`).
macro_rules! text_enum_schema {
    ($(#[doc = $doc:literal])+ $marker:ident as $name:literal = $values:expr) => {
        $(#[doc = $doc])+
        pub struct $marker;

        impl utoipa::PartialSchema for $marker {
            fn schema() -> RefOr<Schema> {
                let values: Vec<&'static str> = $values;
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(values))
                    .description(Some(concat!($($doc, "\n"),+).trim()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $marker {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

text_enum_schema! {
    /// 未読 | 対応中 | 完了.
    StatusSchema as "ConversationStatus" =
        desk_core::ConversationStatus::ALL.iter().map(|v| v.as_str()).collect()
}

text_enum_schema! {
    /// `in`: from the customer; `out`: to LINE; `system`: a line the desk wrote into the chat,
    /// e.g. after a LINE passcode linked the user (details: {event: customer_linked, via,
    /// customer_id, customer_code, customer_name}).
    DirectionSchema as "Direction" =
        desk_core::Direction::ALL.iter().map(|v| v.as_str()).collect()
}

text_enum_schema! {
    /// The exact delivery state: as `delivery`, with `uncertain` where LINE may or may not
    /// have delivered a reply (shown as failed, with a resend button).
    DeliverySchema as "DeliveryState" =
        desk_core::Delivery::ALL.iter().map(|v| v.as_str()).collect()
}

text_enum_schema! {
    /// What the history shows: `received` | `sent` | `unsent` (未送信) | `failed` |
    /// `cancelled` (取消: taken back while it waited; never sent). An uncertain reply is
    /// `failed` here.
    DeliveryShownSchema as "Delivery" = {
        let mut shown: Vec<&'static str> = Vec::new();
        for d in desk_core::Delivery::ALL {
            if !shown.contains(&d.api_str()) {
                shown.push(d.api_str());
            }
        }
        shown
    }
}

text_enum_schema! {
    /// Why delivery failed, as a code (the UI words it from `delivery.problem.<code>`).
    ProblemCodeSchema as "ProblemCode" =
        desk_core::delivery::ProblemCode::ALL.iter().map(|v| v.as_str()).collect()
}

text_enum_schema! {
    /// How the desk sends: `reply` (with the reply token of a customer message) or `push`.
    ModeSchema as "Mode" = desk_core::Mode::ALL.iter().map(|v| v.as_str()).collect()
}

text_enum_schema! {
    /// Why an unsent message waits.
    WaitReasonSchema as "WaitingReason" = crate::delivery_view::WaitReason::CODES.to_vec()
}

text_enum_schema! {
    /// The message's LINE type (`other`: a type the desk does not show).
    MessageTypeSchema as "MessageType" = vec![
        "text", "image", "sticker", "video", "audio", "file", "location", "other",
    ]
}

text_enum_schema! {
    /// `none` | `pending` (not yet fetched from LINE; retried) | `ok` | `failed` (LINE no
    /// longer has it).
    MediaStateSchema as "MediaState" = vec!["none", "pending", "ok", "failed"]
}

text_enum_schema! {
    /// LINE's profile of the user: `pending` (not fetched yet: show the user id),
    /// `ok`, or `unavailable` (LINE has none, e.g. the user blocked the account).
    ProfileStateSchema as "ProfileState" = vec!["pending", "ok", "unavailable"]
}

text_enum_schema! {
    /// A customer's LINE passcode attempt, and what came of it.
    PasscodeOutcomeSchema as "PasscodeOutcome" = vec!["linked", "failed", "throttled"]
}

text_enum_schema! {
    /// What happened to the customer.
    HistoryActionSchema as "HistoryAction" = vec![
        "created", "updated", "deleted", "linked", "unlinked", "passcode_issued",
    ]
}

text_enum_schema! {
    /// The field an `updated` row changed.
    HistoryFieldSchema as "HistoryField" = vec!["name", "phone", "email", "notes", "tags"]
}

text_enum_schema! {
    /// How a link or unlink came about.
    HistoryViaSchema as "HistoryVia" = vec!["agent", "passcode", "deleted"]
}

text_enum_schema! {
    /// What becomes of messages still waiting when the chat is completed or released:
    /// `keep` (そのまま送る, the default) or `cancel` (取り消す).
    UnsentChoiceSchema as "UnsentChoice" = vec!["keep", "cancel"]
}

text_enum_schema! {
    /// Why the connection test failed.
    ConnectionProblemSchema as "ConnectionProblem" = vec!["no_token", "unauthorized", "unreachable"]
}

/// Why delivery failed: `{code, status, line_message}` (desk-core's `delivery::Problem`).
#[derive(utoipa::ToSchema)]
#[schema(as = DeliveryProblem)]
#[allow(dead_code)] // describes desk_core::delivery::Problem; never built
pub struct ProblemDoc {
    #[schema(value_type = ProblemCodeSchema)]
    code: (),
    /// LINE's HTTP status, when LINE answered.
    status: Option<u16>,
    /// LINE's own words.
    line_message: Option<String>,
}

/// A customer ID as `PUT /conversations/{id}/customer` takes it.
pub struct CustomerIdSchema;

impl utoipa::PartialSchema for CustomerIdSchema {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Integer))
            .item(ObjectBuilder::new().schema_type(Type::String))
            .description(Some("A customer ID: 15, or \"15\" / \"#C15\""))
            .into()
    }
}

impl utoipa::ToSchema for CustomerIdSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CustomerId")
    }
}
