//! Names of upstream TLS profiles: which CA bundle and client certificate the gateway
//! uses towards a product's upstream. The files themselves are the server's (a directory
//! per profile under `--upstream-tls-dir`, private keys never in the database); here are
//! only the names a product refers to and the set a server was started with, so that the
//! portal and the management API refuse a name the server does not have.

use crate::DomainError;

/// An upstream TLS profile's name: also a directory name, so only what cannot walk out
/// of its directory or be mistaken for another: 1 to 63 lower-case ASCII letters, digits
/// and dashes, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UpstreamTlsName(String);

/// The longest name: a DNS label's length, plenty for a PKI's name.
const MAX_LEN: usize = 63;

impl UpstreamTlsName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim();
        let ok = s.len() <= MAX_LEN
            && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::Invalid(
                "An upstream TLS profile name is 1 to 63 lower-case letters, digits or dashes, starting with a \
                 letter or digit."
                    .into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for UpstreamTlsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The upstream TLS profiles a server was started with (names only), sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTlsNames(std::sync::Arc<[UpstreamTlsName]>);

impl UpstreamTlsNames {
    pub fn new(names: impl IntoIterator<Item = UpstreamTlsName>) -> Self {
        let mut names: Vec<UpstreamTlsName> = names.into_iter().collect();
        names.sort();
        names.dedup();
        Self(names.into())
    }

    pub fn iter(&self) -> impl Iterator<Item = &UpstreamTlsName> {
        self.0.iter()
    }

    /// The names, for someone about to set a product's gateway policy (admins).
    #[cfg(feature = "store")]
    pub fn listed_for(&self, actor: &crate::access::Actor) -> Result<Vec<String>, DomainError> {
        actor.permit(crate::scopes::Area::Catalog, crate::access::Access::Read)?;
        actor.require_admin()?;
        Ok(self.iter().map(|n| n.as_str().to_owned()).collect())
    }

    pub fn contains(&self, name: &UpstreamTlsName) -> bool {
        self.0.binary_search(name).is_ok()
    }

    /// `name` if this server has it; otherwise an error that lists what it has, since a
    /// product naming a profile its gateway lacks would only fail at its first request.
    pub fn require(&self, name: &UpstreamTlsName) -> Result<(), DomainError> {
        if self.contains(name) {
            return Ok(());
        }
        let configured = if self.0.is_empty() {
            "it has none (see --upstream-tls-dir)".to_owned()
        } else {
            let list: Vec<&str> = self.0.iter().map(UpstreamTlsName::as_str).collect();
            format!("it has {}", list.join(", "))
        };
        Err(DomainError::Invalid(format!("This server has no upstream TLS profile `{name}`: {configured}.")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lower_case_words_that_cannot_leave_their_directory() {
        for good in ["pki-a", "a", "0", "bank-2", "x-", &"a".repeat(63)] {
            assert_eq!(UpstreamTlsName::parse(good).map(|n| n.into_string()).ok().as_deref(), Some(good), "{good}");
        }
        for bad in [
            "",
            " ",
            "-a",
            "PKI",
            "pki_a",
            "pki.a",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "pki-ä",
            "ǆ",
            "a b",
            "a\0",
            &"a".repeat(64),
        ] {
            assert!(matches!(UpstreamTlsName::parse(bad), Err(DomainError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_names_the_server_has() {
        let name = |s: &str| UpstreamTlsName::parse(s).unwrap();
        let none = UpstreamTlsNames::default();
        let Err(DomainError::Invalid(msg)) = none.require(&name("pki-a")) else { panic!("refused") };
        assert!(msg.contains("`pki-a`") && msg.contains("none"), "{msg}");
        let two = UpstreamTlsNames::new([name("pki-b"), name("pki-a")]);
        assert!(two.require(&name("pki-a")).is_ok());
        let Err(DomainError::Invalid(msg)) = two.require(&name("pki-c")) else { panic!("refused") };
        assert!(msg.ends_with("it has pki-a, pki-b."), "{msg}");
    }
}
