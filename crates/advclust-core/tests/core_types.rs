//! Validation, ledger, threat-model and model-oracle behaviour of advclust-core.

use advclust_core::*;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

fn device() -> Device {
    Device::flex()
}

#[test]
fn image_batch_rejects_bad_input() {
    let err = ImageBatch::unit(vec![0.5; 10], [1, 1, 3, 3]).unwrap_err();
    assert!(matches!(
        err,
        CoreError::ShapeMismatch {
            expected: 9,
            actual: 10,
            ..
        }
    ));
    let err = ImageBatch::unit(vec![], [0, 1, 3, 3]).unwrap_err();
    assert_eq!(err, CoreError::EmptyDimension("batch size"));
    let mut v = vec![0.5; 9];
    v[4] = f32::NAN;
    assert!(matches!(
        ImageBatch::unit(v, [1, 1, 3, 3]).unwrap_err(),
        CoreError::NonFinite { index: 4, .. }
    ));
    let mut v = vec![0.5; 9];
    v[7] = 1.5;
    assert!(matches!(
        ImageBatch::unit(v, [1, 1, 3, 3]).unwrap_err(),
        CoreError::OutOfBox { index: 7, .. }
    ));
    assert!(ValueBox::new(1.0, 0.0).is_err());
    assert!(ValueBox::new(0.0, f32::INFINITY).is_err());
    let b = ImageBatch::new(
        vec![-1.0; 9],
        [1, 1, 3, 3],
        ValueBox::new(-1.0, 1.0).unwrap(),
    );
    assert!(b.is_ok());
}

#[test]
fn image_batch_select_chunks_concat_roundtrip() {
    let data: Vec<f32> = (0..5 * 4).map(|i| i as f32 / 20.0).collect();
    let b = ImageBatch::unit(data.clone(), [5, 1, 2, 2]).unwrap();
    let chunks: Vec<_> = b.chunks(2).collect();
    assert_eq!(
        chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    assert_eq!(ImageBatch::concat(&chunks).unwrap(), b);
    let s = b.select(&[4, 0]).unwrap();
    assert_eq!(s.image(0).unwrap(), b.image(4).unwrap());
    assert!(b.select(&[5]).is_err());
    let t = b.to_tensor(&device());
    assert_eq!(ImageBatch::from_tensor(t, ValueBox::UNIT).unwrap(), b);
    let other = ImageBatch::unit(vec![0.0; 9], [1, 1, 3, 3]).unwrap();
    assert!(matches!(
        ImageBatch::concat(&[b, other]).unwrap_err(),
        CoreError::ImageShapeMismatch { .. }
    ));
}

#[test]
fn memberships_validate_rows() {
    let m = Memberships::new(vec![0.2, 0.3, 0.5, 1.0, 0.0, 0.0], 2, 3).unwrap();
    assert_eq!(m.labels(), vec![2, 0]);
    assert!(matches!(
        Memberships::new(vec![0.5, 0.6], 1, 2).unwrap_err(),
        CoreError::NotADistribution { row: 0, .. }
    ));
    assert!(matches!(
        Memberships::new(vec![1.5, -0.5], 1, 2).unwrap_err(),
        CoreError::NotADistribution { .. }
    ));
    assert!(Memberships::new(vec![f32::NAN, 1.0], 1, 2).is_err());
    assert!(Memberships::new(vec![1.0; 3], 1, 2).is_err());
    let s = Memberships::from_logits(&[1000.0, 0.0, -3.0, -3.0], 2, 2).unwrap();
    assert_eq!(s.labels(), vec![0, 0]);
    assert!((s.row(1).unwrap()[0] - 0.5).abs() < 1e-6);
    assert!(matches!(
        s.expect_clusters(3).unwrap_err(),
        CoreError::ClusterCountMismatch {
            expected: 3,
            actual: 2
        }
    ));
}

#[test]
fn ledger_refuses_before_counting() {
    let mut ledger = QueryLedger::new(QueryBudget {
        max_batch_calls: Some(10),
        max_images: Some(300),
    });
    ledger.charge(256).unwrap();
    let err = ledger.charge(100).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExhausted);
    assert_eq!(
        ledger.counts(),
        QueryCounts {
            batch_calls: 1,
            images: 256,
            failed_calls: 0,
        }
    );
    ledger.charge(44).unwrap();
    assert_eq!(ledger.counts().images, 300);
    assert!(!ledger.allows(1));
    assert!(QueryLedger::default().allows(usize::MAX / 2));
}

/// Answers like a flaky server: every call whose first pixel is negative-marked (0.0) fails
/// as a transport error.
struct Flaky;

impl ClusterOracle for Flaky {
    fn num_clusters(&self) -> usize {
        2
    }
    fn input_shape(&self) -> Option<[usize; 3]> {
        Some([1, 1, 1])
    }
    fn memberships(&mut self, batch: &ImageBatch) -> advclust_core::Result<Memberships> {
        if batch.data()[0] == 0.0 {
            return Err(advclust_core::CoreError::Transport(
                "connection refused".into(),
            ));
        }
        Memberships::new(vec![0.5; 2 * batch.len()], batch.len(), 2)
    }
}

#[test]
fn budgeted_charges_answered_calls_only_and_a_round_stops_at_its_first_refusal() {
    let call = |first: f32, n: usize| {
        let mut data = vec![0.5; n];
        data[0] = first;
        ImageBatch::unit(data, [n, 1, 1, 1]).unwrap()
    };
    let mut oracle = Budgeted::new(Flaky, QueryBudget::images(10));
    // A failed call is recorded, not charged: the budget is still whole.
    let e = oracle.memberships(&call(0.0, 4)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport);
    assert_eq!(
        oracle.counts(),
        QueryCounts {
            batch_calls: 0,
            images: 0,
            failed_calls: 1
        }
    );
    // A round is planned before it is sent: 3 + 4 images fit, the 3rd call (4 more) is
    // refused unsent and the round ends there.
    let round = [call(0.5, 3), call(0.5, 4), call(0.5, 4), call(0.5, 1)];
    let answers = oracle.memberships_of_calls(&round);
    assert_eq!(answers.len(), 3);
    assert!(answers[0].is_ok() && answers[1].is_ok());
    assert!(answers[2].as_ref().unwrap_err().is_budget_exhausted());
    assert!(answer_all(&mut oracle, &round[3..]).is_ok());
    assert_eq!(
        oracle.counts(),
        QueryCounts {
            batch_calls: 3,
            images: 8,
            failed_calls: 1
        }
    );
    // A round stops at its first failure: the calls after it are not made (nor paid for).
    let mut fresh = Budgeted::new(Flaky, QueryBudget::UNLIMITED);
    let answers = fresh.memberships_of_calls(&[call(0.5, 3), call(0.0, 2), call(0.5, 4)]);
    assert_eq!(answers.len(), 2);
    assert!(answers[0].is_ok());
    assert_eq!(
        answers[1].as_ref().unwrap_err().kind(),
        ErrorKind::Transport
    );
    assert_eq!(
        fresh.counts(),
        QueryCounts {
            batch_calls: 1,
            images: 3,
            failed_calls: 1
        }
    );
    // A wrong image shape is refused before anything is sent or recorded.
    let wrong = ImageBatch::unit(vec![0.5; 4], [1, 1, 2, 2]).unwrap();
    assert_eq!(
        oracle.memberships_of_calls(&[wrong])[0]
            .as_ref()
            .unwrap_err()
            .kind(),
        ErrorKind::BadInput
    );
    assert_eq!(oracle.counts().failed_calls, 1);
}

/// Tiny linear clustering model used to exercise the model adapter.
#[derive(Module, Debug)]
struct LinearClusters {
    linear: Linear,
}

impl DifferentiableClusterModel for LinearClusters {
    fn num_clusters(&self) -> usize {
        3
    }
    fn input_shape(&self) -> [usize; 3] {
        [1, 2, 2]
    }
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.linear.forward(images.flatten::<2>(1, 3)), 1)
    }
}

fn linear_model(device: &Device) -> LinearClusters {
    LinearClusters {
        linear: LinearConfig::new(4, 3).init(device),
    }
}

#[test]
fn model_oracle_matches_model_and_counts_queries() {
    let dev = device();
    device().seed(7);
    let model = linear_model(&dev);
    let data: Vec<f32> = (0..7 * 4).map(|i| (i % 11) as f32 / 10.0).collect();
    let batch = ImageBatch::unit(data, [7, 1, 2, 2]).unwrap();
    let direct = Memberships::from_tensor(model.memberships(batch.to_tensor(&dev))).unwrap();

    let oracle = ModelOracle::new(&model, &dev).with_max_batch(3);
    let mut budgeted: Box<dyn ClusterOracle> =
        Box::new(Budgeted::new(oracle, QueryBudget::batch_calls(2)));
    let answer = budgeted.memberships(&batch).unwrap();
    for (a, b) in answer.data().iter().zip(direct.data()) {
        assert!((a - b).abs() < 1e-6);
    }
    // wrong image shape: refused without using budget
    let wrong = ImageBatch::unit(vec![0.1; 9], [1, 1, 3, 3]).unwrap();
    assert!(matches!(
        budgeted.memberships(&wrong).unwrap_err(),
        CoreError::ImageShapeMismatch { .. }
    ));
    budgeted.memberships(&batch).unwrap();
    assert!(
        budgeted
            .memberships(&batch)
            .unwrap_err()
            .is_budget_exhausted()
    );

    let mut labels = ArgmaxLabels(ModelOracle::new(&model, &dev));
    assert_eq!(labels.labels(&batch).unwrap(), direct.labels());
}

#[test]
fn model_gradient_reaches_the_input() {
    let dev = device().autodiff();
    let model = linear_model(&dev).freeze();
    let x = ImageBatch::unit(vec![0.3; 8], [2, 1, 2, 2])
        .unwrap()
        .to_tensor(&dev)
        .require_grad();
    let loss = model.memberships(x.clone()).narrow(1, 0, 1).sum();
    let grads = loss.backward();
    let g = x.grad(&grads).expect("gradient reaches the input");
    let g = tensor_to_vec(g.into_data()).unwrap();
    assert!(g.iter().any(|v| v.abs() > 0.0));
}

#[test]
fn threat_model_tensor_and_host_projection_agree() {
    let dev = device();
    let clean: Vec<f32> = (0..2 * 16).map(|i| (i % 5) as f32 / 4.0).collect();
    let delta: Vec<f32> = (0..2 * 16)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 10.0)
        .collect();
    let clean = ImageBatch::unit(clean, [2, 1, 4, 4]).unwrap();
    let raw: Vec<f32> = clean
        .data()
        .iter()
        .zip(&delta)
        .map(|(x, d)| (x + d).clamp(0.0, 1.0))
        .collect();
    for tm in [ThreatModel::linf(0.1), ThreatModel::l2(0.5)] {
        let tm = tm.check().unwrap();
        let x = clean.to_tensor(&dev);
        let d = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(delta.clone(), [2, 1, 4, 4]),
            &dev,
        );
        let adv = ImageBatch::from_tensor(tm.apply(x, d), ValueBox::UNIT).unwrap();
        assert!(tm.contains(&clean, &adv).unwrap(), "{tm:?}");
        let norms = ThreatModel::norms(&clean, &adv).unwrap();
        match tm.norm() {
            NormKind::Linf => assert!(norms.iter().all(|n| n.linf <= 0.1 + 1e-6)),
            NormKind::L2 => assert!(norms.iter().all(|n| n.l2 <= 0.5 + 1e-5)),
        }
        // host projection of an unbounded perturbation lands inside the threat model too
        let unbounded = ImageBatch::unit(raw.clone(), [2, 1, 4, 4]).unwrap();
        let projected = tm.project(&clean, &unbounded).unwrap();
        assert!(tm.contains(&clean, &projected).unwrap());
        assert!(!tm.contains(&clean, &unbounded).unwrap());
    }
    let summary = NormSummary::from_norms(&[
        PerturbationNorms { l2: 1.0, linf: 0.1 },
        PerturbationNorms { l2: 3.0, linf: 0.3 },
    ]);
    assert_eq!(summary.mean_l2, 2.0);
    assert_eq!(summary.max_linf, 0.3);
}

#[test]
fn l2_norm_gradient_is_finite_at_zero() {
    let dev = device().autodiff();
    let d = Tensor::<4>::zeros([2, 1, 2, 2], &dev).require_grad();
    let grads = per_sample_l2(d.clone()).sum().backward();
    let g = tensor_to_vec(d.grad(&grads).unwrap().into_data()).unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
}
