//! Keys from the host: an [`ApiKeyProvider`] the application implements (an iOS app reads the
//! Keychain; apps on platforms without environment variables have no other way in).
//!
//! Why per attempt, not once at build: a key the app rotates (a Keychain item replaced, a
//! user who signs in later) is picked up by the next request without rebuilding the router.
//! The hook is called once per attempt for a provider whose policy entry has neither
//! `api_key` nor `api_key_env` (a key in the policy wins), so it must be cheap: an app caches
//! what is slow to read.
//!
//! Why here, in the adapter's header building: every wire format puts its key in a different
//! header, and only the adapter knows which. A missing key is the `auth` kind with no HTTP
//! status (nothing was sent); the router falls over, and its breaker does not count it
//! against the deployment, since the provider never saw the request. A panicking hook is
//! contained here (the same `auth` error), so it never unwinds through the router or into
//! the host that implemented it.

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, ErrorKind, Result};

/// Why a key provider could not answer (the Keychain is locked, ...). Its text becomes the
/// `auth` error's message, so it must not contain the key.
pub type KeyError = Box<dyn std::error::Error + Send + Sync>;

/// Supplies API keys at request time. `provider` is the provider's name in the policy
/// (`openai`, `groq-eu`, ...). Return `Ok(None)` when there is no key (yet), `Err` when it
/// could not be read: either way the attempt fails with `auth` and the router tries the next
/// deployment. The key stays wrapped in a [`SecretString`]: it is exposed only when the
/// header is built and never printed. A closure `Fn(&str) -> Option<SecretString>` is one.
pub trait ApiKeyProvider: Send + Sync {
    fn api_key(&self, provider: &str) -> Result<Option<SecretString>, KeyError>;
}

/// The host's hook as a provider config holds it; `Debug` says only that there is one.
#[derive(Clone)]
pub struct HostKeys(pub Arc<dyn ApiKeyProvider>);

impl fmt::Debug for HostKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostKeys([from the host])")
    }
}

impl<F> ApiKeyProvider for F
where
    F: Fn(&str) -> Option<SecretString> + Send + Sync,
{
    fn api_key(&self, provider: &str) -> Result<Option<SecretString>, KeyError> {
        Ok(self(provider))
    }
}

fn auth(provider: &str, message: String) -> Error {
    Error::new(ErrorKind::Auth, message).with_provider(provider)
}

/// Ask `keys` for `provider`'s key and build its header value (`prefix` + key), marked
/// sensitive. `None` from the hook is an `auth` error only when the provider `required` one.
pub(crate) fn host_header(keys: &HostKeys, provider: &str, prefix: &str, required: bool) -> Result<Option<http::HeaderValue>> {
    let failed = |why: String| auth(provider, format!("the app's API key provider failed for provider `{provider}`: {why}"));
    // Not `bridge::catch`: the provider layer sits below the bridge (no import cycle).
    let key = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| keys.0.api_key(provider))) {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Err(payload) => return Err(failed(panic_text(payload.as_ref()))),
    };
    let Some(key) = key else {
        return match required {
            true => Err(auth(provider, format!("no API key for provider `{provider}`: the app's API key provider returned none"))),
            false => Ok(None),
        };
    };
    // The key itself is never quoted: only that it is unusable.
    let mut v = http::HeaderValue::from_str(&format!("{prefix}{}", key.expose_secret())).map_err(|_| {
        auth(provider, format!("the API key the app gave for provider `{provider}` contains characters not allowed in an HTTP header"))
    })?;
    v.set_sensitive(true);
    Ok(Some(v))
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| payload.downcast_ref::<String>().cloned());
    format!("it panicked: {}", text.as_deref().unwrap_or("a panic with a non-text payload"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Locked;
    impl ApiKeyProvider for Locked {
        fn api_key(&self, _: &str) -> Result<Option<SecretString>, KeyError> {
            Err("keychain is locked".into())
        }
    }

    #[test]
    fn none_is_auth_when_required_and_a_panic_is_contained() {
        let none = HostKeys(Arc::new(|_: &str| -> Option<SecretString> { None }));
        assert_eq!(host_header(&none, "p", "Bearer ", true).unwrap_err().kind, ErrorKind::Auth);
        assert!(host_header(&none, "p", "Bearer ", false).unwrap().is_none());
        let boom = HostKeys(Arc::new(|_: &str| -> Option<SecretString> { panic!("keychain locked") }));
        let e = host_header(&boom, "p", "", true).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.message.contains("keychain locked") && e.status.is_none(), "{}", e.message);
        let bad = HostKeys(Arc::new(|_: &str| Some(SecretString::from("sk-secret-123\n"))));
        let e = host_header(&bad, "p", "", true).unwrap_err();
        assert!(!e.message.contains("sk-secret-123") && !format!("{e:?}").contains("sk-secret-123"));
        let locked = HostKeys(Arc::new(Locked));
        let e = host_header(&locked, "p", "", true).unwrap_err();
        assert!(e.kind == ErrorKind::Auth && e.message.ends_with("keychain is locked"), "{}", e.message);
        let ok = HostKeys(Arc::new(|p: &str| Some(SecretString::from(format!("sk-secret-{p}")))));
        let v = host_header(&ok, "p", "Bearer ", true).unwrap().unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer sk-secret-p");
        assert!(!format!("{v:?} {ok:?}").contains("sk-secret"));
    }
}
