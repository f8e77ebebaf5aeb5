//! Which webhooks have new events: told by the ingest committers, read by the mapping
//! workers of the same node.
//!
//! A commit names the webhooks whose events it stored. A webhook that a worker of this node is
//! draining is only marked (its drainer reads once more before it stops); any other is queued
//! and one idle worker is woken for it. So an idle worker wakes only for a webhook it can
//! take, instead of asking the database which webhooks have pending events at every commit:
//! at 1,000 events/s on PostgreSQL, that walk, run by the idle worker after each of ~450
//! commits a second, took more of the database's time than the mapping it waited for.
//!
//! Invariant: an event committed before [`Arrivals::arrived`] is read by a worker of this node
//! after it (subject, on PostgreSQL, to the horizon `pending_events` reads below). Either no
//! worker drains its webhook, and the webhook is queued for one; or the drainer's next
//! [`Draining::read`] comes after the mark, or its [`Draining::finish`] finds the mark and
//! reads again. Both sides decide under one lock. Events this node was not told about (other
//! nodes', replays, those left by a crash) are found by the workers' periodic walk.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// Shared by the committers and the workers of one node. Cheap to clone.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Shared>);

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    /// Webhooks with new events that no worker of this node drains, oldest first.
    queued: VecDeque<String>,
    /// The webhooks being drained, each with whether events arrived since its drainer's last
    /// read.
    draining: HashMap<String, bool>,
}

/// What an idle worker is to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Drain this webhook, which has new events.
    Drain(String),
    /// Nothing arrived within the wait: look in the database.
    Walk,
}

impl Arrivals {
    /// Records that events of these webhooks were committed (one name per event: a commit's
    /// events mostly come in runs of one webhook, and a run is looked up once).
    pub fn arrived<'a>(&self, webhooks: impl IntoIterator<Item = &'a str>) {
        let mut woken = 0;
        {
            let mut state = self.state();
            let mut previous = None;
            for webhook in webhooks {
                if previous.replace(webhook) == Some(webhook) {
                    continue;
                }
                if let Some(arrived) = state.draining.get_mut(webhook) {
                    *arrived = true;
                } else if !state.queued.iter().any(|queued| queued == webhook) {
                    state.queued.push_back(webhook.to_owned());
                    woken += 1;
                }
            }
        }
        for _ in 0..woken {
            self.0.wake.notify_one();
        }
    }

    /// The next queued webhook, waiting at most `wait` for one.
    pub async fn next(&self, wait: Duration) -> Next {
        let woken = tokio::time::timeout(wait, async {
            loop {
                if let Some(webhook) = self.state().queued.pop_front() {
                    return webhook;
                }
                self.0.wake.notified().await;
            }
        });
        match woken.await {
            Ok(webhook) => Next::Drain(webhook),
            Err(_) => Next::Walk,
        }
    }

    /// Marks `webhook` as drained by the caller until the guard drops; `None` when another
    /// worker of this node drains it (and will read what arrives meanwhile).
    pub fn start(&self, webhook: &str) -> Option<Draining> {
        let mut state = self.state();
        if state.draining.contains_key(webhook) {
            return None;
        }
        state.draining.insert(webhook.to_owned(), false);
        state.queued.retain(|queued| queued != webhook);
        Some(Draining { arrivals: self.clone(), webhook: webhook.to_owned() })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A worker's hold on draining one webhook, until it drops. Held past the drain's end until
/// the worker has released the webhook's lease: a neighbour woken earlier would fail to take
/// the lease, and drop what woke it.
pub struct Draining {
    arrivals: Arrivals,
    webhook: String,
}

impl Draining {
    pub fn webhook(&self) -> &str {
        &self.webhook
    }

    /// Called before each read of pending events: what arrived until now, that read sees.
    pub fn read(&self) {
        if let Some(arrived) = self.arrivals.state().draining.get_mut(&self.webhook) {
            *arrived = false;
        }
    }

    /// Called when a read found nothing: true when the drain may end, false when events
    /// arrived since that read began, to be read too. What arrives after it returns true is
    /// handed on when the hold drops.
    pub fn finish(&self) -> bool {
        self.arrivals.state().draining.get(&self.webhook) != Some(&true)
    }
}

impl Drop for Draining {
    /// Hands what arrived since the last read (after the drain finished, or one that ended
    /// otherwise: an error, the node stopping, the lease lost) to the queue, so it is not left
    /// for the walk.
    fn drop(&mut self) {
        let arrived = self.arrivals.state().draining.remove(&self.webhook) == Some(true);
        if arrived {
            self.arrivals.arrived([self.webhook.as_str()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::ZERO;

    #[tokio::test]
    async fn an_arrival_for_a_webhook_nobody_drains_wakes_a_worker_once() {
        let arrivals = Arrivals::default();
        arrivals.arrived(["a", "a", "b", "a"]);
        assert_eq!(arrivals.next(NOW).await, Next::Drain("a".into()));
        assert_eq!(arrivals.next(NOW).await, Next::Drain("b".into()));
        assert_eq!(arrivals.next(Duration::from_millis(5)).await, Next::Walk);
    }

    #[tokio::test]
    async fn a_waiting_worker_is_woken_by_an_arrival() {
        let arrivals = Arrivals::default();
        let waiting = tokio::spawn({
            let arrivals = arrivals.clone();
            async move { arrivals.next(Duration::from_secs(30)).await }
        });
        tokio::task::yield_now().await;
        arrivals.arrived(["a"]);
        assert_eq!(waiting.await.unwrap(), Next::Drain("a".into()));
    }

    #[tokio::test]
    async fn an_arrival_during_a_drain_makes_the_drainer_read_again_and_wakes_nobody() {
        let arrivals = Arrivals::default();
        let draining = arrivals.start("a").expect("nobody drains a");
        assert!(arrivals.start("a").is_none(), "a neighbour drains a");
        draining.read();
        arrivals.arrived(["a"]); // committed after the read began
        assert!(!draining.finish(), "the drainer must read again");
        draining.read();
        assert!(draining.finish());
        assert_eq!(arrivals.next(NOW).await, Next::Walk, "no worker is woken for a");
        drop(draining);
        assert_eq!(arrivals.next(NOW).await, Next::Walk, "nothing arrived after the last read");
        assert!(arrivals.start("a").is_some(), "released: a is free again");
    }

    #[tokio::test]
    async fn an_arrival_after_a_drain_finished_is_queued_once_the_hold_drops() {
        let arrivals = Arrivals::default();
        let draining = arrivals.start("a").expect("nobody drains a");
        draining.read();
        assert!(draining.finish());
        arrivals.arrived(["a"]); // while the drainer releases its lease
        assert_eq!(arrivals.next(NOW).await, Next::Walk, "nobody may take a before its lease is released");
        drop(draining);
        assert_eq!(arrivals.next(NOW).await, Next::Drain("a".into()));
    }

    #[tokio::test]
    async fn a_drain_that_fails_hands_its_arrivals_back() {
        let arrivals = Arrivals::default();
        arrivals.arrived(["a"]);
        let draining = arrivals.start("a").expect("nobody drains a");
        assert_eq!(arrivals.next(NOW).await, Next::Walk, "taking a removed it from the queue");
        draining.read();
        arrivals.arrived(["a"]);
        drop(draining); // an error before the read that would have found it
        assert_eq!(arrivals.next(NOW).await, Next::Drain("a".into()));
    }
}
