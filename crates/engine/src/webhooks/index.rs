//! The in-memory index of every webhook, by ingest key and by id, with its expressions
//! compiled and its secret opened. The ingest path never reads the database to find a
//! webhook: this node's own changes are applied as they commit, and other nodes' changes
//! (PostgreSQL) are found by comparing revisions ([`WebhookIndex::refresh`], polled).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use wharf_core::crypto::MasterKey;
use wharf_core::webhook::{CompiledWebhook, WebhookDef, compile};
use wharf_store::{Store, StoredWebhook};

use crate::Result;

/// A webhook ready to serve.
#[derive(Debug)]
pub struct LiveWebhook {
    pub id: String,
    pub org_id: String,
    pub key: String,
    pub revision: i64,
    /// The definition, with its secret opened.
    pub def: WebhookDef,
    pub compiled: CompiledWebhook,
}

#[derive(Default)]
struct Maps {
    by_key: HashMap<String, Arc<LiveWebhook>>,
    by_id: HashMap<String, Arc<LiveWebhook>>,
    /// Ids of deleted webhooks (ids are never reused): a refresh that read the store before
    /// the delete committed must not bring them back.
    deleted: HashSet<String>,
}

#[derive(Default)]
pub struct WebhookIndex {
    maps: RwLock<Maps>,
}

impl WebhookIndex {
    pub fn by_key(&self, key: &str) -> Option<Arc<LiveWebhook>> {
        self.read().by_key.get(key).cloned()
    }

    pub fn by_id(&self, id: &str) -> Option<Arc<LiveWebhook>> {
        self.read().by_id.get(id).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        // A poisoned lock means a panic mid-update of two maps that are only ever replaced
        // entry by entry; the data is still consistent enough to serve.
        self.maps.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts (or replaces) a webhook. A stored webhook whose secret cannot be opened (another
    /// master key) or whose jq no longer compiles is left out, and logged.
    pub async fn put(&self, stored: &StoredWebhook, master: &MasterKey) {
        let compiled = {
            let (stored, master) = (stored.clone(), master.clone());
            crate::jq_pool::run(move || live(&stored, &master)).await.unwrap_or_else(|e| Err(e.to_string()))
        };
        match compiled {
            Ok(live) => {
                let live = Arc::new(live);
                let mut maps = self.write();
                // Writes and refreshes race: never go back to an older revision, nor revive
                // a deleted webhook.
                let older = maps.by_id.get(&live.id).is_some_and(|current| current.revision > live.revision);
                if older || maps.deleted.contains(&live.id) {
                    return;
                }
                if let Some(old) = maps.by_id.insert(live.id.clone(), live.clone()) {
                    maps.by_key.remove(&old.key);
                }
                maps.by_key.insert(live.key.clone(), live);
            }
            Err(reason) => {
                tracing::error!(webhook = %stored.webhook.def.identifier, org = %stored.org_id, %reason, "webhook cannot be served");
                let mut maps = self.write();
                if let Some(old) = maps.by_id.remove(&stored.webhook.id) {
                    maps.by_key.remove(&old.key);
                }
            }
        }
    }

    /// Drops a deleted webhook, for good.
    pub fn remove(&self, id: &str) {
        let mut maps = self.write();
        maps.deleted.insert(id.to_owned());
        if let Some(old) = maps.by_id.remove(id) {
            maps.by_key.remove(&old.key);
        }
    }

    /// Brings the index in line with the store: loads webhooks that are new or have a new
    /// revision, drops those that are gone.
    pub async fn refresh(&self, store: &Store, master: &MasterKey) -> Result<()> {
        // Only webhooks known before the store is read can be "gone": one created on this node
        // while the read was under way is missing from it but very much alive.
        let known: HashSet<String> = self.read().by_id.keys().cloned().collect();
        let revisions: HashMap<String, i64> = store.webhook_revisions().await?.into_iter().collect();
        let stale: Vec<String> = {
            let maps = self.read();
            revisions
                .iter()
                .filter(|(id, revision)| maps.by_id.get(*id).is_none_or(|live| live.revision < **revision))
                .map(|(id, _)| id.clone())
                .collect()
        };
        let gone: Vec<String> = known.into_iter().filter(|id| !revisions.contains_key(id)).collect();
        for id in gone {
            self.remove(&id);
        }
        if !stale.is_empty() {
            for stored in store.webhooks_by_id(&stale).await? {
                self.put(&stored, master).await;
            }
        }
        Ok(())
    }
}

fn live(stored: &StoredWebhook, master: &MasterKey) -> std::result::Result<LiveWebhook, String> {
    let mut def = stored.webhook.def.clone();
    if let Some(sealed) = &stored.secret_sealed {
        def.security.secret = Some(master.open(sealed).map_err(|e| format!("its secret cannot be opened: {e}"))?);
    }
    let compiled = compile(&def).map_err(|e| e.message)?;
    Ok(LiveWebhook {
        id: stored.webhook.id.clone(),
        org_id: stored.org_id.clone(),
        key: stored.webhook.key.clone(),
        revision: stored.webhook.revision,
        def,
        compiled,
    })
}
