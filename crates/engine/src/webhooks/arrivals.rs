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
//! after it (subject, on PostgreSQL, to the horizon `pending_webhook_events` reads below). Either no
//! worker drains its webhook, and the webhook is queued for one; or the drainer's next
//! [`Draining::read`] comes after the mark, or its [`Draining::finish`] finds the mark and
//! reads again. Both sides decide under one lock. Events this node was not told about (other
//! nodes', replays, those left by a crash) are found by the workers' periodic walk, which
//! queues what it finds.
//!
//! Fairness between organizations: a worker takes the first queued webhook whose organization
//! drains fewer than [`Arrivals::limit_per_organization`] webhooks on this node (the mapper
//! sets it to one less than its workers), and a drainer hands its webhook back to the end of
//! the queue after a turn ([`Draining::others_wait`]) when a queued webhook could start in its
//! place. Invariant: no organization holds more than its limit of this node's drains, so with
//! the mapper's limit (workers − 1, at least 1) a webhook of an organization that drains
//! nothing finds a worker free unless the workers drain for at least two other organizations
//! (never, with two organizations and two workers); and then it waits at most until one of
//! their turns ends (the mapper's turn, plus the one event being mapped when it ends, which
//! its jq budget bounds). Events of one webhook are still mapped by one worker at a time, in
//! order: a webhook handed back is drained again from its oldest pending event.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// The organization of a webhook, as far as this node knows (`None`: not loaded, which takes
/// no share of any organization's workers).
pub type OrgOf<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

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
    /// The webhooks being drained.
    draining: HashMap<String, Drain>,
    /// How many webhooks of each organization are being drained.
    per_org: HashMap<String, usize>,
    /// At most this many webhooks of one organization are drained at once; 0: no limit.
    limit_per_org: usize,
}

struct Drain {
    /// Whether events arrived since the drainer's last read.
    arrived: bool,
    org: Option<String>,
}

impl State {
    /// Whether a webhook of `org` may start now, were one drain of `ending` to end first.
    fn has_room(&self, org: Option<&str>, ending: Option<&str>) -> bool {
        let Some(org) = org else { return true };
        if self.limit_per_org == 0 {
            return true;
        }
        let draining = self.per_org.get(org).copied().unwrap_or(0);
        let draining = if ending == Some(org) { draining.saturating_sub(1) } else { draining };
        draining < self.limit_per_org
    }
}

/// What an idle worker is to do next.
pub enum Next {
    /// Drain this webhook, which has new events: the hold is already taken.
    Drain(Draining),
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
                if let Some(drain) = state.draining.get_mut(webhook) {
                    drain.arrived = true;
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

    /// Drains of one organization at once on this node, at most (at least 1).
    pub fn limit_per_organization(&self, limit: usize) {
        self.state().limit_per_org = limit.max(1);
    }

    /// The first queued webhook whose organization has room, its drain started, waiting at
    /// most `wait` for one.
    pub async fn next(&self, wait: Duration, org_of: OrgOf<'_>) -> Next {
        let woken = tokio::time::timeout(wait, async {
            loop {
                if let Some(draining) = self.take(org_of) {
                    return draining;
                }
                self.0.wake.notified().await;
            }
        });
        match woken.await {
            Ok(draining) => Next::Drain(draining),
            Err(_) => Next::Walk,
        }
    }

    /// Starts the drain of the first queued webhook whose organization has room.
    fn take(&self, org_of: OrgOf<'_>) -> Option<Draining> {
        let mut state = self.state();
        let (position, org) = state.queued.iter().enumerate().find_map(|(i, webhook)| {
            let org = org_of(webhook);
            state.has_room(org.as_deref(), None).then_some((i, org))
        })?;
        let webhook = state.queued.remove(position)?;
        if let Some(org) = &org {
            *state.per_org.entry(org.clone()).or_default() += 1;
        }
        state.draining.insert(webhook.clone(), Drain { arrived: false, org });
        Some(Draining { arrivals: self.clone(), webhook, handed_back: false })
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
    /// The drain ended with events left: the webhook goes to the end of the queue on drop.
    handed_back: bool,
}

impl Draining {
    pub fn webhook(&self) -> &str {
        &self.webhook
    }

    /// Called before each read of pending events: what arrived until now, that read sees.
    pub fn read(&self) {
        if let Some(drain) = self.arrivals.state().draining.get_mut(&self.webhook) {
            drain.arrived = false;
        }
    }

    /// Called when a read found nothing: true when the drain may end, false when events
    /// arrived since that read began, to be read too. What arrives after it returns true is
    /// handed on when the hold drops.
    pub fn finish(&self) -> bool {
        self.arrivals.state().draining.get(&self.webhook).is_none_or(|drain| !drain.arrived)
    }

    /// Whether a queued webhook could start if this drain ended: then the drainer ends its
    /// turn ([`Draining::hand_back`]) so that one gets a worker.
    pub fn others_wait(&self, org_of: OrgOf<'_>) -> bool {
        let state = self.arrivals.state();
        let mine = state.draining.get(&self.webhook).and_then(|drain| drain.org.as_deref());
        state.queued.iter().any(|webhook| state.has_room(org_of(webhook).as_deref(), mine))
    }

    /// Ends the hold with events left to map: the webhook goes to the end of the queue.
    pub fn hand_back(mut self) {
        self.handed_back = true;
    }
}

impl Drop for Draining {
    /// Hands what arrived since the last read (after the drain finished, or one that ended
    /// otherwise: an error, the node stopping, the lease lost, a turn handed back) to the
    /// queue, so it is not left for the walk; and wakes a worker for a queued webhook that
    /// this drain kept waiting for room.
    fn drop(&mut self) {
        let (arrived, waiting) = {
            let mut state = self.arrivals.state();
            let drain = state.draining.remove(&self.webhook);
            if let Some(org) = drain.as_ref().and_then(|drain| drain.org.as_deref())
                && let Some(count) = state.per_org.get_mut(org)
            {
                *count -= 1;
                if *count == 0 {
                    state.per_org.remove(org);
                }
            }
            (drain.is_some_and(|drain| drain.arrived) || self.handed_back, !state.queued.is_empty())
        };
        if arrived {
            self.arrivals.arrived([self.webhook.as_str()]);
        } else if waiting {
            self.arrivals.0.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::ZERO;

    /// No organization known: every webhook has room.
    fn unknown(_: &str) -> Option<String> {
        None
    }

    /// `a…` webhooks belong to organization A, the others to B.
    fn org_by_letter(webhook: &str) -> Option<String> {
        Some(if webhook.starts_with('a') { "A" } else { "B" }.to_owned())
    }

    async fn next(arrivals: &Arrivals, org_of: OrgOf<'_>) -> Option<Draining> {
        match arrivals.next(NOW, org_of).await {
            Next::Drain(draining) => Some(draining),
            Next::Walk => None,
        }
    }

    fn name(draining: &Option<Draining>) -> Option<&str> {
        draining.as_ref().map(Draining::webhook)
    }

    #[tokio::test]
    async fn an_arrival_for_a_webhook_nobody_drains_wakes_a_worker_once() {
        let arrivals = Arrivals::default();
        arrivals.arrived(["a", "a", "b", "a"]);
        let a = next(&arrivals, &unknown).await;
        assert_eq!(name(&a), Some("a"));
        let b = next(&arrivals, &unknown).await;
        assert_eq!(name(&b), Some("b"));
        assert!(matches!(arrivals.next(Duration::from_millis(5), &unknown).await, Next::Walk));
    }

    #[tokio::test]
    async fn a_waiting_worker_is_woken_by_an_arrival() {
        let arrivals = Arrivals::default();
        let waiting = tokio::spawn({
            let arrivals = arrivals.clone();
            async move {
                match arrivals.next(Duration::from_secs(30), &unknown).await {
                    Next::Drain(draining) => Some(draining.webhook().to_owned()),
                    Next::Walk => None,
                }
            }
        });
        tokio::task::yield_now().await;
        arrivals.arrived(["a"]);
        assert_eq!(waiting.await.unwrap().as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn an_arrival_during_a_drain_makes_the_drainer_read_again_and_wakes_nobody() {
        let arrivals = Arrivals::default();
        arrivals.arrived(["a"]);
        let draining = next(&arrivals, &unknown).await.expect("nobody drains a");
        draining.read();
        arrivals.arrived(["a"]); // committed after the read began
        assert!(next(&arrivals, &unknown).await.is_none(), "a neighbour drains a: nobody is woken for it");
        assert!(!draining.finish(), "the drainer must read again");
        draining.read();
        assert!(draining.finish());
        drop(draining);
        assert!(next(&arrivals, &unknown).await.is_none(), "nothing arrived after the last read");
        arrivals.arrived(["a"]);
        assert_eq!(name(&next(&arrivals, &unknown).await), Some("a"), "released: a is free again");
    }

    #[tokio::test]
    async fn an_arrival_after_a_drain_finished_is_queued_once_the_hold_drops() {
        let arrivals = Arrivals::default();
        arrivals.arrived(["a"]);
        let draining = next(&arrivals, &unknown).await.expect("nobody drains a");
        draining.read();
        assert!(draining.finish());
        arrivals.arrived(["a"]); // while the drainer releases its lease
        assert!(next(&arrivals, &unknown).await.is_none(), "nobody may take a before its lease is released");
        drop(draining);
        assert_eq!(name(&next(&arrivals, &unknown).await), Some("a"));
    }

    #[tokio::test]
    async fn a_drain_that_fails_hands_its_arrivals_back() {
        let arrivals = Arrivals::default();
        arrivals.arrived(["a"]);
        let draining = next(&arrivals, &unknown).await.expect("nobody drains a");
        assert!(next(&arrivals, &unknown).await.is_none(), "taking a removed it from the queue");
        draining.read();
        arrivals.arrived(["a"]);
        drop(draining); // an error before the read that would have found it
        assert_eq!(name(&next(&arrivals, &unknown).await), Some("a"));
    }

    #[tokio::test]
    async fn an_organization_at_its_limit_leaves_the_free_worker_to_another() {
        let arrivals = Arrivals::default();
        arrivals.limit_per_organization(1);
        arrivals.arrived(["a1", "a2"]);
        let a1 = next(&arrivals, &org_by_letter).await;
        assert_eq!(name(&a1), Some("a1"));
        assert!(next(&arrivals, &org_by_letter).await.is_none(), "A drains one webhook already: a2 waits");
        arrivals.arrived(["b"]);
        let b = next(&arrivals, &org_by_letter).await;
        assert_eq!(name(&b), Some("b"), "B's webhook is taken past A's waiting one");
        assert!(!b.as_ref().unwrap().others_wait(&org_by_letter), "ending b would not let a2 start");
        assert!(a1.as_ref().unwrap().others_wait(&org_by_letter), "ending a1 would let a2 start");
        drop(a1);
        assert_eq!(name(&next(&arrivals, &org_by_letter).await), Some("a2"));
    }

    #[tokio::test]
    async fn a_turn_handed_back_goes_to_the_end_of_the_queue() {
        let arrivals = Arrivals::default();
        arrivals.limit_per_organization(1);
        arrivals.arrived(["a1", "a2"]);
        let a1 = next(&arrivals, &org_by_letter).await.unwrap();
        a1.read();
        a1.hand_back();
        let a2 = next(&arrivals, &org_by_letter).await;
        assert_eq!(name(&a2), Some("a2"), "the webhook that waited goes first");
        assert!(next(&arrivals, &org_by_letter).await.is_none(), "a1 is queued but A is at its limit");
        drop(a2);
        assert_eq!(name(&next(&arrivals, &org_by_letter).await), Some("a1"), "a1 was queued again");
    }

    #[tokio::test]
    async fn a_lone_drainer_keeps_its_turn() {
        let arrivals = Arrivals::default();
        arrivals.limit_per_organization(1);
        arrivals.arrived(["a1"]);
        let a1 = next(&arrivals, &org_by_letter).await.unwrap();
        assert!(!a1.others_wait(&org_by_letter));
        arrivals.arrived(["a1"]);
        assert!(!a1.others_wait(&org_by_letter), "its own arrivals do not make it yield");
    }

    #[tokio::test]
    async fn a_worker_waiting_for_room_is_woken_when_the_organization_has_some() {
        let arrivals = Arrivals::default();
        arrivals.limit_per_organization(1);
        arrivals.arrived(["a1", "a2"]);
        let a1 = next(&arrivals, &org_by_letter).await.unwrap();
        let waiting = tokio::spawn({
            let arrivals = arrivals.clone();
            async move {
                match arrivals.next(Duration::from_secs(30), &org_by_letter).await {
                    Next::Drain(draining) => Some(draining.webhook().to_owned()),
                    Next::Walk => None,
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a2 has no room while a1 is drained");
        a1.read();
        assert!(a1.finish());
        drop(a1);
        assert_eq!(waiting.await.unwrap().as_deref(), Some("a2"));
    }
}
