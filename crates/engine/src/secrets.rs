//! `Secrets`: an organization's secrets (reference §3.9). Values are write-only: they are
//! sealed on the way to the store, bound to their organization and name
//! (`wharf_core::secret::bound_plaintext`), and opened only by [`Secrets::open_all`], for a
//! template's `.secrets` and for masking what it rendered (`wharf_core::secret::mask`).
//!
//! Nothing here logs a value: they travel as `SecretValue`s, whose `Debug` is redacted.

use std::sync::Arc;

use serde_json::Value;
use wharf_core::Error as DomainError;
use wharf_core::crypto::MasterKey;
use wharf_core::secret::{
    NewSecret, SECRETS_PER_ORG, Secret, SecretChange, SecretValue, SecretValues, bound_plaintext, check_name, unbind,
};
use wharf_core::tenancy::{Capped, check_room};
use wharf_ids::Seal;
use wharf_store::{CatalogTx, Store};

use crate::org_cache::OrgCache;
use crate::{Error, Result};

/// Organization secrets. Cheap to clone.
#[derive(Clone)]
pub struct Secrets {
    store: Store,
    master: MasterKey,
    /// Each organization's values, opened for a moment (a burst of runs opens them once).
    opened: OrgCache<SecretValues>,
}

impl Secrets {
    pub fn new(store: Store, master: MasterKey) -> Self {
        Self { store, master, opened: OrgCache::default() }
    }

    /// Creates a secret for `org`, made by API client `actor`: 409 when the name is taken,
    /// 422 when the organization has [`SECRETS_PER_ORG`] already.
    pub async fn create(&self, org: &str, actor: &str, doc: Value) -> Result<Secret> {
        let new = NewSecret::parse(doc)?;
        let secret = new.secret(org, actor, crate::now());
        let sealed = self.seal(&secret, &new.value);
        let mut tx = self.store.begin().await?;
        // Invariant: creates of one organization take turns, so two cannot both pass the count.
        tx.lock(org, "secrets").await?;
        check_room(tx.count_secrets(org).await?, SECRETS_PER_ORG, Capped::Secrets)?;
        tx.insert_secret(&secret, &sealed).await.map_err(|e| name_taken(e, &secret.name))?;
        tx.commit().await?;
        self.opened.forget(org);
        tracing::info!(secret = %secret.name, "secret created");
        Ok(secret)
    }

    /// Every secret's metadata, by name.
    pub async fn list(&self, org: &str) -> Result<Vec<Secret>> {
        Ok(self.store.secrets(org).await?)
    }

    /// One secret's metadata; 404 when the organization has none of that name.
    pub async fn get(&self, org: &str, name: &str) -> Result<Secret> {
        if check_name(name).is_err() {
            return Err(not_found(name).into());
        }
        self.store.secret(org, name).await?.ok_or_else(|| not_found(name).into())
    }

    /// Changes a secret's value or description (the others kept).
    pub async fn patch(&self, org: &str, actor: &str, name: &str, doc: Value) -> Result<Secret> {
        let change = SecretChange::parse(doc)?;
        let secret = change.apply(self.get(org, name).await?, actor, crate::now());
        let sealed = change.value.as_ref().map(|value| self.seal(&secret, value));
        let mut tx = self.store.begin().await?;
        if !tx.update_secret(&secret, sealed.as_deref()).await? {
            return Err(not_found(name).into());
        }
        tx.commit().await?;
        self.opened.forget(org);
        tracing::info!(secret = %secret.name, value_changed = change.value.is_some(), "secret updated");
        Ok(secret)
    }

    pub async fn delete(&self, org: &str, name: &str) -> Result<()> {
        if check_name(name).is_err() {
            return Err(not_found(name).into());
        }
        let mut tx = self.store.begin().await?;
        if !tx.delete_secret(org, name).await? {
            return Err(not_found(name).into());
        }
        tx.commit().await?;
        self.opened.forget(org);
        tracing::info!(secret = %name, "secret deleted");
        Ok(())
    }

    /// Every secret of `org` in clear, by name: a template's `.secrets`, and what a stored
    /// copy of a rendered request is masked with. A value that does not open (another master
    /// key, a damaged row, a sealed value copied from another secret) fails the whole call,
    /// naming the secret, rather than rendering without it.
    ///
    /// Kept for a moment ([`OrgCache`]): a change made on this node is seen at once, one made on
    /// another node within [`crate::org_cache::FRESH_FOR`].
    pub async fn open_all(&self, org: &str) -> Result<Arc<SecretValues>> {
        self.opened.get(org, || self.open_all_now(org)).await
    }

    async fn open_all_now(&self, org: &str) -> Result<SecretValues> {
        let sealed = self.store.sealed_secrets(org).await?;
        sealed
            .into_iter()
            .map(|(name, sealed)| Ok::<_, Error>((name.clone(), open(&self.master, org, &name, &sealed)?)))
            .collect()
    }

    fn seal(&self, secret: &Secret, value: &SecretValue) -> String {
        self.master.seal(&bound_plaintext(&secret.org_id, &secret.name, value))
    }
}

/// Opens the sealed value of secret `name` of `org`.
fn open(master: &MasterKey, org: &str, name: &str, sealed: &str) -> Result<SecretValue> {
    let unreadable = |why: &str| Error::Unavailable(format!("secret `{name}` cannot be opened: {why}"));
    let opened = master.open(sealed).map_err(|e| unreadable(&e.to_string()))?;
    unbind(org, name, &opened).ok_or_else(|| unreadable("its sealed value belongs to another secret"))
}

fn not_found(name: &str) -> DomainError {
    DomainError::not_found("secret_not_found", format!("secret `{name}` does not exist"))
}

fn name_taken(err: wharf_store::Error, name: &str) -> Error {
    if err.is_unique_violation() {
        DomainError::conflict("secret_exists", format!("a secret named `{name}` already exists")).into()
    } else {
        err.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_ids::Fresh;

    #[test]
    fn a_sealed_value_opens_only_as_its_own_secret() {
        let master = MasterKey::generate();
        let value = SecretValue::new("hunter2");
        let sealed = master.seal(&bound_plaintext("org-a", "token", &value));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(open(&master, "org-a", "token", &sealed).unwrap(), value);
        // Copied to another row, of the same organization or another, it does not open.
        for (org, name) in [("org-a", "other"), ("org-b", "token")] {
            let err = open(&master, org, name, &sealed).unwrap_err();
            assert!(err.to_string().contains("belongs to another secret"), "{err}");
            assert!(!err.to_string().contains("hunter2"));
        }
        let err = open(&MasterKey::generate(), "org-a", "token", &sealed).unwrap_err();
        assert!(err.to_string().contains("another master key"), "{err}");
    }
}
