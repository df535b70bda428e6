//! Behaviour of `Dataset` and its transformations on small synthetic data.

use advclust_data::{ChannelStats, DataError, Dataset, LastBatch};

fn names(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("c{i}")).collect()
}

/// `n` images of 2x2x3 where image i has every value = i / 100, labels i % 3.
fn toy(n: usize) -> Dataset {
    let mut px = Vec::new();
    for i in 0..n {
        px.extend(std::iter::repeat_n(i as f32 / 100.0, 12));
    }
    Dataset::new(px, [n, 3, 2, 2], (0..n).map(|i| i % 3).collect(), names(3)).unwrap()
}

fn id_of(d: &Dataset, i: usize) -> usize {
    (d.image(i)[0] * 100.0).round() as usize
}

#[test]
fn new_validates() {
    assert!(Dataset::new(vec![0.0; 12], [1, 3, 2, 2], vec![0], names(1)).is_ok());
    let bad = [
        Dataset::new(vec![0.0; 11], [1, 3, 2, 2], vec![0], names(1)),
        Dataset::new(vec![0.0; 12], [1, 3, 2, 2], vec![], names(1)),
        Dataset::new(vec![0.0; 12], [1, 3, 2, 2], vec![1], names(1)),
        Dataset::new(vec![], [0, 0, 2, 2], vec![], names(1)),
        Dataset::new(vec![], [usize::MAX, 2, 2, 2], vec![], names(1)),
    ];
    for b in bad {
        assert!(matches!(b, Err(DataError::InvalidArgument(_))), "{b:?}");
    }
    // an empty dataset is fine
    let e = Dataset::new(vec![], [0, 1, 2, 2], vec![], names(2)).unwrap();
    assert!(e.is_empty());
    assert_eq!(e.class_counts(), vec![0, 0]);
}

#[test]
fn accessors_and_u8_roundtrip() {
    let px: Vec<u8> = (0..=255).collect();
    let d = Dataset::from_u8(&px, [4, 1, 8, 8], vec![0, 1, 1, 0], names(2)).unwrap();
    assert_eq!(d.dims(), [4, 1, 8, 8]);
    assert_eq!((d.len(), d.channels(), d.height(), d.width()), (4, 1, 8, 8));
    assert_eq!(d.image_len(), 64);
    assert_eq!(d.image(1)[0], 64.0 / 255.0);
    assert_eq!(d.labels(), &[0, 1, 1, 0]);
    assert_eq!(d.label(2), 1);
    assert_eq!(d.num_classes(), 2);
    assert_eq!(d.class_counts(), vec![2, 2]);
    assert!(d.images().iter().all(|&x| (0.0..=1.0).contains(&x)));
    assert_eq!(d.to_u8(), px);
    let (images, dims, labels, cn) = d.clone().into_parts();
    assert_eq!(Dataset::new(images, dims, labels, cn).unwrap(), d);
}

#[test]
fn subset_take_split_per_class() {
    let d = toy(10);
    let s = d.subset(&[9, 0, 9]).unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(
        (0..3).map(|i| id_of(&s, i)).collect::<Vec<_>>(),
        vec![9, 0, 9]
    );
    assert_eq!(s.labels(), &[0, 0, 0]);
    assert_eq!(s.num_classes(), 3);
    assert!(matches!(
        d.subset(&[10]),
        Err(DataError::InvalidArgument(_))
    ));

    assert_eq!(d.take(4).len(), 4);
    assert_eq!(d.take(100).len(), 10);
    let (a, b) = d.split_at(7);
    assert_eq!((a.len(), b.len()), (7, 3));
    assert_eq!(id_of(&b, 0), 7);

    let p = d.per_class(2);
    assert_eq!(p.labels(), &[0, 1, 2, 0, 1, 2]);
    assert_eq!(p.class_counts(), vec![2, 2, 2]);
    // fewer than asked: take all
    assert_eq!(d.per_class(100).len(), 10);
}

#[test]
fn shuffle_is_seeded_and_keeps_pairs() {
    let d = toy(50);
    let a = d.shuffled(1);
    let b = d.shuffled(1);
    let c = d.shuffled(2);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, d);
    let mut ids: Vec<usize> = (0..50).map(|i| id_of(&a, i)).collect();
    for i in 0..50 {
        assert_eq!(a.label(i), id_of(&a, i) % 3, "label follows its image");
    }
    ids.sort();
    assert_eq!(ids, (0..50).collect::<Vec<_>>());
    let perm = d.shuffle_permutation(1);
    assert_eq!(d.subset(&perm).unwrap(), a);
    let mut e = d.clone();
    e.shuffle(1);
    assert_eq!(e, a);
}

#[test]
fn batches_keep_and_drop() {
    let d = toy(10);
    let keep: Vec<_> = d.batches(4, LastBatch::Keep).unwrap().collect();
    assert_eq!(d.batches(4, LastBatch::Keep).unwrap().len(), 3);
    assert_eq!(
        keep.iter().map(|b| b.len()).collect::<Vec<_>>(),
        vec![4, 4, 2]
    );
    assert_eq!(keep[2].start, 8);
    assert_eq!(keep[2].dims, [2, 3, 2, 2]);
    assert_eq!(keep[2].images, &d.images()[8 * 12..]);
    assert_eq!(keep[1].labels, &d.labels()[4..8]);
    let drop: Vec<_> = d.batches(4, LastBatch::Drop).unwrap().collect();
    assert_eq!(drop.len(), 2);
    assert!(drop.iter().all(|b| b.len() == 4));
    assert_eq!(d.batches(5, LastBatch::Drop).unwrap().count(), 2);
    assert_eq!(d.batches(20, LastBatch::Drop).unwrap().count(), 0);
    assert_eq!(d.batches(20, LastBatch::Keep).unwrap().count(), 1);
    let total: usize = d
        .batches(3, LastBatch::Keep)
        .unwrap()
        .map(|b| b.len())
        .sum();
    assert_eq!(total, 10);
}

#[test]
fn zero_batch_size_is_an_error() {
    let e = toy(3).batches(0, LastBatch::Keep).unwrap_err();
    assert!(matches!(e, DataError::InvalidArgument(_)), "{e:?}");
    assert!(e.to_string().contains("batch size"), "{e}");
}

#[test]
fn resize_bilinear() {
    // 1 image, 1 channel, 2x2 -> 4x4 (half-pixel centres, edge clamp)
    let d = Dataset::new(vec![0.0, 1.0, 0.0, 1.0], [1, 1, 2, 2], vec![0], names(1)).unwrap();
    let r = d.resize(4, 4).unwrap();
    assert_eq!(r.dims(), [1, 1, 4, 4]);
    let row: Vec<f32> = r.image(0)[..4].to_vec();
    assert_eq!(row, vec![0.0, 0.25, 0.75, 1.0]);
    assert_eq!(&r.image(0)[12..], &row[..]);
    // 4x4 -> 2x2 averages 2x2 blocks exactly at scale 2
    let px: Vec<f32> = (0..16).map(|v| v as f32 / 16.0).collect();
    let d = Dataset::new(px, [1, 1, 4, 4], vec![0], names(1)).unwrap();
    let r = d.resize(2, 2).unwrap();
    let expect = [2.5f32, 4.5, 10.5, 12.5].map(|v| v / 16.0);
    for (a, b) in r.images().iter().zip(expect) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // constant images stay constant, non-square targets, identity
    let d = toy(5);
    let r = d.resize(7, 3).unwrap();
    assert_eq!(r.dims(), [5, 3, 7, 3]);
    for i in 0..5 {
        assert!(
            r.image(i)
                .iter()
                .all(|&x| (x - i as f32 / 100.0).abs() < 1e-6)
        );
    }
    assert_eq!(r.labels(), d.labels());
    assert_eq!(d.resize(2, 2).unwrap(), d);
    assert!(d.resize(0, 2).is_err());
}

#[test]
fn resize_many_images_parallel_matches_serial() {
    let px: Vec<f32> = (0..2000 * 9).map(|i| (i % 17) as f32 / 16.0).collect();
    let d = Dataset::new(px, [2000, 1, 3, 3], vec![0; 2000], names(1)).unwrap();
    let r = d.resize(5, 4).unwrap();
    for i in [0, 999, 1999] {
        let one = d.subset(&[i]).unwrap().resize(5, 4).unwrap();
        assert_eq!(one.image(0), r.image(i));
    }
}

#[test]
fn channel_stats_and_normalize() {
    // channel 0 constant 0.5, channel 1 alternates 0/1
    let mut px = Vec::new();
    for _ in 0..3 {
        px.extend([0.5f32; 4]);
        px.extend([0.0f32, 1.0, 0.0, 1.0]);
    }
    let mut d = Dataset::new(px, [3, 2, 2, 2], vec![0; 3], names(1)).unwrap();
    let orig = d.clone();
    let s = d.channel_stats().unwrap();
    assert_eq!(s.mean, vec![0.5, 0.5]);
    assert_eq!(s.std, vec![0.0, 0.5]);
    // zero std is rejected
    assert!(d.normalize(&s).is_err());
    let s = ChannelStats::new(vec![0.5, 0.5], vec![0.25, 0.5]).unwrap();
    d.normalize(&s).unwrap();
    assert_eq!(&d.image(0)[4..], &[-1.0, 1.0, -1.0, 1.0]);
    assert_eq!(&d.image(0)[..4], &[0.0; 4]);
    d.denormalize(&s).unwrap();
    assert_eq!(d, orig);
    // wrong channel count
    let s3 = ChannelStats::new(vec![0.0; 3], vec![1.0; 3]).unwrap();
    assert!(d.normalize(&s3).is_err());
    assert!(ChannelStats::new(vec![0.0], vec![1.0, 1.0]).is_err());
    assert!(ChannelStats::new(vec![0.0], vec![-1.0]).is_err());
    assert!(
        Dataset::new(vec![], [0, 1, 1, 1], vec![], names(1))
            .unwrap()
            .channel_stats()
            .is_err()
    );
    // serde round trip of stats
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<ChannelStats>(&json).unwrap(), s);
}

#[test]
fn grayscale_and_channels() {
    // one RGB pixel (1, 0.5, 0)
    let d = Dataset::new(vec![1.0, 0.5, 0.0], [1, 3, 1, 1], vec![0], names(1)).unwrap();
    let g = d.to_grayscale();
    assert_eq!(g.dims(), [1, 1, 1, 1]);
    assert!((g.image(0)[0] - (0.299 + 0.587 * 0.5)).abs() < 1e-6);
    assert_eq!(g.to_grayscale(), g);
    let sel = d.select_channels(&[2, 0]).unwrap();
    assert_eq!(sel.images(), &[0.0, 1.0]);
    let rgb = g.select_channels(&[0, 0, 0]).unwrap();
    assert_eq!(rgb.channels(), 3);
    assert!(d.select_channels(&[3]).is_err());
    assert!(d.select_channels(&[]).is_err());
    // two-channel data averages
    let d2 = Dataset::new(vec![0.2, 0.4], [1, 2, 1, 1], vec![0], names(1)).unwrap();
    assert!((d2.to_grayscale().image(0)[0] - 0.3).abs() < 1e-6);
}

#[test]
fn dataset_bridges_to_validated_image_batches() {
    let ds = advclust_data::mnist_test_embedded().unwrap().take(5);
    let all = ds.to_image_batch().unwrap();
    assert_eq!(all.dims(), [5, 1, 28, 28]);
    assert_eq!(all.data(), ds.images());
    let two = ds.image_batch(&[4, 1]).unwrap();
    assert_eq!(two.image(0).unwrap(), ds.image(4));
    assert!(ds.image_batch(&[5]).is_err());
    assert!(ds.image_batch(&[]).is_err());
    let mut normalised = ds.clone();
    let stats = normalised.channel_stats().unwrap();
    normalised.normalize(&stats).unwrap();
    assert!(matches!(
        normalised.to_image_batch(),
        Err(advclust_data::DataError::Core(_))
    ));
}
