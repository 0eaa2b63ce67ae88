//! Integration tests: the real server, a real database, real HTTP.
//! One binary (`tests/api`), one module per area of the product.

mod auth;
mod clients;
mod grants;
mod helpers;
mod startup;
