//! [`Tx`]: a sqlx write transaction, on either database. The write traits' sqlx
//! implementations are in the module of their tables (`catalog.rs`, `webhooks.rs`,
//! `deliveries.rs`, `runs.rs`), beside the reads of those tables; the other writes are `Tx`
//! methods there too.

use std::sync::Arc;

use tokio::sync::watch;

use crate::{Dialect, Result, Transaction};

/// A sqlx write transaction over the catalog, the event log, the queue and the outbox.
/// Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    tx: Transaction,
    pub(crate) dialect: &'static Dialect,
    /// SQLite's write turn, given back when the transaction ends (declared after `tx`, so
    /// dropped after the rollback is queued).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Whether it recorded a change: its commit then tells the outbox's readers.
    pub(crate) recorded: bool,
    outbox: Arc<watch::Sender<u64>>,
}

impl Tx {
    pub(crate) fn new(
        tx: Transaction,
        dialect: &'static Dialect,
        turn: Option<tokio::sync::OwnedMutexGuard<()>>,
        outbox: Arc<watch::Sender<u64>>,
    ) -> Self {
        Self { tx, dialect, _turn: turn, recorded: false, outbox }
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<()> {
        let (recorded, outbox) = (self.recorded, self.outbox.clone());
        self.tx.commit().await?;
        if recorded {
            outbox.send_modify(|commits| *commits = commits.wrapping_add(1));
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}
