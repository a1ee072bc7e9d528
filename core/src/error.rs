//! Error classification: the generic HTTP-status fallback every provider adapter refines, and
//! the public home of the error type.
//!
//! [`Error`], [`ErrorKind`], [`PartialOutput`] and [`BudgetInfo`] are defined in
//! `types/error.rs` (they carry contract data, and the contract's constructors return them);
//! retry-hint and duration parsing live in `crate::time`. Both are re-exported here so
//! `polyroute::error::...` paths keep working.
//!
//! Classification reads status codes and provider error codes/types, never free text alone:
//! provider messages change wording without notice, codes do not.

pub use crate::time::{parse_duration_str, parse_retry_after_value, retry_hint_from_headers, MAX_RETRY_HINT};
pub use crate::types::error::{BudgetInfo, BudgetUnit, Error, ErrorKind, PartialOutput, Result};

/// Generic HTTP status classification, used when a provider sent no code we recognise.
/// Provider adapters refine it with their codes before falling back to this.
pub fn kind_from_status(status: u16) -> ErrorKind {
    match status {
        400 | 422 => ErrorKind::InvalidRequest,
        401 => ErrorKind::Auth,
        402 => ErrorKind::QuotaExhausted,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        413 => ErrorKind::ContextLengthExceeded,
        409 | 425 => ErrorKind::ServerError,
        429 => ErrorKind::RateLimited,
        503 | 529 => ErrorKind::Overloaded,
        504 => ErrorKind::Timeout,
        500..=599 => ErrorKind::ServerError,
        // 2xx/3xx carrying an error body, or something exotic: the body decides, and absent
        // that it is a response we do not understand.
        _ => ErrorKind::MalformedResponse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fallback() {
        assert_eq!(kind_from_status(429), ErrorKind::RateLimited);
        assert_eq!(kind_from_status(403), ErrorKind::PermissionDenied);
        assert_eq!(kind_from_status(529), ErrorKind::Overloaded);
        assert_eq!(kind_from_status(502), ErrorKind::ServerError);
        assert_eq!(kind_from_status(401), ErrorKind::Auth);
    }
}
