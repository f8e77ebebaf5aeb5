//! `Projects`: projects, their webhook subscriptions (with their signing keys), publishing
//! events, and the delivery log with resend and recover (SPEC §10).
//!
//! Ids in paths are 24 hex characters: a malformed one is a 400, an unknown one a 404, and an
//! organization other than the caller's a 403.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use wharf_core::Error as DomainError;
use wharf_core::crypto::MasterKey;
use wharf_core::delivery::{Attempt, Delivery, DeliveryFilter};
use wharf_core::ids::is_object_id;
use wharf_core::project::{
    MAX_DELIVERY_HOPS, Project, ProjectInput, PublishInput, PublishReceipt, PublishedEvent, Subscription, SubscriptionInput,
    is_change_delivery, open_stored_headers,
};
use wharf_core::signing::{KeyRing, SigningSecret};
use wharf_core::tenancy::{Capped, check_room};
use wharf_core::time::Timestamp;
use wharf_ids::{Fresh, Seal, new_object_id, new_published_event_id};
use wharf_store::{CatalogTx, Publication, Store};

use crate::delivery::{Published, Publisher};
use crate::{Error, Result};

/// The grace period of a rotated key when the request names none (Svix's default).
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);
/// The longest grace period a rotation accepts.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Projects and subscriptions. Cheap to clone.
#[derive(Clone)]
pub struct Projects {
    store: Store,
    master: MasterKey,
    publisher: Publisher,
    wake: Arc<Notify>,
    /// Projects known to exist, by id with their organization, so that publishing does not
    /// read the project each time. A project deleted on another node stays here; publishing
    /// to it then fails on the foreign key, not silently.
    known: Arc<RwLock<HashMap<String, String>>>,
    /// Webhook subscriptions one organization may have (SPEC §12).
    subscriptions_per_org: usize,
}

/// Checks a path id's shape (400) and returns it lowercase (ids are accepted in either case).
pub fn path_id(what: &str, id: &str) -> Result<String> {
    if is_object_id(id) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(DomainError::bad_request("invalid_id", format!("`{id}` is not a valid {what} id: expected 24 hex characters")).into())
    }
}

impl Projects {
    pub fn new(store: Store, master: MasterKey, publisher: Publisher, wake: Arc<Notify>) -> Self {
        Self { store, master, publisher, wake, known: Arc::default(), subscriptions_per_org: 1_000 }
    }

    /// The same, with another cap on an organization's subscriptions.
    pub fn with_subscriptions_per_org(mut self, limit: usize) -> Self {
        self.subscriptions_per_org = limit;
        self
    }

    /// The caller's organization, checked against the one in the path (403 when they differ).
    pub fn organization(&self, caller: &str, in_path: &str) -> Result<String> {
        let org = path_id("organization", in_path)?;
        if org != caller.to_ascii_lowercase() {
            return Err(DomainError::forbidden(format!("the token does not belong to organization `{in_path}`")).into());
        }
        Ok(org)
    }

    pub async fn create_project(&self, org: &str, doc: Value) -> Result<Project> {
        let project = ProjectInput::parse(doc)?.create(new_object_id(), org.to_owned(), crate::now())?;
        let mut tx = self.store.begin().await?;
        tx.insert_project(&project).await.map_err(|e| slug_taken(e, &project.slug))?;
        tx.commit().await?;
        Ok(project)
    }

    pub async fn projects(&self, org: &str) -> Result<Vec<Project>> {
        Ok(self.store.projects(org).await?)
    }

    pub async fn project(&self, org: &str, id: &str) -> Result<Project> {
        let id = path_id("project", id)?;
        self.store
            .project(org, &id)
            .await?
            .ok_or_else(|| DomainError::not_found("project_not_found", format!("project `{id}` does not exist")).into())
    }

    pub async fn patch_project(&self, org: &str, id: &str, doc: Value) -> Result<Project> {
        let input = ProjectInput::parse(doc)?;
        let project = input.apply(self.project(org, id).await?, crate::now())?;
        let mut tx = self.store.begin().await?;
        tx.update_project(&project).await.map_err(|e| slug_taken(e, &project.slug))?;
        tx.commit().await?;
        Ok(project)
    }

    pub async fn delete_project(&self, org: &str, id: &str) -> Result<()> {
        let project = self.project(org, id).await?;
        let mut tx = self.store.begin().await?;
        tx.delete_project(org, &project.id).await?;
        tx.commit().await?;
        self.known.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&project.id);
        Ok(())
    }

    /// Creates a subscription with a new signing key; returns it and the key (`whsec_…`).
    pub async fn create_subscription(&self, org: &str, project: &str, doc: Value) -> Result<(Subscription, String)> {
        let project = self.project(org, project).await?;
        let subscription = SubscriptionInput::parse(doc)?.create(new_object_id(), org.to_owned(), project.id, crate::now())?;
        let secret = SigningSecret::generate();
        let sealed = self.master.seal(&KeyRing::new(secret.clone()).to_text());
        let mut tx = self.store.begin().await?;
        // Invariant: creates of one organization take turns, so two cannot both pass the count.
        tx.lock(org, "subscriptions").await?;
        check_room(tx.count_subscriptions(org).await?, self.subscriptions_per_org, Capped::Subscriptions)?;
        tx.insert_subscription(&self.stored(&subscription), &sealed).await?;
        tx.commit().await?;
        tracing::info!(subscription = %subscription.id, project = %subscription.project_id, "webhook created");
        Ok((subscription, secret.expose()))
    }

    pub async fn subscriptions(&self, org: &str, project: &str) -> Result<Vec<Subscription>> {
        let project = self.project(org, project).await?;
        self.store.subscriptions(org, &project.id).await?.into_iter().map(|s| self.opened(s)).collect()
    }

    pub async fn subscription(&self, org: &str, project: &str, id: &str) -> Result<Subscription> {
        let project = self.project(org, project).await?;
        let id = path_id("webhook", id)?;
        let stored = self.store.subscription(org, &project.id, &id).await?.ok_or_else(|| {
            Error::from(DomainError::not_found("webhook_not_found", format!("webhook `{id}` does not exist in this project")))
        })?;
        self.opened(stored)
    }

    /// The hop of a delivery chain a request to an ingest URL is, from its `webhook-id`: 0
    /// when it is no delivery of an entity change, else 1 plus the hop of the ingested
    /// request whose mapping made that change. Counts at most to one past
    /// [`MAX_DELIVERY_HOPS`] (one read per hop).
    pub async fn delivery_hop(&self, webhook_id: &str) -> Result<u32> {
        let mut hop = 0;
        let mut link = Some(webhook_id.to_owned());
        while let Some(change) = link.filter(|id| is_change_delivery(id)) {
            hop += 1;
            if hop > MAX_DELIVERY_HOPS {
                break;
            }
            link = self.store.change_caused_by_delivery(&change).await?;
        }
        Ok(hop)
    }

    /// A subscription from the store with its headers in clear.
    ///
    /// Invariant: a `Subscription` goes to the store only through [`Projects::stored`] and
    /// comes from it only through here, so its headers are sealed at rest and clear in use.
    fn opened(&self, mut stored: Subscription) -> Result<Subscription> {
        let (headers, not_secret) = open_stored_headers(&stored.headers, |sealed| self.master.open(sealed))
            .map_err(|e| Error::Unavailable(format!("cannot open a webhook's header: {e}")))?;
        stored.headers = headers;
        stored.headers_not_secret = not_secret;
        Ok(stored)
    }

    /// A subscription with its headers in their stored form (secret values sealed).
    fn stored(&self, subscription: &Subscription) -> Subscription {
        let mut stored = subscription.clone();
        stored.headers = subscription.stored_headers(|value| self.master.seal(value));
        stored
    }

    /// Seals header values stored in clear before headers were sealed (every such value is
    /// taken as a secret); run at start. Returns how many subscriptions it changed.
    pub async fn seal_stored_headers(&self) -> Result<usize> {
        let mut sealed = 0;
        for stored in self.store.subscriptions_with_headers().await? {
            if !Subscription::has_unsealed_headers(&stored.headers) {
                continue;
            }
            let subscription = self.opened(stored)?;
            let mut tx = self.store.begin().await?;
            tx.set_subscription_headers(
                &subscription.org_id,
                &subscription.id,
                &subscription.stored_headers(|v| self.master.seal(v)),
            )
            .await?;
            tx.commit().await?;
            sealed += 1;
        }
        Ok(sealed)
    }

    pub async fn patch_subscription(&self, org: &str, project: &str, id: &str, doc: Value) -> Result<Subscription> {
        let input = SubscriptionInput::parse(doc)?;
        let subscription = input.apply(self.subscription(org, project, id).await?, crate::now())?;
        let mut tx = self.store.begin().await?;
        tx.update_subscription(&self.stored(&subscription)).await?;
        tx.commit().await?;
        self.wake.notify_one();
        tracing::info!(subscription = %subscription.id, active = subscription.active, "webhook updated");
        Ok(subscription)
    }

    pub async fn delete_subscription(&self, org: &str, project: &str, id: &str) -> Result<()> {
        let subscription = self.subscription(org, project, id).await?;
        let mut tx = self.store.begin().await?;
        tx.delete_subscription(org, &subscription.project_id, &subscription.id).await?;
        tx.commit().await?;
        tracing::info!(subscription = %subscription.id, "webhook deleted");
        Ok(())
    }

    async fn key_ring(&self, subscription: &Subscription) -> Result<KeyRing> {
        let sealed = self.store.subscription_keys(&subscription.org_id, &subscription.id).await?.unwrap_or_default();
        let text = self.master.open(&sealed).map_err(|e| Error::Unavailable(format!("cannot open a signing key: {e}")))?;
        KeyRing::from_text(&text).map_err(|e| Error::Unavailable(format!("a stored signing key is unreadable: {e}")))
    }

    /// The current signing key (`whsec_…`).
    pub async fn secret(&self, org: &str, project: &str, id: &str) -> Result<String> {
        let subscription = self.subscription(org, project, id).await?;
        Ok(self.key_ring(&subscription).await?.current.expose())
    }

    /// Replaces the signing key (with `key` when given); the old one keeps signing for the
    /// grace period. Returns the new key.
    pub async fn rotate_secret(&self, org: &str, project: &str, id: &str, doc: Option<Value>) -> Result<String> {
        let subscription = self.subscription(org, project, id).await?;
        let (key, grace) = rotation(doc)?;
        let mut ring = self.key_ring(&subscription).await?;
        let now = crate::now();
        ring.rotate(key, now.millis(), i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        let mut tx = self.store.begin().await?;
        tx.set_subscription_keys(org, &subscription.id, &self.master.seal(&ring.to_text()), now).await?;
        tx.commit().await?;
        tracing::info!(subscription = %subscription.id, grace_secs = grace.as_secs(), "webhook secret rotated");
        Ok(ring.current.expose())
    }

    /// Publishes an event to a project: stored with one delivery per matching active
    /// subscription, durably, before this returns. An `id` the project already has is a 409.
    pub async fn publish(&self, org: &str, project: &str, input: PublishInput) -> Result<PublishReceipt> {
        let project_id = self.known_project(org, project).await?;
        let id = input.id.unwrap_or_else(new_published_event_id);
        let event = PublishedEvent::with_data_json(id, input.event_type, &input.data_json, crate::now());
        let receipt = event.receipt();
        match self.publisher.publish(Publication { project_id, event }).await? {
            Published::Stored { deliveries } => Ok(PublishReceipt { deliveries, ..receipt }),
            Published::Duplicate => Err(DomainError::conflict(
                "event_exists",
                format!(
                    "an event with id `{}` was already published to this project; ids make publishing idempotent",
                    receipt.id
                ),
            )
            .into()),
        }
    }

    /// A project's id, checked against the cache of known projects, else the store.
    async fn known_project(&self, org: &str, project: &str) -> Result<String> {
        let id = path_id("project", project)?;
        let known = self.known.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id) == Some(&org.to_owned());
        if !known {
            let project = self.project(org, &id).await?;
            self.known.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(project.id, org.to_owned());
        }
        Ok(id)
    }

    /// A subscription's deliveries, newest first.
    pub async fn deliveries(
        &self,
        org: &str,
        project: &str,
        id: &str,
        filter: DeliveryFilter<'_>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let subscription = self.subscription(org, project, id).await?;
        Ok(self.store.deliveries(org, &subscription.id, filter, before, limit).await?)
    }

    async fn delivery(&self, subscription: &Subscription, delivery: &str) -> Result<Delivery> {
        self.store.delivery(&subscription.org_id, &subscription.id, delivery).await?.ok_or_else(|| {
            DomainError::not_found("delivery_not_found", format!("delivery `{delivery}` does not exist for this webhook")).into()
        })
    }

    /// One delivery and the body it sends (its event's payload, as published).
    pub async fn delivery_sent(&self, org: &str, project: &str, id: &str, delivery: &str) -> Result<(Delivery, String)> {
        let subscription = self.subscription(org, project, id).await?;
        let found = self.delivery(&subscription, delivery).await?;
        let payload = self.store.delivery_payload(org, &subscription.id, &found.id).await?.unwrap_or_default();
        Ok((found, payload))
    }

    pub async fn attempts(&self, org: &str, project: &str, id: &str, delivery: &str) -> Result<Vec<Attempt>> {
        let subscription = self.subscription(org, project, id).await?;
        let delivery = self.delivery(&subscription, delivery).await?;
        Ok(self.store.attempts(org, delivery.seq).await?)
    }

    /// Sends a delivery's event again, once, as a new delivery (same `webhook-id`).
    pub async fn resend(&self, org: &str, project: &str, id: &str, delivery: &str) -> Result<Delivery> {
        let subscription = self.subscription(org, project, id).await?;
        let original = self.delivery(&subscription, delivery).await?;
        let new = self.store.resend(org, &subscription.id, &original.id, crate::now()).await?;
        self.wake.notify_one();
        let new = new.ok_or_else(|| DomainError::not_found("delivery_not_found", "the delivery was deleted meanwhile"))?;
        self.delivery(&subscription, &new).await
    }

    /// Sends again every event whose deliveries in `[since, until]` all failed.
    pub async fn recover(&self, org: &str, project: &str, id: &str, doc: Value) -> Result<usize> {
        let subscription = self.subscription(org, project, id).await?;
        let (since, until) = window(&doc)?;
        let count = self.store.recover(org, &subscription.id, since, until, crate::now()).await?;
        self.wake.notify_one();
        tracing::info!(subscription = %subscription.id, count, "failed deliveries recovered");
        Ok(count)
    }
}

fn slug_taken(err: wharf_store::Error, slug: &str) -> Error {
    if err.is_unique_violation() {
        DomainError::conflict("project_exists", format!("a project with slug `{slug}` already exists")).into()
    } else {
        err.into()
    }
}

/// `{"key"?: "whsec_…", "gracePeriodSeconds"?: n}` of a rotation.
fn rotation(doc: Option<Value>) -> Result<(SigningSecret, Duration)> {
    let bad = |message: String| Error::from(DomainError::bad_request("invalid_request", message));
    let doc = doc.unwrap_or_else(|| json!({}));
    let Value::Object(fields) = doc else { return Err(bad("the body must be a JSON object".into())) };
    let mut key = SigningSecret::generate();
    let mut grace = DEFAULT_ROTATION_GRACE;
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("key", Value::String(text)) => {
                key = SigningSecret::parse(&text).map_err(|e| bad(format!("`key`: {e}")))?;
            }
            ("key", Value::Null) => {}
            ("gracePeriodSeconds", Value::Number(n)) => {
                let secs = n.as_u64().filter(|s| *s <= MAX_ROTATION_GRACE.as_secs()).ok_or_else(|| {
                    bad(format!("`gracePeriodSeconds` must be a whole number from 0 to {}", MAX_ROTATION_GRACE.as_secs()))
                })?;
                grace = Duration::from_secs(secs);
            }
            (other, _) if other == "key" || other == "gracePeriodSeconds" => {
                return Err(bad(format!("`{other}` has the wrong type")));
            }
            (other, _) => return Err(bad(format!("unknown key `{other}`: expected `key` or `gracePeriodSeconds`"))),
        }
    }
    Ok((key, grace))
}

/// `{"since", "until"?}` of a recover (ISO 8601; `until` defaults to now).
fn window(doc: &Value) -> Result<(Timestamp, Timestamp)> {
    let bad = |message: &str| Error::from(DomainError::bad_request("invalid_request", message.to_owned()));
    let time = |key: &str| -> Result<Option<Timestamp>> {
        match doc.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Timestamp::parse(text)
                .map(Some)
                .ok_or_else(|| bad(&format!("`{key}` must be an ISO 8601 date-time, got `{text}`"))),
            Some(_) => Err(bad(&format!("`{key}` must be an ISO 8601 date-time string"))),
        }
    };
    let since = time("since")?.ok_or_else(|| bad("`since` is required (ISO 8601 date-time)"))?;
    let until = time("until")?.unwrap_or_else(crate::now);
    if until < since {
        return Err(bad("`until` is before `since`"));
    }
    Ok((since, until))
}
