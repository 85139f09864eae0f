//! ByzFL's `cnn_mnist` on candle's CPU backend. The model is written in candle's
//! operations and trained with candle's back-propagation; this module lays the flat
//! parameter vector out as the model's tensors ([`fl_core::ModelSpec::CnnMnist`]
//! documents the order, PyTorch's) and reads the gradients back into one vector. Two of
//! candle's layers are replaced by compositions of its operations, each for a reason
//! given where it is done ([`conv5_pool_relu`]): the convolutions and the max-pooling.

use candle_core::{DType, Device, Result, Tensor, Var};
use ndarray::{Array2, ArrayView2};
use rand::Rng;

/// Side of the input images.
pub const SIDE: usize = fl_core::CNN_MNIST_SIDE as usize;

/// Examples per forward pass when only logits are wanted: a 28x28 batch of 256 keeps the
/// first layer's activations at about 12 MB.
const EVAL_CHUNK: usize = 256;

/// The shapes of the parameter tensors, in the flat vector's order, and each tensor's
/// fan-in (for PyTorch's default initialisation).
fn layout(classes: usize) -> [(Vec<usize>, usize); 8] {
    [
        (vec![20, 1, 5, 5], 25),
        (vec![20], 25),
        (vec![50, 20, 5, 5], 500),
        (vec![50], 500),
        (vec![500, 800], 800),
        (vec![500], 800),
        (vec![classes, 500], 500),
        (vec![classes], 500),
    ]
}

/// Number of parameters for `classes` outputs.
pub fn param_count(classes: usize) -> usize {
    layout(classes)
        .iter()
        .map(|(shape, _)| shape.iter().product::<usize>())
        .sum()
}

/// PyTorch's default initialisation of `Conv2d` and `Linear`: every weight and bias
/// uniform in `±1/sqrt(fan_in)`.
pub fn init<R: Rng>(classes: usize, rng: &mut R) -> Vec<f32> {
    let mut p = Vec::with_capacity(param_count(classes));
    for (shape, fan_in) in layout(classes) {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n: usize = shape.iter().product();
        p.extend((0..n).map(|_| rng.random_range(-bound..bound)));
    }
    p
}

/// The parameter tensors, as variables (to take gradients) or plain tensors.
fn tensors(params: &[f32], classes: usize, track: bool) -> Result<Vec<Tensor>> {
    assert_eq!(
        params.len(),
        param_count(classes),
        "cnn_mnist parameter vector"
    );
    let mut at = 0;
    layout(classes)
        .into_iter()
        .map(|(shape, _)| {
            let n: usize = shape.iter().product();
            let slice = &params[at..at + n];
            at += n;
            if track {
                Ok(Var::from_slice(slice, shape, &Device::Cpu)?
                    .as_tensor()
                    .clone())
            } else {
                Tensor::from_slice(slice, shape, &Device::Cpu)
            }
        })
        .collect()
}

/// The im2col gather of a valid 5x5 convolution over a `side x side` image of `channels`
/// channels stored row-major with the channel last (HWC), for an output of even side
/// that is max-pooled 2x2 next. Row `r` of the matrix is output position `r`, ordered
/// window by window (the pooled row, the pooled column, then the four positions of the
/// window), so that pooling reduces one axis; column `c * 25 + ky * 5 + kx` is PyTorch's
/// weight order. Each entry holds the index of the input value it reads.
fn unfold_index(side: usize, channels: usize) -> Result<Tensor> {
    let pooled = (side - 4) / 2;
    let mut idx = Vec::with_capacity(4 * pooled * pooled * channels * 25);
    for py in 0..pooled {
        for px in 0..pooled {
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let (oy, ox) = (2 * py + dy, 2 * px + dx);
                for c in 0..channels {
                    for ky in 0..5 {
                        for kx in 0..5 {
                            idx.push((((oy + ky) * side + ox + kx) * channels + c) as u32);
                        }
                    }
                }
            }
        }
    }
    let len = idx.len();
    Tensor::from_vec(idx, len, &Device::Cpu)
}

/// A valid 5x5 convolution with bias, 2x2 max-pooling and ReLU over `x`, `(examples,
/// side * side * channels)` in HWC order, as candle operations: the im2col gather
/// (`index_select`), one matrix product and one max reduction. Returns `(examples,
/// pooled * pooled * filters)`, HWC again. (ReLU commutes with the maximum, so it runs on
/// the pooled quarter.)
///
/// Not candle's `conv2d` and `max_pool2d`. The backward pass of `conv2d` computes the
/// input's gradient with a direct `conv_transpose2d` loop, which made training 4.6 times
/// slower than PyTorch's; here the backward passes are a matrix product and candle's
/// `index_add`. The backward pass of `max_pool2d` (0.9.2) multiplies the gradient of a
/// window's maximum by the share of the window that is maximal, 1/4 for a unique maximum,
/// where it should pass it whole, as the reduction's does.
fn conv5_pool_relu(
    x: &Tensor,
    side: usize,
    channels: usize,
    w: &Tensor,
    b: &Tensor,
) -> Result<Tensor> {
    let n = x.dim(0)?;
    let pooled = (side - 4) / 2;
    let filters = w.dim(0)?;
    let cols = x
        .index_select(&unfold_index(side, channels)?, 1)?
        .reshape((n * pooled * pooled * 4, channels * 25))?;
    cols.matmul(&w.reshape((filters, channels * 25))?.t()?)?
        .broadcast_add(b)?
        .reshape((n * pooled * pooled, 4, filters))?
        .max(1)?
        .relu()?
        .reshape((n, pooled * pooled * filters))
}

/// Logits of a batch of flattened images, `(examples, classes)`.
fn forward(p: &[Tensor], x: ArrayView2<f32>) -> Result<Tensor> {
    let n = x.nrows();
    assert_eq!(x.ncols(), SIDE * SIDE, "cnn_mnist takes 28x28 images");
    let pixels: Vec<f32> = x.iter().copied().collect();
    let x = Tensor::from_vec(pixels, (n, SIDE * SIDE), &Device::Cpu)?;
    let h = conv5_pool_relu(&x, SIDE, 1, &p[0], &p[1])?; // (n, 12 * 12 * 20)
    let h = conv5_pool_relu(&h, 12, 20, &p[2], &p[3])?; // (n, 4 * 4 * 50)
                                                        // PyTorch flattens channel-first: (n, 50, 4, 4).
    let h = h
        .reshape((n, 4, 4, 50))?
        .permute((0, 3, 1, 2))?
        .flatten_from(1)?;
    let h = h.matmul(&p[4].t()?)?.broadcast_add(&p[5])?.relu()?;
    h.matmul(&p[6].t()?)?.broadcast_add(&p[7])
}

/// Mean softmax cross-entropy of `logits` against `y`.
fn cross_entropy(logits: &Tensor, y: &[usize]) -> Result<Tensor> {
    let (n, classes) = logits.dims2()?;
    let shifted = logits.broadcast_sub(&logits.max_keepdim(1)?)?;
    let log_p = shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(1)?.log()?)?;
    let mut one_hot = vec![0f32; n * classes];
    for (i, &label) in y.iter().enumerate() {
        one_hot[i * classes + label] = 1.0;
    }
    let one_hot = Tensor::from_vec(one_hot, (n, classes), &Device::Cpu)?;
    (log_p * one_hot)?
        .sum_all()?
        .affine(-1.0 / n.max(1) as f64, 0.0)
}

/// Logits, `examples x classes`, computed in chunks.
pub fn logits(params: &[f32], classes: usize, x: ArrayView2<f32>) -> Result<Array2<f32>> {
    let p = tensors(params, classes, false)?;
    let mut out = Vec::with_capacity(x.nrows() * classes);
    for start in (0..x.nrows()).step_by(EVAL_CHUNK) {
        let end = (start + EVAL_CHUNK).min(x.nrows());
        let chunk = x.slice(ndarray::s![start..end, ..]);
        out.extend(forward(&p, chunk)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(Array2::from_shape_vec((x.nrows(), classes), out).expect("logits shape"))
}

/// Mean cross-entropy of one batch and its gradient with respect to every parameter, in
/// the flat vector's order.
pub fn loss_and_gradient(
    params: &[f32],
    classes: usize,
    x: ArrayView2<f32>,
    y: &[usize],
) -> Result<(f64, Vec<f32>)> {
    let p = tensors(params, classes, true)?;
    let loss = cross_entropy(&forward(&p, x)?, y)?;
    let grads = loss.backward()?;
    let mut g = Vec::with_capacity(params.len());
    for t in &p {
        match grads.get(t) {
            Some(grad) => g.extend(grad.flatten_all()?.to_vec1::<f32>()?),
            None => g.extend(std::iter::repeat_n(0.0, t.elem_count())),
        }
    }
    Ok((f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?), g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_task_specs() {
        assert_eq!(
            param_count(10) as u64,
            fl_core::ModelSpec::CnnMnist { classes: 10 }.param_count()
        );
        assert_eq!(param_count(10), 431_080);
    }

    /// The same network from candle's own layers, channel-first as PyTorch lays it out:
    /// their forward passes are right; only their backward passes are avoided.
    fn reference_logits(params: &[f32], x: ArrayView2<f32>) -> Result<Tensor> {
        let p = tensors(params, 10, false)?;
        let pixels: Vec<f32> = x.iter().copied().collect();
        let x = Tensor::from_vec(pixels, (x.nrows(), 1, SIDE, SIDE), &Device::Cpu)?;
        let conv = |x: &Tensor, w: &Tensor, b: &Tensor| -> Result<Tensor> {
            x.conv2d(w, 0, 1, 1, 1)?
                .broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?
                .relu()?
                .max_pool2d(2)
        };
        let h = conv(&conv(&x, &p[0], &p[1])?, &p[2], &p[3])?.flatten_from(1)?;
        let h = h.matmul(&p[4].t()?)?.broadcast_add(&p[5])?.relu()?;
        h.matmul(&p[6].t()?)?.broadcast_add(&p[7])
    }

    #[test]
    fn the_forward_pass_is_candles_conv2d_and_max_pool2d_network() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let x = Array2::from_shape_fn((5, 784), |_| rng.random_range(0.0f32..1.0));
        let params = init(10, &mut rng);
        let ours = logits(&params, 10, x.view()).unwrap();
        let reference = reference_logits(&params, x.view())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(ours.len(), reference.len());
        for (a, b) in ours.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}
