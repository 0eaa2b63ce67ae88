//! Who may touch what. This is the one place where the portal, the management API and
//! the server functions learn whether a person may read or change a client (and so its
//! profiles, credentials and grants). No other module decides it.

use crate::model::{Role, UserView};
use crate::DomainError;

/// Where an authenticated person acted from; recorded on every audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Portal,
    Api,
    Cli,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Portal => "portal",
            Channel::Api => "api",
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Actor {
    pub fn new(user: UserView, channel: Channel) -> Self {
        Self { user, channel }
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
            Authority::Admin(actor) => actor.require_admin(),
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
}
