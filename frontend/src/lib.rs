//! Hydrates the islands of the server-rendered portal in the browser: the pages are
//! HTML from the server, and only the parts marked `#[island]` in `portcullis-app`
//! (exported to the page's loader by wasm-bindgen) run here.

// Links the app, whose islands are what this module exports.
use portcullis_app as _;

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
