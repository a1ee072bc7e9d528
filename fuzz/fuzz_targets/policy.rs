//! Fuzz the policy file parser (YAML or JSON) and its validation.
//!
//! Invariants: no panic and bounded memory on any text (YAML aliases included); `check`
//! reports issues exactly when loading fails; and a policy that loads can be written back
//! (`Router::policy()` hands it to every binding) and loaded again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use polyroute::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let loaded = Policy::from_str(text);
    let issues = Policy::check(text);
    match &loaded {
        Ok(_) => assert!(issues.is_empty(), "loaded, yet check reports {issues:?}"),
        Err(e) => {
            assert_eq!(e.kind, polyroute::ErrorKind::Config);
            assert!(!issues.is_empty(), "rejected ({}) but check reports nothing", e.message);
        }
    }
    if let Ok(p) = loaded {
        let v = serde_json::to_value(&p.spec).expect("a policy serialises");
        if let Err(e) = Policy::from_value(v.clone()) {
            panic!("a loaded policy does not load again after serialisation: {}\n{v}", e.message);
        }
    }
});
