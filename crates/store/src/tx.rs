//! [`Tx`]: a sqlx write transaction, on either database. The write traits' sqlx
//! implementations are in the module of their tables (`catalog.rs`, `webhooks.rs`,
//! `deliveries.rs`), beside the reads of those tables; the other writes are `Tx` methods
//! there too.

use crate::{Dialect, Result, Transaction};

/// A sqlx write transaction over the catalog, the event log, the queue and the outbox.
/// Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    tx: Transaction,
    pub(crate) dialect: &'static Dialect,
    /// SQLite's write turn, given back when the transaction ends (declared after `tx`, so
    /// dropped after the rollback is queued).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Tx {
    pub(crate) fn new(tx: Transaction, dialect: &'static Dialect, turn: Option<tokio::sync::OwnedMutexGuard<()>>) -> Self {
        Self { tx, dialect, _turn: turn }
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}
