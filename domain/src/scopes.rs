//! What a personal access token may be used for.
//!
//! A token acts as its owner, and never beyond the owner's role: its scopes only take
//! away. Each area of the portal is granted `read` or `write` (which includes reading);
//! the domain asks `Actor::permit` for the area and the kind of access before it does
//! anything, so the portal, the management API and the Management MCP obey one check.
//! A signed-in person (the portal's session) holds every scope.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

/// The parts of Portcullis a token can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Your clients: registering, profiles, credentials, grant requests, activity.
    Clients,
    /// Products: reading the catalog; for admins, publishing and policies.
    Catalog,
    /// Approving or rejecting requests for production access (admins).
    Grants,
    /// The audit trail: search, events, exports, the security dashboard.
    Audit,
    /// The access review and its actions (security team, admins).
    Reviews,
    /// People and suspensions: roles, disabling accounts, suspending clients (admins).
    Users,
    /// Personal access tokens themselves.
    Tokens,
}

impl Area {
    pub const ALL: [Area; 7] =
        [Area::Clients, Area::Catalog, Area::Grants, Area::Audit, Area::Reviews, Area::Users, Area::Tokens];

    pub fn as_str(self) -> &'static str {
        match self {
            Area::Clients => "clients",
            Area::Catalog => "catalog",
            Area::Grants => "grants",
            Area::Audit => "audit",
            Area::Reviews => "reviews",
            Area::Users => "users",
            Area::Tokens => "tokens",
        }
    }

    /// What the area covers, in the portal's words.
    pub fn label(self) -> &'static str {
        match self {
            Area::Clients => "Clients, profiles, credentials, access requests, activity",
            Area::Catalog => "Products and their policies",
            Area::Grants => "Approvals of production access",
            Area::Audit => "Audit search, exports, security dashboard",
            Area::Reviews => "Access review",
            Area::Users => "People, roles, suspensions",
            Area::Tokens => "Personal access tokens",
        }
    }

    /// Areas where writing means something: the audit trail is read only.
    pub fn writable(self) -> bool {
        !matches!(self, Area::Audit)
    }

    fn index(self) -> u16 {
        self as u16
    }
}

/// One scope, as it is named on the wire: `clients:read`, `catalog:write`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub area: Area,
    pub access: Access,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = match self.access {
            Access::Read => "read",
            Access::Write => "write",
        };
        write!(f, "{}:{access}", self.area.as_str())
    }
}

/// A set of scopes. `write` on an area includes `read` on it.
#[derive(Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "Vec<String>", try_from = "Vec<String>")]
pub struct Scopes(u16);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);

    fn bit(area: Area, access: Access) -> u16 {
        1 << (area.index() * 2 + if access == Access::Write { 1 } else { 0 })
    }

    /// Everything: what a signed-in person holds, and what tokens made before scopes
    /// existed keep.
    pub fn all() -> Scopes {
        Area::ALL.iter().fold(Scopes::NONE, |s, &a| s.with(a, if a.writable() { Access::Write } else { Access::Read }))
    }

    /// Reading everything, changing nothing.
    pub fn read_only() -> Scopes {
        Area::ALL.iter().fold(Scopes::NONE, |s, &a| s.with(a, Access::Read))
    }

    /// This set and `access` on `area` (with `write`, reading too). Writing to an area
    /// that is read only (the audit trail) grants reading only.
    pub fn with(self, area: Area, access: Access) -> Scopes {
        let mut bits = self.0 | Self::bit(area, Access::Read);
        if access == Access::Write && area.writable() {
            bits |= Self::bit(area, Access::Write);
        }
        Scopes(bits)
    }

    pub fn allows(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope.area, scope.access) != 0
    }

    /// Does this set hold every scope of `other`? (A token never creates a broader one.)
    pub fn covers(self, other: Scopes) -> bool {
        other.0 & !self.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The access held on an area, if any.
    pub fn level(self, area: Area) -> Option<Access> {
        if self.0 & Self::bit(area, Access::Write) != 0 {
            Some(Access::Write)
        } else if self.0 & Self::bit(area, Access::Read) != 0 {
            Some(Access::Read)
        } else {
            None
        }
    }

    /// Canonical names, one per area held: `clients:write` (which includes reading) or
    /// `clients:read`.
    pub fn names(self) -> Vec<String> {
        Area::ALL.iter().filter_map(|&area| self.level(area).map(|access| Scope { area, access }.to_string())).collect()
    }

    /// From scope names (`clients:read`, `audit:read`, …). An unknown name is refused
    /// whole, named in the error, rather than ignored: a typo must not quietly widen or
    /// narrow what a token can do.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Scopes, String> {
        names.iter().try_fold(Scopes::NONE, |set, name| {
            let name = name.as_ref().trim();
            let (area, access) = name.split_once(':').ok_or_else(|| name.to_owned())?;
            let area = Area::ALL.into_iter().find(|a| a.as_str() == area).ok_or_else(|| name.to_owned())?;
            let access = match access {
                "read" => Access::Read,
                "write" if area.writable() => Access::Write,
                _ => return Err(name.to_owned()),
            };
            Ok(set.with(area, access))
        })
    }

    /// Stored as the canonical names separated by spaces, like OAuth's `scope`.
    pub fn to_column(self) -> String {
        self.names().join(" ")
    }

    pub fn from_column(column: &str) -> Result<Scopes, String> {
        Self::parse(&column.split_whitespace().collect::<Vec<_>>())
    }

    /// How the portal says it in a word or two, where one fits.
    pub fn summary(self) -> Option<&'static str> {
        if self == Self::all() {
            Some("Everything your role allows")
        } else if self == Self::read_only() {
            Some("Read only")
        } else {
            None
        }
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl From<Scopes> for Vec<String> {
    fn from(s: Scopes) -> Self {
        s.names()
    }
}

impl TryFrom<Vec<String>> for Scopes {
    type Error = String;
    fn try_from(names: Vec<String>) -> Result<Self, Self::Error> {
        Scopes::parse(&names).map_err(|name| format!("unknown scope {name:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_includes_read_and_names_are_canonical() {
        let s = Scopes::parse(&["clients:write", "audit:read"]).unwrap();
        assert!(s.allows(Scope { area: Area::Clients, access: Access::Read }));
        assert!(s.allows(Scope { area: Area::Clients, access: Access::Write }));
        assert!(!s.allows(Scope { area: Area::Catalog, access: Access::Read }));
        assert!(!s.allows(Scope { area: Area::Audit, access: Access::Write }));
        assert_eq!(s.names(), vec!["clients:write", "audit:read"]);
        assert_eq!(Scopes::from_column(&s.to_column()).unwrap(), s);
    }

    #[test]
    fn unknown_or_impossible_names_are_refused_whole() {
        for bad in ["clients", "clients:admin", "everything:read", "audit:write", ":read", ""] {
            assert_eq!(Scopes::parse(&["catalog:read", bad]), Err(bad.to_owned()), "{bad:?}");
        }
        assert!(serde_json::from_str::<Scopes>(r#"["clients:read","nope:read"]"#).is_err());
    }

    #[test]
    fn coverage_never_lets_a_narrow_set_make_a_broader_one() {
        let read = Scopes::read_only();
        let all = Scopes::all();
        assert!(all.covers(read));
        assert!(!read.covers(all));
        assert!(!read.covers(Scopes::NONE.with(Area::Tokens, Access::Write)));
        assert!(read.covers(Scopes::NONE.with(Area::Tokens, Access::Read)));
        assert_eq!(all.summary(), Some("Everything your role allows"));
        assert_eq!(read.summary(), Some("Read only"));
        assert!(Scopes::NONE.is_empty() && Scopes::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn tokens_made_before_scopes_keep_every_right() {
        // migrations/*/0018_token_scopes.sql gives existing tokens this column's default.
        let default = "clients:write catalog:write grants:write audit:read reviews:write users:write tokens:write";
        assert_eq!(Scopes::from_column(default), Ok(Scopes::all()));
        assert_eq!(Scopes::all().to_column(), default);
    }
}
