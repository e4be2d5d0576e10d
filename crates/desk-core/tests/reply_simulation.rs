//! Simulated conversations against the delivery planner (M3–M7), through the public API only.
//!
//! A run interleaves customer messages (each brings a fresh reply token), agent texts of random
//! lengths (multibyte, emoji, over 5,000 UTF-16 units too), images, presses of 送信 with a text
//! and several images (one group), hand-overs (the handler presses 完了 with messages waiting,
//! choosing そのまま送る, and another agent takes the chat — or nobody, for a while), cancels
//! (取消) of waiting messages, the desk's own answers bound to a token (the passcode
//! confirmation), and clock advances (some past the reply window). After every event the
//! "outbox worker" below does what the planner's docs tell a caller to do, and LINE answers
//! each call with a random outcome: accepted, "invalid reply token" (nothing went out; the
//! messages stay queued), or ambiguous (they may have gone out; they are marked uncertain,
//! leave the queue and are never resent).
//!
//! Checked: every message reaches LINE at most once, and a cancelled one never; each writer's
//! messages come out in the order written; ≤ 5 objects per call; never a used or expired token;
//! no text object over 5,000 units; the delivered texts are exactly the originals joined by
//! "\n"; consecutive texts of one origin are joined whenever they fit; a press that fits one
//! call goes in one call (never split across tokens); the desk's answers first, then the
//! current handler's, then kept ones, and kept ones never alone (nothing goes out while nobody
//! handles the chat); the handler's first press is never starved by kept messages; a desk
//! answer rides its own token; and with enough tokens everything queued is delivered — except
//! a text needing more than 5 objects, which the planner refuses by name ([`PlanError`]), and
//! only such a text.

use std::collections::{HashMap, HashSet};

use desk_core::planner::{
    DEFAULT_REPLY_WINDOW_MS, JOIN, MAX_OBJECTS_PER_CALL, MAX_TEXT_UNITS, Origin, OutContent,
    Outgoing, PlanError, PlannedObject, ReplyPlan, ReplyToken, SPLIT_LOOKBACK_UNITS, expires_at,
    objects_needed, pick_token, plan_next, plan_push, split_text, text_units,
};
use desk_core::status::{ConversationState, ConversationStatus, origin_of};
use proptest::prelude::*;

const W: i64 = DEFAULT_REPLY_WINDOW_MS;

#[derive(Debug, Clone)]
enum Event {
    CustomerWrites,
    AgentText(String),
    AgentImage,
    /// One press of 送信: a text (or none) and then images, one group.
    AgentGroup(Option<String>, usize),
    Advance(i64),
    /// The handler presses 完了 choosing そのまま送る and another agent takes the chat.
    Handover,
    /// The handler presses 完了 (そのまま送る); nobody handles the chat for a while.
    Release,
    /// An agent takes the chat (対応中).
    Take,
    /// An agent takes back (取消) the n-th waiting message.
    Cancel(usize),
    /// The desk answers the newest customer message on its own token (passcode confirmation).
    DeskReply,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Accepted,
    InvalidToken,
    Ambiguous,
}

/// A waiting message and who wrote it (`None`: the desk).
#[derive(Debug, Clone)]
struct Queued {
    message: Outgoing,
    author: Option<i64>,
}

struct Sim {
    now: i64,
    next_id: i64,
    next_agent: i64,
    /// The agent holding the chat (対応中), if any.
    handler: Option<i64>,
    /// A message of the handler reached LINE since they took the chat.
    handler_answered: bool,
    written: Vec<Queued>,
    queue: Vec<Queued>,
    tokens: Vec<ReplyToken>,
    outcomes: Vec<Outcome>,
    calls: usize,
    /// Messages LINE accepted, in delivery order, and the objects that carried them.
    delivered: Vec<i64>,
    delivered_objects: Vec<PlannedObject>,
    /// The call that carried each message that reached LINE.
    call_of: HashMap<i64, usize>,
    uncertain: Vec<i64>,
    /// Messages the planner refused as undeliverable (more than 5 objects).
    failed: Vec<i64>,
    cancelled: Vec<i64>,
    /// Every message that was in an accepted or ambiguous call.
    reached_line: HashSet<i64>,
    /// Group id → how many objects the whole press needed (at writing).
    group_sizes: HashMap<i64, usize>,
}

impl Sim {
    fn new(outcomes: Vec<Outcome>) -> Sim {
        Sim {
            now: 1_500_000_000_000,
            next_id: 1,
            next_agent: 2,
            handler: Some(1),
            handler_answered: false,
            written: vec![],
            queue: vec![],
            tokens: vec![],
            outcomes,
            calls: 0,
            delivered: vec![],
            delivered_objects: vec![],
            call_of: HashMap::new(),
            uncertain: vec![],
            failed: vec![],
            cancelled: vec![],
            reached_line: HashSet::new(),
            group_sizes: HashMap::new(),
        }
    }

    fn state(&self) -> ConversationState {
        match self.handler {
            Some(a) => ConversationState {
                status: ConversationStatus::InProgress,
                agent_id: Some(a),
                started_at: Some(0),
            },
            None => ConversationState {
                status: ConversationStatus::Done,
                agent_id: Some(1),
                started_at: Some(0),
            },
        }
    }

    /// The queue as the sender builds it: each message with its origin now.
    fn planned_queue(&self) -> Vec<Outgoing> {
        let state = self.state();
        self.queue
            .iter()
            .map(|q| Outgoing {
                origin: origin_of(q.author, &state),
                ..q.message.clone()
            })
            .collect()
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
            Event::AgentText(text) => self.press(vec![OutContent::Text(text)]),
            Event::AgentImage => self.press(vec![self.image()]),
            Event::AgentGroup(text, images) => {
                let mut parts: Vec<OutContent> = text.into_iter().map(OutContent::Text).collect();
                for i in 0..images {
                    parts.push(OutContent::Image {
                        original_url: format!("https://desk.example/media/{}-{i}", self.next_id),
                        preview_url: format!("https://desk.example/media/{}-{i}/p", self.next_id),
                    });
                }
                self.press(parts)
            }
            Event::Advance(ms) => self.now += ms,
            Event::Handover => {
                self.handler = Some(self.next_agent);
                self.handler_answered = false;
                self.next_agent += 1;
            }
            Event::Release => {
                self.handler = None;
                self.handler_answered = false;
            }
            Event::Take => {
                if self.handler.is_none() {
                    self.handler = Some(self.next_agent);
                    self.handler_answered = false;
                    self.next_agent += 1;
                }
            }
            Event::Cancel(n) => {
                if !self.queue.is_empty() {
                    let q = self.queue.remove(n % self.queue.len());
                    self.cancelled.push(q.message.id);
                }
            }
            Event::DeskReply => {
                if let Some(t) = self.tokens.last() {
                    let id = self.next_id;
                    self.next_id += 1;
                    let q = Queued {
                        message: Outgoing {
                            origin: Origin::Desk,
                            reply_to: Some(t.token.clone()),
                            ..Outgoing::new(id, OutContent::Text("連携が完了しました。".into()))
                        },
                        author: None,
                    };
                    self.group_sizes.insert(id, 1);
                    self.written.push(q.clone());
                    self.queue.push(q);
                }
            }
        }
        self.run_worker()
    }

    fn image(&self) -> OutContent {
        let n = self.next_id;
        OutContent::Image {
            original_url: format!("https://desk.example/media/{n}"),
            preview_url: format!("https://desk.example/media/{n}/preview"),
        }
    }

    /// One press of 送信 by the handler (nobody can send while nobody handles the chat).
    fn press(&mut self, parts: Vec<OutContent>) {
        let Some(author) = self.handler else {
            return;
        };
        let group = self.next_id;
        let mut members = Vec::new();
        for content in parts {
            let message = Outgoing {
                group,
                ..Outgoing::new(self.next_id, content)
            };
            self.next_id += 1;
            members.push(message.clone());
            let q = Queued {
                message,
                author: Some(author),
            };
            self.written.push(q.clone());
            self.queue.push(q);
        }
        if let Ok(n) = objects_needed(&members) {
            self.group_sizes.insert(group, n);
        }
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

    /// The outbox worker: plan, claim the token, call LINE, record.
    fn run_worker(&mut self) -> Result<(), TestCaseError> {
        loop {
            let queue = self.planned_queue();
            let plan = match plan_next(&queue, &self.tokens, self.now, W, self.handler_answered) {
                Ok(plan) => plan,
                Err(error) => {
                    self.fail_undeliverable(error)?;
                    continue;
                }
            };
            let Some(plan) = plan else {
                // Nothing may go: no usable token, or only kept messages waiting for the
                // handler's first answer.
                if pick_token(&self.tokens, self.now, W).is_some() && !self.handler_answered {
                    prop_assert!(
                        queue.iter().all(|m| m.origin == Origin::Kept),
                        "a usable token must move a queue with the handler's or the desk's messages"
                    );
                }
                return Ok(());
            };
            let token = self
                .tokens
                .iter()
                .find(|t| t.token == plan.token)
                .cloned()
                .expect("the plan names a known token");
            self.check_plan(&queue, &token, &plan)?;
            // Claim the token before the call: single-use whatever happens.
            let claimed = self.tokens.iter_mut().find(|t| t.token == plan.token);
            claimed.expect("known").used = true;

            let call = self.calls;
            let ids: HashSet<i64> = plan.message_ids.iter().copied().collect();
            let outcome = self.next_outcome();
            if outcome != Outcome::InvalidToken
                && queue
                    .iter()
                    .any(|m| ids.contains(&m.id) && m.origin == Origin::Handler)
            {
                self.handler_answered = true;
            }
            match outcome {
                Outcome::Accepted => {
                    self.delivered.extend(&plan.message_ids);
                    self.delivered_objects.extend(plan.objects);
                    self.reached_line.extend(&plan.message_ids);
                    for id in &plan.message_ids {
                        self.call_of.insert(*id, call);
                    }
                    self.queue.retain(|q| !ids.contains(&q.message.id));
                }
                Outcome::InvalidToken => {}
                Outcome::Ambiguous => {
                    self.uncertain.extend(&plan.message_ids);
                    self.reached_line.extend(&plan.message_ids);
                    for id in &plan.message_ids {
                        self.call_of.insert(*id, call);
                    }
                    self.queue.retain(|q| !ids.contains(&q.message.id));
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
        self.queue.retain(|m| m.message.id != message_id);
        self.failed.push(message_id);
        Ok(())
    }

    fn check_plan(
        &self,
        queue: &[Outgoing],
        token: &ReplyToken,
        plan: &ReplyPlan,
    ) -> Result<(), TestCaseError> {
        // Never a used or expired token.
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
        // Each message is carried whole by this call: the objects' ids, in order, are the plan's.
        prop_assert_eq!(&carried_ids(&plan.objects), &plan.message_ids);

        // At most once: nothing that reached LINE before is in the call.
        for id in &plan.message_ids {
            prop_assert!(!self.reached_line.contains(id), "message {id} sent twice");
        }

        let by_id: HashMap<i64, &Outgoing> = queue.iter().map(|m| (m.id, m)).collect();
        let origin = |id: &i64| by_id[id].origin;
        let usable = |t: &str| {
            self.tokens
                .iter()
                .any(|x| x.token == t && x.is_usable(self.now, W))
        };
        // What may go with this token: not a desk answer waiting for another usable token.
        let eligible: Vec<&Outgoing> = queue
            .iter()
            .filter(|m| {
                m.reply_to
                    .as_deref()
                    .is_none_or(|t| t == plan.token || !usable(t))
            })
            .collect();
        let in_plan: HashSet<i64> = plan.message_ids.iter().copied().collect();

        // Desk answers first, then the handler's, then kept ones; one origin per object.
        let origins: Vec<Origin> = plan.message_ids.iter().map(origin).collect();
        prop_assert!(origins.windows(2).all(|w| w[0] <= w[1]), "{:?}", origins);
        for object in &plan.objects {
            let o = origin(&object.message_ids[0]);
            prop_assert!(object.message_ids.iter().all(|id| origin(id) == o));
        }
        // Per origin, the call carries a prefix of what waits: nothing jumps ahead.
        for o in [Origin::Desk, Origin::Handler, Origin::Kept] {
            let waiting: Vec<i64> = eligible
                .iter()
                .filter(|m| m.origin == o)
                .map(|m| m.id)
                .collect();
            let carried: Vec<i64> = plan
                .message_ids
                .iter()
                .copied()
                .filter(|id| origin(id) == o)
                .collect();
            prop_assert_eq!(&carried[..], &waiting[..carried.len()]);
        }
        // Kept messages never take a token alone before the handler answered.
        if origins.contains(&Origin::Kept) && !self.handler_answered {
            prop_assert!(
                origins.contains(&Origin::Handler),
                "kept messages went alone"
            );
        }
        // A desk answer rides its own token.
        for m in queue {
            if m.reply_to.as_deref() == Some(plan.token.as_str()) {
                prop_assert!(
                    in_plan.contains(&m.id),
                    "desk answer {} left its token",
                    m.id
                );
            }
        }
        // A press that fits one call is never split: all of its waiting members or none.
        let mut groups: Vec<(i64, Vec<&Outgoing>)> = Vec::new();
        for m in &eligible {
            match groups.iter_mut().find(|(g, _)| *g == m.group) {
                Some((_, v)) => v.push(m),
                None => groups.push((m.group, vec![m])),
            }
        }
        for (g, members) in &groups {
            let owned: Vec<Outgoing> = members.iter().map(|m| (*m).clone()).collect();
            if objects_needed(&owned).unwrap() <= MAX_OBJECTS_PER_CALL {
                let n = members.iter().filter(|m| in_plan.contains(&m.id)).count();
                prop_assert!(n == 0 || n == members.len(), "group {g} split");
            }
        }
        // The handler's answer is never starved: their first waiting press is in the call,
        // unless the desk's answers took the room it needs.
        let desk_objects = plan
            .objects
            .iter()
            .filter(|o| origin(&o.message_ids[0]) == Origin::Desk)
            .count();
        if let Some((_, first)) = groups.iter().find(|(_, v)| v[0].origin == Origin::Handler) {
            let owned: Vec<Outgoing> = first.iter().map(|m| (*m).clone()).collect();
            let need = objects_needed(&owned).unwrap();
            if need <= MAX_OBJECTS_PER_CALL && desk_objects + need <= MAX_OBJECTS_PER_CALL {
                prop_assert!(
                    in_plan.contains(&first[0].id),
                    "the handler's first press was starved"
                );
            }
        }

        // Consecutive texts of one origin are joined whenever the join fits.
        for pair in plan.objects.windows(2) {
            if let (OutContent::Text(a), OutContent::Text(_)) = (&pair[0].content, &pair[1].content)
            {
                let first = pair[1].message_ids[0];
                let last = *pair[0].message_ids.last().unwrap();
                if last != first && origin(&last) == origin(&first) {
                    let piece = split_text(self.text_of(first))[0];
                    prop_assert!(
                        text_units(a) + text_units(JOIN) + text_units(piece) > MAX_TEXT_UNITS,
                        "texts left unjoined although they fit"
                    );
                }
            }
        }

        // The call stops only when the next press does not fit (or may not go).
        let handler_in = origins.contains(&Origin::Handler);
        let mut by_priority: Vec<&(i64, Vec<&Outgoing>)> = groups.iter().collect();
        by_priority.sort_by_key(|(_, v)| v[0].origin);
        let next = by_priority
            .into_iter()
            .find(|(_, v)| v.iter().any(|m| !in_plan.contains(&m.id)));
        if let Some((_, members)) = next
            && (members[0].origin != Origin::Kept || handler_in || self.handler_answered)
        {
            let rest: Vec<Outgoing> = members
                .iter()
                .filter(|m| !in_plan.contains(&m.id))
                .map(|m| (*m).clone())
                .collect();
            let whole = objects_needed(&rest).unwrap();
            let need = if whole <= MAX_OBJECTS_PER_CALL {
                whole
            } else {
                objects_needed(&rest[..1]).unwrap()
            };
            prop_assert!(
                plan.objects.len() + need > MAX_OBJECTS_PER_CALL,
                "message {} would have fit",
                rest[0].id
            );
        }
        Ok(())
    }

    fn text_of(&self, id: i64) -> &str {
        match &self
            .written
            .iter()
            .find(|m| m.message.id == id)
            .unwrap()
            .message
            .content
        {
            OutContent::Text(t) => t,
            OutContent::Image { .. } => panic!("message {id} is an image"),
        }
    }

    /// Someone handles the chat and the customer keeps writing (LINE accepts everything)
    /// until the queue is empty.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        self.outcomes.clear();
        let bound = 2 * self.queue.len() + 4;
        for _ in 0..bound {
            if self.queue.is_empty() {
                break;
            }
            if self.handler.is_none() {
                self.apply(Event::Take)?;
            }
            let kept_only = self
                .planned_queue()
                .iter()
                .all(|m| m.origin == Origin::Kept);
            let before = self.queue.len();
            self.now += 1_000;
            self.apply(Event::CustomerWrites)?;
            if kept_only && !self.handler_answered {
                // Kept messages wait for the handler's answer: it goes with this token.
                prop_assert_eq!(self.queue.len(), before, "kept messages went alone");
                self.apply(Event::AgentText("お待たせしました。".into()))?;
                prop_assert!(self.handler_answered);
            } else {
                prop_assert!(self.queue.len() < before, "a fresh token delivered nothing");
            }
        }
        prop_assert!(self.queue.is_empty());
        Ok(())
    }

    fn check_end(&self) -> Result<(), TestCaseError> {
        // Every message is delivered, uncertain, failed or cancelled, exactly once.
        let mut all: Vec<i64> = self
            .delivered
            .iter()
            .chain(&self.uncertain)
            .chain(&self.failed)
            .chain(&self.cancelled)
            .copied()
            .collect();
        all.sort_unstable();
        let written: Vec<i64> = self.written.iter().map(|m| m.message.id).collect();
        prop_assert_eq!(&all, &written);

        // Each writer's messages in the order written (ids grow with writing).
        let author: HashMap<i64, Option<i64>> = self
            .written
            .iter()
            .map(|q| (q.message.id, q.author))
            .collect();
        let mut last_of: HashMap<Option<i64>, i64> = HashMap::new();
        for id in &self.delivered {
            if let Some(prev) = last_of.insert(author[id], *id) {
                prop_assert!(prev < *id, "{id} delivered before {prev}");
            }
        }
        prop_assert_eq!(&carried_ids(&self.delivered_objects), &self.delivered);

        // A press that fit one call went in one call.
        let group_of: HashMap<i64, i64> = self
            .written
            .iter()
            .map(|q| (q.message.id, q.message.group))
            .collect();
        let mut call_of_group: HashMap<i64, usize> = HashMap::new();
        for (id, call) in &self.call_of {
            let g = group_of[id];
            if self
                .group_sizes
                .get(&g)
                .is_some_and(|n| *n <= MAX_OBJECTS_PER_CALL)
                && let Some(other) = call_of_group.insert(g, *call)
            {
                prop_assert_eq!(other, *call, "group {} went in two calls", g);
            }
        }

        // No content lost or altered: texts joined by "\n", images in place.
        let by_id: HashMap<i64, &Outgoing> = self
            .written
            .iter()
            .map(|q| (q.message.id, &q.message))
            .collect();
        let expected_text = self
            .delivered
            .iter()
            .filter_map(|id| match &by_id[id].content {
                OutContent::Text(t) => Some(t.as_str()),
                OutContent::Image { .. } => None,
            })
            .collect::<Vec<_>>()
            .join(JOIN);
        let expected_images: Vec<&OutContent> = self
            .delivered
            .iter()
            .map(|id| &by_id[id].content)
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
        6 => Just(Event::CustomerWrites),
        10 => agent_text().prop_map(Event::AgentText),
        4 => Just(Event::AgentImage),
        4 => (prop::option::of(agent_text()), 1usize..=4)
            .prop_map(|(t, n)| Event::AgentGroup(t, n)),
        4 => (0i64..20_000).prop_map(Event::Advance),
        2 => (W - 2..W + 2).prop_map(Event::Advance),
        2 => (W..10 * W).prop_map(Event::Advance),
        1 => Just(Event::Handover),
        1 => Just(Event::Release),
        1 => Just(Event::Take),
        1 => (0usize..8).prop_map(Event::Cancel),
        1 => Just(Event::DeskReply),
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
            .map(|(i, t)| Outgoing::new(i as i64, OutContent::Text(t.clone())))
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

/// Issue 10, item 3: agent A queues two texts and presses 完了 (そのまま送る). The customer
/// writes: nothing goes out, nobody handles the chat. Agent B takes it and answers within
/// seconds: B's answer goes first with that token, A's kept texts after it, in one call.
#[test]
fn a_handover_keeps_the_old_queue_behind_the_new_handlers_answer() {
    let mut sim = Sim::new(vec![]);
    sim.apply(Event::CustomerWrites).unwrap();
    sim.apply(Event::AgentText("確認します。".into())).unwrap();
    sim.apply(Event::AgentText("Aの追記1".into())).unwrap();
    sim.apply(Event::AgentText("Aの追記2".into())).unwrap();
    assert_eq!(sim.delivered, vec![1]);
    sim.apply(Event::Release).unwrap();
    sim.apply(Event::Advance(W)).unwrap();
    sim.apply(Event::CustomerWrites).unwrap();
    assert_eq!(
        sim.delivered,
        vec![1],
        "nobody handles the chat: the kept texts wait"
    );
    sim.apply(Event::Take).unwrap();
    sim.apply(Event::Advance(3_000)).unwrap();
    sim.apply(Event::AgentText("Bが承ります。".into())).unwrap();
    assert_eq!(sim.delivered, vec![1, 4, 2, 3]);
    let last = sim.delivered_objects.last().unwrap();
    assert_eq!(last.content, OutContent::Text("Aの追記1\nAの追記2".into()));
    sim.check_end().unwrap();
}
