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

    /// The rows `select` finds for `seqs`: `select` ends with `IN`, and the list of `seqs`
    /// follows it in as many statements as the bind limit asks (how every claim reads back
    /// what it took).
    pub(crate) async fn rows_with_seqs(&mut self, select: &str, seqs: &[i64]) -> Result<Vec<sqlx::any::AnyRow>> {
        let mut rows = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(crate::rows::rows_per_statement(1)) {
            let sql = format!("{select} ({})", crate::rows::placeholders(1, chunk.len()));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for seq in chunk {
                query = query.bind(*seq);
            }
            rows.extend(query.fetch_all(self.conn()).await?);
        }
        Ok(rows)
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
