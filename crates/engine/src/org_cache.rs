//! `OrgCache`: what a run reads of its organization on every start (its actions, its secrets
//! opened), kept for a moment so that a burst of runs reads the store once.
//!
//! Invariant: a write on this node forgets its organization's entry before it answers
//! ([`OrgCache::forget`]), so this node never serves what it changed; a write made on another
//! node is seen once the entry is older than [`FRESH_FOR`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an entry is served before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Organizations kept at most; past it the cache starts over.
const ORGANIZATIONS: usize = 10_000;

/// Values by organization, each read at most once per [`FRESH_FOR`]. Cheap to clone (shared).
pub struct OrgCache<T> {
    entries: Arc<Mutex<HashMap<String, Entry<T>>>>,
    /// How many `forget`s so far: a read that a `forget` overtook is not kept.
    generation: Arc<AtomicU64>,
}

struct Entry<T> {
    value: Arc<T>,
    read_at: Instant,
}

impl<T> Clone for OrgCache<T> {
    fn clone(&self) -> Self {
        Self { entries: self.entries.clone(), generation: self.generation.clone() }
    }
}

impl<T> Default for OrgCache<T> {
    fn default() -> Self {
        Self { entries: Arc::default(), generation: Arc::default() }
    }
}

impl<T> OrgCache<T> {
    /// The organization's value: the one kept if fresh, else `load`'s (kept, unless the
    /// organization was forgotten while it loaded).
    pub async fn get<E, F: Future<Output = Result<T, E>>>(&self, org: &str, load: impl FnOnce() -> F) -> Result<Arc<T>, E> {
        if let Some(found) = self.fresh(org) {
            return Ok(found);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let value = Arc::new(load().await?);
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) == generation {
            if entries.len() >= ORGANIZATIONS {
                entries.clear();
            }
            entries.insert(org.to_owned(), Entry { value: value.clone(), read_at: Instant::now() });
        }
        Ok(value)
    }

    /// Drops the organization's entry: the next `get` reads the store.
    pub fn forget(&self, org: &str) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(org);
    }

    fn fresh(&self, org: &str) -> Option<Arc<T>> {
        let entries = self.lock();
        let entry = entries.get(org)?;
        (entry.read_at.elapsed() < FRESH_FOR).then(|| entry.value.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<T>>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_value_is_read_once_while_fresh_and_again_once_forgotten() {
        let cache: OrgCache<u32> = OrgCache::default();
        let reads = std::sync::atomic::AtomicU32::new(0);
        let load = || async { Ok::<_, ()>(reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1) };
        assert_eq!(*cache.get("org", load).await.unwrap(), 1);
        assert_eq!(*cache.get("org", load).await.unwrap(), 1, "served while fresh");
        assert_eq!(*cache.get("other", load).await.unwrap(), 2, "per organization");
        cache.forget("org");
        assert_eq!(*cache.get("org", load).await.unwrap(), 3, "read again once forgotten");
    }

    #[tokio::test]
    async fn a_read_that_a_forget_overtook_is_not_kept() {
        let cache: OrgCache<u32> = OrgCache::default();
        let during = cache.clone();
        let value = cache
            .get("org", || async move {
                during.forget("org"); // a write lands while the read is in flight
                Ok::<_, ()>(1)
            })
            .await
            .unwrap();
        assert_eq!(*value, 1, "the reader gets what it read");
        assert_eq!(*cache.get("org", || async { Ok::<_, ()>(2) }).await.unwrap(), 2, "but it was not kept");
    }
}
