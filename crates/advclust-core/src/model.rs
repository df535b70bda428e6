//! Differentiable victims (burn modules) and the adapter that makes them oracles.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::batch::ImageBatch;
use crate::error::{CoreError, Result};
use crate::memberships::Memberships;
use crate::oracle::ClusterOracle;

/// A clustering model written as a burn module whose memberships keep the gradient to the input.
///
/// This is the white-box view of a victim (or of an attacker's surrogate): an attack can
/// backpropagate `L_adv` through it. [`ModelOracle`] turns any such model into a
/// [`ClusterOracle`], the black-box view.
pub trait DifferentiableClusterModel: Module {
    /// Number of clusters `k`.
    fn num_clusters(&self) -> usize;

    /// The `[C, H, W]` the model takes, in `[0, 1]` pixel space (any normalisation is inside).
    fn input_shape(&self) -> [usize; 3];

    /// Soft memberships `[N, k]` (rows sum to one), differentiable with respect to `images`.
    fn memberships(&self, images: Tensor<4>) -> Tensor<2>;

    /// The output the attack's `L_adv` compares (phi in the reference): the memberships by
    /// default; raw head logits for victims whose reference attack uses them.
    fn attack_output(&self, images: Tensor<4>) -> Tensor<2> {
        self.memberships(images)
    }

    /// `(memberships, attack_output)` of the same images. The default runs the model twice when
    /// the attack output differs from the memberships; models whose two outputs share a
    /// forward pass override it to run it once.
    fn memberships_and_attack_output(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        (self.memberships(images.clone()), self.attack_output(images))
    }
}

/// A [`DifferentiableClusterModel`] seen as a black-box [`ClusterOracle`]: evaluation mode,
/// no autodiff tape, inputs split into chunks of at most `max_batch` images.
#[derive(Debug, Clone)]
pub struct ModelOracle<M> {
    model: M,
    device: Device,
    max_batch: usize,
}

impl<M: DifferentiableClusterModel> ModelOracle<M> {
    /// Wraps `model` (put in evaluation mode) to answer queries on `device` (autodiff dropped).
    pub fn new(model: &M, device: &Device) -> Self {
        let device = device.clone().inner();
        ModelOracle {
            model: model.valid().to_device(&device),
            device,
            max_batch: 256,
        }
    }

    /// Sets the largest chunk sent through the model at once (memory bound); at least 1.
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// The wrapped model (evaluation mode).
    pub fn model(&self) -> &M {
        &self.model
    }
}

impl<M: DifferentiableClusterModel> ClusterOracle for ModelOracle<M> {
    fn num_clusters(&self) -> usize {
        self.model.num_clusters()
    }

    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(self.model.input_shape())
    }

    fn memberships(&mut self, batch: &ImageBatch) -> Result<Memberships> {
        batch.expect_image_shape(self.model.input_shape())?;
        let k = self.model.num_clusters();
        let parts = batch
            .chunks(self.max_batch)
            .map(|chunk| {
                let out = self.model.memberships(chunk.to_tensor(&self.device));
                let [n, got_k] = out.dims();
                if got_k != k || n != chunk.len() {
                    return Err(CoreError::ClusterCountMismatch {
                        expected: k,
                        actual: got_k,
                    });
                }
                Memberships::from_tensor(out)
            })
            .collect::<Result<Vec<_>>>()?;
        Memberships::concat(&parts)
    }
}
