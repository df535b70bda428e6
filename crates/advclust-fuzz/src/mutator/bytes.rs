//! Byte-level mutations: bit flips, interesting values written over header fields, arithmetic,
//! truncation, extension, insertion, deletion, duplication and splicing.

use crate::rng::Rng;

/// Bytes worth writing anywhere: the boundaries of signed and unsigned bytes.
const INTERESTING_8: [u8; 9] = [0, 1, 2, 0x10, 0x7f, 0x80, 0x81, 0xfe, 0xff];

/// 16-bit values: boundaries, and small sizes.
const INTERESTING_16: [u16; 12] = [
    0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x3ff, 0x7fff, 0x8000, 0xfffe, 0xffff,
];

/// 32-bit values: boundaries, the sizes of the formats under test (28 and 96 pixel sides,
/// 3,072 and 27,648 bytes per CIFAR / STL image, 60,000 images), the IDX and burnpack magics,
/// and huge counts.
const INTERESTING_32: [u32; 36] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    28,
    32,
    96,
    100,
    127,
    128,
    255,
    256,
    1000,
    1024,
    3072,
    4096,
    27_648,
    32_767,
    32_768,
    60_000,
    65_535,
    65_536,
    0x0000_0801,
    0x0000_0803,
    0x4255_524e,
    1 << 20,
    1 << 24,
    1 << 30,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// 64-bit values beyond the 32-bit ones.
const INTERESTING_64: [u64; 6] = [
    0,
    1,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_ffff_ffff,
    1 << 40,
];

/// A position in `0..len`, log-uniform (biased to the header) half of the time.
fn position(rng: &mut Rng, len: usize) -> usize {
    if rng.one_in(2) {
        rng.log_below(len)
    } else {
        rng.below(len)
    }
}

/// A chunk length: short most of the time, up to `max`.
fn chunk_len(rng: &mut Rng, max: usize) -> usize {
    rng.log_below(max.max(1)) + 1
}

/// Overwrites `data[at..at + bytes.len()]`, clipped to the data.
fn overwrite(data: &mut [u8], at: usize, bytes: &[u8]) {
    if at >= data.len() {
        return;
    }
    let n = bytes.len().min(data.len() - at);
    data[at..at + n].copy_from_slice(&bytes[..n]);
}

fn interesting_32(rng: &mut Rng, current: u32) -> u32 {
    match rng.below(6) {
        0 => current.wrapping_add(1),
        1 => current.wrapping_sub(1),
        2 => current.wrapping_mul(2),
        3 => current.rotate_left(8),
        _ => *rng.pick(&INTERESTING_32),
    }
}

/// Applies one random byte-level mutation to `data`, keeping it at most `max_len` bytes.
/// `other` is another input of the corpus, for splicing.
pub fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], max_len: usize) {
    if data.is_empty() {
        let n = chunk_len(rng, 64).min(max_len);
        data.extend((0..n).map(|_| rng.byte()));
        return;
    }
    let len = data.len();
    match rng.below(15) {
        0 => {
            let at = position(rng, len);
            data[at] ^= 1 << rng.below(8);
        }
        1 => {
            let at = position(rng, len);
            data[at] = *rng.pick(&INTERESTING_8);
        }
        2 => {
            let at = rng.below(len);
            data[at] = rng.byte();
        }
        3 => {
            let at = position(rng, len);
            let v = *rng.pick(&INTERESTING_16);
            let b = if rng.one_in(2) {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            overwrite(data, at, &b);
        }
        4 | 5 => {
            // Header fields are usually 4-byte aligned.
            let mut at = position(rng, len);
            if rng.one_in(2) {
                at &= !3;
            }
            let be = rng.one_in(2);
            let mut cur = [0u8; 4];
            let n = 4.min(len - at);
            cur[..n].copy_from_slice(&data[at..at + n]);
            let current = if be {
                u32::from_be_bytes(cur)
            } else {
                u32::from_le_bytes(cur)
            };
            let v = interesting_32(rng, current);
            let b = if be { v.to_be_bytes() } else { v.to_le_bytes() };
            overwrite(data, at, &b);
        }
        6 => {
            let at = position(rng, len) & !7;
            let v = *rng.pick(&INTERESTING_64);
            let b = if rng.one_in(2) {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            overwrite(data, at, &b);
        }
        7 => {
            let at = position(rng, len);
            let delta = rng.range(1, 35) as u8;
            data[at] = if rng.one_in(2) {
                data[at].wrapping_add(delta)
            } else {
                data[at].wrapping_sub(delta)
            };
        }
        8 => {
            // Truncate: anywhere, or just a little off the end.
            let new_len = if rng.one_in(2) {
                rng.log_below(len)
            } else {
                len.saturating_sub(chunk_len(rng, 16))
            };
            data.truncate(new_len);
        }
        9 => {
            let room = max_len.saturating_sub(len);
            if room == 0 {
                return;
            }
            let n = chunk_len(rng, room);
            match rng.below(4) {
                0 => data.resize(len + n, 0),
                1 => {
                    let b = *rng.pick(&INTERESTING_8);
                    data.resize(len + n, b);
                }
                2 => {
                    // Repeat the tail (another record, another image).
                    let start = rng.below(len);
                    let chunk = data[start..].to_vec();
                    while data.len() < len + n {
                        let take = chunk.len().min(len + n - data.len());
                        data.extend_from_slice(&chunk[..take]);
                    }
                }
                _ => data.extend((0..n).map(|_| rng.byte())),
            }
        }
        10 => {
            let room = max_len.saturating_sub(len);
            if room == 0 {
                return;
            }
            let at = position(rng, len + 1);
            let n = chunk_len(rng, room.min(256));
            let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
            data.splice(at..at, bytes);
        }
        11 => {
            let at = position(rng, len);
            let n = chunk_len(rng, len - at);
            data.drain(at..at + n);
        }
        12 => {
            let room = max_len.saturating_sub(len);
            if room == 0 {
                return;
            }
            let from = rng.below(len);
            let n = chunk_len(rng, (len - from).min(room));
            let chunk = data[from..from + n].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        13 => {
            if other.is_empty() {
                return;
            }
            // Prefix of this input, suffix of the other.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            data.truncate(cut);
            let take = (other.len() - from).min(max_len.saturating_sub(cut));
            data.extend_from_slice(&other[from..from + take]);
        }
        _ => {
            if other.is_empty() {
                return;
            }
            let from = rng.below(other.len());
            let n = chunk_len(rng, other.len() - from);
            let at = position(rng, len);
            overwrite(data, at, &other[from..from + n]);
        }
    }
}

/// Applies a short random stack of byte mutations (1 to 8, most often 1 or 2).
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], max_len: usize) {
    let n = 1 + rng.log_below(8);
    for _ in 0..n {
        mutate_once(rng, data, other, max_len);
    }
    data.truncate(max_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_mutations_are_deterministic_and_bounded() {
        let seed: Vec<u8> = (0..200u8).collect();
        let other = vec![0xabu8; 50];
        for i in 0..500 {
            let run = || {
                let mut r = Rng::for_iteration(1, "t", i);
                let mut d = seed.clone();
                mutate(&mut r, &mut d, &other, 300);
                d
            };
            let a = run();
            assert_eq!(a, run());
            assert!(a.len() <= 300);
        }
    }

    #[test]
    fn empty_inputs_grow() {
        let mut r = Rng::new(3);
        let mut d = Vec::new();
        mutate_once(&mut r, &mut d, &[], 10);
        assert!(!d.is_empty() && d.len() <= 10);
    }
}
