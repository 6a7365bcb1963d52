//! Verdicts on tokens, kept for a short time so that a caller sending the same token again
//! costs a SHA-256 and a map lookup, not a signature check or a TokenReview.
//!
//! Entries are keyed by the SHA-256 of the token (the token itself is never kept), expire at
//! their own deadline (never after the token's `exp`), and are bounded in number: when the
//! cache is full, expired entries are dropped, and if none were, the whole cache is.
//!
//! In front of the shared map, each thread keeps the [`RECENT_PER_THREAD`] verdicts it last
//! read, so that the server's workers answering the same callers do not contend on the map's
//! lock or bounce its cache lines between cores on every request.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::answer::Denied;

/// How many verdicts each thread keeps in front of the shared map.
pub const RECENT_PER_THREAD: usize = 8;

static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// (cache id, token hash, deadline, verdict), the most recently read first.
    static RECENT: RefCell<VecDeque<(u64, TokenHash, Instant, Verdict)>> =
        RefCell::new(VecDeque::with_capacity(RECENT_PER_THREAD));
}

/// The SHA-256 of a token.
pub type TokenHash = [u8; 32];

/// The SHA-256 of `token`.
pub fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A verdict: in, or why not.
pub type Verdict = Result<(), Denied>;

/// Verdicts by token hash, each until its deadline.
pub struct VerdictCache {
    id: u64,
    max_entries: usize,
    entries: Mutex<HashMap<TokenHash, (Instant, Verdict)>>,
}

impl VerdictCache {
    /// A cache of at most `max_entries` verdicts.
    pub fn new(max_entries: usize) -> Self {
        Self {
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            max_entries: max_entries.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict on `hash`, if one is held and not past its deadline.
    pub fn get(&self, hash: &TokenHash) -> Option<Verdict> {
        let now = Instant::now();
        let recent = RECENT.with(|recent| {
            let recent = recent.borrow();
            recent
                .iter()
                .find(|(id, h, until, _)| *id == self.id && h == hash && now < *until)
                .map(|(_, _, _, verdict)| verdict.clone())
        });
        if recent.is_some() {
            return recent;
        }
        let (until, verdict) = {
            let mut entries = self.entries.lock().ok()?;
            match entries.get(hash) {
                Some((until, verdict)) if now < *until => (*until, verdict.clone()),
                Some(_) => {
                    entries.remove(hash);
                    return None;
                }
                None => return None,
            }
        };
        RECENT.with(|recent| {
            let mut recent = recent.borrow_mut();
            recent.retain(|(id, h, until, _)| !(*id == self.id && h == hash) && now < *until);
            recent.push_front((self.id, *hash, until, verdict.clone()));
            recent.truncate(RECENT_PER_THREAD);
        });
        Some(verdict)
    }

    /// Keeps `verdict` on `hash` until `until`.
    pub fn put(&self, hash: TokenHash, until: Instant, verdict: Verdict) {
        let now = Instant::now();
        if until <= now {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.max_entries && !entries.contains_key(&hash) {
            entries.retain(|_, (deadline, _)| *deadline > now);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(hash, (until, verdict));
    }

    /// How many verdicts are held (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn verdicts_expire_and_the_cache_is_bounded() {
        let cache = VerdictCache::new(2);
        let later = Instant::now() + Duration::from_secs(60);
        let ok = Ok(());
        cache.put(hash("t1"), later, ok.clone());
        assert_eq!(cache.get(&hash("t1")), Some(ok.clone()));
        assert_eq!(cache.get(&hash("t2")), None);
        // Already expired: not kept.
        cache.put(hash("t2"), Instant::now(), ok.clone());
        assert_eq!(cache.get(&hash("t2")), None);
        cache.put(hash("t2"), later, Err(Denied::unauthenticated("no")));
        assert_eq!(cache.len(), 2);
        // Full, nothing expired: the cache starts over rather than growing.
        cache.put(hash("t3"), later, ok.clone());
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&hash("t3")), Some(ok));
        assert_ne!(hash("t1"), hash("t2"));
    }
}
