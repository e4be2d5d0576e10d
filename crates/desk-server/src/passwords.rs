//! Password hashing with bounded memory (issue 9, item 2). One argon2 verification takes
//! 19 MiB for a few tens of milliseconds; run unbounded on the blocking pool, 300 concurrent
//! anonymous logins took the process to 5.6 GB. Here hashes run on
//! [`PasswordWork::concurrent`] threads of their own and at most [`PasswordWork::queue`]
//! more requests wait for one; a request beyond that is told at once that the desk is busy
//! (503), before any work. Unknown login IDs are checked against a dummy hash through the
//! same line, so they cost the same bounded work as known ones.
//!
//! Why threads of their own, each hashing into one block of memory it keeps: argon2 allocates
//! its 19 MiB afresh for every check, and glibc's allocator gives that back to the system
//! only sometimes (measured: ten sequential checks on one thread left 200 MB resident, each
//! further thread another 200 MB). A fixed set of threads that reuse their own memory holds
//! exactly `concurrent × 19 MiB`, whatever the allocator does. The hashes are the standard
//! PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$…`), the same as `password-auth` writes
//! and reads (its defaults), so existing hashes keep working.

use std::sync::{Arc, LazyLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A hash to verify against when the login ID is unknown, so that answer takes as long as
/// a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| password_auth::generate_hash("linedesk: no such user"));

/// Stored hashes asking for more memory than this are not checked (ours use 19 MiB).
const MAX_HASH_MEMORY_KIB: u32 = 64 * 1024;

/// One hashing thread's argon2 memory, allocated once and reused for every hash.
struct Memory {
    blocks: Vec<argon2::Block>,
}

impl Memory {
    /// Empty until the thread's first hash (an idle desk holds none of it).
    fn new() -> Memory {
        Memory { blocks: Vec::new() }
    }

    /// The blocks for `params` (grown once if a stored hash needs more, within the cap).
    fn blocks(&mut self, params: &argon2::Params) -> Option<&mut [argon2::Block]> {
        if params.m_cost() > MAX_HASH_MEMORY_KIB {
            return None;
        }
        let need = params.block_count();
        if self.blocks.len() < need {
            self.blocks.resize(need, argon2::Block::default());
        }
        Some(&mut self.blocks[..need])
    }

    /// Whether `password` matches the PHC string `phc` (argon2 only).
    fn verify(&mut self, password: &[u8], phc: &str) -> bool {
        use argon2::password_hash::{Output, PasswordHash};
        let mut check = || -> Option<bool> {
            let hash = PasswordHash::new(phc).ok()?;
            let algorithm = argon2::Algorithm::try_from(hash.algorithm).ok()?;
            let version = match hash.version {
                Some(v) => argon2::Version::try_from(v).ok()?,
                None => argon2::Version::default(),
            };
            let params = argon2::Params::try_from(&hash).ok()?;
            let mut salt = [0u8; 64];
            let salt = hash.salt?.decode_b64(&mut salt).ok()?;
            let expected = hash.hash?;
            let mut out = vec![0u8; expected.len()];
            let argon = argon2::Argon2::new(algorithm, version, params.clone());
            let blocks = self.blocks(&params)?;
            argon
                .hash_password_into_with_memory(password, salt, &mut out, blocks)
                .ok()?;
            // Output's equality is constant-time.
            Some(Output::new(&out).ok()? == expected)
        };
        check().unwrap_or(false)
    }

    /// A new hash of `password` with argon2id's default parameters and a random salt.
    fn hash(&mut self, password: &[u8]) -> String {
        use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
        let params = argon2::Params::default();
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt
            .decode_b64(&mut salt_bytes)
            .expect("a generated salt decodes");
        let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params.clone(),
        );
        let blocks = self
            .blocks(&params)
            .expect("the defaults are within the cap");
        argon
            .hash_password_into_with_memory(password, salt_bytes, &mut out, blocks)
            .expect("argon2 with its default parameters");
        PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(argon2::Version::V0x13.into()),
            params: ParamsString::try_from(&params).expect("default parameters"),
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).expect("32 bytes")),
        }
        .to_string()
    }
}

#[derive(Clone)]
pub struct PasswordWork {
    /// Places in line (waiting or hashing).
    line: Arc<Semaphore>,
    jobs: std::sync::mpsc::SyncSender<Job>,
    concurrent: usize,
    queue: usize,
}

/// Work for a hashing thread, given that thread's memory.
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

impl Default for PasswordWork {
    /// As many hashing threads as there are cores (2 to 4), 32 more requests waiting.
    fn default() -> PasswordWork {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PasswordWork::new(cores.clamp(2, 4), 32)
    }
}

/// A place in line for one hash; dropped, it frees the place.
pub struct Ticket {
    _place: OwnedSemaphorePermit,
    jobs: std::sync::mpsc::SyncSender<Job>,
}

impl PasswordWork {
    /// Starts `concurrent` hashing threads (they live as long as the process).
    pub fn new(concurrent: usize, queue: usize) -> PasswordWork {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(concurrent + queue);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..concurrent {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || {
                    let mut memory = Memory::new();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                })
                .expect("a password hashing thread");
        }
        PasswordWork {
            line: Arc::new(Semaphore::new(concurrent + queue)),
            jobs,
            concurrent,
            queue,
        }
    }

    /// Hashing threads.
    pub fn concurrent(&self) -> usize {
        self.concurrent
    }

    /// Requests that may wait for a hash.
    pub fn queue(&self) -> usize {
        self.queue
    }

    /// Hashes a new password for a logged-in admin: waits for a place in line (the line's
    /// refusal is for anonymous requests; these are few and authenticated).
    pub async fn hash_for_admin(&self, password: String) -> String {
        let place = self
            .line
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        Ticket {
            _place: place,
            jobs: self.jobs.clone(),
        }
        .hash(password)
        .await
    }

    /// A place in line, or `None` when the line is full (answer "busy" at once).
    pub fn enter(&self) -> Option<Ticket> {
        let place = self.line.clone().try_acquire_owned().ok()?;
        Some(Ticket {
            _place: place,
            jobs: self.jobs.clone(),
        })
    }
}

impl Ticket {
    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> T {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = done.send(work(memory));
        });
        // Never blocks: the channel holds as many jobs as there are places in line.
        self.jobs
            .try_send(job)
            .expect("a place in line is a place in the channel");
        result.await.expect("the hashing threads run every job")
    }

    /// Whether `password` matches `hash`; with no hash (unknown or disabled user) it checks
    /// against a dummy hash and answers `false`, taking the same time and memory.
    pub async fn verify(self, password: String, hash: Option<String>) -> bool {
        self.run(move |memory| match hash {
            Some(h) => memory.verify(password.as_bytes(), &h),
            None => {
                let _ = memory.verify(password.as_bytes(), &DUMMY_HASH);
                false
            }
        })
        .await
    }

    /// The argon2 hash of a new password.
    pub async fn hash(self, password: String) -> String {
        self.run(move |memory| memory.hash(password.as_bytes()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_line_is_bounded_and_frees_its_places() {
        let work = PasswordWork::new(1, 2);
        let a = work.enter().expect("1st");
        let b = work.enter().expect("2nd");
        let c = work.enter().expect("3rd");
        assert!(work.enter().is_none(), "a 4th place does not exist");
        drop(a);
        let d = work.enter().expect("a freed place");
        let hash = b.hash("pw-123456".into()).await;
        assert!(c.verify("pw-123456".into(), Some(hash.clone())).await);
        assert!(!d.verify("pw-123456".into(), None).await);
        assert!(work.enter().is_some());
        // The same PHC strings as password-auth, both ways.
        assert!(password_auth::verify_password("pw-123456", &hash).is_ok());
        let theirs = password_auth::generate_hash("their-pass");
        let t = work.enter().unwrap();
        assert!(t.verify("their-pass".into(), Some(theirs.clone())).await);
        let t = work.enter().unwrap();
        assert!(!t.verify("wrong-pass".into(), Some(theirs)).await);
        let t = work.enter().unwrap();
        assert!(!t.verify("x".into(), Some("not a hash".into())).await);
    }
}
