//! What the portal, the management API and the gateway share.
//!
//! `model` is plain data and compiles everywhere (the portal's wasm build uses it);
//! everything that touches the database or a server secret sits behind the `store`
//! feature, so no HTTP type and no Leptos type ever appears here.

pub mod error;
pub mod model;
#[cfg(feature = "store")]
pub mod openapi;
pub mod routing;
pub mod scopes;
pub mod time;
pub mod upstream_tls;

#[cfg(feature = "store")]
pub mod access;
#[cfg(feature = "store")]
pub mod activity;
#[cfg(feature = "store")]
pub mod audit;
#[cfg(feature = "store")]
pub mod audit_event;
#[cfg(feature = "store")]
pub mod audit_search;
#[cfg(feature = "store")]
pub mod audit_spill;
#[cfg(feature = "store")]
pub mod audit_text;
#[cfg(feature = "store")]
pub mod audit_writer;
#[cfg(feature = "store")]
pub mod catalog;
#[cfg(feature = "store")]
pub mod clients;
#[cfg(feature = "store")]
pub mod clock;
#[cfg(feature = "store")]
pub mod controls;
#[cfg(feature = "store")]
pub mod credentials;
#[cfg(feature = "store")]
pub mod endpoints;
#[cfg(feature = "store")]
pub mod enforcement;
#[cfg(feature = "store")]
pub mod grants;
#[cfg(feature = "store")]
pub mod issuers;
#[cfg(feature = "store")]
pub mod keyed;
#[cfg(feature = "store")]
pub mod mcp_sessions;
#[cfg(feature = "store")]
pub mod oauth;
#[cfg(feature = "store")]
pub mod password;
#[cfg(feature = "store")]
pub mod policy;
#[cfg(feature = "store")]
pub mod reveal;
#[cfg(feature = "store")]
pub mod reviews;
#[cfg(feature = "store")]
pub mod scheduled;
#[cfg(feature = "store")]
pub mod sealing;
#[cfg(feature = "store")]
pub mod secret_rotation;
#[cfg(feature = "store")]
pub mod secrets;
#[cfg(feature = "store")]
pub mod seed;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "store")]
pub mod tokens;
#[cfg(feature = "store")]
pub mod users;

pub use error::DomainError;
