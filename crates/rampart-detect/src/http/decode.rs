//! Percent-decoding and `application/x-www-form-urlencoded` splitting, as
//! the signatures see requests.

use std::borrow::Cow;

/// The value of one hex digit.
pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte an escape at the start of `s` stands for, if `s` starts with
/// `%` and two hex digits.
fn escape_at(s: &[u8]) -> Option<u8> {
    match s {
        [b'%', h, l, ..] => Some(hex(*h)? << 4 | hex(*l)?),
        _ => None,
    }
}

fn has_escape(s: &[u8]) -> bool {
    s.iter()
        .enumerate()
        .any(|(i, &b)| b == b'%' && escape_at(&s[i..]).is_some())
}

fn decode_once(raw: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if let Some(d) = escape_at(&raw[i..]) {
            out.push(d);
            i += 3;
        } else {
            out.push(if plus && b == b'+' { b' ' } else { b });
            i += 1;
        }
    }
    out
}

/// Percent-decodes `raw`: `%` and two hex digits become that byte, anything
/// else that looks like an escape is kept as is, `+` becomes a space when
/// `plus` (query strings and form bodies, not paths). When the result still
/// holds an escape (double encoding: `%252e` → `%2e`), it is decoded once
/// more, and no further. Borrows when there is nothing to decode.
pub fn percent_decode(raw: &[u8], plus: bool) -> Cow<'_, [u8]> {
    let needs = raw.iter().any(|&b| b == b'%' || (plus && b == b'+'));
    if !needs {
        return Cow::Borrowed(raw);
    }
    let once = decode_once(raw, plus);
    if has_escape(&once) {
        Cow::Owned(decode_once(&once, false))
    } else {
        Cow::Owned(once)
    }
}

/// The `name=value` pairs of a query string or form body, still encoded.
/// Empty pairs are skipped; a pair without `=` has an empty value.
pub fn form_pairs(s: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    s.split(|&b| b == b'&').filter(|p| !p.is_empty()).map(|p| {
        match p.iter().position(|&b| b == b'=') {
            Some(eq) => (&p[..eq], &p[eq + 1..]),
            None => (p, &p[p.len()..]),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str, plus: bool) -> String {
        String::from_utf8_lossy(&percent_decode(s.as_bytes(), plus)).into_owned()
    }

    #[test]
    fn decodes_plus_escapes_and_double_encoding_once() {
        assert_eq!(dec("a+b%20c", true), "a b c");
        assert_eq!(dec("a+b", false), "a+b");
        assert_eq!(dec("%2e%2E%2f", false), "../");
        assert_eq!(dec("..%252f", false), "../");
        assert_eq!(dec("%25252e", false), "%2e", "decoded twice, no more");
        assert_eq!(dec("%%32%65", false), ".", "nested escapes");
        assert_eq!(dec("100%", false), "100%");
        assert_eq!(dec("%zz%4", false), "%zz%4");
        assert_eq!(dec("50%25 off", true), "50% off");
        assert!(matches!(percent_decode(b"plain", true), Cow::Borrowed(_)));
        assert_eq!(&*percent_decode(b"%c0%ae", false), b"\xc0\xae");
    }

    #[test]
    fn splits_form_pairs() {
        let pairs: Vec<_> = form_pairs(b"a=1&&b&c=x=y&=z").collect();
        assert_eq!(
            pairs,
            [
                (&b"a"[..], &b"1"[..]),
                (b"b", b""),
                (b"c", b"x=y"),
                (b"", b"z")
            ]
        );
    }
}
