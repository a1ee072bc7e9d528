//! Finding sensitive values in text: one `RegexSet` pass says which detectors can match at
//! all (most prompts: none, and that pass is all they pay), then only those detectors' own
//! regexes locate the values, and a per-detector check drops look-alikes.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::error::{Error, Result};
use crate::policy::{Detector, PATTERN_SIZE_LIMIT};

/// A value to act on: byte range in the scanned text and the rule that found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Finding {
    pub start: usize,
    pub end: usize,
    pub rule: usize,
}

/// A check on a regex match: how many bytes of it are really the value (a prefix), or `None`
/// for a look-alike.
type Check = fn(&str) -> Option<usize>;

pub(crate) struct Rule {
    /// Detector name as events and metrics report it.
    pub name: String,
    /// What a redaction writes, and the stem of a mask placeholder (`EMAIL` → `[EMAIL_1]`).
    pub tag: String,
    re: Regex,
    check: Option<Check>,
}

pub(crate) struct Scanner {
    set: RegexSet,
    pub rules: Vec<Rule>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner").field("rules", &self.rules.iter().map(|r| &r.name).collect::<Vec<_>>()).finish()
    }
}

fn builtin(d: Detector) -> (&'static str, Option<Check>) {
    match d {
        Detector::Email => (r"[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,24}", None),
        Detector::Phone => (r"(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\d{2,4}(?:[ .\-]?\d{2,4}){1,4}", Some(phone)),
        Detector::CreditCard => (r"\b\d(?:[ \-]?\d){12,18}\b", Some(luhn)),
        Detector::Iban => (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", Some(iban)),
        Detector::UsSsn => (r"\b\d{3}-\d{2}-\d{4}\b", Some(ssn)),
        Detector::IpAddress => (r"(?i)\b(?:\d{1,3}\.){3}\d{1,3}\b|(?:[0-9a-f]{1,4}:|:)(?:[0-9a-f]{0,4}:){1,6}[0-9a-f]{0,4}", Some(ip)),
        Detector::ApiKey => (
            r"\b(?:sk-(?:proj-|ant-(?:api\d\d-)?|live_|test_)?[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abposr]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|glpat-[A-Za-z0-9_\-]{20,})",
            None,
        ),
        Detector::BearerToken => (r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{16,}=*", None),
    }
}

/// Earlier detectors win when two findings overlap (an API key also looks like many things).
const PRIORITY: [Detector; 8] = [
    Detector::ApiKey,
    Detector::BearerToken,
    Detector::Email,
    Detector::CreditCard,
    Detector::Iban,
    Detector::UsSsn,
    Detector::IpAddress,
    Detector::Phone,
];

impl Scanner {
    /// Built-ins in priority order, then custom patterns in name order.
    pub(crate) fn new(detect: &[Detector], patterns: &std::collections::BTreeMap<String, String>) -> Result<Scanner> {
        let mut rules = Vec::new();
        for d in PRIORITY.iter().filter(|d| detect.contains(d)) {
            let (pattern, check) = builtin(*d);
            rules.push(Rule { name: d.as_str().into(), tag: d.as_str().to_ascii_uppercase(), re: compile(pattern)?, check });
        }
        for (name, pattern) in patterns {
            rules.push(Rule { name: name.clone(), tag: name.to_ascii_uppercase(), re: compile(pattern)?, check: None });
        }
        let set = RegexSetBuilder::new(rules.iter().map(|r| r.re.as_str()))
            .size_limit(PATTERN_SIZE_LIMIT * rules.len().max(1))
            .build()
            .map_err(|e| Error::config(format!("guard patterns do not compile together: {e}")))?;
        Ok(Scanner { set, rules })
    }

    /// Non-overlapping findings in text order.
    pub(crate) fn find(&self, text: &str) -> Vec<Finding> {
        let hits = self.set.matches(text);
        if !hits.matched_any() {
            return Vec::new();
        }
        let mut all = Vec::new();
        for rule in hits.iter() {
            let r = &self.rules[rule];
            for m in r.re.find_iter(text) {
                let len = match r.check {
                    Some(check) => match check(m.as_str()) {
                        Some(n) => n,
                        None => continue,
                    },
                    None => m.len(),
                };
                all.push(Finding { start: m.start(), end: m.start() + len, rule });
            }
        }
        // Leftmost first, then longest, then the higher-priority rule; drop what overlaps.
        all.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)).then(a.rule.cmp(&b.rule)));
        let mut out: Vec<Finding> = Vec::with_capacity(all.len());
        for f in all {
            if out.last().is_none_or(|last| f.start >= last.end) {
                out.push(f);
            }
        }
        out
    }
}

fn compile(pattern: &str) -> Result<Regex> {
    RegexBuilder::new(pattern).size_limit(PATTERN_SIZE_LIMIT).build().map_err(|e| Error::config(format!("guard pattern does not compile: {e}")))
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// Card numbers: 13–19 digits written as cards are (contiguous, 4-4-4-4[-3], or Amex and
/// Diners' 4-6-5 / 4-6-4), an issuer's first digit (2–6), and a valid Luhn sum. The Luhn sum
/// alone lets one random digit run in ten through (account numbers, IBAN tails).
fn luhn(s: &str) -> Option<usize> {
    let d = digits(s);
    if !(13..=19).contains(&d.len()) || !(2..=6).contains(&d[0]) {
        return None;
    }
    let groups: Vec<usize> = s.split([' ', '-']).map(str::len).collect();
    if !matches!(groups.as_slice(), [_] | [4, 4, 4, 4] | [4, 4, 4, 4, 3] | [4, 6, 5] | [4, 6, 4]) {
        return None;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10).then_some(s.len())
}

/// International numbers (`+` prefix) or national ones with an area code in parentheses or
/// at least 10 digits; 7–15 digits in all (E.164). Dates and short codes are not phones.
fn phone(s: &str) -> Option<usize> {
    let n = digits(s).len();
    if !(7..=15).contains(&n) {
        return None;
    }
    let iso_date = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
    let marked = s.starts_with('+') || s.contains('(');
    ((marked || n >= 10) && !iso_date).then_some(s.len())
}

/// IBAN: ISO 7064 mod-97 over the whole match, or else over the longest prefix that ends at
/// a group boundary (a space), so a following word in capitals does not hide the number.
/// Only group boundaries are tried: every extra length tried is another 1-in-97 chance of a
/// look-alike passing.
fn iban(s: &str) -> Option<usize> {
    let mut ends: Vec<usize> = s.match_indices(' ').map(|(i, _)| i).collect();
    ends.push(s.len());
    ends.into_iter().rev().find(|&end| {
        let compact: Vec<char> = s[..end].chars().filter(|c| *c != ' ').collect();
        (15..=34).contains(&compact.len()) && mod97(&compact) == Some(1)
    })
}

fn mod97(c: &[char]) -> Option<u32> {
    let mut rem: u32 = 0;
    for ch in c[4..].iter().chain(c[..4].iter()) {
        let v = ch.to_digit(36)?;
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    Some(rem)
}

/// Area 000, 666 and 900–999, group 00 and serial 0000 are never issued.
fn ssn(s: &str) -> Option<usize> {
    let (area, rest) = s.split_at(3);
    let (group, serial) = (&rest[1..3], &rest[4..]);
    let ok = area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000";
    ok.then_some(s.len())
}

fn ip(s: &str) -> Option<usize> {
    s.parse::<std::net::IpAddr>().is_ok().then_some(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &Scanner, text: &str) -> Vec<(String, String)> {
        s.find(text).iter().map(|f| (s.rules[f.rule].name.clone(), text[f.start..f.end].to_string())).collect()
    }

    fn all() -> Scanner {
        let mut custom = std::collections::BTreeMap::new();
        custom.insert("employee_id".to_string(), r"EMP-\d{6}".to_string());
        Scanner::new(&Detector::ALL, &custom).unwrap()
    }

    #[test]
    fn each_builtin_finds_its_values_and_not_look_alikes() {
        let s = all();
        let key = format!("sk-proj-{}", "Zq9".repeat(8));
        let text = format!(
            "mail bob.smith+x@mail.example.co.uk, call +44 20 7946 0958 or (415) 555-0132; card 4111 1111 1111 1111; \
             iban DE89 3704 0044 0532 0130 00 THANKS; ssn 123-45-6789; host 192.168.10.7 and 2001:db8::ff00:42:8329; \
             key {key}; header Authorization: Bearer abcdefghijklmnop1234; id EMP-123456"
        );
        let found = names(&s, &text);
        let expect = [
            ("email", "bob.smith+x@mail.example.co.uk"),
            ("phone", "+44 20 7946 0958"),
            ("phone", "(415) 555-0132"),
            ("credit_card", "4111 1111 1111 1111"),
            ("iban", "DE89 3704 0044 0532 0130 00"),
            ("us_ssn", "123-45-6789"),
            ("ip_address", "192.168.10.7"),
            ("ip_address", "2001:db8::ff00:42:8329"),
            ("api_key", key.as_str()),
            ("bearer_token", "Bearer abcdefghijklmnop1234"),
            ("employee_id", "EMP-123456"),
        ];
        let expect: Vec<(String, String)> = expect.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(found, expect);
    }

    #[test]
    fn look_alikes_are_not_findings() {
        let s = all();
        // Luhn fails, a date, a time, an impossible SSN, octets over 255, a short number, a
        // wrong IBAN checksum, an IBAN-shaped word.
        let text = "order 4111 1111 1111 1112 on 2024-01-15 at 12:30:45; ssn 666-12-3456; 300.1.1.1; ext 555-0132; \
                    DE89 3704 0044 0532 0130 01; the sk-test-not-a-real-key is fake";
        assert_eq!(names(&s, text), Vec::<(String, String)>::new());
    }

    #[test]
    fn nothing_matched_costs_one_pass() {
        let s = all();
        assert!(s.find("hello mock, how are you today?").is_empty());
        assert!(s.find("").is_empty());
    }

    #[test]
    fn checksums() {
        assert!(luhn("4111111111111111").is_some());
        assert!(luhn("3782 822463 10005").is_some(), "Amex grouping");
        assert!(luhn("3704 0044 0532 0130 01").is_none(), "Luhn-valid, but no card is grouped 4-4-4-4-2");
        assert!(luhn("9111111111111111").is_none(), "no issuer starts with 9");
        assert!(luhn("4111111111111112").is_none());
        assert_eq!(iban("GB82 WEST 1234 5698 7654 32 NOW"), Some("GB82 WEST 1234 5698 7654 32".len()));
        assert!(iban("GB82 WEST 1234 5698 7654 33").is_none());
        assert!(ssn("078-05-1120").is_some());
        assert!(ssn("123-00-4567").is_none());
    }
}
