//! Server functions: the portal's calls to the server. Each is thin: find the actor,
//! call the domain, translate its error. Endpoints are named so that the integration
//! tests (and anyone reading the network tab) can recognise them.
//!
//! One file per page of `pages/` that calls the server, each re-exported here, so
//! `crate::api::name` is the path to use whatever file holds it. A function's URL is
//! `/api/` and its `endpoint = "…"`: it does not depend on the module it is in.

#[cfg(feature = "ssr")]
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

/// A form field holding a number of days; empty means "not given".
#[cfg(feature = "ssr")]
fn days_field(text: &str, what: &str) -> Result<Option<i64>, AppError> {
    match text.trim() {
        "" => Ok(None),
        d => d.parse().map(Some).map_err(|_| fail(AppError::Invalid(format!("{what} is a number of days.")))),
    }
}
