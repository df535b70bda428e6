//! The embedded MNIST victim loads and clusters the embedded MNIST test split.

use advclust_core::{ClusterOracle, DifferentiableClusterModel, ImageBatch, ModelOracle};
use advclust_data::mnist_test_embedded;
use advclust_models::{
    ClusterModelExt, EMBEDDED, Victim, VictimKind, pretrained_cc_mnist, trainable_parameters,
};
use burn::module::Module;
use burn::tensor::Device;

#[test]
fn pretrained_mnist_model_reaches_its_scores() {
    let device = Device::flex();
    let model = pretrained_cc_mnist(&device).unwrap();
    assert_eq!(model.num_clusters(), 10);
    assert_eq!(model.input_shape(), [1, 28, 28]);
    let summary = model
        .training_summary()
        .expect("the embedded model has a summary");
    assert_eq!(summary.dataset, "mnist-embedded");

    let data = mnist_test_embedded().unwrap();
    let labels = data.labels().to_vec();
    let (images, dims, _, _) = data.into_parts();
    let images = ImageBatch::unit(images, dims).unwrap();
    let scores = model.evaluate(&images, &labels, &device).unwrap();
    assert!(scores.nmi >= 0.75, "{scores:?}");
    // Evaluation is deterministic: the stored scores are reproduced.
    let stored = summary.scores.expect("stored scores");
    assert!(
        (stored.nmi - scores.nmi).abs() < 1e-3,
        "{stored:?} vs {scores:?}"
    );

    // The chunked black-box view agrees with one direct forward pass on a few images.
    let head = images.select(&(0..64).collect::<Vec<_>>()).unwrap();
    let mut oracle = ModelOracle::new(&model, &device).with_max_batch(10);
    let from_oracle = oracle.memberships(&head).unwrap().labels();
    let direct = model.try_memberships(head.to_tensor(&device)).unwrap();
    let direct = advclust_core::tensor_to_vec(direct.into_data()).unwrap();
    assert_eq!(from_oracle, advclust_core::argmax_rows(&direct, 10));

    // 94,394 trainable parameters (PyTorch's count), plus BatchNorm running mean and variance
    // of 336 channels: stem 16, two per block of widths 16 / 32 / 64, shortcuts 32 and 64.
    assert_eq!(trainable_parameters(model.config()), 94_394);
    assert_eq!(
        model.num_params(),
        94_394 + 2 * (16 + 2 * (16 + 32 + 64) + 32 + 64)
    );
}

#[test]
fn every_embedded_victim_loads_and_reproduces_its_recorded_scores() {
    let device = Device::flex();
    let data = mnist_test_embedded().unwrap();
    let labels = data.labels().to_vec();
    let (images, dims, _, _) = data.into_parts();
    let images = ImageBatch::unit(images, dims).unwrap();
    assert!(EMBEDDED.iter().any(|e| e.kind == VictimKind::Cc));
    for e in EMBEDDED {
        let victim: Victim = e.load(&device).unwrap();
        assert_eq!(victim.kind(), e.kind, "{}", e.name);
        assert_eq!(e.name, format!("pretrained-{}-{}", e.kind, e.dataset));
        let recorded = victim
            .training()
            .and_then(|t| t.scores)
            .unwrap_or_else(|| panic!("{} has no recorded scores", e.name));
        let scores = victim.evaluate(&images, &labels, &device).unwrap();
        assert!(
            (recorded.nmi - scores.nmi).abs() < 1e-3,
            "{}: recorded {recorded:?}, measured {scores:?}",
            e.name
        );
        assert!(scores.nmi >= 0.85, "{}: {scores:?}", e.name);
        // The attack's output has one row per image.
        let head = images.select(&(0..8).collect::<Vec<_>>()).unwrap();
        let phi = victim.attack_output(head.to_tensor(&device));
        assert_eq!(phi.dims()[0], 8);
    }
}
