//! The one server of a SQLite database. `wharf serve` on SQLite holds an exclusive lock on a
//! file beside the database (`wharf.db.server.lock`) for as long as it runs, so:
//!
//! - a second server on the same database stops at its start, naming the file, instead of
//!   sharing the database with a node it knows nothing of (several nodes need PostgreSQL);
//! - a server that takes the lock knows that every lease in the database was taken by a
//!   process that has stopped (a crash, a SIGKILL, a power cut), and takes that work back at
//!   once: the webhooks it was mapping, the deliveries, run requests and workflow node runs it
//!   had claimed. Without this, each waited out its lease after a restart: 30 s for a webhook,
//!   twice the delivery timeout plus 5 s for a claim.
//!
//! Taking work back is what an expired lease does, sooner: a send that was in flight when the
//! process died may arrive again (at least once), and a node run claimed again counts as left
//! mid-step. The kernel drops the lock with the process, whatever ended it. Tools that use the
//! database beside a running server (`wharf backup`, `wharf admin`) do not take it.
//!
//! PostgreSQL is shared by nodes that cannot see each other's processes: there a lease ends
//! when it expires.

use std::fs::File;

use wharf_core::time::Timestamp;

use crate::{Result, Store};

/// Held by the server of a SQLite database for as long as it runs; dropping it lets another
/// server start. It is also the proof [`Store::take_back_leases`] asks for.
#[derive(Debug)]
pub struct ServingLock {
    _file: File,
}

/// Leases of a stopped server, released (what [`Store::take_back_leases`] took back).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TakenBack {
    pub webhooks: u64,
    pub deliveries: u64,
    pub run_requests: u64,
    pub node_runs: u64,
}

impl TakenBack {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Makes each claimed row of a queue due at `$1`, unclaimed: deliveries, run requests, node runs.
const CLAIMED: [&str; 3] = [
    "UPDATE deliveries SET next_attempt_at = $1, lease_token = NULL WHERE status = 'pending' AND lease_token IS NOT NULL",
    "UPDATE run_requests SET next_attempt_at = $1, lease_token = NULL WHERE status = 'pending' AND lease_token IS NOT NULL",
    "UPDATE workflow_node_runs SET next_at = $1, lease_token = NULL WHERE queue = 'ready' AND lease_token IS NOT NULL",
];

impl Store {
    /// On SQLite: makes this process the database's one server (see the module). `Ok(None)`
    /// on PostgreSQL, and on a file system that cannot lock files (logged; leases then expire
    /// as on PostgreSQL). Fails when another process serves the database. `wharf serve` takes
    /// it before migrating, so that a second server never migrates the database under the
    /// first.
    pub fn serve_alone(&self) -> Result<Option<ServingLock>> {
        let Some(writer) = &self.sqlite else { return Ok(None) };
        Ok(crate::sqlite::serving::lock(writer.path())?.map(|file| ServingLock { _file: file }))
    }

    /// Releases every lease in the database, in one transaction: each leased item is due at
    /// `now`. Only for the one server of the database, which `alone` proves: no other process
    /// can hold a lease.
    pub async fn take_back_leases(&self, _alone: &ServingLock, now: Timestamp) -> Result<TakenBack> {
        let mut tx = self.begin().await?;
        let webhooks = sqlx::query("DELETE FROM webhook_mapper_leases").execute(tx.conn()).await?.rows_affected();
        // A claim stamps a token and moves the due time to the lease's end; recording the
        // attempt clears the token. So a pending row with a token is one a server had in hand.
        // A node run keeps its `claims`: the next claim sees one left mid-step, as after a lease
        // ended.
        let mut claimed = [0; CLAIMED.len()];
        for (release, count) in CLAIMED.iter().zip(&mut claimed) {
            *count = sqlx::query(*release).bind(now.millis()).execute(tx.conn()).await?.rows_affected();
        }
        let [deliveries, run_requests, node_runs] = claimed;
        tx.commit().await?;
        Ok(TakenBack { webhooks, deliveries, run_requests, node_runs })
    }
}
