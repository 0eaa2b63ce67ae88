//! The portal's error type: what a server function can answer. Every variant carries a
//! message a person can act on; internal causes are logged on the server and never sent.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("Sign in to continue.")]
    Unauthenticated,
    #[error("Not found, or not yours.")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("Too many attempts. Wait a minute, then try again.")]
    TooManyAttempts,
    #[error("Something went wrong on our side; it has been logged. Try again.")]
    Internal,
    /// The request did not reach the server function (network, decoding).
    #[error("The request failed: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

impl AppError {
    /// The HTTP status a server function answers with this error.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Unauthenticated => 401,
            AppError::NotFound => 404,
            AppError::Forbidden(_) => 403,
            AppError::Invalid(_) => 422,
            AppError::Conflict(_) => 409,
            AppError::TooManyAttempts => 429,
            AppError::Internal => 500,
            AppError::Transport(_) => 400,
        }
    }
}
