//! Deliveries (SPEC §7): the domain model of sending published events to subscriptions.
//!
//! - [`model`] — the types: a claimed delivery, an attempt's record, what an attempt says
//!   about its subscription, a delivery and an attempt as listed, and their statuses;
//! - [`transition`] — where a delivery changes state: [`after_attempt`] (one attempt's
//!   record, the delivery's next state, the subscription's update), [`unsent_reason`], and
//!   [`AttemptBatch::of`] for attempts written together;
//! - [`policy`] — the retry schedule and its modifiers ([`RetryPolicy::next_step`]), the
//!   disable-after-failing rule ([`disable_reason`]), `Retry-After`.
//!
//! All of it is pure: the engine passes in the time, the random draw and the ids, and the
//! store writes what comes out.

pub mod model;
pub mod policy;
pub mod transition;

pub use model::{
    Attempt, AttemptBatch, AttemptRecord, ClaimedDelivery, Delivery, DeliveryFilter, DeliveryStatus, LAST_ERROR_CHARS,
    TargetUpdate,
};
pub use policy::{AttemptOutcome, NextStep, RetryPolicy, disable_reason, parse_retry_after};
pub use transition::{AttemptReport, Transition, after_attempt, unsent_reason};
