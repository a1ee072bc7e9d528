//! Placeholder member crate: the binding lands with its own issue. It must stay thin
//! (type conversion, error mapping, async bridging, callbacks, handle lifetime) over `polyroute`.

pub use polyroute;
