//! Numbers into text without `format!`'s machinery: request and reservation ids and HTTP
//! heads are written on every request, and each `format!` cost ~950 instructions of a
//! routed call's ~70 k under callgrind (issue 18); these are a tenth of that.

/// The digits of `n` (from `digit`, which returns the last digit and what is left),
/// left-padded with zeros to `width`.
fn push_digits(out: &mut String, n: u64, width: usize, digit: impl Fn(u64) -> (u8, u64)) {
    let (buf, start) = digits(n, width, digit);
    out.push_str(std::str::from_utf8(&buf[start..]).expect("ASCII digits"));
}

/// `buf[start..]` holds the digits.
fn digits(mut n: u64, width: usize, digit: impl Fn(u64) -> (u8, u64)) -> ([u8; 20], usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        let (d, rest) = digit(n);
        buf[i] = DIGITS[usize::from(d)];
        n = rest;
        if n == 0 {
            break;
        }
    }
    (buf, i.min(buf.len().saturating_sub(width)))
}

/// `n` in decimal.
pub(crate) fn push_decimal(out: &mut String, n: u64) {
    // A constant divisor: the compiler multiplies instead of dividing.
    push_digits(out, n, 0, |n| ((n % 10) as u8, n / 10));
}

/// `n` in decimal, onto bytes (an HTTP head: no `String` to build and copy first).
pub(crate) fn push_decimal_bytes(out: &mut Vec<u8>, n: u64) {
    let (buf, start) = digits(n, 0, |n| ((n % 10) as u8, n / 10));
    out.extend_from_slice(&buf[start..]);
}

/// `n` in lower-case hex, at least `width` digits.
pub(crate) fn push_hex(out: &mut String, n: u64, width: usize) {
    push_digits(out, n, width, |n| ((n & 0xf) as u8, n >> 4));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_format_writes_them() {
        for n in [0, 1, 9, 10, 15, 16, 255, 4096, 1 << 40, u64::MAX] {
            let (mut d, mut h, mut w) = (String::new(), String::new(), String::new());
            push_decimal(&mut d, n);
            push_hex(&mut h, n, 0);
            push_hex(&mut w, n, 16);
            let mut b = b"x".to_vec();
            push_decimal_bytes(&mut b, n);
            assert_eq!((d, h, w, b), (format!("{n}"), format!("{n:x}"), format!("{n:016x}"), format!("x{n}").into_bytes()));
        }
    }
}
