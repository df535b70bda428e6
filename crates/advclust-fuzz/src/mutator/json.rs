//! JSON-aware mutations: a document is parsed once, a random node is replaced (interesting
//! numbers, literals serde refuses or misreads, strings of the corpus, copies of other nodes),
//! keys are removed, added or duplicated, arrays emptied, repeated or blown up, nodes wrapped
//! in deep (bounded) nesting; then the tree is written back with a writer that can also emit
//! raw literals (`1e999`, `NaN`, `-0`) and duplicate keys, which a `serde_json::Value` cannot
//! hold.

use serde_json::{Map, Value};

use crate::rng::Rng;

/// A string value starting with this is written raw (without quotes), e.g. `1e999`.
const RAW: &str = "\u{1}raw:";
/// An object key starting with this is written without the prefix, so it duplicates the key
/// it names.
const DUP: &str = "\u{1}dup:";

/// Number literals: boundaries of the integer types serde maps numbers to, floats that
/// overflow `f32`, and literals that are not JSON at all.
const RAW_NUMBERS: [&str; 30] = [
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "3",
    "255",
    "256",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1e9",
    "1e30",
    "-1e30",
    "1e39",
    "1e308",
    "1e999",
    "-1e999",
    "1e-45",
    "0.5",
    "NaN",
    "Infinity",
];

/// Strings every target's documents may care about (enum tags, tensor names, formats).
const STRINGS: [&str; 30] = [
    "",
    " ",
    "NaN",
    "inf",
    "-Infinity",
    "Linf",
    "L2",
    "linf",
    "l2",
    "FP32",
    "FP64",
    "FP16",
    "INT64",
    "UINT64",
    "BOOL",
    "BYTES",
    "images",
    "memberships",
    "labels",
    "binary_data_size",
    "binary_data",
    "cc",
    "scan",
    "nnm",
    "spice",
    "mixture",
    "advclust-victim",
    "advclust-cc",
    "..",
    "\u{0}",
];

/// Strings and keys seen in a target's corpus, offered to the mutations.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    strings: Vec<String>,
    keys: Vec<String>,
}

impl Pool {
    /// Collects the strings and object keys of `docs` (bounded).
    pub fn from_docs<'a>(docs: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut pool = Pool::default();
        for d in docs {
            collect(d, &mut pool, 0);
        }
        pool.strings.sort();
        pool.strings.dedup();
        pool.keys.sort();
        pool.keys.dedup();
        pool
    }
}

fn collect(v: &Value, pool: &mut Pool, depth: usize) {
    if depth > 64 || pool.strings.len() > 4096 {
        return;
    }
    match v {
        Value::String(s) if s.len() <= 256 => pool.strings.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect(x, pool, depth + 1)),
        Value::Object(m) => {
            for (k, x) in m {
                pool.keys.push(k.clone());
                collect(x, pool, depth + 1);
            }
        }
        _ => {}
    }
}

/// One step of a path from the root to a node.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Paths of (at most 4096) nodes of `v`, in document order.
fn paths(v: &Value) -> Vec<Vec<Step>> {
    fn walk(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        if out.len() >= 4096 {
            return;
        }
        out.push(here.clone());
        match v {
            Value::Array(a) => {
                // Long arrays (tensor data, curves): a few elements stand for all.
                let idx: Vec<usize> = if a.len() > 16 {
                    vec![0, 1, a.len() / 2, a.len() - 1]
                } else {
                    (0..a.len()).collect()
                };
                for i in idx {
                    here.push(Step::Index(i));
                    walk(&a[i], here, out);
                    here.pop();
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    here.push(Step::Key(k.clone()));
                    walk(x, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn node_mut<'a>(v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, step| match (step, v) {
        (Step::Key(k), Value::Object(m)) => m.get_mut(k),
        (Step::Index(i), Value::Array(a)) => a.get_mut(*i),
        _ => None,
    })
}

fn node<'a>(v: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, step| match (step, v) {
        (Step::Key(k), Value::Object(m)) => m.get(k),
        (Step::Index(i), Value::Array(a)) => a.get(*i),
        _ => None,
    })
}

fn raw(s: &str) -> Value {
    Value::String(format!("{RAW}{s}"))
}

fn interesting_scalar(rng: &mut Rng, pool: &Pool) -> Value {
    match rng.below(8) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => Value::String(rng.pick(&STRINGS).to_string()),
        3 if !pool.strings.is_empty() => Value::String(rng.pick(&pool.strings).clone()),
        4 => Value::Array(Vec::new()),
        5 => Value::Object(Map::new()),
        _ => raw(RAW_NUMBERS[rng.below(RAW_NUMBERS.len())]),
    }
}

/// A tweak of a number: off by one, negated, scaled by a power of two, or zeroed.
fn tweak_number(rng: &mut Rng, n: &serde_json::Number) -> Value {
    let x = n.as_f64().unwrap_or(0.0);
    match rng.below(6) {
        0 => raw(&format!(
            "{}",
            n.as_i64().map_or(x + 1.0, |i| i as f64 + 1.0)
        )),
        1 => raw(&format!(
            "{}",
            n.as_i64().map_or(x - 1.0, |i| i as f64 - 1.0)
        )),
        2 => raw(&format!("{}", -x)),
        3 => raw(&format!("{:e}", x * 2f64.powi(rng.range(1, 40) as i32))),
        4 => raw(&format!("{:e}", x / 2f64.powi(rng.range(1, 40) as i32))),
        _ => raw("0"),
    }
}

/// Applies one JSON-aware mutation to `doc`; `max_len` bounds the size of what it adds.
pub fn mutate_once(rng: &mut Rng, doc: &mut Value, pool: &Pool, max_len: usize) {
    let all = paths(doc);
    let path = rng.pick(&all).clone();
    let other_path = rng.pick(&all).clone();
    let other = node(doc, &other_path).cloned();
    let Some(target) = node_mut(doc, &path) else {
        return;
    };
    match rng.below(12) {
        0 | 1 => {
            *target = match target {
                Value::Number(n) if rng.one_in(2) => tweak_number(rng, n),
                _ => raw(RAW_NUMBERS[rng.below(RAW_NUMBERS.len())]),
            }
        }
        2 => *target = interesting_scalar(rng, pool),
        3 => {
            // Type confusion: a copy of another node (bounded).
            if let Some(o) = other
                && approx_size(&o) <= max_len / 2
            {
                *target = o;
            }
        }
        4 => match target {
            Value::Object(m) if !m.is_empty() => {
                let k = m
                    .keys()
                    .nth(rng.below(m.len()))
                    .cloned()
                    .unwrap_or_default();
                m.remove(&k);
            }
            Value::Array(a) if !a.is_empty() => {
                a.remove(rng.below(a.len()));
            }
            _ => *target = Value::Null,
        },
        5 => {
            if let Value::Object(m) = target {
                let key = if !pool.keys.is_empty() && rng.one_in(2) {
                    rng.pick(&pool.keys).clone()
                } else {
                    "unknown_field".to_string()
                };
                m.insert(key, interesting_scalar(rng, pool));
            }
        }
        6 => {
            // Duplicate key, the copy coming after the original with another value.
            if let Value::Object(m) = target
                && !m.is_empty()
            {
                let k = m
                    .keys()
                    .nth(rng.below(m.len()))
                    .cloned()
                    .unwrap_or_default();
                m.insert(format!("{DUP}{k}"), interesting_scalar(rng, pool));
            }
        }
        7 => {
            if let Value::Array(a) = target {
                match rng.below(3) {
                    0 => a.clear(),
                    1 if !a.is_empty() => {
                        let i = rng.below(a.len());
                        let x = a[i].clone();
                        a.insert(i, x);
                    }
                    _ => {
                        // Blow up: repeat an element up to the size budget.
                        let x = a.first().cloned().unwrap_or(Value::from(0));
                        let each = approx_size(&x).max(2);
                        let n = (*rng.pick(&[3usize, 64, 1000, 100_000])).min(max_len / each);
                        a.extend(std::iter::repeat_n(x, n));
                    }
                }
            } else {
                *target = Value::Array(vec![target.clone(), target.clone()]);
            }
        }
        8 => {
            // Deep nesting, bounded (serde_json refuses past 128 levels).
            let depth = *rng.pick(&[1usize, 2, 8, 64, 127, 129, 200]);
            let mut v = target.take();
            for _ in 0..depth {
                v = Value::Array(vec![v]);
            }
            *target = v;
        }
        9 => {
            let n = (*rng.pick(&[256usize, 4096, 65_536])).min(max_len / 2);
            *target = Value::String("a".repeat(n));
        }
        10 => {
            if let Value::String(s) = target {
                // A string of the corpus, or this one with a character changed.
                if !pool.strings.is_empty() && rng.one_in(2) {
                    *s = rng.pick(&pool.strings).clone();
                } else if !s.is_empty() {
                    let mut b = s.clone().into_bytes();
                    let i = rng.below(b.len());
                    b[i] = b[i].wrapping_add(1);
                    *s = String::from_utf8_lossy(&b).into_owned();
                }
            } else {
                *target = Value::String(rng.pick(&STRINGS).to_string());
            }
        }
        _ => *target = Value::Null,
    }
}

/// A rough upper bound of the serialised size of `v`, in bytes.
fn approx_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 24,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| approx_size(x) + 1).sum::<usize>(),
        Value::Object(m) => {
            2 + m
                .iter()
                .map(|(k, x)| k.len() + 4 + approx_size(x))
                .sum::<usize>()
        }
    }
}

/// Writes `v` as compact JSON, honouring the raw-literal and duplicate-key markers.
pub fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::String(s) => match s.strip_prefix(RAW) {
            Some(lit) => out.extend_from_slice(lit.as_bytes()),
            None => write_str(s, out),
        },
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(x, out);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            out.push(b'{');
            // Duplicates after every original key, so that "last one wins" parsers and
            // "first one wins" parsers disagree.
            let (dups, plain): (Vec<_>, Vec<_>) = m.iter().partition(|(k, _)| k.starts_with(DUP));
            for (i, (k, x)) in plain.into_iter().chain(dups).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k.strip_prefix(DUP).unwrap_or(k), out);
                out.push(b':');
                write(x, out);
            }
            out.push(b'}');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::String(s.to_string()).to_string().as_bytes());
}

/// Applies a short random stack of JSON mutations (1 to 4) to a copy of `doc` and writes it.
pub fn mutate(rng: &mut Rng, doc: &Value, pool: &Pool, max_len: usize) -> Vec<u8> {
    let mut d = doc.clone();
    for _ in 0..1 + rng.log_below(4) {
        mutate_once(rng, &mut d, pool, max_len);
    }
    let mut out = Vec::new();
    write(&d, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_round_trips_plain_json() {
        let v: Value = serde_json::from_str(r#"{"a":[1,2.5,"x\n"],"b":{"c":null,"d":true}}"#)
            .expect("valid JSON");
        let mut out = Vec::new();
        write(&v, &mut out);
        let back: Value = serde_json::from_slice(&out).expect("writer output parses");
        assert_eq!(v, back);
    }

    #[test]
    fn markers_give_raw_literals_and_duplicate_keys() {
        let mut m = Map::new();
        m.insert("a".into(), Value::from(1));
        m.insert(format!("{DUP}a"), raw("1e999"));
        let mut out = Vec::new();
        write(&Value::Object(m), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":1,"a":1e999}"#);
    }

    #[test]
    fn json_mutations_are_deterministic() {
        let v: Value =
            serde_json::from_str(r#"{"shape":[1,1,4,4],"name":"images","data":[0.5,0.25]}"#)
                .unwrap();
        let pool = Pool::from_docs([&v]);
        for i in 0..300 {
            let run = || mutate(&mut Rng::for_iteration(9, "j", i), &v, &pool, 1 << 16);
            let a = run();
            assert_eq!(a, run());
            assert!(a.len() <= 2 << 16, "{} bytes", a.len());
        }
    }
}
