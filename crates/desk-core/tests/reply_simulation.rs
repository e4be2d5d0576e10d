//! Simulated conversations against the delivery planner (M3–M7), through the public API only.
//!
//! A run interleaves customer messages (each brings a fresh reply token), agent texts of random
//! lengths (multibyte, emoji, over 5,000 UTF-16 units too), images, and clock advances (some past
//! the reply window). After every event the "outbox worker" below does what the planner's docs
//! tell a caller to do, and LINE answers each call with a random outcome: accepted, "invalid reply
//! token" (nothing went out; the messages stay queued), or ambiguous (they may have gone out;
//! they are marked uncertain, leave the queue and are never resent).
//!
//! Checked: every agent message reaches LINE at most once; delivered messages come out in the
//! order written; ≤ 5 objects per call; never a used or expired token; no text object over 5,000
//! units; the delivered texts are exactly the originals joined by "\n"; consecutive texts are
//! joined whenever they fit; and with enough tokens everything queued is delivered — except a
//! text needing more than 5 objects, which the planner refuses by name ([`PlanError`]), and only
//! such a text.

use std::collections::HashSet;

use desk_core::planner::{
    DEFAULT_REPLY_WINDOW_MS, JOIN, MAX_OBJECTS_PER_CALL, MAX_TEXT_UNITS, OutContent, Outgoing,
    PlanError, PlannedObject, ReplyPlan, ReplyToken, SPLIT_LOOKBACK_UNITS, expires_at, pick_token,
    plan_push, plan_reply, split_text, text_units,
};
use proptest::prelude::*;

const W: i64 = DEFAULT_REPLY_WINDOW_MS;

#[derive(Debug, Clone)]
enum Event {
    CustomerWrites,
    AgentText(String),
    AgentImage,
    Advance(i64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Accepted,
    InvalidToken,
    Ambiguous,
}

struct Sim {
    now: i64,
    next_id: i64,
    written: Vec<Outgoing>,
    queue: Vec<Outgoing>,
    tokens: Vec<ReplyToken>,
    outcomes: Vec<Outcome>,
    calls: usize,
    /// Messages LINE accepted, in delivery order, and the objects that carried them.
    delivered: Vec<i64>,
    delivered_objects: Vec<PlannedObject>,
    uncertain: Vec<i64>,
    /// Messages the planner refused as undeliverable (more than 5 objects).
    failed: Vec<i64>,
    /// Every message that was in an accepted or ambiguous call.
    reached_line: HashSet<i64>,
}

impl Sim {
    fn new(outcomes: Vec<Outcome>) -> Sim {
        Sim {
            now: 1_500_000_000_000,
            next_id: 1,
            written: vec![],
            queue: vec![],
            tokens: vec![],
            outcomes,
            calls: 0,
            delivered: vec![],
            delivered_objects: vec![],
            uncertain: vec![],
            failed: vec![],
            reached_line: HashSet::new(),
        }
    }

    fn apply(&mut self, event: Event) -> Result<(), TestCaseError> {
        match event {
            Event::CustomerWrites => {
                self.tokens.push(ReplyToken {
                    token: format!("token-{}", self.tokens.len()),
                    received_at_ms: self.now,
                    used: false,
                });
            }
            Event::AgentText(text) => self.write(OutContent::Text(text)),
            Event::AgentImage => {
                let n = self.next_id;
                self.write(OutContent::Image {
                    original_url: format!("https://desk.example/media/{n}"),
                    preview_url: format!("https://desk.example/media/{n}/preview"),
                })
            }
            Event::Advance(ms) => self.now += ms,
        }
        self.run_worker()
    }

    fn write(&mut self, content: OutContent) {
        let message = Outgoing {
            id: self.next_id,
            content,
        };
        self.next_id += 1;
        self.written.push(message.clone());
        self.queue.push(message);
    }

    fn next_outcome(&mut self) -> Outcome {
        let outcome = if self.outcomes.is_empty() {
            Outcome::Accepted
        } else {
            self.outcomes[self.calls % self.outcomes.len()]
        };
        self.calls += 1;
        outcome
    }

    /// The outbox worker: plan with the token that expires first, claim it, call LINE, record.
    fn run_worker(&mut self) -> Result<(), TestCaseError> {
        loop {
            let Some(token) = pick_token(&self.tokens, self.now, W).cloned() else {
                return Ok(());
            };
            let plan = match plan_reply(&self.queue, Some(&token), self.now, W) {
                Ok(plan) => plan,
                Err(error) => {
                    self.fail_undeliverable(error)?;
                    continue;
                }
            };
            let Some(plan) = plan else {
                prop_assert!(
                    self.queue.is_empty(),
                    "a usable token must move a non-empty queue"
                );
                return Ok(());
            };
            self.check_plan(&token, &plan)?;
            // Claim the token before the call: single-use whatever happens.
            let claimed = self.tokens.iter_mut().find(|t| t.token == plan.token);
            claimed.expect("the plan names a known token").used = true;

            let k = plan.message_ids.len();
            match self.next_outcome() {
                Outcome::Accepted => {
                    self.delivered.extend(&plan.message_ids);
                    self.delivered_objects.extend(plan.objects);
                    self.reached_line.extend(&plan.message_ids);
                    self.queue.drain(..k);
                }
                Outcome::InvalidToken => {}
                Outcome::Ambiguous => {
                    self.uncertain.extend(&plan.message_ids);
                    self.reached_line.extend(&plan.message_ids);
                    self.queue.drain(..k);
                }
            }
        }
    }

    /// The documented answer to a [`PlanError`]: mark the message failed, take it out, re-plan.
    fn fail_undeliverable(&mut self, error: PlanError) -> Result<(), TestCaseError> {
        let PlanError::TooLong { message_id, .. } = error else {
            return Err(TestCaseError::fail(format!("unexpected {error}")));
        };
        // Only a message that really needs more than one call's objects is refused.
        prop_assert!(split_text(self.text_of(message_id)).len() > MAX_OBJECTS_PER_CALL);
        prop_assert!(
            text_units(self.text_of(message_id)) > 5 * (MAX_TEXT_UNITS - SPLIT_LOOKBACK_UNITS)
        );
        self.queue.retain(|m| m.id != message_id);
        self.failed.push(message_id);
        Ok(())
    }

    fn check_plan(&self, token: &ReplyToken, plan: &ReplyPlan) -> Result<(), TestCaseError> {
        // Never a used or expired token.
        prop_assert_eq!(&plan.token, &token.token);
        prop_assert!(!token.used);
        prop_assert!(self.now < expires_at(token, W));
        prop_assert!(self.now >= token.received_at_ms);

        // 1 to 5 objects; texts non-empty and within LINE's limit.
        prop_assert!(!plan.objects.is_empty() && plan.objects.len() <= MAX_OBJECTS_PER_CALL);
        for object in &plan.objects {
            if let OutContent::Text(text) = &object.content {
                prop_assert!(!text.is_empty());
                prop_assert!(text_units(text) <= MAX_TEXT_UNITS);
            }
        }

        // The plan delivers a prefix of the queue: nothing jumps ahead, nothing reordered.
        let k = plan.message_ids.len();
        let prefix: Vec<i64> = self.queue[..k].iter().map(|m| m.id).collect();
        prop_assert_eq!(&plan.message_ids, &prefix);
        // Each message is carried whole by this call: the objects' ids, in order, are the plan's.
        prop_assert_eq!(&carried_ids(&plan.objects), &plan.message_ids);

        // At most once: nothing that reached LINE before is in the call.
        for id in &plan.message_ids {
            prop_assert!(!self.reached_line.contains(id), "message {id} sent twice");
        }

        // Consecutive texts are joined whenever the join fits.
        for pair in plan.objects.windows(2) {
            if let (OutContent::Text(a), OutContent::Text(_)) = (&pair[0].content, &pair[1].content)
            {
                let first = pair[1].message_ids[0];
                if pair[0].message_ids.last() != Some(&first) {
                    let piece = split_text(self.text_of(first))[0];
                    prop_assert!(
                        text_units(a) + text_units(JOIN) + text_units(piece) > MAX_TEXT_UNITS,
                        "texts left unjoined although they fit"
                    );
                }
            }
        }

        // The call stops only when the next message does not fit.
        if let Some(next) = self.queue.get(k) {
            let fits_one_slot = match &next.content {
                OutContent::Image { .. } => true,
                OutContent::Text(t) => text_units(t) <= MAX_TEXT_UNITS,
            };
            prop_assert!(
                !(fits_one_slot && plan.objects.len() < MAX_OBJECTS_PER_CALL),
                "message {} would have fit",
                next.id
            );
        }
        Ok(())
    }

    fn text_of(&self, id: i64) -> &str {
        match &self.written.iter().find(|m| m.id == id).unwrap().content {
            OutContent::Text(t) => t,
            OutContent::Image { .. } => panic!("message {id} is an image"),
        }
    }

    /// The customer keeps writing (and LINE accepts everything) until the queue is empty.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        self.outcomes.clear();
        let bound = self.queue.len();
        for _ in 0..bound {
            if self.queue.is_empty() {
                break;
            }
            let before = self.queue.len();
            self.now += 1_000;
            self.apply(Event::CustomerWrites)?;
            prop_assert!(self.queue.len() < before, "a fresh token delivered nothing");
        }
        prop_assert!(self.queue.is_empty());
        Ok(())
    }

    fn check_end(&self) -> Result<(), TestCaseError> {
        // Every message is delivered, uncertain or failed, exactly once.
        let mut all: Vec<i64> = self
            .delivered
            .iter()
            .chain(&self.uncertain)
            .chain(&self.failed)
            .copied()
            .collect();
        all.sort_unstable();
        let written: Vec<i64> = self.written.iter().map(|m| m.id).collect();
        prop_assert_eq!(&all, &written);

        // In the order written (ids grow with writing).
        prop_assert!(self.delivered.windows(2).all(|w| w[0] < w[1]));
        prop_assert_eq!(&carried_ids(&self.delivered_objects), &self.delivered);

        // No content lost or altered: texts joined by "\n", images in place.
        let delivered: HashSet<i64> = self.delivered.iter().copied().collect();
        let originals: Vec<&Outgoing> = self
            .written
            .iter()
            .filter(|m| delivered.contains(&m.id))
            .collect();
        let expected_text = originals
            .iter()
            .filter_map(|m| match &m.content {
                OutContent::Text(t) => Some(t.as_str()),
                OutContent::Image { .. } => None,
            })
            .collect::<Vec<_>>()
            .join(JOIN);
        let expected_images: Vec<&OutContent> = originals
            .iter()
            .map(|m| &m.content)
            .filter(|c| matches!(c, OutContent::Image { .. }))
            .collect();

        let mut text = String::new();
        let mut previous_text_last_id = None;
        let mut images = vec![];
        for object in &self.delivered_objects {
            match &object.content {
                OutContent::Text(t) => {
                    let continues = previous_text_last_id == Some(object.message_ids[0]);
                    if previous_text_last_id.is_some() && !continues {
                        text.push_str(JOIN);
                    }
                    text.push_str(t);
                    previous_text_last_id = object.message_ids.last().copied();
                }
                image => images.push(image),
            }
        }
        prop_assert!(
            text == expected_text,
            "delivered texts differ from the originals"
        );
        prop_assert_eq!(images, expected_images);
        Ok(())
    }
}

/// The message ids carried by a run of objects, consecutive repeats (a split message) merged.
fn carried_ids(objects: &[PlannedObject]) -> Vec<i64> {
    let mut ids: Vec<i64> = objects
        .iter()
        .flat_map(|o| o.message_ids.iter().copied())
        .collect();
    ids.dedup();
    ids
}

/// Texts from runs of awkward characters: short, near the 5,000-unit limit, or well over it.
fn agent_text() -> impl Strategy<Value = String> {
    let ch = prop::sample::select(vec![
        'a', 'Z', ' ', '\n', 'あ', '漢', '。', '😀', '🙇', '\u{200D}', '\u{3099}', '　', '🇯', '🇵',
    ]);
    let short = prop::collection::vec(ch.clone(), 1..40).prop_map(String::from_iter);
    let runs = |max_run| {
        prop::collection::vec((ch.clone(), 1..max_run), 1..8).prop_map(|runs| {
            runs.into_iter()
                .map(|(c, n)| c.to_string().repeat(n))
                .collect::<String>()
        })
    };
    prop_oneof![
        6 => short,
        2 => runs(1_500usize),
        1 => runs(3_000usize),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => Just(Event::CustomerWrites),
        5 => agent_text().prop_map(Event::AgentText),
        2 => Just(Event::AgentImage),
        2 => (0i64..20_000).prop_map(Event::Advance),
        1 => (W - 2..W + 2).prop_map(Event::Advance),
        1 => (W..10 * W).prop_map(Event::Advance),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => Just(Outcome::Accepted),
        1 => Just(Outcome::InvalidToken),
        1 => Just(Outcome::Ambiguous),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn reply_mode_conversations(
        events in prop::collection::vec(event(), 1..60),
        outcomes in prop::collection::vec(outcome(), 1..20),
    ) {
        let mut sim = Sim::new(outcomes);
        for e in events {
            sim.apply(e)?;
        }
        sim.drain()?;
        sim.check_end()?;
    }

    #[test]
    fn push_mode_sends_each_message_whole_and_in_order(
        texts in prop::collection::vec(agent_text(), 0..12),
    ) {
        let queue: Vec<Outgoing> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Outgoing { id: i as i64, content: OutContent::Text(t.clone()) })
            .collect();
        let too_long = texts.iter().position(|t| split_text(t).len() > MAX_OBJECTS_PER_CALL);
        if let Some(i) = too_long {
            let refused = matches!(
                plan_push(&queue),
                Err(PlanError::TooLong { message_id, .. }) if message_id == i as i64
            );
            prop_assert!(refused, "plan_push must refuse message {}", i);
            return Ok(());
        }
        let plans = plan_push(&queue).unwrap();
        prop_assert_eq!(plans.len(), queue.len());
        for (plan, (message, text)) in plans.iter().zip(queue.iter().zip(&texts)) {
            prop_assert_eq!(plan.message_id, message.id);
            prop_assert!(!plan.objects.is_empty() && plan.objects.len() <= MAX_OBJECTS_PER_CALL);
            let mut joined = String::new();
            for object in &plan.objects {
                prop_assert_eq!(&object.message_ids, &vec![message.id]);
                let OutContent::Text(t) = &object.content else { unreachable!() };
                prop_assert!(!t.is_empty() && text_units(t) <= MAX_TEXT_UNITS);
                joined.push_str(t);
            }
            prop_assert!(&joined == text);
        }
    }
}

/// The manual's scenario end to end: the agent answers inside the window (sent at once), then
/// writes text, text, image, text after it (all Unsent), and the customer's next message
/// delivers them as [text\ntext, image, text].
#[test]
fn the_manuals_scenario() {
    let mut sim = Sim::new(vec![]);
    sim.apply(Event::CustomerWrites).unwrap();
    sim.apply(Event::AgentText("少々お待ちください。".into()))
        .unwrap();
    assert_eq!(
        sim.delivered,
        vec![1],
        "M3: the first answer goes out at once"
    );

    sim.apply(Event::AgentText("確認しました。".into()))
        .unwrap();
    sim.apply(Event::Advance(W)).unwrap();
    sim.apply(Event::AgentText("在庫がございます。".into()))
        .unwrap();
    sim.apply(Event::AgentImage).unwrap();
    sim.apply(Event::AgentText("こちらの商品です。".into()))
        .unwrap();
    assert_eq!(sim.queue.len(), 4, "M4: kept as Unsent");

    sim.apply(Event::CustomerWrites).unwrap();
    assert!(sim.queue.is_empty());
    assert_eq!(sim.delivered, vec![1, 2, 3, 4, 5]);
    let contents: Vec<&OutContent> = sim.delivered_objects[1..]
        .iter()
        .map(|o| &o.content)
        .collect();
    assert!(
        matches!(&contents[..], [OutContent::Text(a), OutContent::Image { .. }, OutContent::Text(b)]
            if a == "確認しました。\n在庫がございます。" && b == "こちらの商品です。")
    );
    sim.check_end().unwrap();
}
