//! Credentials found under the previous server secret, waiting to be re-keyed.
//!
//! The request path only notes them here (a lock and a map insert); the store writes the
//! new hashes off the request path, in batches (`Store::run_rekeys`).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::secrets::Rekey;

/// Re-keys waiting for the writer; beyond this many, later ones wait for their next use.
const MAX_PENDING: usize = 10_000;

/// Keyed by credential id: a key presented a thousand times before its re-key lands is
/// one entry.
#[derive(Debug, Default)]
pub struct RekeyQueue {
    pending: Mutex<HashMap<String, Rekey>>,
    wake: tokio::sync::Notify,
}

impl RekeyQueue {
    /// Notes a credential to re-key; cheap and non-blocking.
    pub(crate) fn request(&self, credential_id: &str, rekey: Rekey) {
        let Ok(mut pending) = self.pending.lock() else { return };
        if pending.len() < MAX_PENDING || pending.contains_key(credential_id) {
            pending.insert(credential_id.to_owned(), rekey);
            self.wake.notify_one();
        }
    }

    /// Waits until something is requested.
    pub(crate) async fn requested(&self) {
        self.wake.notified().await;
    }

    /// Everything pending now, leaving the queue empty.
    pub(crate) fn take(&self) -> Vec<(String, Rekey)> {
        match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => Vec::new(),
        }
    }
}
