//! Organizations, API clients and access tokens.
//!
//! Revocation: a token names its client's token generation ([`Claims::generation`]), which
//! rotating the secret moves on; deleting the client removes it. Every request checks the
//! generation against [`TokenGenerations`], an in-memory copy of every client's, so the check
//! costs a map lookup, not a query. This node's rotations and deletions update it at once;
//! other nodes' (and `wharf admin`'s, a process of its own) reach it through
//! [`Tenancy::run_revocation_refresh`], which reloads it every [`REVOCATION_REFRESH`]. A
//! client not in the copy (created since) is looked up once.
//!
//! [`Claims::generation`]: wharf_core::auth::Claims

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use wharf_core::Error as DomainError;
use wharf_core::auth::{TokenKey, VerifiedTokens, client_secret_matches, hash_client_secret};
use wharf_core::crypto::MasterKey;
use wharf_core::tenancy::{ApiClient, Organization, check_organization_name};
use wharf_ids::{Seal, new_client_id, new_client_secret, new_object_id};
use wharf_store::Store;

use crate::{Result, now};

/// Credentials as shown to a person once: the only time a secret leaves Wharf in clear.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub organization_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Who a valid access token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub org_id: String,
    pub client_id: String,
}

/// How often every client's token generation is read again, so that a rotation or a
/// deletion made elsewhere (another node, `wharf admin`) revokes tokens here too.
pub const REVOCATION_REFRESH: Duration = Duration::from_secs(1);

/// Every client's current token generation by client id; `None`: no such client.
#[derive(Debug, Default)]
struct TokenGenerations(RwLock<Generations>);

#[derive(Debug, Default)]
struct Generations {
    by_client: HashMap<String, Option<i64>>,
    /// Clients this node deleted: a reload that read the store before the deletion must not
    /// bring them back.
    deleted_here: std::collections::HashSet<String>,
}

impl TokenGenerations {
    /// `Some(entry)` when the client is known here.
    fn get(&self, client_id: &str) -> Option<Option<i64>> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).by_client.get(client_id).copied()
    }

    fn set(&self, client_id: &str, generation: Option<i64>) {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner).by_client.insert(client_id.to_owned(), generation);
    }

    fn deleted(&self, client_id: &str) {
        let mut known = self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.by_client.insert(client_id.to_owned(), None);
        known.deleted_here.insert(client_id.to_owned());
    }

    /// Takes `loaded` (every client in the store) as the new copy. A read can be older than a
    /// change this node made while it ran, so a higher generation or a deletion made here
    /// wins: generations only grow, and client ids are never reused.
    fn replace(&self, mut loaded: HashMap<String, Option<i64>>) {
        let mut known = self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (id, generation) in loaded.iter_mut() {
            if known.deleted_here.contains(id) {
                *generation = None;
            } else if let Some(Some(here)) = known.by_client.get(id) {
                *generation = generation.map(|g| g.max(*here));
            }
        }
        // A deletion the store has caught up with needs no remembering.
        known.deleted_here.retain(|id| loaded.contains_key(id));
        known.by_client = loaded;
    }
}

/// Tenancy and authentication.
#[derive(Clone)]
pub struct Tenancy {
    store: Store,
    master: MasterKey,
    tokens: Arc<TokenKey>,
    verified: Arc<VerifiedTokens>,
    generations: Arc<TokenGenerations>,
}

impl Tenancy {
    pub fn new(store: Store, master: MasterKey) -> Self {
        let tokens = Arc::new(TokenKey::derive(&master));
        Self { store, master, tokens, verified: Arc::default(), generations: Arc::default() }
    }

    /// On an empty store, creates the first organization and its admin client. `preset`
    /// supplies the client id and secret (from `WHARF_BOOTSTRAP_CLIENT_*`) instead of random
    /// ones. Returns the credentials when it created them.
    pub async fn bootstrap(&self, preset: Option<(String, String)>) -> Result<Option<Credentials>> {
        if self.store.count_organizations().await? > 0 {
            return Ok(None);
        }
        let credentials = self.create_organization("Default organization", preset).await?;
        Ok(Some(credentials))
    }

    /// Creates an organization with one API client and returns its credentials.
    pub async fn create_organization(&self, name: &str, preset: Option<(String, String)>) -> Result<Credentials> {
        check_organization_name(name)?;
        let now = now();
        let org = Organization {
            id: new_object_id(),
            name: name.to_owned(),
            created_at: now,
            updated_at: now,
            settings: Default::default(),
        };
        let (client_id, secret) = preset.unwrap_or_else(|| (new_client_id(), new_client_secret()));
        let client = self.client_record(&org.id, &client_id, "admin", &secret);
        self.store.create_organization(&org, &client).await?;
        Ok(Credentials { organization_id: org.id, client_id, client_secret: secret })
    }

    /// Adds an API client to an existing organization.
    pub async fn create_client(&self, org_id: &str, name: &str) -> Result<Credentials> {
        if self.store.organization(org_id).await?.is_none() {
            return Err(
                DomainError::not_found("organization_not_found", format!("organization `{org_id}` does not exist")).into()
            );
        }
        let (client_id, secret) = (new_client_id(), new_client_secret());
        self.store.create_client(&self.client_record(org_id, &client_id, name, &secret)).await?;
        Ok(Credentials { organization_id: org_id.to_owned(), client_id, client_secret: secret })
    }

    /// Gives a client a new secret; the old one stops working at once, and so do the access
    /// tokens issued for it (on other nodes within [`REVOCATION_REFRESH`]).
    pub async fn rotate_client_secret(&self, client_id: &str) -> Result<Credentials> {
        let client = self.store.client(client_id).await?.ok_or_else(|| client_not_found(client_id))?;
        let secret = new_client_secret();
        let generation = self
            .store
            .rotate_client_secret(client_id, &hash_client_secret(&secret), &self.master.seal(&secret), now())
            .await?
            .ok_or_else(|| client_not_found(client_id))?;
        self.generations.set(client_id, Some(generation));
        Ok(Credentials { organization_id: client.org_id, client_id: client.id, client_secret: secret })
    }

    /// Deletes a client: its secret and its access tokens stop working (on other nodes
    /// within [`REVOCATION_REFRESH`]).
    pub async fn delete_client(&self, client_id: &str) -> Result<ApiClient> {
        let client = self.store.client(client_id).await?.ok_or_else(|| client_not_found(client_id))?;
        if !self.store.delete_client(client_id).await? {
            return Err(client_not_found(client_id).into());
        }
        self.generations.deleted(client_id);
        Ok(client)
    }

    /// Reads every client's token generation again.
    pub async fn refresh_revocations(&self) -> Result<()> {
        let all = self.store.client_token_generations().await?;
        self.generations.replace(all.into_iter().map(|(id, generation)| (id, Some(generation))).collect());
        Ok(())
    }

    /// The revocation worker: refreshes the token generations every [`REVOCATION_REFRESH`]
    /// until `stop` fires.
    pub async fn run_revocation_refresh(self, stop: tokio_util::sync::CancellationToken) {
        loop {
            if let Err(err) = self.refresh_revocations().await {
                tracing::warn!(error = %err, "cannot read the API clients' token generations; revocations wait");
            }
            tokio::select! {
                _ = tokio::time::sleep(REVOCATION_REFRESH) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// The client's current token generation, `None` when it does not exist.
    async fn token_generation(&self, client_id: &str) -> Result<Option<i64>> {
        if let Some(known) = self.generations.get(client_id) {
            return Ok(known);
        }
        let generation = self.store.client(client_id).await?.map(|client| client.token_generation);
        self.generations.set(client_id, generation);
        Ok(generation)
    }

    fn client_record(&self, org_id: &str, client_id: &str, name: &str, secret: &str) -> ApiClient {
        let now = now();
        ApiClient {
            id: client_id.to_owned(),
            org_id: org_id.to_owned(),
            name: name.to_owned(),
            secret_hash: hash_client_secret(secret),
            secret_sealed: self.master.seal(secret),
            token_generation: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// `POST /v1/auth/access_token`: exchanges client credentials for a token.
    pub async fn issue_token(&self, client_id: &str, client_secret: &str) -> Result<String> {
        let rejected = || DomainError::unauthorized("the clientId or clientSecret is wrong");
        let client = self.store.client(client_id).await?.ok_or_else(rejected)?;
        if !client_secret_matches(client_secret, &client.secret_hash) {
            return Err(rejected().into());
        }
        Ok(self.tokens.issue(&client.org_id, &client.id, client.token_generation, now()))
    }

    /// An access token of `client_id` at its current token generation, made without its
    /// secret: for Wharf's calls of its own API on an organization's behalf (a run's WEBHOOK
    /// to Port's API or to Wharf's public URL). Not reachable from the API.
    pub async fn token_for_client(&self, client_id: &str) -> Result<String> {
        let client = self.store.client(client_id).await?.ok_or_else(|| client_not_found(client_id))?;
        Ok(self.tokens.issue(&client.org_id, &client.id, client.token_generation, now()))
    }

    /// Checks a Bearer token: its signature and expiry (a token verified before is answered
    /// from memory until it expires), then that its client's secret was not rotated since
    /// and the client not deleted (a map lookup; the store only for a client not seen yet).
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let now = now();
        let claims = match self.verified.get(token, now) {
            Some(claims) => claims,
            None => {
                let claims = self.tokens.verify(token, now)?;
                self.verified.insert(token, claims.clone(), now);
                claims
            }
        };
        if self.token_generation(&claims.sub).await? != Some(claims.generation) {
            return Err(DomainError::unauthorized(
                "the access token was revoked: its API client's secret was rotated or the client deleted",
            )
            .into());
        }
        Ok(Principal { org_id: claims.org, client_id: claims.sub })
    }

    pub async fn organization(&self, org_id: &str) -> Result<Organization> {
        self.store.organization(org_id).await?.ok_or_else(|| {
            DomainError::not_found("organization_not_found", format!("organization `{org_id}` does not exist")).into()
        })
    }

    /// `PATCH /v1/organization`.
    pub async fn patch_organization(&self, org_id: &str, patch: wharf_core::agent::OrganizationPatch) -> Result<Organization> {
        let mut org = self.organization(org_id).await?;
        org.patch(patch, crate::now());
        self.store.update_organization(&org).await?;
        Ok(org)
    }

    pub async fn organizations(&self) -> Result<Vec<Organization>> {
        Ok(self.store.organizations().await?)
    }

    pub async fn clients(&self, org_id: &str) -> Result<Vec<ApiClient>> {
        Ok(self.store.clients(org_id).await?)
    }
}

fn client_not_found(client_id: &str) -> DomainError {
    DomainError::not_found("client_not_found", format!("API client `{client_id}` does not exist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_older_than_a_change_made_here_does_not_undo_it() {
        let generations = TokenGenerations::default();
        generations.set("a", Some(2));
        generations.deleted("b");
        generations.set("c", None); // looked up before it existed
        let stale: HashMap<String, Option<i64>> =
            [("a".to_owned(), Some(1)), ("b".to_owned(), Some(0)), ("c".to_owned(), Some(0)), ("d".to_owned(), Some(4))].into();
        generations.replace(stale);
        assert_eq!(generations.get("a"), Some(Some(2)), "a rotation made here outlives a stale read");
        assert_eq!(generations.get("b"), Some(None), "a deletion made here outlives a stale read");
        assert_eq!(generations.get("c"), Some(Some(0)), "a client that exists now is known");
        assert_eq!(generations.get("d"), Some(Some(4)));
        // Once the store no longer has the deleted client, nothing needs remembering.
        generations.replace([("a".to_owned(), Some(2))].into());
        assert_eq!(generations.get("b"), None);
        assert_eq!(generations.get("d"), None);
    }
}
