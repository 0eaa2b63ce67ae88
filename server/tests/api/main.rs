//! Integration tests: the real server, a real database, real HTTP.
//! One binary (`tests/api`), one module per area of the product.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accountability;
mod api_matrix;
mod audit;
mod audit_integrity;
mod auth;
mod catalog;
mod clients;
mod cluster;
mod controls;
mod database_tls;
mod deploy;
mod dpop;
mod dpop_clients;
mod dpop_key;
mod durability;
mod federation;
mod floods;
mod gateway;
mod gateway_edges;
mod gateway_failures;
mod grants;
mod helpers;
mod management;
mod mcp;
mod mcp_clients;
mod mcp_manage;
mod mcp_replicas;

mod metrics;
mod mtls;
mod oauth;
mod portal_assets;
mod private_key_jwt;
mod private_key_jwt_clients;
mod replicas;
mod secret_rotation;
mod shared_limits;
mod startup;
mod task_tokens;
mod tls_listener;
mod token_exchange;
mod upstream_tls;
