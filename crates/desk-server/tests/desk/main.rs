//! desk-server's tests against a running desk (HTTP, the LINE emulator, SQLite and
//! PostgreSQL), one module per area. One test binary: the desk and its dependencies are
//! linked once for all of them. Run one area with `cargo test -p desk-server --test desk
//! sending::`, one test by a part of its name.

#[path = "../common/mod.rs"]
mod common;

mod chat_screen;
mod customers;
mod fixtures;
mod instances;
mod line_settings_page;
mod openapi;
mod reply_mode;
mod security;
mod sending;
mod ui_auth;
mod webhook;
