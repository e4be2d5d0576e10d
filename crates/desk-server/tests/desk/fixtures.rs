//! Every official webhook body from LINE's SDK test suites (../shared/line-fixtures) is
//! accepted by `POST /line` with the signature computed over its exact bytes.

use std::path::{Path, PathBuf};

use crate::common::{Backend, TestDesk, backend_test};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/line-fixtures")
}

backend_test!(every_official_fixture_is_accepted_and_kept);
async fn every_official_fixture_is_accepted_and_kept(b: Backend) {
    let dir = fixtures_dir();
    let tsv = std::fs::read_to_string(dir.join("computed-signatures.tsv")).unwrap();
    let mut cases = Vec::new();
    for line in tsv
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let mut cols = line.split('\t');
        let (path, sig) = (cols.next().unwrap(), cols.next().unwrap());
        if !path.ends_with(".json") {
            continue;
        }
        cases.push((path.to_owned(), sig.to_owned()));
    }
    assert!(
        cases.len() >= 30,
        "the fixtures are all listed: {}",
        cases.len()
    );
    let d = TestDesk::start_with(
        b,
        line_emulator::Config {
            channel_secret: "testsecret".into(),
            require_https_media: false,
            ..Default::default()
        },
    )
    .await;
    let mut events = 0;
    for (path, sig) in &cases {
        let body = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(d.post_webhook(&body, Some(sig)).await, 200, "{b:?} {path}");
        events += line_api::webhook::parse(&body).unwrap().events.len();
    }
    let stored = d.metric("linedesk_webhook_events_total").await
        + d.metric("linedesk_webhook_duplicate_events_total").await;
    assert_eq!(stored as usize, events, "{b:?}: every event accounted for");
    // The 28-event python body alone opens chats for its user-source events.
    assert!(!d.conversations().await.is_empty());
    // Unknown event types are kept raw, never dropped. (The python body's 28 events all
    // carry one webhookEventId, so the desk keeps its first event only: a redelivery.)
    let unknown: i64 = desk_store::on_db!(d.state.store.db(), |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_events WHERE event_type = 'greatNewFeature'"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    assert_eq!(unknown, 1, "{b:?}");
    assert!(d.metric("linedesk_webhook_duplicate_events_total").await >= 27.0);
}
