//! The container of multi-part inputs: every part but the last is a little-endian `u32`
//! length then its bytes; the last part is the rest. Splitting never fails: a length past the
//! end takes what is left, missing parts are empty, so any byte string is some input.

/// Joins parts into one input.
pub fn join(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    if let Some((last, head)) = parts.split_last() {
        for p in head {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        out.extend_from_slice(last);
    }
    out
}

/// Splits an input into exactly `n` parts (`n >= 1`).
pub fn split(input: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut rest = input;
    let mut out = Vec::with_capacity(n);
    for _ in 1..n {
        if rest.len() < 4 {
            out.push(Vec::new());
            rest = &[];
            continue;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        let take = len.min(rest.len());
        out.push(rest[..take].to_vec());
        rest = &rest[take..];
    }
    out.push(rest.to_vec());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_then_split_is_identity() {
        let parts = vec![
            b"abc".to_vec(),
            Vec::new(),
            vec![0xff; 300],
            b"tail".to_vec(),
        ];
        assert_eq!(split(&join(&parts), 4), parts);
        assert_eq!(split(b"whole", 1), vec![b"whole".to_vec()]);
    }

    #[test]
    fn any_bytes_split() {
        assert_eq!(split(&[1, 2], 3), vec![Vec::<u8>::new(); 3]);
        let p = split(&[0xff, 0xff, 0xff, 0xff, 7, 8], 2);
        assert_eq!(p, vec![vec![7, 8], vec![]]);
    }
}
