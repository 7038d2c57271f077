//! Rule "pictures" (guide.txt:10499-10513): `*` matches zero or more characters, everything else
//! itself, ASCII case-insensitively (our decision, see the parent module). `in` lists are split at
//! every comma and keep the spaces around them, as the guide warns.

/// Whether `text` matches `picture`, ASCII case-insensitively.
pub fn matches(picture: &str, text: &str) -> bool {
    wildcard(picture.as_bytes(), text.as_bytes(), |a, b| {
        a.eq_ignore_ascii_case(&b)
    })
}

/// The `*` wildcard match with the byte comparison `eq` (the SMTP module's banned lines are
/// case-sensitive). Linear in practice: the classic two-pointer match with one backtrack point,
/// O(len(text) × len(pattern)) at worst, no recursion.
pub fn wildcard(p: &[u8], t: &[u8], eq: impl Fn(u8, u8) -> bool) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && eq(p[pi], t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The pictures of an `in`/`not in` parameter: split at commas, spaces kept.
pub fn picture_list(param: &str) -> Vec<&str> {
    param.split(',').collect()
}

/// Whether `text` matches at least one of `pictures`.
pub fn matches_any<S: AsRef<str>>(pictures: &[S], text: &str) -> bool {
    pictures.iter().any(|p| matches(p.as_ref(), text))
}
