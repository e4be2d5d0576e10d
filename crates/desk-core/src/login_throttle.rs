//! The login throttle (issue 9, items 3–5): which login attempts may have their password
//! checked, decided from the attempts already made. Pure; the store keeps the attempts (in
//! the database, so every instance shares them) and asks [`judge`].
//!
//! # Rules and decisions
//!
//! * An attempt is counted **before** its password is verified (the store reserves it as
//!   `pending`), so concurrent tries cannot slip past the limit while the slow verify runs.
//!   Pending and failed attempts count; a success clears the failures of its own login ID
//!   and address.
//! * **Per login ID and client address** ([`Limits::pair`], 5 in 5 minutes): a guesser
//!   locks only themselves; the real user, from their own address, still gets in.
//! * **Per login ID** from all addresses ([`Limits::login`], 20 in 15 minutes), **per
//!   address** for all login IDs ([`Limits::client`], 30 in 15 minutes: password spraying)
//!   and **desk-wide** ([`Limits::global`], 60 a minute: a botnet) bound what many
//!   addresses together can try. These three do not apply to an address the login ID
//!   signed in from lately ([`Limits::known_for_ms`], 30 days): so nobody can lock a known
//!   agent out of their usual desk PC by failing from elsewhere.
//! * A refused attempt is not counted (it checked nothing), so a lock ends when the oldest
//!   counted attempt of its window has aged out ([`Verdict::Locked`] says when).
//! * Attempts older than the longest window can no longer lock anything
//!   ([`Limits::keep_ms`]); only those are ever forgotten (never a live lock).

/// One limit: at most `max` counted attempts within `window_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window_ms: i64,
}

/// The limits of every scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub pair: Limit,
    pub login: Limit,
    pub client: Limit,
    pub global: Limit,
    /// An address counts as the login ID's own this long after it signed in from there.
    pub known_for_ms: i64,
}

const MINUTE_MS: i64 = 60_000;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            pair: Limit {
                max: 5,
                window_ms: 5 * MINUTE_MS,
            },
            login: Limit {
                max: 20,
                window_ms: 15 * MINUTE_MS,
            },
            client: Limit {
                max: 30,
                window_ms: 15 * MINUTE_MS,
            },
            global: Limit {
                max: 60,
                window_ms: MINUTE_MS,
            },
            known_for_ms: 30 * 24 * 60 * MINUTE_MS,
        }
    }
}

impl Limits {
    /// How long an attempt can matter: older ones may be deleted.
    pub fn keep_ms(&self) -> i64 {
        [self.pair, self.login, self.client, self.global]
            .iter()
            .map(|l| l.window_ms)
            .max()
            .unwrap_or(0)
    }

    /// The scopes in the order they are judged, with their limits.
    pub fn scopes(&self) -> [(Scope, Limit); 4] {
        [
            (Scope::Pair, self.pair),
            (Scope::Login, self.login),
            (Scope::Client, self.client),
            (Scope::Global, self.global),
        ]
    }
}

/// What a limit counts attempts of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// This login ID from this address.
    Pair,
    /// This login ID from any address.
    Login,
    /// Any login ID from this address.
    Client,
    /// Every attempt on the desk.
    Global,
}

impl Scope {
    /// Whether the scope applies to an address the login ID signed in from lately.
    pub fn applies_to_known_client(self) -> bool {
        self == Scope::Pair
    }
}

/// The decision on one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password (and count the attempt).
    Allow,
    /// Refused without checking, until `until_ms`.
    Locked { scope: Scope, until_ms: i64 },
}

/// What the store found for one scope: the time of the `max`-th newest counted attempt
/// within the window (`None` when there are fewer than `max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub scope: Scope,
    pub max_th_newest_ms: Option<i64>,
}

/// Judges an attempt at `now_ms`. `known_client`: the login ID signed in from this address
/// within [`Limits::known_for_ms`]. `seen` holds one entry per scope (see [`Seen`]).
pub fn judge(limits: &Limits, seen: &[Seen], known_client: bool, now_ms: i64) -> Verdict {
    let mut verdict = Verdict::Allow;
    for (scope, limit) in limits.scopes() {
        if known_client && !scope.applies_to_known_client() {
            continue;
        }
        let Some(at) = seen
            .iter()
            .find(|s| s.scope == scope)
            .and_then(|s| s.max_th_newest_ms)
        else {
            continue;
        };
        if at > now_ms - limit.window_ms {
            let until_ms = at + limit.window_ms;
            // The lock that lasts longest is the one to report.
            verdict = match verdict {
                Verdict::Locked { until_ms: u, .. } if u >= until_ms => verdict,
                _ => Verdict::Locked { scope, until_ms },
            };
        }
    }
    verdict
}

/// The key attempts are counted under: the login ID trimmed and in lower case, at most 100
/// characters (made-up IDs cannot make rows large).
pub fn login_key(login: &str) -> String {
    login.trim().to_lowercase().chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000;

    fn seen(scope: Scope, at: Option<i64>) -> Seen {
        Seen {
            scope,
            max_th_newest_ms: at,
        }
    }

    #[test]
    fn allows_below_every_limit() {
        let l = Limits::default();
        assert_eq!(judge(&l, &[], false, T), Verdict::Allow);
        let all_none: Vec<Seen> = l.scopes().iter().map(|(s, _)| seen(*s, None)).collect();
        assert_eq!(judge(&l, &all_none, false, T), Verdict::Allow);
    }

    #[test]
    fn the_fifth_failure_of_a_pair_locks_it_until_it_ages_out() {
        let l = Limits::default();
        let fifth = T - 60_000;
        let s = [seen(Scope::Pair, Some(fifth))];
        assert_eq!(
            judge(&l, &s, false, T),
            Verdict::Locked {
                scope: Scope::Pair,
                until_ms: fifth + 5 * MINUTE_MS
            }
        );
        // Known clients are not spared their own failures.
        assert!(matches!(judge(&l, &s, true, T), Verdict::Locked { .. }));
        assert_eq!(judge(&l, &s, false, fifth + 5 * MINUTE_MS), Verdict::Allow);
    }

    #[test]
    fn wide_locks_spare_the_login_ids_own_address() {
        let l = Limits::default();
        for scope in [Scope::Login, Scope::Client, Scope::Global] {
            let s = [seen(scope, Some(T - 1))];
            assert!(
                matches!(judge(&l, &s, false, T), Verdict::Locked { scope: x, .. } if x == scope)
            );
            assert_eq!(judge(&l, &s, true, T), Verdict::Allow, "{scope:?}");
        }
    }

    #[test]
    fn the_longest_lock_is_reported() {
        let l = Limits::default();
        let s = [
            seen(Scope::Pair, Some(T - 1)),
            seen(Scope::Login, Some(T - 1)),
            seen(Scope::Global, Some(T - 1)),
        ];
        assert_eq!(
            judge(&l, &s, false, T),
            Verdict::Locked {
                scope: Scope::Login,
                until_ms: T - 1 + 15 * MINUTE_MS
            }
        );
        assert_eq!(l.keep_ms(), 15 * MINUTE_MS);
    }

    #[test]
    fn login_keys() {
        assert_eq!(login_key("  Sato "), "sato");
        assert_eq!(login_key(&"x".repeat(500)).len(), 100);
    }
}
