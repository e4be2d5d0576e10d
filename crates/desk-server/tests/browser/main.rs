//! The browser tests: the desk's pages in Debian's Chromium through chromedriver (see
//! `common/browser.rs`), one module per screen. One test binary, linked once. Run one with
//! `cargo test -p desk-server --test browser chat_screen::`.

#[path = "../common/mod.rs"]
mod common;

mod chat_list;
mod chat_screen;
mod customers;
mod security;
