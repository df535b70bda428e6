//! Label bound and relabelling of arbitrary label slices to contiguous indices.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Anything usable as a class or cluster label.
///
/// Blanket-implemented for every `Hash + Eq + Ord + Clone` type, so `usize`,
/// `u8`, `i64`, `char`, `String`, `&str`, tuples, ... all work, and the true
/// and predicted labels of one call may have different types. Distinct labels
/// are always reported in ascending `Ord` order, as `numpy.unique` does.
pub trait Label: Hash + Eq + Ord + Clone {}

impl<T: Hash + Eq + Ord + Clone> Label for T {}

/// A label slice relabelled to contiguous indices `0..distinct.len()`.
#[derive(Debug, Clone)]
pub(crate) struct Encoded<T> {
    /// The distinct labels, sorted ascending.
    pub(crate) distinct: Vec<T>,
    /// For every sample, the position of its label in `distinct`.
    pub(crate) index: Vec<usize>,
}

/// Relabels `labels` to contiguous indices in O(n).
///
/// Integer-like labels spanning a small range are relabelled through a
/// lookup table (no hashing); anything else goes through a `HashMap`.
pub(crate) fn encode<T: Label>(labels: &[T]) -> Encoded<T> {
    encode_dense(labels).unwrap_or_else(|| encode_hashed(labels))
}

/// Largest key span (max - min + 1) relabelled through a lookup table.
fn dense_span_limit(n: usize) -> u128 {
    2 * n as u128 + 1024
}

/// Smallest key and span (max - min + 1) of labels that all hash as single
/// integers; `None` for empty input or any other label.
fn int_range<T: Hash>(labels: &[T]) -> Option<(i64, u128)> {
    let first = int_key(labels.first()?)?;
    let (mut min, mut max, mut all_int) = (first, first, true);
    // Branch-free body (no early exit) so the loop compiles to a tight scan.
    for label in labels {
        let key = int_key(label);
        all_int &= key.is_some();
        let key = key.unwrap_or(first);
        min = min.min(key);
        max = max.max(key);
    }
    all_int.then(|| (min, (i128::from(max) - i128::from(min) + 1) as u128))
}

/// A window `[lo, lo + span)` of integer keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyWindow {
    pub(crate) lo: i64,
    pub(crate) span: usize,
}

impl KeyWindow {
    /// The window of all keys of `labels`; `None` for empty input, any label
    /// that is not integer-like, or a span beyond `usize`.
    pub(crate) fn of<T: Hash>(labels: &[T]) -> Option<Self> {
        let (lo, span) = int_range(labels)?;
        Some(Self {
            lo,
            span: usize::try_from(span).ok()?,
        })
    }

    /// This window widened by its own span on both sides (clamped to `i64`).
    pub(crate) fn widened(self) -> Option<Self> {
        let span = i128::try_from(self.span).ok()?;
        let lo = (i128::from(self.lo) - span).max(i128::from(i64::MIN));
        let hi = (i128::from(self.lo) + 2 * span).min(i128::from(i64::MAX) + 1);
        Some(Self {
            lo: i64::try_from(lo).ok()?,
            span: usize::try_from(hi - lo).ok()?,
        })
    }

    /// Position of a label's key inside the window.
    #[inline]
    pub(crate) fn offset<T: Hash>(self, label: &T) -> Option<usize> {
        let offset = i128::from(int_key(label)?) - i128::from(self.lo);
        usize::try_from(offset).ok().filter(|&o| o < self.span)
    }
}

/// Records the value written by a `Hash` impl that consists of exactly one
/// integer write, as the impls of all primitive integers, `bool` and `char`
/// do. Anything else (strings, tuples, several writes) is marked `Other`.
#[derive(Clone, Copy)]
enum Probe {
    Empty,
    One(i128),
    Other,
}

impl Probe {
    fn put(&mut self, value: Option<i128>) {
        *self = match (*self, value) {
            (Probe::Empty, Some(v)) => Probe::One(v),
            _ => Probe::Other,
        };
    }
}

impl Hasher for Probe {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, _bytes: &[u8]) {
        *self = Probe::Other;
    }
    fn write_u8(&mut self, i: u8) {
        self.put(Some(i.into()));
    }
    fn write_u16(&mut self, i: u16) {
        self.put(Some(i.into()));
    }
    fn write_u32(&mut self, i: u32) {
        self.put(Some(i.into()));
    }
    fn write_u64(&mut self, i: u64) {
        self.put(Some(i.into()));
    }
    fn write_u128(&mut self, i: u128) {
        self.put(i128::try_from(i).ok());
    }
    fn write_usize(&mut self, i: usize) {
        self.put(i128::try_from(i).ok());
    }
    fn write_i8(&mut self, i: i8) {
        self.put(Some(i.into()));
    }
    fn write_i16(&mut self, i: i16) {
        self.put(Some(i.into()));
    }
    fn write_i32(&mut self, i: i32) {
        self.put(Some(i.into()));
    }
    fn write_i64(&mut self, i: i64) {
        self.put(Some(i.into()));
    }
    fn write_i128(&mut self, i: i128) {
        self.put(Some(i));
    }
    fn write_isize(&mut self, i: isize) {
        self.put(i128::try_from(i).ok());
    }
}

/// The integer a label hashes as, when its `Hash` impl is a single integer
/// write that fits in an `i64`. For primitive integers this folds to a plain
/// conversion at compile time.
#[inline]
fn int_key<T: Hash>(label: &T) -> Option<i64> {
    let mut probe = Probe::Empty;
    label.hash(&mut probe);
    match probe {
        Probe::One(v) => i64::try_from(v).ok(),
        Probe::Empty | Probe::Other => None,
    }
}

/// Lookup-table relabelling for integer-like labels with a small span.
///
/// Returns `None` (and the caller falls back to hashing) when a label is not
/// integer-like, when the span is too wide, or when two labels that are not
/// `==` hash as the same integer (checked for every sample, so exotic `Hash`
/// impls cannot merge distinct labels).
fn encode_dense<T: Label>(labels: &[T]) -> Option<Encoded<T>> {
    let window = KeyWindow::of(labels)?;
    if window.span as u128 > dense_span_limit(labels.len()) {
        return None;
    }
    let span = window.span;
    let offset = |label: &T| window.offset(label);

    // slot[key - min] = position of the first sample carrying that key.
    const UNSEEN: usize = usize::MAX;
    let mut slot = vec![UNSEEN; span];
    for (pos, label) in labels.iter().enumerate() {
        let first_pos = slot.get_mut(offset(label)?)?;
        if *first_pos == UNSEEN {
            *first_pos = pos;
        } else if labels.get(*first_pos)? != label {
            return None;
        }
    }

    // Number the keys in increasing order, then make sure that order is the
    // `Ord` order (always true for primitive integers).
    let mut distinct = Vec::new();
    for s in slot.iter_mut().filter(|s| **s != UNSEEN) {
        distinct.push(labels.get(*s)?.clone());
        *s = distinct.len() - 1;
    }
    let (distinct, remap) = sort_distinct(distinct);
    if let Some(remap) = remap {
        for s in slot.iter_mut().filter(|s| **s != UNSEEN) {
            *s = remap[*s];
        }
    }

    let mut index = Vec::with_capacity(labels.len());
    for label in labels {
        index.push(*slot.get(offset(label)?)?);
    }
    Some(Encoded { distinct, index })
}

/// Hash-map relabelling, valid for every label type.
fn encode_hashed<T: Label>(labels: &[T]) -> Encoded<T> {
    let mut ids: HashMap<&T, usize> = HashMap::new();
    let mut distinct = Vec::new();
    let mut index = Vec::with_capacity(labels.len());
    for label in labels {
        let next = distinct.len();
        let id = *ids.entry(label).or_insert_with(|| {
            distinct.push(label.clone());
            next
        });
        index.push(id);
    }
    let (distinct, remap) = sort_distinct(distinct);
    if let Some(remap) = remap {
        for id in &mut index {
            *id = remap[*id];
        }
    }
    Encoded { distinct, index }
}

/// Sorts distinct labels; returns the sorted labels and, when the order
/// changed, the map from old to new positions.
pub(crate) fn sort_distinct<T: Ord>(distinct: Vec<T>) -> (Vec<T>, Option<Vec<usize>>) {
    if distinct.is_sorted() {
        return (distinct, None);
    }
    let mut order: Vec<usize> = (0..distinct.len()).collect();
    order.sort_by(|&a, &b| distinct[a].cmp(&distinct[b]));
    let mut remap = vec![0; distinct.len()];
    for (new, &old) in order.iter().enumerate() {
        remap[old] = new;
    }
    let mut slots: Vec<Option<T>> = distinct.into_iter().map(Some).collect();
    let sorted = order.iter().filter_map(|&old| slots[old].take()).collect();
    (sorted, Some(remap))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes only `id`, but equality also looks at `tag`: a legal (if
    /// unusual) impl under which two unequal labels hash as the same integer.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    struct Tagged {
        id: u32,
        tag: char,
    }

    impl Hash for Tagged {
        fn hash<H: Hasher>(&self, state: &mut H) {
            self.id.hash(state);
        }
    }

    #[test]
    fn int_keys_of_primitives() {
        assert_eq!(int_key(&7u8), Some(7));
        assert_eq!(int_key(&-3i64), Some(-3));
        assert_eq!(int_key(&'a'), Some(97));
        assert_eq!(int_key(&true), Some(1));
        assert_eq!(int_key(&u64::MAX), None);
        assert_eq!(int_key(&"a"), None);
        assert_eq!(int_key(&(1u8, 2u8)), None);
    }

    #[test]
    fn dense_and_hashed_agree() {
        let labels = [1000i64, 3, 17, 3, -5, 1000, 17, 17];
        let dense = encode_dense(&labels).expect("small span is dense");
        let hashed = encode_hashed(&labels);
        assert_eq!(dense.distinct, vec![-5, 3, 17, 1000]);
        assert_eq!(dense.distinct, hashed.distinct);
        assert_eq!(dense.index, hashed.index);
        assert_eq!(dense.index, vec![3, 1, 2, 1, 0, 3, 2, 2]);
    }

    #[test]
    fn wide_span_falls_back_to_hashing() {
        let labels = [i64::MIN, i64::MAX, 0, i64::MIN];
        assert!(encode_dense(&labels).is_none());
        let enc = encode(&labels);
        assert_eq!(enc.distinct, vec![i64::MIN, 0, i64::MAX]);
        assert_eq!(enc.index, vec![0, 2, 1, 0]);
    }

    #[test]
    fn colliding_hash_is_detected() {
        let labels = [
            Tagged { id: 1, tag: 'b' },
            Tagged { id: 1, tag: 'a' },
            Tagged { id: 0, tag: 'z' },
        ];
        assert!(encode_dense(&labels).is_none());
        let enc = encode(&labels);
        assert_eq!(enc.distinct.len(), 3);
        assert_eq!(enc.index, vec![2, 1, 0]);
    }

    #[test]
    fn strings_and_empty() {
        let enc = encode(&["b", "a", "b", "c"]);
        assert_eq!(enc.distinct, vec!["a", "b", "c"]);
        assert_eq!(enc.index, vec![1, 0, 1, 2]);
        let empty = encode::<u8>(&[]);
        assert!(empty.distinct.is_empty() && empty.index.is_empty());
    }
}
