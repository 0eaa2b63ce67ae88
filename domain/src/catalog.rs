//! Products and their endpoints: the catalog developers browse and admins publish.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::access::{Access, Actor};
use crate::audit::{self, AdminEvent};
use crate::endpoints::NewEndpoint;
use crate::error::Result;
use crate::model::{EndpointView, ImportSummary, ProductView};
use crate::routing::{http_method, path_template};
use crate::scopes::Area;
use crate::store::{flag, new_id, split_list, Store};
use crate::upstream_tls::{UpstreamTlsName, UpstreamTlsNames};
use crate::DomainError;

/// A product slug: the path segment of `/gw/{product}/…`. Lower-case letters, digits
/// and dashes, so that it needs no escaping and cannot be confused by case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self> {
        let s = raw.trim();
        let ok = (2..=48).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::Invalid("A slug is 2 to 48 lower-case letters, digits or dashes.".into()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An upstream base URL: absolute http(s), no query, no trailing slash.
fn upstream_url(raw: &str, which: &str) -> Result<String> {
    let url = raw.trim().trim_end_matches('/');
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let host_ok = url.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if scheme_ok && host_ok && !url.contains('?') && !url.contains('#') && !url.chars().any(char::is_whitespace) {
        Ok(url.to_owned())
    } else {
        Err(DomainError::Invalid(format!("The {which} upstream must be an absolute http:// or https:// URL.")))
    }
}

#[derive(Debug, Clone)]
pub struct NewProduct {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub owner: String,
    pub tags: Vec<String>,
    pub sandbox_url: String,
    pub production_url: String,
}

impl NewProduct {
    /// The same product, checked and normalised: slug, non-empty name, trimmed text,
    /// sorted lower-case tags, absolute upstream URLs. Creating and editing both use it.
    fn validated(self) -> Result<Self> {
        let slug = Slug::parse(&self.slug)?.0;
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            return Err(DomainError::Invalid("Give the product a name.".into()));
        }
        Ok(Self {
            slug,
            name,
            description: self.description.trim().to_owned(),
            owner: self.owner.trim().to_owned(),
            tags: tags(&self.tags),
            sandbox_url: upstream_url(&self.sandbox_url, "sandbox")?,
            production_url: upstream_url(&self.production_url, "production")?,
        })
    }
}

/// A product's gateway policy: what the gateway does for every call to it, whoever calls.
#[derive(Debug, Clone, Default)]
pub struct ProductPolicy {
    /// Requests per minute across every caller, so that together they cannot overrun the
    /// upstream; `None` for no limit beyond each profile's own.
    pub rate_per_minute: Option<i64>,
    /// Whether an API key may come in the query string.
    pub api_key_in_query: bool,
    /// The upstream TLS profile the upstream is called with; `None` for the default.
    pub upstream_tls: Option<UpstreamTlsName>,
}

fn tags(raw: &[String]) -> Vec<String> {
    let mut out: Vec<String> = raw.iter().map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect();
    out.sort();
    out.dedup();
    out
}

impl Store {
    pub async fn list_products(&self, actor: &Actor) -> Result<Vec<ProductView>> {
        actor.permit(Area::Catalog, Access::Read)?;
        let rows = sqlx::query(
            "SELECT id, slug, name, description, owner, tags, sandbox_url, production_url, rate_per_minute,
                    api_key_in_query, upstream_tls FROM products ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.product_view(r).await?);
        }
        Ok(out)
    }

    pub async fn product(&self, id: &str) -> Result<ProductView> {
        let row = sqlx::query(
            "SELECT id, slug, name, description, owner, tags, sandbox_url, production_url, rate_per_minute,
                    api_key_in_query, upstream_tls FROM products WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(DomainError::NotFound)?;
        self.product_view(&row).await
    }

    async fn product_view(&self, r: &AnyRow) -> Result<ProductView> {
        let id: String = r.try_get("id")?;
        let endpoints = sqlx::query(
            "SELECT id, method, path_template, operation_id, summary, scope, sensitive FROM endpoints
             WHERE product_id = $1 ORDER BY path_template, method",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|e| {
            Ok(EndpointView {
                id: e.try_get("id")?,
                method: e.try_get("method")?,
                path_template: e.try_get("path_template")?,
                operation_id: e.try_get("operation_id")?,
                summary: e.try_get("summary")?,
                scope: e.try_get("scope")?,
                sensitive: flag(e, "sensitive")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(ProductView {
            id,
            slug: r.try_get("slug")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            owner: r.try_get("owner")?,
            tags: split_list(&r.try_get::<String, _>("tags")?, ','),
            sandbox_url: r.try_get("sandbox_url")?,
            production_url: r.try_get("production_url")?,
            rate_per_minute: r.try_get("rate_per_minute")?,
            api_key_in_query: flag(r, "api_key_in_query")?,
            upstream_tls: r.try_get("upstream_tls")?,
            endpoints,
        })
    }

    /// Sets the product's gateway policy (see `ProductPolicy`). `configured` are the
    /// upstream TLS profiles this server has: a product may not be pointed at one it
    /// lacks, though it may keep one it already names (another replica's, say).
    pub async fn set_product_policy(
        &self,
        actor: &Actor,
        product_id: &str,
        policy: ProductPolicy,
        configured: &UpstreamTlsNames,
    ) -> Result<ProductView> {
        actor.permit(Area::Catalog, Access::Write)?;
        actor.require_admin()?;
        let ProductPolicy { rate_per_minute, api_key_in_query, upstream_tls } = policy;
        if rate_per_minute.is_some_and(|r| !(1..=10_000_000).contains(&r)) {
            return Err(DomainError::Invalid("A product's limit is 1 to 10,000,000 requests per minute.".into()));
        }
        let before = self.product(product_id).await?;
        if let Some(name) = &upstream_tls {
            if before.upstream_tls.as_deref() != Some(name.as_str()) {
                configured.require(name)?;
            }
        }
        let upstream_tls = upstream_tls.map(UpstreamTlsName::into_string);
        let now = self.now();
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE products SET rate_per_minute = $1, api_key_in_query = $2, upstream_tls = $3, updated_at = $4
             WHERE id = $5",
        )
        .bind(rate_per_minute)
        .bind(i64::from(api_key_in_query))
        .bind(upstream_tls.as_deref())
        .bind(now)
        .bind(&before.id)
        .execute(&mut *tx)
        .await?;
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "product.policy_changed",
                target_type: "product",
                target_id: &before.id,
                summary: json!({
                    "rate_per_minute": { "from": before.rate_per_minute, "to": rate_per_minute },
                    "api_key_in_query": { "from": before.api_key_in_query, "to": api_key_in_query },
                    "upstream_tls": { "from": before.upstream_tls, "to": upstream_tls },
                }),
            },
        )
        .await?;
        self.commit_and_publish(tx).await?;
        self.product(product_id).await
    }

    /// Publishes a product with its endpoints in one transaction (admins only).
    pub async fn create_product(
        &self,
        actor: &Actor,
        new: NewProduct,
        endpoints: Vec<NewEndpoint>,
    ) -> Result<ProductView> {
        actor.permit(Area::Catalog, Access::Write)?;
        actor.require_admin()?;
        let NewProduct { slug, name, description, owner, tags, sandbox_url, production_url } = new.validated()?;
        let now = self.now();
        let id = new_id("pr");
        let mut tx = self.begin().await?;
        if sqlx::query("SELECT 1 FROM products WHERE slug = $1").bind(&slug).fetch_optional(&mut *tx).await?.is_some() {
            return Err(DomainError::Conflict(format!("A product with the slug `{slug}` exists already.")));
        }
        sqlx::query(
            "INSERT INTO products (id, slug, name, description, owner, tags, sandbox_url, production_url, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&id)
        .bind(&slug)
        .bind(&name)
        .bind(&description)
        .bind(&owner)
        .bind(tags.join(","))
        .bind(&sandbox_url)
        .bind(&production_url)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut count = 0;
        for e in endpoints {
            let method = http_method(&e.method)?;
            let path = path_template(&e.path_template)?;
            let scope = e.scope.trim().to_owned();
            if scope.is_empty() {
                return Err(DomainError::Invalid(format!("{method} {path} needs a scope.")));
            }
            let dup =
                sqlx::query("SELECT 1 FROM endpoints WHERE product_id = $1 AND method = $2 AND path_template = $3")
                    .bind(&id)
                    .bind(&method)
                    .bind(&path)
                    .fetch_optional(&mut *tx)
                    .await?;
            if dup.is_some() {
                return Err(DomainError::Invalid(format!("{method} {path} is listed twice.")));
            }
            sqlx::query(
                "INSERT INTO endpoints (id, product_id, method, path_template, operation_id, summary, scope, sensitive,
                                        parameters, request_schema, response_schema)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(new_id("ep"))
            .bind(&id)
            .bind(&method)
            .bind(&path)
            .bind(e.operation_id.trim())
            .bind(e.summary.trim())
            .bind(&scope)
            .bind(i64::from(e.sensitive))
            .bind(serde_json::Value::Array(e.parameters.clone()).to_string())
            .bind(e.request_schema.as_ref().map(|v| v.to_string()))
            .bind(e.response_schema.as_ref().map(|v| v.to_string()))
            .execute(&mut *tx)
            .await?;
            count += 1;
        }
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "product.created",
                target_type: "product",
                target_id: &id,
                summary: json!({ "slug": slug.as_str(), "name": name, "tags": tags, "endpoints": count }),
            },
        )
        .await?;
        self.commit_and_publish(tx).await?;
        self.product(&id).await
    }
}

impl Store {
    /// Changes a product's description, ownership, tags, upstreams or slug (admins only).
    /// The audit event records each changed field with its old and new value.
    pub async fn update_product(&self, actor: &Actor, product_id: &str, new: NewProduct) -> Result<ProductView> {
        actor.permit(Area::Catalog, Access::Write)?;
        actor.require_admin()?;
        let before = self.product(product_id).await?;
        let new = new.validated()?;
        let after = ProductView {
            slug: new.slug,
            name: new.name,
            description: new.description,
            owner: new.owner,
            tags: new.tags,
            sandbox_url: new.sandbox_url,
            production_url: new.production_url,
            ..before.clone()
        };
        let mut changes = serde_json::Map::new();
        let mut note = |field: &str, old: serde_json::Value, new: serde_json::Value| {
            if old != new {
                changes.insert(field.to_owned(), json!({ "from": old, "to": new }));
            }
        };
        note("slug", json!(before.slug), json!(after.slug));
        note("name", json!(before.name), json!(after.name));
        note("description", json!(before.description), json!(after.description));
        note("owner", json!(before.owner), json!(after.owner));
        note("tags", json!(before.tags), json!(after.tags));
        note("sandbox_url", json!(before.sandbox_url), json!(after.sandbox_url));
        note("production_url", json!(before.production_url), json!(after.production_url));
        if changes.is_empty() {
            return Ok(before);
        }
        let now = self.now();
        let mut tx = self.begin().await?;
        let taken = sqlx::query("SELECT 1 FROM products WHERE slug = $1 AND id <> $2")
            .bind(&after.slug)
            .bind(product_id)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(DomainError::Conflict(format!("A product with the slug `{}` exists already.", after.slug)));
        }
        sqlx::query(
            "UPDATE products SET slug = $1, name = $2, description = $3, owner = $4, tags = $5, sandbox_url = $6,
                    production_url = $7, updated_at = $8 WHERE id = $9",
        )
        .bind(&after.slug)
        .bind(&after.name)
        .bind(&after.description)
        .bind(&after.owner)
        .bind(after.tags.join(","))
        .bind(&after.sandbox_url)
        .bind(&after.production_url)
        .bind(now)
        .bind(product_id)
        .execute(&mut *tx)
        .await?;
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "product.updated",
                target_type: "product",
                target_id: product_id,
                summary: serde_json::Value::Object(changes),
            },
        )
        .await?;
        self.commit_and_publish(tx).await?;
        Ok(after)
    }
}

impl Store {
    /// Imports an OpenAPI 3 document (JSON or YAML) into a product: each operation becomes
    /// an endpoint with its parameter and body schemas. Endpoints already present (same
    /// method and path) are updated; others are kept. Admins only; all or nothing.
    pub async fn import_openapi(&self, actor: &Actor, product_id: &str, document: &str) -> Result<ImportSummary> {
        actor.permit(Area::Catalog, Access::Write)?;
        actor.require_admin()?;
        let product = self.product(product_id).await?;
        let api = crate::openapi::parse(document)?;
        let now = self.now();
        let mut summary = ImportSummary { added: 0, updated: 0 };
        let mut tx = self.begin().await?;
        for e in &api.endpoints {
            let parameters = serde_json::Value::Array(e.parameters.clone()).to_string();
            let request = e.request_schema.as_ref().map(|v| v.to_string());
            let response = e.response_schema.as_ref().map(|v| v.to_string());
            let updated = sqlx::query(
                "UPDATE endpoints SET operation_id = $1, summary = $2, scope = $3, sensitive = $4, parameters = $5,
                        request_schema = $6, response_schema = $7
                 WHERE product_id = $8 AND method = $9 AND path_template = $10",
            )
            .bind(&e.operation_id)
            .bind(&e.summary)
            .bind(&e.scope)
            .bind(i64::from(e.sensitive))
            .bind(&parameters)
            .bind(&request)
            .bind(&response)
            .bind(&product.id)
            .bind(&e.method)
            .bind(&e.path_template)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated > 0 {
                summary.updated += 1;
                continue;
            }
            sqlx::query(
                "INSERT INTO endpoints (id, product_id, method, path_template, operation_id, summary, scope, sensitive,
                                        parameters, request_schema, response_schema)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(new_id("ep"))
            .bind(&product.id)
            .bind(&e.method)
            .bind(&e.path_template)
            .bind(&e.operation_id)
            .bind(&e.summary)
            .bind(&e.scope)
            .bind(i64::from(e.sensitive))
            .bind(&parameters)
            .bind(&request)
            .bind(&response)
            .execute(&mut *tx)
            .await?;
            summary.added += 1;
        }
        sqlx::query("UPDATE products SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&product.id)
            .execute(&mut *tx)
            .await?;
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "product.openapi_imported",
                target_type: "product",
                target_id: &product.id,
                summary: json!({ "title": api.title, "added": summary.added, "updated": summary.updated }),
            },
        )
        .await?;
        self.commit_and_publish(tx).await?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_templates() {
        assert!(Slug::parse("accounts").is_ok());
        for bad in ["A", "Accounts", "-x", "x-", "a/b", "a b"] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(path_template("/accounts/{id}/").unwrap(), "/accounts/{id}");
        assert_eq!(path_template("/").unwrap(), "/");
        for bad in ["accounts", "/a//b", "/a/../b", "/a/{", "/a b"] {
            assert!(path_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn upstreams_must_be_absolute() {
        assert_eq!(upstream_url("http://127.0.0.1:3000/sample/", "x").unwrap(), "http://127.0.0.1:3000/sample");
        assert!(upstream_url("ftp://x", "x").is_err());
        assert!(upstream_url("http:///x", "x").is_err());
    }
}
