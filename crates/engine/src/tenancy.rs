//! Organizations, API clients and access tokens.

use wharf_core::Error as DomainError;
use wharf_core::auth::{TokenKey, VerifiedTokens, client_secret_matches, hash_client_secret};
use wharf_core::crypto::MasterKey;
use wharf_core::ids::{new_client_id, new_client_secret, new_object_id};
use wharf_core::tenancy::{ApiClient, Organization, check_organization_name};
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

/// Tenancy and authentication.
#[derive(Clone)]
pub struct Tenancy {
    store: Store,
    master: MasterKey,
    tokens: std::sync::Arc<TokenKey>,
    verified: std::sync::Arc<VerifiedTokens>,
}

impl Tenancy {
    pub fn new(store: Store, master: MasterKey) -> Self {
        let tokens = std::sync::Arc::new(TokenKey::derive(&master));
        Self { store, master, tokens, verified: std::sync::Arc::default() }
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
        let org = Organization { id: new_object_id(), name: name.to_owned(), created_at: now, updated_at: now };
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

    /// Gives a client a new secret; the old one stops working at once.
    pub async fn rotate_client_secret(&self, client_id: &str) -> Result<Credentials> {
        let client = self
            .store
            .client(client_id)
            .await?
            .ok_or_else(|| DomainError::not_found("client_not_found", format!("API client `{client_id}` does not exist")))?;
        let secret = new_client_secret();
        self.store.rotate_client_secret(client_id, &hash_client_secret(&secret), &self.master.seal(&secret), now()).await?;
        Ok(Credentials { organization_id: client.org_id, client_id: client.id, client_secret: secret })
    }

    fn client_record(&self, org_id: &str, client_id: &str, name: &str, secret: &str) -> ApiClient {
        let now = now();
        ApiClient {
            id: client_id.to_owned(),
            org_id: org_id.to_owned(),
            name: name.to_owned(),
            secret_hash: hash_client_secret(secret),
            secret_sealed: self.master.seal(secret),
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
        Ok(self.tokens.issue(&client.org_id, &client.id, now()))
    }

    /// Checks a Bearer token. Pure computation: no store access on the request path, and a
    /// token verified before is answered from memory until it expires.
    pub fn authenticate(&self, token: &str) -> Result<Principal, DomainError> {
        let now = now();
        let claims = match self.verified.get(token, now) {
            Some(claims) => claims,
            None => {
                let claims = self.tokens.verify(token, now)?;
                self.verified.insert(token, claims.clone(), now);
                claims
            }
        };
        Ok(Principal { org_id: claims.org, client_id: claims.sub })
    }

    pub async fn organization(&self, org_id: &str) -> Result<Organization> {
        self.store.organization(org_id).await?.ok_or_else(|| {
            DomainError::not_found("organization_not_found", format!("organization `{org_id}` does not exist")).into()
        })
    }

    pub async fn organizations(&self) -> Result<Vec<Organization>> {
        Ok(self.store.organizations().await?)
    }

    pub async fn clients(&self, org_id: &str) -> Result<Vec<ApiClient>> {
        Ok(self.store.clients(org_id).await?)
    }
}
