//! Every webhook body copied from LINE's SDK test suites verifies and parses, and the
//! fields the desk relies on come out right. See /work/shared/line-fixtures/README.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use line_api::signature::verify;
use line_api::webhook::{
    ContentProvider, EventKind, MessageContent, ParsedEvent, Source, WebhookBody, parse,
};

const SECRET: &[u8] = b"testsecret";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/line-fixtures")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// `relative path → signature` from computed-signatures.tsv.
fn signatures() -> HashMap<String, String> {
    let tsv = std::fs::read_to_string(fixtures_dir().join("computed-signatures.tsv")).unwrap();
    tsv.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (file, sig) = l.split_once('\t').unwrap();
            (file.to_owned(), sig.to_owned())
        })
        .collect()
}

fn load(rel: &str) -> (Vec<u8>, WebhookBody) {
    let bytes = std::fs::read(fixtures_dir().join(rel)).unwrap();
    let body = parse(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
    (bytes, body)
}

fn only_event(rel: &str) -> ParsedEvent {
    let (_, mut body) = load(rel);
    assert_eq!(body.events.len(), 1, "{rel}");
    body.events.remove(0)
}

fn message(rel: &str) -> MessageContent {
    match only_event(rel).event.kind {
        EventKind::Message(m) => m,
        other => panic!("{rel}: {other:?}"),
    }
}

#[test]
fn every_fixture_verifies_parses_and_keeps_raw_text() {
    let dir = fixtures_dir();
    let sigs = signatures();
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    files.sort();
    assert_eq!(
        files.len(),
        sigs.len(),
        "every fixture has a signature and vice versa"
    );
    for path in files {
        let rel = path
            .strip_prefix(&dir)
            .unwrap()
            .to_str()
            .unwrap()
            .replace('\\', "/");
        let bytes = std::fs::read(&path).unwrap();
        let sig = sigs
            .get(&rel)
            .unwrap_or_else(|| panic!("{rel} not in the tsv"));
        assert!(verify(SECRET, &bytes, sig), "{rel}: signature");

        // One byte changed anywhere → the signature no longer matches.
        let mut tampered = bytes.clone();
        let mid = tampered.len() / 2;
        tampered[mid] ^= 0x01;
        assert!(!verify(SECRET, &tampered, sig), "{rel}: tampered");
        assert!(!verify(b"testsecreT", &bytes, sig), "{rel}: wrong secret");

        let body = parse(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let text = std::str::from_utf8(&bytes).unwrap();
        let tree: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let events = tree["events"].as_array().unwrap();
        assert_eq!(body.events.len(), events.len(), "{rel}");
        let mut from = 0;
        for (parsed, expected) in body.events.iter().zip(events) {
            let raw = parsed.raw.get();
            // The exact text, found in order in the file: not a re-serialisation.
            let at = text[from..]
                .find(raw)
                .unwrap_or_else(|| panic!("{rel}: raw not verbatim"));
            from += at + raw.len();
            assert!(raw.starts_with('{') && raw.ends_with('}'), "{rel}");
            assert_eq!(
                &serde_json::from_str::<serde_json::Value>(raw).unwrap(),
                expected
            );
            // Every fixture event has a timestamp and a type.
            assert_eq!(
                parsed.event.timestamp,
                expected["timestamp"].as_i64().unwrap(),
                "{rel}"
            );
            assert_eq!(
                parsed.event.kind.type_name(),
                expected["type"].as_str().unwrap(),
                "{rel}"
            );
            assert_eq!(
                parsed.event.reply_token.as_deref(),
                expected["replyToken"].as_str(),
                "{rel}"
            );
        }
        if rel.starts_with("java-sdk/callback/") {
            assert_eq!(
                body.destination.as_deref(),
                Some("Uab012345678901234567890123456789"),
                "{rel}"
            );
        }
    }
}

#[test]
fn python_v3_fixture() {
    let (_, body) = load("python-sdk/v3-webhook.json");
    assert_eq!(body.events.len(), 28);
    let ev = |i: usize| &body.events[i].event;

    // Modern shape: ids, mode, delivery context.
    assert_eq!(
        ev(0).webhook_event_id.as_deref(),
        Some("testwebhookeventid")
    );
    assert_eq!(ev(0).mode.as_deref(), Some("active"));
    assert!(!ev(0).is_redelivery);
    assert_eq!(
        ev(0).source,
        Some(Source::User {
            user_id: "U206d25c2ea6bd87c17655609a1c37cb8".into()
        })
    );
    assert_eq!(
        ev(0).kind,
        EventKind::Message(MessageContent::Text {
            id: "325708".into(),
            text: "Hello, world".into(),
            quote_token: Some("quoteToken".into()),
            quoted_message_id: None,
            emojis: vec![],
            mentionees: vec![],
        })
    );

    // Image from a room, external provider.
    assert_eq!(
        ev(1).source,
        Some(Source::Room {
            room_id: "Ra8dbf4673c4c812cd491258042226c99".into(),
            user_id: None
        })
    );
    let EventKind::Message(MessageContent::Image {
        content_provider,
        image_set,
        ..
    }) = &ev(1).kind
    else {
        panic!("{:?}", ev(1).kind)
    };
    assert_eq!(content_provider.kind, "external");
    assert_eq!(*image_set, None);

    let EventKind::Message(MessageContent::Video { duration, .. }) = &ev(2).kind else {
        panic!("{:?}", ev(2).kind)
    };
    assert_eq!(*duration, Some(60000));
    let EventKind::Message(MessageContent::Audio {
        duration,
        content_provider,
        ..
    }) = &ev(3).kind
    else {
        panic!("{:?}", ev(3).kind)
    };
    assert_eq!(*duration, Some(60000));
    assert_eq!(content_provider.preview_image_url, None);

    let EventKind::Message(MessageContent::Location {
        title,
        latitude,
        longitude,
        ..
    }) = &ev(4).kind
    else {
        panic!("{:?}", ev(4).kind)
    };
    assert_eq!(title.as_deref(), Some("my location"));
    assert_eq!(
        (*latitude, *longitude),
        (35.65910807942215, 139.70372892916203)
    );

    let EventKind::Message(MessageContent::Sticker {
        keywords,
        text,
        quote_token,
        ..
    }) = &ev(5).kind
    else {
        panic!("{:?}", ev(5).kind)
    };
    assert_eq!(
        keywords.as_deref(),
        Some(&["Love You".to_owned(), "Love".to_owned()][..])
    );
    assert_eq!(text.as_deref(), Some("Just sticker"));
    assert_eq!(quote_token.as_deref(), Some("quoteToken"));

    assert_eq!(ev(6).kind, EventKind::Follow { is_unblocked: true });
    assert_eq!(ev(7).kind, EventKind::Unfollow);
    assert_eq!(ev(7).reply_token, None);
    assert_eq!(ev(8).kind, EventKind::Join);
    assert_eq!(
        ev(8).source,
        Some(Source::Group {
            group_id: "Ca56f94637cc4347f90a25382909b24b9".into(),
            user_id: None
        })
    );
    assert_eq!(ev(9).kind, EventKind::Leave);
    assert_eq!(
        ev(10).kind,
        EventKind::Postback {
            data: "action=buyItem&itemId=123123&color=red".into(),
            params: Some(serde_json::json!({"datetime": "2017-12-25T01:00"})),
        }
    );
    assert_eq!(
        ev(11).kind,
        EventKind::Beacon {
            hwid: "d41d8cd98f".into(),
            beacon_type: "enter".into(),
            dm: None
        }
    );
    assert_eq!(
        ev(12).kind,
        EventKind::Beacon {
            hwid: "d41d8cd98f".into(),
            beacon_type: "enter".into(),
            dm: Some("1234567890abcdef".into())
        }
    );
    assert_eq!(
        ev(13).kind,
        EventKind::AccountLink {
            result: "ok".into(),
            nonce: "Vb771wDYtXuammLszK6h9A".into()
        }
    );
    // Text in a group and in a room: the user is known.
    assert_eq!(
        ev(14).source.as_ref().and_then(Source::user_id),
        Some("U206d25c2ea6bd87c17655609a1c37cb8")
    );
    assert_eq!(
        ev(15).source.as_ref().and_then(Source::user_id),
        Some("U206d25c2ea6bd87c17655609a1c37cb8")
    );
    for i in 16..=18 {
        assert!(
            matches!(
                ev(i).kind,
                EventKind::Postback {
                    params: Some(_),
                    ..
                }
            ),
            "{i}"
        );
    }
    let EventKind::MemberJoined { members } = &ev(19).kind else {
        panic!("{:?}", ev(19).kind)
    };
    let ids: Vec<_> = members.iter().filter_map(Source::user_id).collect();
    assert_eq!(ids, ["U4af4980629...", "U91eeaf62d9..."]);
    let EventKind::MemberLeft { members } = &ev(20).kind else {
        panic!("{:?}", ev(20).kind)
    };
    assert_eq!(members.len(), 2);
    assert_eq!(
        ev(21).kind,
        EventKind::Message(MessageContent::File {
            id: "325708".into(),
            file_name: "file.txt".into(),
            file_size: 2138
        })
    );
    assert_eq!(
        ev(22).kind,
        EventKind::Unsend {
            message_id: "325708".into()
        }
    );
    assert_eq!(ev(22).timestamp, 1547817848122);
    assert_eq!(
        ev(23).kind,
        EventKind::VideoPlayComplete {
            tracking_id: "track_id".into()
        }
    );

    // An image from a set of several, stored at LINE.
    let EventKind::Message(
        m @ MessageContent::Image {
            content_provider,
            image_set,
            ..
        },
    ) = &ev(24).kind
    else {
        panic!("{:?}", ev(24).kind)
    };
    assert_eq!(m.id(), Some("354718705033693861"));
    assert_eq!(m.type_name(), "image");
    assert_eq!(
        *content_provider,
        ContentProvider {
            kind: "line".into(),
            original_content_url: None,
            preview_image_url: None
        }
    );
    let set = image_set.as_ref().unwrap();
    assert_eq!(
        (set.id.as_str(), set.index, set.total),
        ("E005D41A7288F41B655", Some(2), Some(2))
    );

    assert!(ev(25).is_redelivery);
    let EventKind::MessageEdited(MessageContent::Text { text, .. }) = &ev(26).kind else {
        panic!("{:?}", ev(26).kind)
    };
    assert_eq!(text, "Hello, edited world");

    // The unknown type is kept, with its common fields.
    assert_eq!(
        ev(27).kind,
        EventKind::Other {
            event_type: "undefined".into()
        }
    );
    assert_eq!(ev(27).timestamp, 1462629479859);
    assert!(ev(27).is_redelivery);
    assert_eq!(
        ev(27).source.as_ref().and_then(Source::user_id),
        Some("U206d25c2ea6bd87c17655609a1c37cb8")
    );
    assert!(body.events[27].raw.get().contains("undefinedField"));
}

#[test]
fn java_unknown_event_and_unknown_message() {
    let (_, body) = load("java-sdk/callback/unknown.json");
    assert_eq!(body.events.len(), 2);
    assert_eq!(
        body.events[0].event.kind,
        EventKind::Other {
            event_type: "greatNewFeature".into()
        }
    );
    assert_eq!(
        body.events[0].event.reply_token.as_deref(),
        Some("nHuyWiB7yP5Zw52FIkcQobQuGDXCTA")
    );
    let e = &body.events[1].event;
    assert_eq!(e.source, Some(Source::Other));
    assert_eq!(
        e.kind,
        EventKind::Message(MessageContent::Other {
            id: Some("325708".into()),
            message_type: "unknownunknownuknown".into()
        })
    );
    let EventKind::Message(m) = &e.kind else {
        unreachable!()
    };
    assert_eq!(m.type_name(), "unknownunknownuknown");
    assert_eq!(m.id(), Some("325708"));
}

#[test]
fn java_old_shape_events() {
    // No webhookEventId / deliveryContext in the old shape.
    let e = only_event("java-sdk/callback/text-user.json").event;
    assert_eq!(e.webhook_event_id, None);
    assert!(!e.is_redelivery);
    assert_eq!(
        e.source.as_ref().and_then(Source::user_id),
        Some("u206d25c2ea6bd87c17655609a1c37cb8")
    );

    // Follow without a `follow` object: a plain follow.
    assert_eq!(
        only_event("java-sdk/callback/follow.json").event.kind,
        EventKind::Follow {
            is_unblocked: false
        }
    );

    let e = only_event("java-sdk/callback/webhook-redelivery.json").event;
    assert!(e.is_redelivery);
    assert_eq!(
        e.webhook_event_id.as_deref(),
        Some("01G2KZKG2DS765NMRH3GZFD8AP")
    );

    let e = only_event("java-sdk/callback/text-group.json").event;
    assert_eq!(e.mode.as_deref(), Some("standby"));
    assert_eq!(e.source.as_ref().and_then(Source::user_id), None);

    let e = only_event("java-sdk/callback/message-edited.json").event;
    assert_eq!(
        e.kind,
        EventKind::MessageEdited(MessageContent::Text {
            id: "325708".into(),
            text: "Hello, edited world".into(),
            quote_token: None,
            quoted_message_id: None,
            emojis: vec![],
            mentionees: vec![],
        })
    );
    assert_eq!(
        e.source,
        Some(Source::Group {
            group_id: "cxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
            user_id: Some("u206d25c2ea6bd87c17655609a1c37cb8".into())
        })
    );
}

#[test]
fn java_media_and_other_messages() {
    let MessageContent::Image {
        id,
        content_provider,
        quote_token,
        ..
    } = message("java-sdk/callback/image.json")
    else {
        panic!()
    };
    assert_eq!(id, "325708");
    assert_eq!(quote_token, None);
    assert_eq!(
        content_provider,
        ContentProvider {
            kind: "external".into(),
            original_content_url: Some("https://example.com/original.jpg".into()),
            preview_image_url: Some("https://example.com/preview.jpg".into()),
        }
    );

    let MessageContent::Video {
        content_provider,
        duration,
        ..
    } = message("java-sdk/callback/video.json")
    else {
        panic!()
    };
    assert_eq!(duration, Some(60000));
    assert_eq!(
        content_provider.original_content_url.as_deref(),
        Some("https://example.com/original.mp4")
    );

    assert_eq!(
        message("java-sdk/callback/location.json"),
        MessageContent::Location {
            id: "325708".into(),
            title: Some("hello".into()),
            address: Some("〒150-0002 東京都渋谷区渋谷２丁目２１−１".into()),
            latitude: 35.65910807942215,
            longitude: 139.70372892916203,
        }
    );

    assert_eq!(
        message("java-sdk/callback/sticker.json"),
        MessageContent::Sticker {
            id: "325708".into(),
            package_id: "1".into(),
            sticker_id: "1".into(),
            sticker_resource_type: Some("STATIC".into()),
            keywords: Some(vec!["bed".into(), "sleep".into(), "bedtime".into()]),
            text: None,
            quote_token: None,
        }
    );
    let MessageContent::Sticker { keywords, .. } =
        message("java-sdk/callback/sticker-keywords-remove.json")
    else {
        panic!()
    };
    assert_eq!(keywords, None);
    let MessageContent::Sticker {
        text,
        sticker_resource_type,
        ..
    } = message("java-sdk/callback/sticker-with-text.json")
    else {
        panic!()
    };
    assert_eq!(text.as_deref(), Some("userEnteredText"));
    assert_eq!(sticker_resource_type.as_deref(), Some("MESSAGE"));

    assert_eq!(
        message("java-sdk/callback/file.json"),
        MessageContent::File {
            id: "325708".into(),
            file_name: "sample.pdf".into(),
            file_size: 22016
        }
    );

    let MessageContent::Text { emojis, .. } = message("java-sdk/callback/text-emojis.json") else {
        panic!()
    };
    assert_eq!(emojis.len(), 1);
    assert_eq!(
        (
            emojis[0].index,
            emojis[0].length,
            emojis[0].product_id.as_str(),
            emojis[0].emoji_id.as_str()
        ),
        (14, 6, "5ac1bfd5040ab15980c9b435", "001")
    );

    let MessageContent::Text {
        text, mentionees, ..
    } = message("java-sdk/callback/text-mention.json")
    else {
        panic!()
    };
    assert_eq!(text, "Hello, world @Brown and @Cony");
    assert_eq!(mentionees.len(), 2);
    assert_eq!(mentionees[0].mentionee_type, "user");
    assert_eq!(
        mentionees[0].user_id.as_deref(),
        Some("U12345678901234567890123456780")
    );
    assert_eq!(mentionees[1].mentionee_type, "all");
    assert_eq!((mentionees[1].index, mentionees[1].length), (24, 5));
}

#[test]
fn java_non_message_events() {
    let kind = |rel: &str| only_event(rel).event.kind;
    assert_eq!(kind("java-sdk/callback/unfollow.json"), EventKind::Unfollow);
    assert_eq!(kind("java-sdk/callback/join.json"), EventKind::Join);
    assert_eq!(kind("java-sdk/callback/leave.json"), EventKind::Leave);
    assert_eq!(
        kind("java-sdk/callback/unsend.json"),
        EventKind::Unsend {
            message_id: "325708".into()
        }
    );
    assert_eq!(
        kind("java-sdk/callback/postback.json"),
        EventKind::Postback {
            data: "action=buyItem&itemId=123123&color=red".into(),
            params: Some(serde_json::json!({}))
        }
    );
    assert_eq!(
        kind("java-sdk/callback/beacon_with_dm.json"),
        EventKind::Beacon {
            hwid: "374591320".into(),
            beacon_type: "enter".into(),
            dm: Some("1234567890abcdef".into())
        }
    );
    assert_eq!(
        kind("java-sdk/callback/account_link.json"),
        EventKind::AccountLink {
            result: "ok".into(),
            nonce: "xxxxxxxxxxxxxxx".into()
        }
    );
    assert_eq!(
        kind("java-sdk/callback/member_joined.json"),
        EventKind::MemberJoined {
            members: vec![Source::User {
                user_id: "U111111".into()
            }]
        }
    );
    assert_eq!(
        kind("java-sdk/callback/member_left.json"),
        EventKind::MemberLeft {
            members: vec![Source::User {
                user_id: "U111111".into()
            }]
        }
    );
    assert_eq!(
        kind("java-sdk/callback/video-play-complete.json"),
        EventKind::VideoPlayComplete {
            tracking_id: "track_id".into()
        }
    );
}

#[test]
fn java_parser_and_go_fixtures() {
    let (_, body) = load("java-sdk/parser/callback-request.json");
    assert_eq!(body.events.len(), 2);
    assert!(matches!(
        body.events[0].event.kind,
        EventKind::Message(MessageContent::Text { .. })
    ));
    assert_eq!(
        body.events[1].event.kind,
        EventKind::Follow {
            is_unblocked: false
        }
    );

    // The Go fixture has no destination.
    let (_, body) = load("go-sdk/httphandler_test-request-body.json");
    assert_eq!(body.destination, None);
    let e = &body.events[0].event;
    assert_eq!(e.mode, None);
    let EventKind::Message(MessageContent::Text { text, .. }) = &e.kind else {
        panic!()
    };
    assert_eq!(text, "Hello, world");
}
