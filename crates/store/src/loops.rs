//! Delivery loops: what links a delivery arriving at an ingest URL to the earlier one whose
//! mapping caused it.

use sqlx::Row;

use crate::{CompressedJson, Result, Store};

impl Store {
    /// The `webhook-id` header of the ingested request whose mapping made change `change_id`:
    /// the previous link of a delivery chain. `None` when no mapping made the change, the
    /// request is gone (pruned) or damaged, or it had no such header.
    pub async fn change_caused_by_delivery(&self, change_id: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT e.request, e.request_compressed FROM changes c \
             JOIN webhook_events e ON e.id = c.webhook_event_id WHERE c.id = $1",
        )
        .bind(change_id)
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let text = match row.try_get::<Option<Vec<u8>>, _>("request_compressed")? {
            Some(bytes) => match CompressedJson::decompress(&bytes) {
                Ok(text) => text,
                Err(_) => return Ok(None),
            },
            None => match row.try_get::<Option<String>, _>("request")? {
                Some(text) => text,
                None => return Ok(None),
            },
        };
        #[derive(serde::Deserialize)]
        struct Request {
            #[serde(default)]
            headers: serde_json::Map<String, serde_json::Value>,
        }
        let Ok(request) = serde_json::from_str::<Request>(&text) else { return Ok(None) };
        Ok(request.headers.get("webhook-id").and_then(serde_json::Value::as_str).map(str::to_owned))
    }
}
