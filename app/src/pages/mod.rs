//! One module per area of the portal.

mod admin;
mod auth;
mod catalog;
mod clients;
mod home;
mod tokens;

pub use admin::{ApprovalsPage, ProductsAdminPage, UsersAdminPage};
pub use auth::{LoginPage, SignupPage};
pub use catalog::CatalogPage;
pub use clients::{ClientPage, ClientsPage, NewClientPage};
pub use home::{HomePage, NotFoundPage};
pub use tokens::TokensPage;
