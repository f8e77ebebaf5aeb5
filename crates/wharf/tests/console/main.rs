//! The console in a real headless Chromium (`common::browser`), on both stores: sign-in, each
//! screen's main path as a user walks it, accessibility (axe-core) and what the page loads.
//! The screenshots in the README are taken here (`WHARF_UPDATE_SCREENSHOTS=1`).
//!
//! A test binary of its own, not a module of `suite`: a browser test waits for one of the
//! few browsers allowed at once (`common::browser::AT_ONCE`) while holding a test thread, so
//! beside the suite's tests it held most of their threads and tripled the suite's time
//! (181 s to 603 s in one `.ci/run`). Here the waits only hold each other.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod act;
mod catalog;
mod delivery;
mod ingestion;
mod shell;
