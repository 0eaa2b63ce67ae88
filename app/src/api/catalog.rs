//! The catalog page: the products, and requesting access to one for a profile.

use leptos::prelude::*;
use portcullis_domain::model::{GrantView, ProductView};
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::Outcome;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, domain, store};

pub use portcullis_domain::model::ProfileOption;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub products: Vec<ProductView>,
    pub profiles: Vec<ProfileOption>,
}

#[server(endpoint = "get_catalog")]
pub async fn get_catalog() -> Result<Catalog, AppError> {
    let actor = actor().await?;
    let store = store()?;
    let products = store.list_products(&actor).await.map_err(domain)?;
    let profiles = store.requestable_profiles(&actor).await.map_err(domain)?;
    Ok(Catalog { products, profiles })
}

/// `scopes[]` checkboxes arrive as a list of the ticked ones (absent when none is).
#[server(endpoint = "request_access")]
pub async fn request_access(
    profile_id: String,
    product_id: String,
    scopes: Option<Vec<String>>,
    justification: String,
) -> Result<GrantView, AppError> {
    let actor = actor().await?;
    let scopes = scopes.unwrap_or_default();
    let grant =
        store()?.request_grant(&actor, &profile_id, &product_id, &scopes, &justification).await.map_err(domain)?;
    let anchor = format!("product-{}", grant.product_id);
    crate::ssr::said_at(&actor, Outcome::Requested(grant.clone()), Some(&anchor)).await?;
    Ok(grant)
}
