//! desk-store's tests, on SQLite and on a fresh PostgreSQL database, one module per area. One
//! test binary: the store and its dependencies are linked once for all of them. Run one area
//! with `cargo test -p desk-store --test store customers::`. (The customer-filter benchmark,
//! `bench_customers`, stays a binary of its own: it is run with `--release --ignored`.)

mod basics;
mod chat_screen;
mod common;
mod customers;
mod ingest_batch;
mod secrets;
