//! One module per area of the portal.

mod activity;
mod admin;
mod audit;
mod auth;
mod catalog;
mod clients;
mod home;
mod issuers;
mod reviews;
mod tokens;

pub use activity::{ClientActivityPage, SecurityDashboardPage};
pub use admin::{ApprovalsPage, ProductsAdminPage, UsersAdminPage};
pub use audit::{AuditEventPage, AuditSearchPage};
pub use auth::{LoginPage, SignupPage};
pub use catalog::CatalogPage;
pub use clients::{ClientPage, ClientsPage, NewClientPage};
pub use home::{HomePage, NotFoundPage};
pub use issuers::IssuersAdminPage;
pub use reviews::ReviewsPage;
pub use tokens::TokensPage;
