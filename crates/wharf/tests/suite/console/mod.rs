//! The console in a real headless Chromium (`common::browser`), on both stores: sign-in, each
//! screen's main path as a user walks it, accessibility (axe-core) and what the page loads.
//! The screenshots in the README are taken here (`WHARF_UPDATE_SCREENSHOTS=1`).

mod act;
mod catalog;
mod delivery;
mod ingestion;
mod shell;
