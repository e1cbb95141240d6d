//! Each owner's webhook list, kept in memory between writes.
//!
//! A list on SQLite costs two thread hand-overs (to sqlx's connection thread and back) and one
//! decryption per webhook, and lists are read far more often than webhooks change. The embedded
//! backend has one serving process per database file (`serve` holds a lock on it), and every
//! webhook write goes through this store, so the store knows when a list goes stale.
//!
//! A read races a write: the read may see the database before the write's commit and finish
//! after the write invalidated the entry. So a read notes the generation before it queries and
//! fills the cache only if no write happened since ([`ListCache::fill`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::{Owner, Webhook, WebhookKind};

/// Beyond this many owners the cache starts again from empty (a bound, not an LRU: lists are
/// cheap to rebuild).
const MAX_OWNERS: usize = 4096;

#[derive(Default)]
pub struct ListCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every write.
    generation: u64,
    /// Per owner, its list of each kind (indexed by [`slot`]), when cached.
    lists: HashMap<Owner, [Option<Arc<Vec<Webhook>>>; 2]>,
}

/// Where a kind's list sits among an owner's lists.
fn slot(kind: WebhookKind) -> usize {
    match kind {
        WebhookKind::User => 0,
        WebhookKind::Facility => 1,
    }
}

impl ListCache {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked: every update is a single insert,
        // remove or clear.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached list, or the generation to pass to [`fill`](Self::fill) after reading it.
    pub fn get(&self, owner: &Owner, kind: WebhookKind) -> Result<Arc<Vec<Webhook>>, u64> {
        let inner = self.inner();
        inner.lists.get(owner).and_then(|lists| lists[slot(kind)].clone()).ok_or(inner.generation)
    }

    /// Keeps `list`, read after [`get`](Self::get) answered `generation`, unless a write
    /// happened since.
    pub fn fill(&self, owner: &Owner, kind: WebhookKind, generation: u64, list: Arc<Vec<Webhook>>) {
        let mut inner = self.inner();
        if inner.generation != generation {
            return;
        }
        if inner.lists.len() >= MAX_OWNERS {
            inner.lists.clear();
        }
        inner.lists.entry(owner.clone()).or_default()[slot(kind)] = Some(list);
    }

    /// After a write to `owner`'s webhooks (whatever its outcome and kind: both lists go).
    pub fn invalidate(&self, owner: &Owner) {
        let mut inner = self.inner();
        inner.generation += 1;
        inner.lists.remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(user: &str) -> Owner {
        Owner { client_id: "c".into(), user_id: user.into() }
    }

    fn list(ids: &[&str]) -> Arc<Vec<Webhook>> {
        Arc::new(
            ids.iter()
                .map(|id| Webhook {
                    id: (*id).into(),
                    client_id: "c".into(),
                    user_id: "u".into(),
                    url: "https://example.com".into(),
                    events: vec!["all".into()],
                    secrets: vec!["s".into()],
                    kind: WebhookKind::User,
                    facilities: None,
                })
                .collect(),
        )
    }

    fn ids(cache: &ListCache, owner: &Owner) -> Option<Vec<String>> {
        cache.get(owner, WebhookKind::User).ok().map(|l| l.iter().map(|w| w.id.clone()).collect())
    }

    #[test]
    fn a_filled_list_is_served_until_its_owner_writes() {
        let cache = ListCache::default();
        let (a, b) = (owner("a"), owner("b"));
        let generation = cache.get(&a, WebhookKind::User).unwrap_err();
        cache.fill(&a, WebhookKind::User, generation, list(&["1"]));
        assert_eq!(ids(&cache, &a), Some(vec!["1".to_owned()]));
        assert_eq!(ids(&cache, &b), None);
        cache.invalidate(&a);
        assert_eq!(ids(&cache, &a), None);
    }

    #[test]
    fn a_read_that_overlapped_a_write_is_not_kept() {
        let cache = ListCache::default();
        let a = owner("a");
        // The read starts, the write commits and invalidates, then the read (which may have
        // seen the database before the commit) finishes.
        let generation = cache.get(&a, WebhookKind::User).unwrap_err();
        cache.invalidate(&a);
        cache.fill(&a, WebhookKind::User, generation, list(&["stale"]));
        assert_eq!(ids(&cache, &a), None);
        // A write to another owner also voids it: the generation is global.
        let generation = cache.get(&a, WebhookKind::User).unwrap_err();
        cache.invalidate(&owner("b"));
        cache.fill(&a, WebhookKind::User, generation, list(&["maybe stale"]));
        assert_eq!(ids(&cache, &a), None);
        // A read with no write in between is kept.
        let generation = cache.get(&a, WebhookKind::User).unwrap_err();
        cache.fill(&a, WebhookKind::User, generation, list(&["fresh"]));
        assert_eq!(ids(&cache, &a), Some(vec!["fresh".to_owned()]));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = ListCache::default();
        for i in 0..MAX_OWNERS + 10 {
            let o = owner(&i.to_string());
            let generation = cache.get(&o, WebhookKind::User).unwrap_err();
            cache.fill(&o, WebhookKind::User, generation, list(&[]));
        }
        assert!(cache.inner().lists.len() <= MAX_OWNERS);
    }
}
