//! Who may touch what. This is the one place where the portal, the management API and
//! the server functions learn whether a person may read or change a client (and so its
//! profiles, credentials and grants). No other module decides it.

use crate::model::{Role, UserView};
pub use crate::scopes::Access;
use crate::scopes::{Area, Scope, Scopes};
use crate::DomainError;

/// Where an authenticated person acted from; recorded on every audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Portal,
    Api,
    /// The Management MCP (`/mcp/manage`).
    McpManage,
    Cli,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Portal => "portal",
            Channel::Api => "api",
            Channel::McpManage => "mcp-manage",
            Channel::Cli => "cli",
        }
    }
}

/// An authenticated person. Only the server's authentication code builds one (from a
/// session or a personal access token), so holding an `Actor` means the person is known.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: UserView,
    pub channel: Channel,
    /// What this request may touch: everything for a signed-in person, the token's
    /// scopes for a personal access token.
    scopes: Scopes,
}

impl Actor {
    /// A signed-in person (or the operator's own tooling): every scope.
    pub fn new(user: UserView, channel: Channel) -> Self {
        Self { user, channel, scopes: Scopes::all() }
    }

    /// A person acting through a personal access token limited to `scopes`.
    pub fn with_scopes(user: UserView, channel: Channel, scopes: Scopes) -> Self {
        Self { user, channel, scopes }
    }

    pub fn scopes(&self) -> Scopes {
        self.scopes
    }

    /// May this request touch `area` this way? Every domain operation asks first, before
    /// it reads anything, so a token without the scope learns nothing (not even whether
    /// an id exists). The role still decides separately: scopes only take away.
    pub fn permit(&self, area: Area, access: Access) -> Result<(), DomainError> {
        let scope = Scope { area, access };
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(DomainError::InsufficientScope(scope))
        }
    }

    pub fn id(&self) -> &str {
        &self.user.id
    }

    /// May this person read or change something owned by `owner_id`?
    ///
    /// Owners and admins may do both; the security team may read everything. Everyone
    /// else gets `NotFound`, never `Forbidden`: a refusal must not confirm that another
    /// developer's client exists.
    pub fn check_owner(&self, owner_id: &str, access: Access) -> Result<(), DomainError> {
        let allowed = self.user.id == owner_id
            || match self.user.role {
                Role::Admin => true,
                Role::Security => access == Access::Read,
                Role::Developer => false,
            };
        if allowed {
            Ok(())
        } else {
            Err(DomainError::NotFound)
        }
    }

    /// The audit trail across all clients, and access reviews.
    pub fn require_security(&self) -> Result<(), DomainError> {
        match self.user.role {
            Role::Security | Role::Admin => Ok(()),
            Role::Developer => Err(DomainError::Forbidden("this needs the security or admin role")),
        }
    }

    /// Separation of duties: approving, extending or reviewing access is for someone other
    /// than the client's owner (or the request's author).
    pub fn require_other_than(&self, person_id: &str) -> Result<(), DomainError> {
        if self.user.id == person_id {
            Err(DomainError::Forbidden("nobody approves, extends or reviews access to their own client"))
        } else {
            Ok(())
        }
    }

    /// Catalog publishing and production approvals.
    pub fn require_admin(&self) -> Result<(), DomainError> {
        match self.user.role {
            Role::Admin => Ok(()),
            Role::Developer | Role::Security => Err(DomainError::Forbidden("this needs the admin role")),
        }
    }
}

/// Who may disable accounts and suspend clients: an admin (portal, management API), or
/// the operator at the command line, who holds the database and the server secret anyway.
#[derive(Debug, Clone, Copy)]
pub enum Authority<'a> {
    Admin(&'a Actor),
    Operator,
}

impl Authority<'_> {
    pub fn check(&self) -> Result<(), DomainError> {
        match self {
            Authority::Admin(actor) => {
                actor.permit(Area::Users, Access::Write)?;
                actor.require_admin()
            }
            Authority::Operator => Ok(()),
        }
    }

    pub fn actor(&self) -> Option<&Actor> {
        match self {
            Authority::Admin(actor) => Some(actor),
            Authority::Operator => None,
        }
    }

    pub fn channel(&self) -> &'static str {
        match self {
            Authority::Admin(actor) => actor.channel.as_str(),
            Authority::Operator => Channel::Cli.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: &str, role: Role) -> Actor {
        Actor::new(UserView { id: id.into(), email: format!("{id}@example.com"), role }, Channel::Portal)
    }

    #[test]
    fn owners_admins_and_security_readers() {
        let owner = actor("u1", Role::Developer);
        let other = actor("u2", Role::Developer);
        let security = actor("u3", Role::Security);
        let admin = actor("u4", Role::Admin);
        assert!(owner.check_owner("u1", Access::Write).is_ok());
        assert!(matches!(other.check_owner("u1", Access::Read), Err(DomainError::NotFound)));
        assert!(security.check_owner("u1", Access::Read).is_ok());
        assert!(matches!(security.check_owner("u1", Access::Write), Err(DomainError::NotFound)));
        assert!(admin.check_owner("u1", Access::Write).is_ok());
    }

    /// Every public operation that acts for someone asks `permit` before anything else
    /// (or, for admin controls, `Authority::check`, which does). Read from the sources,
    /// so an operation added later without the check fails here, not in production.
    #[test]
    fn every_public_operation_with_an_actor_checks_its_scope_first() {
        // Folder modules (`model/`, `openapi/`) are read too.
        let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        let mut checked = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (at, _) in text.match_indices("    pub async fn ") {
                    let signature_end = text[at..].find('{').unwrap() + at;
                    let signature = &text[at..signature_end];
                    let params = signature.split("->").next().unwrap_or(signature);
                    if !(params.contains("Actor") || params.contains("Authority")) {
                        continue;
                    }
                    // The first statements, up to the first `let` or query.
                    let body = &text[signature_end..(signature_end + 300).min(text.len())];
                    let first = body.split(".await").next().unwrap_or(body);
                    assert!(
                        first.contains("permit(")
                            || first.contains("by.check()")
                            || first.contains("if let Some(admin) = actor"),
                        "{}: {} does not check the actor's scope first",
                        path.display(),
                        signature.lines().next().unwrap().trim()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 35, "found {checked} operations");
    }

    #[test]
    fn a_token_actor_is_held_to_its_scopes_and_a_session_is_not() {
        let user = UserView { id: "u1".into(), email: "u1@example.com".into(), role: Role::Admin };
        let session = Actor::new(user.clone(), Channel::Portal);
        let token = Actor::with_scopes(user, Channel::Api, Scopes::read_only());
        for area in Area::ALL {
            assert!(session.permit(area, Access::Read).is_ok());
            assert!(token.permit(area, Access::Read).is_ok());
            assert!(matches!(
                token.permit(area, Access::Write),
                Err(DomainError::InsufficientScope(Scope { area: a, access: Access::Write })) if a == area
            ));
        }
        assert!(session.permit(Area::Clients, Access::Write).is_ok());
    }
}
