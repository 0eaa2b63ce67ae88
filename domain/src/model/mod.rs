//! The vocabulary of DESIGN.md as types. These are what the portal shows: none carries a
//! password hash or a secret hash. A freshly issued secret travels only in
//! [`IssuedSecret`], whose `Debug` redacts it.

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(crate::DomainError::Invalid(format!(
                        concat!("unknown ", stringify!($name), " `{}`"), other
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

mod activity;
mod audit;
mod catalog;
mod clients;
mod credentials;
mod grants;
mod issuers;
mod reviews;
mod tokens;
mod users;

pub use activity::*;
pub use audit::*;
pub use catalog::*;
pub use clients::*;
pub use credentials::*;
pub use grants::*;
pub use issuers::*;
pub use reviews::*;
pub use tokens::*;
pub use users::*;
