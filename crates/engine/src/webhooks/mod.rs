//! Ingestion webhooks: the definitions (`/v1/webhooks`), the ingest path ([`Ingestor`]), the
//! workers that map events into the catalog ([`Mapper`]), and the event log's tools (list,
//! test mapping, replay, pruning).

mod apply;
mod arrivals;
pub mod index;
pub mod ingest;
mod load;
pub mod mapper;

use std::sync::Arc;
use std::time::Duration;
use wharf_core::tenancy::{Capped, check_room};

use serde_json::{Map, Value, json};
use wharf_core::Error as DomainError;
use wharf_core::blueprint::Audited;
use wharf_core::change::Trigger;
use wharf_core::crypto::MasterKey;
use wharf_core::ingest::{headers_object, jq_input};
use wharf_core::mapping::{WebhookEventResult, WebhookEventStatus, map_webhook_event};
use wharf_core::time::Timestamp;
use wharf_core::webhook::{MappingDef, Webhook, WebhookDef, compile, compile_mappings, secret_in};
use wharf_ids::{Seal, new_webhook_id, new_webhook_identifier, new_webhook_key};
use wharf_store::{CatalogTx, Store, StoredWebhook, WebhookEvent, WebhookEventFilter};

pub use arrivals::Arrivals;
pub use index::{LiveWebhook, WebhookIndex};
pub use ingest::{IngestRequest, Ingested, Ingestor};
pub use load::AcceptLoad;
pub use mapper::Mapper;

use crate::{Catalog, Error, Result};

/// Limits and timings of ingestion (SPEC §12).
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Largest ingest body (413 above).
    pub body_limit: usize,
    /// How long a `requestIdentifierPath` value makes repeats duplicates.
    pub dedupe_window: Duration,
    /// How long events are kept.
    pub event_retention: Duration,
    /// How often old events are pruned.
    pub prune_interval: Duration,
    /// Mapping workers per node.
    pub mapper_workers: usize,
    /// How often the index looks for webhooks changed by other nodes.
    pub index_refresh_interval: Duration,
    /// Ingestion webhooks one organization may have (SPEC §12).
    pub webhooks_per_org: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            body_limit: 512 * 1024,
            dedupe_window: Duration::from_secs(7 * 24 * 3600),
            event_retention: Duration::from_secs(30 * 24 * 3600),
            prune_interval: Duration::from_secs(3600),
            mapper_workers: 2,
            index_refresh_interval: Duration::from_secs(1),
            webhooks_per_org: 1_000,
        }
    }
}

/// The webhook definitions and their event log.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    catalog: Catalog,
    master: MasterKey,
    index: Arc<WebhookIndex>,
    public_url: Arc<str>,
    settings: IngestSettings,
}

fn webhook_not_found(identifier: &str) -> Error {
    DomainError::not_found("webhook_not_found", format!("webhook `{identifier}` was not found")).into()
}

fn event_not_found(event_id: &str) -> Error {
    DomainError::not_found("webhook_event_not_found", format!("webhook event `{event_id}` was not found")).into()
}

impl Webhooks {
    /// Loads every webhook into a new index.
    pub async fn load(
        store: Store,
        catalog: Catalog,
        master: MasterKey,
        public_url: &str,
        settings: IngestSettings,
    ) -> Result<Self> {
        let index = Arc::new(WebhookIndex::default());
        index.refresh(&store, &master).await?;
        Ok(Self { store, catalog, master, index, public_url: public_url.into(), settings })
    }

    pub fn index(&self) -> &Arc<WebhookIndex> {
        &self.index
    }

    fn to_json(&self, webhook: &Webhook) -> Value {
        webhook.to_json(&self.public_url)
    }

    pub async fn list(&self, org: &str) -> Result<Vec<Value>> {
        Ok(self.store.webhooks(org).await?.iter().map(|s| self.to_json(&s.webhook)).collect())
    }

    /// `GET /v1/webhooks/metadata`.
    pub async fn metadata(&self, org: &str) -> Result<Vec<Value>> {
        Ok(self.store.webhooks(org).await?.iter().map(|s| s.webhook.metadata()).collect())
    }

    pub async fn get(&self, org: &str, identifier: &str) -> Result<Value> {
        Ok(self.to_json(&self.stored(org, identifier).await?.webhook))
    }

    async fn stored(&self, org: &str, identifier: &str) -> Result<StoredWebhook> {
        self.store.webhook(org, identifier).await?.ok_or_else(|| webhook_not_found(identifier))
    }

    /// `POST /v1/webhooks`.
    pub async fn create(&self, trigger: &Trigger, doc: Value) -> Result<Value> {
        let secret = secret_in(&doc).flatten();
        let mut def = WebhookDef::parse(doc)?;
        if def.identifier.is_empty() {
            def.identifier = new_webhook_identifier();
        }
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        // Invariant: creates of one organization take turns, so two cannot both pass the count.
        tx.lock(org, "webhooks").await?;
        check_room(tx.count_webhooks(org).await?, self.settings.webhooks_per_org, Capped::IngestionWebhooks)?;
        tx.lock(org, &format!("webhook/{}", def.identifier)).await?;
        if tx.webhook(org, &def.identifier).await?.is_some() {
            return Err(DomainError::conflict("webhook_exists", format!("webhook `{}` already exists", def.identifier)).into());
        }
        let stored = StoredWebhook {
            org_id: org.clone(),
            secret_sealed: secret.as_deref().map(|s| self.master.seal(s)),
            webhook: Webhook {
                id: new_webhook_id(),
                key: new_webhook_key(),
                revision: 1,
                audited: Audited::new(&trigger.by, trigger.at),
                def: self.checked(&mut tx, org, def).await?,
            },
        };
        tx.put_webhook(&stored).await?;
        tx.commit().await?;
        self.index.put(&stored, &self.master).await;
        Ok(self.to_json(&stored.webhook))
    }

    /// `PUT /v1/webhooks/{id}`: the document replaces the webhook (the secret is kept unless
    /// the document sets or removes it).
    pub async fn replace(&self, trigger: &Trigger, identifier: &str, doc: Value) -> Result<Value> {
        let secret = secret_in(&doc);
        // Parsed against the stored webhook: an identifier made under an older pattern stays.
        self.update(trigger, identifier, secret, |current| WebhookDef::parse_update(doc, &current.identifier)).await
    }

    /// `PATCH /v1/webhooks/{id}`: the keys given replace the current ones.
    pub async fn patch(&self, trigger: &Trigger, identifier: &str, patch: Value) -> Result<Value> {
        let secret = secret_in(&patch);
        self.update(trigger, identifier, secret, |current| current.patched(patch)).await
    }

    async fn update(
        &self,
        trigger: &Trigger,
        identifier: &str,
        secret: Option<Option<String>>,
        new_def: impl FnOnce(&WebhookDef) -> Result<WebhookDef, DomainError>,
    ) -> Result<Value> {
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        tx.lock(org, &format!("webhook/{identifier}")).await?;
        let current = tx.webhook(org, identifier).await?.ok_or_else(|| webhook_not_found(identifier))?;
        let mut def = new_def(&current.webhook.def)?;
        if def.identifier.is_empty() {
            def.identifier = identifier.to_owned();
        } else if def.identifier != identifier {
            return Err(DomainError::invalid(
                "invalid_webhook",
                format!(
                    "`identifier` is `{}`, but the route names `{identifier}`; webhook identifiers cannot be changed",
                    def.identifier
                ),
            )
            .into());
        }
        let secret_sealed = match secret {
            None => current.secret_sealed.clone(),
            Some(None) => None,
            Some(Some(secret)) => Some(self.master.seal(&secret)),
        };
        let def = self.checked(&mut tx, org, def).await?;
        let stored = StoredWebhook {
            org_id: org.clone(),
            secret_sealed,
            webhook: Webhook {
                id: current.webhook.id.clone(),
                key: current.webhook.key.clone(),
                revision: current.webhook.revision + 1,
                audited: current.webhook.audited.touched(&trigger.by, trigger.at),
                def,
            },
        };
        tx.put_webhook(&stored).await?;
        tx.commit().await?;
        self.index.put(&stored, &self.master).await;
        Ok(self.to_json(&stored.webhook))
    }

    /// Checks what needs the store (every mapping's blueprint exists) and compiles every
    /// expression; returns the definition to store (without its secret).
    async fn checked(&self, tx: &mut wharf_store::Tx, org: &str, def: WebhookDef) -> Result<WebhookDef> {
        for (i, mapping) in def.mappings.iter().enumerate() {
            if tx.blueprint(org, &mapping.blueprint).await?.is_none() {
                return Err(DomainError::invalid(
                    "invalid_webhook",
                    format!("`mappings[{i}].blueprint` is `{}`, which is not an existing blueprint", mapping.blueprint),
                )
                .into());
            }
        }
        crate::jq_pool::run(move || compile(&def).map(|_| def)).await?.map_err(Error::from)
    }

    /// `DELETE /v1/webhooks/{id}`: the webhook and its events.
    pub async fn delete(&self, trigger: &Trigger, identifier: &str) -> Result<()> {
        let org = &trigger.org_id;
        let mut tx = self.store.begin().await?;
        tx.lock(org, &format!("webhook/{identifier}")).await?;
        let current = tx.webhook(org, identifier).await?.ok_or_else(|| webhook_not_found(identifier))?;
        tx.delete_webhook(&current.webhook.id).await?;
        tx.commit().await?;
        self.index.remove(&current.webhook.id);
        Ok(())
    }

    /// One page of a webhook's events, newest first, and the cursor of the next page.
    pub async fn events(
        &self,
        org: &str,
        identifier: &str,
        filter: &WebhookEventFilter,
        limit: u32,
    ) -> Result<(Vec<Value>, Option<String>)> {
        let stored = self.stored(org, identifier).await?;
        let mut events = self.store.webhook_events(&stored.webhook.id, filter, limit.saturating_add(1)).await?;
        let next = if events.len() > limit as usize {
            events.truncate(limit as usize);
            events.last().map(|e| e.seq.to_string())
        } else {
            None
        };
        Ok((events.iter().map(|e| event_json(e, identifier, false)).collect(), next))
    }

    /// One event: the request as received and the mapping result.
    pub async fn event(&self, org: &str, identifier: &str, event_id: &str) -> Result<Value> {
        let stored = self.stored(org, identifier).await?;
        let event = self.store.webhook_event(&stored.webhook.id, event_id).await?.ok_or_else(|| event_not_found(event_id))?;
        Ok(event_json(&event, identifier, true))
    }

    /// Maps stored events again with the current mappings: one (`event_id`), or every event
    /// `filter` selects. Returns how many were queued.
    pub async fn replay(&self, org: &str, identifier: &str, event_id: Option<&str>, filter: &WebhookEventFilter) -> Result<u64> {
        let stored = self.stored(org, identifier).await?;
        if let Some(event_id) = event_id {
            let event = self.store.webhook_event(&stored.webhook.id, event_id).await?.ok_or_else(|| event_not_found(event_id))?;
            if event.status == WebhookEventStatus::Rejected {
                return Err(DomainError::conflict(
                    "webhook_event_rejected",
                    format!(
                        "webhook event `{event_id}` was rejected (its signature did not verify) and kept no request to replay"
                    ),
                )
                .into());
            }
        }
        let mut tx = self.store.begin().await?;
        let count = tx.replay_webhook_events(&stored.webhook.id, event_id, filter).await?;
        tx.commit().await?;
        Ok(count)
    }

    /// Port's "Test mapping": runs the webhook's mappings (or `mappings`, proposed) on a
    /// stored event or on a request given in full, and returns what would be written, without
    /// writing anything.
    pub async fn test(&self, org: &str, identifier: &str, request: &Value) -> Result<Value> {
        let stored = self.stored(org, identifier).await?;
        let Value::Object(fields) = request else {
            return Err(DomainError::invalid("invalid_request", "the body must be a JSON object").into());
        };
        for key in fields.keys() {
            if !matches!(key.as_str(), "eventId" | "body" | "headers" | "queryParams" | "mappings") {
                return Err(DomainError::invalid(
                    "invalid_request",
                    format!(
                        "unknown key `{key}`: give `eventId`, or `body`, `headers` and `queryParams`; and optionally `mappings`"
                    ),
                )
                .into());
            }
        }
        let input = match fields.get("eventId") {
            Some(Value::String(event_id)) => {
                let event =
                    self.store.webhook_event(&stored.webhook.id, event_id).await?.ok_or_else(|| event_not_found(event_id))?;
                let request = event.request.ok_or_else(|| {
                    DomainError::conflict("webhook_event_rejected", format!("webhook event `{event_id}` kept no request"))
                })?;
                wharf_core::ingest::stored_input(request)
            }
            Some(_) => return Err(DomainError::invalid("invalid_request", "`eventId` must be a string").into()),
            None => {
                let object = |key: &str| match fields.get(key) {
                    None | Some(Value::Null) => Ok(Map::new()),
                    Some(Value::Object(map)) => Ok(map.clone()),
                    Some(_) => Err(DomainError::invalid("invalid_request", format!("`{key}` must be an object"))),
                };
                let headers = object("headers")?;
                let headers =
                    headers_object(headers.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default().as_bytes())));
                jq_input(fields.get("body").cloned().unwrap_or(Value::Null), headers, object("queryParams")?)
            }
        };
        let proposed: Option<Vec<MappingDef>> =
            fields.get("mappings").map(|m| wharf_core::json::from_value(m.clone(), "invalid_webhook", "mappings")).transpose()?;
        let def = stored.webhook.def.clone();
        let mapped = crate::jq_pool::run(move || {
            let mappings = match proposed {
                Some(defs) => compile_mappings(&defs)?,
                None => compile(&def)?.mappings,
            };
            Ok::<_, DomainError>(map_webhook_event(&mappings, &input))
        })
        .await??;
        let trigger = webhook_trigger(org, &stored.webhook.def.identifier, None, crate::now());
        let mut tx = self.store.begin().await?;
        let mut blueprints = crate::catalog::BlueprintCache::default();
        let applied = apply::apply(&self.catalog, &mut tx, &mut blueprints, &trigger, &mapped.entities, true).await?;
        drop(tx); // a dry run: nothing to keep
        let result = WebhookEventResult::new(
            mapped.matched,
            mapped.truncated,
            applied.outcomes,
            [mapped.errors, applied.errors].concat(),
            trigger.at,
        );
        Ok(json!({
            "status": result.status,
            "entities": applied.previews,
            "errors": result.errors,
            "truncatedItems": result.truncated_items,
            "logs": mapped.logs,
        }))
    }

    /// Deletes events past the retention period (and expired request identifiers).
    pub async fn prune(&self, now: Timestamp) -> Result<u64> {
        let retention = i64::try_from(self.settings.event_retention.as_millis()).unwrap_or(i64::MAX);
        Ok(self.store.prune_webhook_events(Timestamp::from_millis(now.millis().saturating_sub(retention)), now).await?)
    }

    /// Background upkeep until `stop` fires: refreshing the index from the store (changes by
    /// other nodes) and pruning old events.
    pub async fn run_upkeep(self, stop: tokio_util::sync::CancellationToken) {
        let mut refresh = tokio::time::interval(self.settings.index_refresh_interval);
        let mut prune = tokio::time::interval(self.settings.prune_interval);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = refresh.tick() => {
                    if let Err(err) = self.index.refresh(&self.store, &self.master).await {
                        tracing::warn!(error = %err, "cannot refresh the webhook index");
                    }
                }
                _ = prune.tick() => match self.prune(crate::now()).await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "pruned old webhook events"),
                    Err(err) => tracing::warn!(error = %err, "cannot prune webhook events"),
                },
            }
        }
    }
}

/// The trigger of catalog writes made by mapping an event of webhook `identifier`.
pub(crate) fn webhook_trigger(org: &str, identifier: &str, event_id: Option<&str>, at: Timestamp) -> Trigger {
    Trigger {
        org_id: org.to_owned(),
        by: identifier.to_owned(),
        origin: wharf_core::change::Origin::Webhook,
        at,
        webhook_id: Some(identifier.to_owned()),
        webhook_event_id: event_id.map(str::to_owned),
        run_id: None,
    }
}

/// An event as the API shows it: a summary in lists, with the request and result in full.
fn event_json(event: &WebhookEvent, webhook: &str, full: bool) -> Value {
    let mut doc = json!({
        "id": event.id,
        "webhook": webhook,
        "status": event.status,
        "requestId": event.request_id,
        "receivedAt": event.received_at,
        "processedAt": event.processed_at,
    });
    if full {
        doc["request"] = event.request.clone().unwrap_or(Value::Null);
        doc["result"] = event.result.clone().unwrap_or(Value::Null);
    } else if let Some(result) = &event.result {
        let count = |key: &str| result.get(key).and_then(Value::as_array).map_or(0, Vec::len);
        doc["entities"] = json!(count("entities"));
        doc["errors"] = json!(count("errors"));
        if let Some(reason) = result.get("reason") {
            doc["reason"] = reason.clone();
        }
    }
    doc
}
