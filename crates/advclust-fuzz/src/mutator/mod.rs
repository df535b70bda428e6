//! The seeded structured mutator: how an input of a target is laid out ([`Layout`]), and
//! [`Mutator`], which turns a corpus and a per-iteration [`Rng`] into the next input.
//!
//! Inputs made of several files or fields (a model's JSON and weights, an HTTP header value
//! and body) are one byte string in the [`parts`] container, so that a failing input is still
//! a single file; each part is mutated according to its [`PartKind`].

pub mod bytes;
pub mod json;
pub mod parts;

use serde_json::Value;

use crate::rng::Rng;

/// How one part of a multi-part input is mutated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// Raw bytes ([`bytes::mutate`]).
    Bytes,
    /// A JSON document ([`json::mutate`], sometimes followed by byte damage).
    Json,
    /// A short text field such as an HTTP header value: replaced by interesting strings or
    /// byte-mutated.
    Text,
    /// Kept as the seed has it, except rarely (so that the other parts stay reachable).
    Fixed,
}

/// How a target's inputs are mutated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One blob of bytes.
    Bytes,
    /// One JSON document.
    Json,
    /// Several parts in the [`parts`] container.
    Parts(&'static [PartKind]),
}

/// A corpus input, with its parts split and JSON parts parsed once.
#[derive(Debug, Clone)]
struct Seed {
    parts: Vec<Vec<u8>>,
    json: Vec<Option<Value>>,
}

/// Text values for [`PartKind::Text`] parts: numbers that do not fit, signs, spaces.
const TEXTS: [&str; 14] = [
    "",
    "0",
    "1",
    "-1",
    "+1",
    " 7 ",
    "007",
    "abc",
    "1e3",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "=",
];

/// Generates mutated inputs from a fixed corpus, deterministically.
#[derive(Debug, Clone)]
pub struct Mutator {
    layout: Layout,
    seeds: Vec<Seed>,
    pool: json::Pool,
    max_len: usize,
}

impl Mutator {
    /// A mutator of `corpus` (non-empty) for inputs laid out as `layout`, none longer than
    /// `max_len` bytes (beyond the largest corpus input).
    pub fn new(layout: Layout, corpus: &[Vec<u8>], max_len: usize) -> Self {
        let n_parts = match layout {
            Layout::Bytes | Layout::Json => 1,
            Layout::Parts(kinds) => kinds.len(),
        };
        let seeds: Vec<Seed> = corpus
            .iter()
            .map(|input| {
                let parts = if n_parts == 1 {
                    vec![input.clone()]
                } else {
                    parts::split(input, n_parts)
                };
                let json = parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        (kind_of(layout, i) == PartKind::Json)
                            .then(|| serde_json::from_slice(p).ok())
                            .flatten()
                    })
                    .collect();
                Seed { parts, json }
            })
            .collect();
        let pool = json::Pool::from_docs(seeds.iter().flat_map(|s| s.json.iter().flatten()));
        let largest = corpus.iter().map(Vec::len).max().unwrap_or(0);
        Mutator {
            layout,
            seeds,
            pool,
            max_len: max_len.max(largest + 1024),
        }
    }

    /// Number of corpus inputs.
    pub fn corpus_len(&self) -> usize {
        self.seeds.len()
    }

    /// The input of one iteration: a corpus input picked and mutated with `rng` alone.
    pub fn generate(&self, rng: &mut Rng) -> Vec<u8> {
        if self.seeds.is_empty() {
            let mut d = Vec::new();
            bytes::mutate(rng, &mut d, &[], self.max_len);
            return d;
        }
        let seed = &self.seeds[rng.below(self.seeds.len())];
        let other = &self.seeds[rng.below(self.seeds.len())];
        let n = seed.parts.len();
        if n == 1 {
            return self.mutate_part(rng, seed, other, 0);
        }
        let mut parts = seed.parts.clone();
        // Parts by weight: documents and blobs more often than short text fields.
        let mutable: Vec<usize> = (0..n)
            .flat_map(|i| std::iter::repeat_n(i, weight(kind_of(self.layout, i))))
            .collect();
        for _ in 0..1 + rng.log_below(3) {
            let i = if mutable.is_empty() || rng.one_in(16) {
                rng.below(n)
            } else {
                *rng.pick(&mutable)
            };
            // A JSON part mutated already is parsed again, so that stacked mutations stay
            // structural as long as the text is still JSON.
            let kind = kind_of(self.layout, i);
            let json = if parts[i] == seed.parts[i] {
                seed.json[i].clone()
            } else if kind == PartKind::Json {
                serde_json::from_slice(&parts[i]).ok()
            } else {
                None
            };
            let base = Seed {
                parts: vec![parts[i].clone()],
                json: vec![json],
            };
            let other = Seed {
                parts: vec![other.parts[i].clone()],
                json: vec![None],
            };
            parts[i] = self.mutate_one(rng, &base, &other, kind);
        }
        let mut out = parts::join(&parts);
        if rng.one_in(16) {
            // Damage the container itself (part lengths).
            bytes::mutate_once(rng, &mut out, &[], self.max_len);
        }
        out
    }

    fn mutate_part(&self, rng: &mut Rng, seed: &Seed, other: &Seed, i: usize) -> Vec<u8> {
        let base = Seed {
            parts: vec![seed.parts[i].clone()],
            json: vec![seed.json[i].clone()],
        };
        let other = Seed {
            parts: vec![other.parts[i].clone()],
            json: vec![None],
        };
        self.mutate_one(rng, &base, &other, kind_of(self.layout, i))
    }

    /// Mutates a one-part seed according to `kind`.
    fn mutate_one(&self, rng: &mut Rng, seed: &Seed, other: &Seed, kind: PartKind) -> Vec<u8> {
        let data = &seed.parts[0];
        let other = &other.parts[0];
        match kind {
            PartKind::Json => match &seed.json[0] {
                Some(doc) if !rng.one_in(8) => {
                    let mut out = json::mutate(rng, doc, &self.pool, self.max_len);
                    if rng.one_in(8) {
                        bytes::mutate_once(rng, &mut out, other, self.max_len);
                    }
                    out.truncate(self.max_len);
                    out
                }
                _ => {
                    let mut d = data.clone();
                    bytes::mutate(rng, &mut d, other, self.max_len);
                    d
                }
            },
            PartKind::Text if rng.one_in(2) => rng.pick(&TEXTS).as_bytes().to_vec(),
            PartKind::Text | PartKind::Bytes | PartKind::Fixed => {
                let mut d = data.clone();
                bytes::mutate(rng, &mut d, other, self.max_len);
                d
            }
        }
    }
}

/// How much more often a part of this kind is mutated than a text field.
fn weight(kind: PartKind) -> usize {
    match kind {
        PartKind::Json => 4,
        PartKind::Bytes => 3,
        PartKind::Text => 1,
        PartKind::Fixed => 0,
    }
}

fn kind_of(layout: Layout, i: usize) -> PartKind {
    match layout {
        Layout::Bytes => PartKind::Bytes,
        Layout::Json => PartKind::Json,
        Layout::Parts(kinds) => kinds.get(i).copied().unwrap_or(PartKind::Bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: &[PartKind] = &[PartKind::Text, PartKind::Json, PartKind::Bytes];

    fn corpus() -> Vec<Vec<u8>> {
        vec![
            parts::join(&[
                b"12".to_vec(),
                br#"{"a":[1,2],"b":"x"}"#.to_vec(),
                vec![1, 2, 3],
            ]),
            parts::join(&[Vec::new(), b"[true]".to_vec(), vec![9; 40]]),
        ]
    }

    #[test]
    fn same_seed_same_inputs() {
        for layout in [Layout::Bytes, Layout::Json, Layout::Parts(KINDS)] {
            let m = Mutator::new(layout, &corpus(), 4096);
            for i in 0..300 {
                let a = m.generate(&mut Rng::for_iteration(5, "t", i));
                let b = m.generate(&mut Rng::for_iteration(5, "t", i));
                assert_eq!(a, b, "{layout:?} iteration {i}");
            }
            let a: Vec<_> = (0..50)
                .map(|i| m.generate(&mut Rng::for_iteration(5, "t", i)))
                .collect();
            let b: Vec<_> = (0..50)
                .map(|i| m.generate(&mut Rng::for_iteration(6, "t", i)))
                .collect();
            assert_ne!(a, b, "another seed gives other inputs");
        }
    }

    #[test]
    fn mutants_differ_from_their_seeds_most_of_the_time() {
        let c = corpus();
        let m = Mutator::new(Layout::Parts(KINDS), &c, 4096);
        let changed = (0..200)
            .filter(|&i| !c.contains(&m.generate(&mut Rng::for_iteration(1, "t", i))))
            .count();
        assert!(changed > 150, "{changed} of 200 changed");
    }
}
