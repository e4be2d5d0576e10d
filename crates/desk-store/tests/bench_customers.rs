//! Benchmark (ignored by default): the chat list's customer filters (V1) and the customer
//! search with 100,000 customers and 100,000 chats, on SQLite and PostgreSQL.
//!
//!     cargo test --release -p desk-store --test bench_customers -- --ignored --nocapture
//!
//! `LINEDESK_BENCH_N` changes the size (default 100000), `LINEDESK_BENCH_RUNS` the runs per
//! query (default 200). Prints p50/p99 per query as a Markdown table (docs/benchmarks.md).

use std::time::{Duration, Instant};

use desk_core::normalize::name_key;
use desk_store::conversations::ConversationFilter;
use desk_store::customers::CustomerFilter;
use desk_store::{Store, exec_db, on_db, testing};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FAMILY: [&str; 40] = [
    "佐藤",
    "鈴木",
    "高橋",
    "田中",
    "伊藤",
    "渡辺",
    "山本",
    "中村",
    "小林",
    "加藤",
    "吉田",
    "山田",
    "佐々木",
    "山口",
    "松本",
    "井上",
    "木村",
    "林",
    "斎藤",
    "清水",
    "山崎",
    "森",
    "池田",
    "橋本",
    "阿部",
    "石川",
    "山下",
    "中島",
    "石井",
    "小川",
    "前田",
    "岡田",
    "長谷川",
    "藤田",
    "後藤",
    "近藤",
    "村上",
    "遠藤",
    "青木",
    "坂本",
];
const GIVEN: [&str; 40] = [
    "花子",
    "太郎",
    "美咲",
    "大輔",
    "恵",
    "健一",
    "彩",
    "翔",
    "陽菜",
    "蓮",
    "結衣",
    "悠真",
    "さくら",
    "湊",
    "葵",
    "樹",
    "凛",
    "大和",
    "美月",
    "陽斗",
    "由美",
    "直樹",
    "真由美",
    "浩",
    "智子",
    "誠",
    "裕子",
    "学",
    "久美子",
    "剛",
    "あゆみ",
    "拓也",
    "めぐみ",
    "隆",
    "香織",
    "亮",
    "ひとみ",
    "修",
    "愛",
    "哲也",
];
/// One customer with a name nobody else has.
const RARE_NAME: &str = "東雲 紫苑";
const RARE_PHONE: &str = "070-5555-0123";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Fills `n` customers and `n` chats, 80 % of them linked (some customers have two LINE
/// users, most one, some none). Returns (a linked customer's id, the rare customer's id).
async fn seed(s: &Store, n: usize) -> (i64, i64) {
    let mut rng = StdRng::seed_from_u64(15);
    let now: i64 = 1_700_000_000_000;
    let customers: Vec<(String, String, String)> = (0..n)
        .map(|i| {
            let name = if i == n / 2 {
                RARE_NAME.to_owned()
            } else {
                format!(
                    "{} {}",
                    FAMILY[rng.gen_range(0..FAMILY.len())],
                    GIVEN[rng.gen_range(0..GIVEN.len())]
                )
            };
            let phone = if i == n / 2 {
                RARE_PHONE.to_owned()
            } else {
                format!(
                    "0{}0-{:04}-{:04}",
                    [7, 8, 9][rng.gen_range(0..3)],
                    rng.gen_range(0..10_000),
                    rng.gen_range(0..10_000)
                )
            };
            let digits = desk_core::customer_code::normalize_phone_digits(&phone);
            (name, phone, digits)
        })
        .collect();
    for chunk in customers.chunks(3_000) {
        on_db!(s.db(), |p| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO customers (name, name_key, phone, phone_digits, email, notes, tags, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, (name, phone, digits)| {
                b.push_bind(name)
                    .push_bind(name_key(name))
                    .push_bind(phone)
                    .push_bind(digits)
                    .push_bind("")
                    .push_bind("")
                    .push_bind("[]")
                    .push_bind(now)
                    .push_bind(now);
            });
            q.build().execute(p).await.unwrap();
        });
    }
    let chats: Vec<(String, Option<i64>, i64, &str)> = (0..n)
        .map(|i| {
            let customer = (rng.gen_range(0..100) < 80).then(|| rng.gen_range(1..=n as i64));
            let status = ["unread", "in_progress", "done", "done"][rng.gen_range(0..4)];
            (
                format!("U{i:032x}"),
                customer,
                now - rng.gen_range(0..90 * 86_400_000i64),
                status,
            )
        })
        .collect();
    for chunk in chats.chunks(3_000) {
        on_db!(s.db(), |p| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO conversations (line_user_id, display_name, customer_id, status, last_message_at, created_at, updated_at, profile_state) ",
            );
            q.push_values(chunk, |mut b, (user, customer, at, status)| {
                b.push_bind(user)
                    .push_bind("LINEユーザー")
                    .push_bind(*customer)
                    .push_bind(*status)
                    .push_bind(*at)
                    .push_bind(*at)
                    .push_bind(*at)
                    .push_bind("ok");
            });
            q.build().execute(p).await.unwrap();
        });
    }
    // The rare customer has one chat.
    let rare: i64 = on_db!(s.db(), |p| sqlx::query_scalar(
        "SELECT id FROM customers WHERE name = $1"
    )
    .bind(RARE_NAME)
    .fetch_one(p)
    .await)
    .unwrap();
    exec_db!(s.db(), |p| sqlx::query(
        "UPDATE conversations SET customer_id = $1 WHERE id = 1"
    )
    .bind(rare))
    .unwrap();
    // As after a while in production.
    let analyze = if s.is_postgres() {
        // Autovacuum's work: statistics, and the GIN indexes' pending lists merged.
        "VACUUM ANALYZE"
    } else {
        "ANALYZE"
    };
    exec_db!(s.db(), |p| sqlx::query(analyze)).unwrap();
    let linked: i64 = on_db!(s.db(), |p| sqlx::query_scalar(
        "SELECT customer_id FROM conversations WHERE customer_id IS NOT NULL AND id > 10 ORDER BY id LIMIT 1")
        .fetch_one(p).await)
    .unwrap();
    (linked, rare)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Runs `f` `runs` times (after 5 warm-ups); (p50 ms, p99 ms, rows of the last run).
async fn time<F, Fut>(runs: usize, mut f: F) -> (f64, f64, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    for _ in 0..5 {
        f().await;
    }
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let t = Instant::now();
        rows = f().await;
        times.push(t.elapsed());
    }
    times.sort();
    (pct(&times, 0.5), pct(&times, 0.99), rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: seeds 100,000 customers and chats; run with --ignored --nocapture"]
async fn customer_filters_with_100k_customers_and_chats() {
    let n = env("LINEDESK_BENCH_N", 100_000);
    let runs = env("LINEDESK_BENCH_RUNS", 200);
    let dir = tempfile::tempdir().unwrap();
    for s in testing::stores(dir.path()).await {
        let backend = if s.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        let t = Instant::now();
        let (linked, rare) = seed(&s, n).await;
        println!(
            "\n{backend}: seeded {n} customers and {n} chats in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        println!("\n| {backend} | rows | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |");
        let chat_cases: Vec<(String, ConversationFilter)> = vec![
            ("chat list, no filter".into(), ConversationFilter::default()),
            (
                "chat list, 顧客ID = a linked customer".into(),
                ConversationFilter {
                    customer_id: Some(linked),
                    ..Default::default()
                },
            ),
            (
                "chat list, 顧客名 common (山田)".into(),
                ConversationFilter {
                    customer_name: Some("山田".into()),
                    ..Default::default()
                },
            ),
            (
                format!("chat list, 顧客名 one customer ({RARE_NAME})"),
                ConversationFilter {
                    customer_name: Some(RARE_NAME.into()),
                    ..Default::default()
                },
            ),
            (
                "chat list, 顧客名 no match".into(),
                ConversationFilter {
                    customer_name: Some("該当なし".into()),
                    ..Default::default()
                },
            ),
            (
                "chat list, 電話番号 full (one customer)".into(),
                ConversationFilter {
                    phone_digits: Some(desk_core::customer_code::normalize_phone_digits(
                        RARE_PHONE,
                    )),
                    ..Default::default()
                },
            ),
            (
                "chat list, 電話番号 last 4 digits".into(),
                ConversationFilter {
                    phone_digits: Some("0123".into()),
                    ..Default::default()
                },
            ),
            (
                "chat list, 登録済".into(),
                ConversationFilter {
                    registered: Some(true),
                    ..Default::default()
                },
            ),
            (
                "chat list, 未登録".into(),
                ConversationFilter {
                    registered: Some(false),
                    ..Default::default()
                },
            ),
            (
                "chat list, 未登録 + 未読".into(),
                ConversationFilter {
                    registered: Some(false),
                    status: Some(desk_core::ConversationStatus::Unread),
                    ..Default::default()
                },
            ),
        ];
        for (what, f) in chat_cases {
            let f = ConversationFilter { limit: 50, ..f };
            let (p50, p99, rows) = time(runs, || {
                let (s, f) = (s.clone(), f.clone());
                async move { s.list_conversations(&f).await.unwrap().len() }
            })
            .await;
            println!("| {what} | {rows} | {p50:.2} | {p99:.2} |");
        }
        let customer_cases: Vec<(String, CustomerFilter)> = vec![
            (
                "customers, ID".into(),
                CustomerFilter {
                    id: Some(rare),
                    ..Default::default()
                },
            ),
            (
                "customers, 名称 common (山田)".into(),
                CustomerFilter {
                    name: Some("山田".into()),
                    ..Default::default()
                },
            ),
            (
                format!("customers, 名称 one ({RARE_NAME})"),
                CustomerFilter {
                    name: Some(RARE_NAME.into()),
                    ..Default::default()
                },
            ),
            (
                "customers, 電話番号 full".into(),
                CustomerFilter {
                    phone_digits: Some(desk_core::customer_code::normalize_phone_digits(
                        RARE_PHONE,
                    )),
                    ..Default::default()
                },
            ),
            (
                "customers, 電話番号 last 4 digits".into(),
                CustomerFilter {
                    phone_digits: Some("0123".into()),
                    ..Default::default()
                },
            ),
        ];
        for (what, f) in customer_cases {
            let f = CustomerFilter { limit: 50, ..f };
            let (p50, p99, rows) = time(runs, || {
                let (s, f) = (s.clone(), f.clone());
                async move { s.list_customers(&f).await.unwrap().len() }
            })
            .await;
            println!("| {what} | {rows} | {p50:.2} | {p99:.2} |");
        }
    }
}
