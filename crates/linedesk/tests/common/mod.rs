//! What the tests of the real binary share: a `linedesk serve` process on a free loopback
//! port, started and waited for, killed with SIGKILL when a test asks and always stopped
//! when dropped.
//!
//! (Each test file compiles this module; not every file uses every part.)
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `linedesk serve`; stopped when dropped.
pub struct Desk {
    pub child: Child,
    pub url: String,
}

impl Drop for Desk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 now (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `linedesk serve` on `127.0.0.1:<port>` with data in `dir`, logging warnings only, its
/// standard output dropped. Add the environment the test needs, then [`start`] it.
pub fn serve(port: u16, dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_linedesk"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir)
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null());
    cmd
}

/// Starts `cmd` (from [`serve`]) and waits until its `/healthz` answers 200, for at most
/// `within`.
pub async fn start(mut cmd: Command, port: u16, within: Duration) -> Desk {
    let desk = Desk {
        child: cmd.spawn().unwrap(),
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = reqwest::get(format!("{}/healthz", desk.url)).await
            && r.status() == 200
        {
            return desk;
        }
        assert!(Instant::now() < deadline, "the desk did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGKILL: the process gets no chance to finish anything.
pub fn kill9(desk: &mut Desk) {
    let pid = desk.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    let _ = desk.child.wait();
}
