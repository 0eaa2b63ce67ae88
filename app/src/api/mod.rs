//! Server functions: the portal's calls to the server. Each is thin: find the actor,
//! call the domain, translate its error. Endpoints are named so that the integration
//! tests (and anyone reading the network tab) can recognise them.
//!
//! One file per page of `pages/` that calls the server, each re-exported here, so
//! `crate::api::name` is the path to use whatever file holds it. A function's URL is
//! `/api/` and its `endpoint = "…"`: it does not depend on the module it is in.

use leptos::prelude::*;
use portcullis_domain::model::{GrantView, IssuedSecret, RegisteredKey, RegisteredSubject};
use serde::{Deserialize, Serialize};

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::fail;

mod activity;
mod admin;
mod audit;
mod auth;
mod catalog;
mod clients;
mod issuers;
mod reviews;
mod tokens;

pub use activity::*;
pub use admin::*;
pub use audit::*;
pub use auth::*;
pub use catalog::*;
pub use clients::*;
pub use issuers::*;
pub use reviews::*;
pub use tokens::*;

/// What a form post did, shown once on the page it leads back to (`ssr::outcome_on`): the
/// portal's pages are rendered on the server, so every form is a plain post answered
/// with a redirect, and this is how the page after it learns what happened. A secret
/// among them is sealed for its person while it waits. Called with `fetch` (scripts, the
/// integration tests), a server function answers its result as JSON instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// A sentence for the page's notice (`components::Notice`).
    Said(String),
    Registered(Registration),
    Issued(Issued, IssuedSecret),
    Token(portcullis_domain::model::IssuedToken),
    KeyRegistered(RegisteredKey),
    SubjectRegistered(RegisteredSubject),
    Linked(portcullis_domain::model::LinkedIdentity),
    /// A Test access call, said in the Test access of the profile it tested (not in every
    /// form of the page).
    Tested(Tested),
    /// Access requested from the catalog, said in the product's card.
    Requested(GrantView),
    /// A decision on a production request.
    Decided(GrantView),
}

/// A Test access call as it was asked, and its answer or why it was not made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tested {
    pub profile_id: String,
    pub method: String,
    pub path: String,
    pub result: Result<portcullis_domain::model::TestAccessResult, AppError>,
}

/// The outcome waiting for `page` (its path) after a form post, once; `None` when none waits.
#[server(endpoint = "take_outcome")]
pub async fn take_outcome(page: String) -> Result<Option<Outcome>, AppError> {
    crate::ssr::take_outcome(&page).await
}

/// A form field holding a number of days; empty means "not given".
#[cfg(feature = "ssr")]
fn days_field(text: &str, what: &str) -> Result<Option<i64>, AppError> {
    match text.trim() {
        "" => Ok(None),
        d => d.parse().map(Some).map_err(|_| fail(AppError::Invalid(format!("{what} is a number of days.")))),
    }
}
