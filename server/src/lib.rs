//! The `portcullis` server: one process serving the portal, the gateway and the
//! management API. `main.rs` only parses arguments and calls into here.

pub mod api_v1;
pub mod application;
pub mod audit;
pub mod body;
pub mod client_ip;
pub mod config;
pub mod csrf;
pub mod dpop;
pub mod gateway;
pub mod headers;
pub mod health;
pub mod listener;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod page_policy;
pub mod portal_assets;
pub mod sample_upstream;
pub mod sessions;
pub mod shared_limits;
pub mod sources;
pub mod telemetry;
pub mod tls;
pub mod trace;
