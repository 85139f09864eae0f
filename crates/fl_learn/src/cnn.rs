//! ByzFL's `cnn_mnist` on candle's CPU backend: every layer, forward and backward, is
//! candle's matrix products, gathers and reductions; this module lays the flat parameter
//! vector out as the model's tensors ([`fl_core::ModelSpec::CnnMnist`] documents the
//! order, PyTorch's) and reads the gradients back into one vector.
//!
//! The backward pass is written out layer by layer ([`backward`]) rather than left to
//! candle's automatic differentiation, and activations keep the batch as their last axis.
//! Three things in candle 0.9.2 made its own layers and autograd unfit here, each checked
//! by the tests below:
//! - `conv2d`'s backward pass computes the input's gradient with a direct
//!   `conv_transpose2d` loop (training 4.6 times slower than PyTorch's);
//! - `max_pool2d`'s backward pass multiplies the gradient of a window's maximum by the
//!   share of the window that is maximal (a quarter for a unique maximum), and the `max`
//!   reduction's passes the whole gradient to every element equal to the maximum, four
//!   times over in a window of blank image background;
//! - autograd allocates every gradient as zeros and adds into it, and computes the
//!   gradient of the input images that nothing reads: most of a training step.
//!
//! Convolutions are the im2col gather (`index_select` of whole batch rows) and one matrix
//! product; pooling takes each window's first maximum (`argmax_keepdim`, `gather`), as
//! PyTorch does, and its backward scatters the gradient back to it (`scatter_add`).

use candle_core::{Device, Result, Tensor};
use ndarray::{Array2, ArrayView2};
use rand::Rng;

/// Side of the input images.
pub const SIDE: usize = fl_core::CNN_MNIST_SIDE as usize;

/// Examples per forward pass when only logits are wanted: the largest buffer, the second
/// layer's im2col matrix, is then 26 MB, within what [`crate::train::tune_allocator`]
/// keeps in the heap.
const EVAL_CHUNK: usize = 200;

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

/// The parameter tensors, shaped as the matrices the layers multiply by: conv weights as
/// `(filters, inputs * 25)`, dense weights as `(out, in)`, biases as columns `(out, 1)`.
fn tensors(params: &[f32], classes: usize) -> Result<Vec<Tensor>> {
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
            Tensor::from_slice(slice, (shape[0], n / shape[0]), &Device::Cpu)
        })
        .collect()
}

/// The im2col gather of a valid 5x5 convolution over a `side x side` image of `channels`
/// channels, stored channel-major (CHW) with the batch as the last axis, for an output of
/// even side that is max-pooled 2x2 next. Row `k * P + r` of the gathered matrix is kernel
/// entry `k = c * 25 + ky * 5 + kx` (PyTorch's weight order) at output position `r`, the
/// positions ordered window by window (pooled row, pooled column, then the four
/// positions of the window) so that pooling reduces one axis. Each entry is the index of
/// the input row it reads.
fn unfold_index(side: usize, channels: usize) -> Result<Tensor> {
    let pooled = (side - 4) / 2;
    let mut idx = Vec::with_capacity(channels * 25 * 4 * pooled * pooled);
    for c in 0..channels {
        for ky in 0..5 {
            for kx in 0..5 {
                for py in 0..pooled {
                    for px in 0..pooled {
                        for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            let (y, x) = (2 * py + dy + ky, 2 * px + dx + kx);
                            idx.push(((c * side + y) * side + x) as u32);
                        }
                    }
                }
            }
        }
    }
    let len = idx.len();
    Tensor::from_vec(idx, len, &Device::Cpu)
}

/// What one convolution layer keeps for its backward pass.
struct ConvCache {
    /// The im2col matrix, `(inputs * 25, positions * batch)`.
    cols: Tensor,
    /// Which of the four positions of each window was its maximum, `(filters, windows, 1,
    /// batch)`.
    argmax: Tensor,
    /// The layer's output after ReLU, `(filters * windows, batch)`.
    out: Tensor,
}

/// A valid 5x5 convolution with bias, 2x2 max-pooling (each window's first maximum) and
/// ReLU of `x`, `(channels * side * side, batch)`. ReLU commutes with the maximum, so it
/// runs on the pooled quarter. Returns `(filters * pooled * pooled, batch)`, CHW again.
fn conv_layer(
    x: &Tensor,
    side: usize,
    channels: usize,
    w: &Tensor,
    b: &Tensor,
    index: &Tensor,
) -> Result<ConvCache> {
    let batch = x.dim(1)?;
    let windows = ((side - 4) / 2).pow(2);
    let filters = w.dim(0)?;
    let cols = x
        .index_select(index, 0)?
        .reshape((channels * 25, windows * 4 * batch))?;
    let z = w
        .matmul(&cols)?
        .broadcast_add(b)?
        .reshape((filters, windows, 4, batch))?;
    let argmax = z.argmax_keepdim(2)?;
    let out = z
        .gather(&argmax, 2)?
        .relu()?
        .reshape((filters * windows, batch))?;
    Ok(ConvCache { cols, argmax, out })
}

/// The backward pass of [`conv_layer`]: from the gradient of its output, the gradients of
/// its weights and bias, and of its input when `x_rows` (the input's row count) is given.
fn conv_backward(
    cache: &ConvCache,
    grad_out: &Tensor,
    w: &Tensor,
    index: &Tensor,
    x_rows: Option<usize>,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let (filters, windows, _, batch) = cache.argmax.dims4()?;
    let grad_pooled = (grad_out * cache.out.sign()?)?.reshape((filters, windows, 1, batch))?;
    let grad_z = Tensor::zeros((filters, windows, 4, batch), grad_out.dtype(), &Device::Cpu)?
        .scatter_add(&cache.argmax, &grad_pooled, 2)?
        .reshape((filters, windows * 4 * batch))?;
    let grad_w = grad_z.matmul(&cache.cols.t()?)?;
    let grad_b = grad_z.sum_keepdim(1)?;
    let grad_x = match x_rows {
        Some(rows) => {
            let grad_cols = w.t()?.matmul(&grad_z)?.reshape((index.dim(0)?, batch))?;
            Some(
                Tensor::zeros((rows, batch), grad_out.dtype(), &Device::Cpu)?
                    .index_add(index, &grad_cols, 0)?,
            )
        }
        None => None,
    };
    Ok((grad_w, grad_b, grad_x))
}

/// The forward pass of a batch of flattened images, `x` `(examples, 784)`, keeping what
/// the backward pass needs. Logits are `(classes, examples)`.
struct Forward {
    conv1: ConvCache,
    conv2: ConvCache,
    /// fc1's output after ReLU, `(500, examples)`.
    h3: Tensor,
    logits: Tensor,
}

/// The two im2col index tables.
fn indexes() -> Result<(Tensor, Tensor)> {
    Ok((unfold_index(SIDE, 1)?, unfold_index(12, 20)?))
}

fn forward(p: &[Tensor], x: ArrayView2<f32>, index: &(Tensor, Tensor)) -> Result<Forward> {
    assert_eq!(x.ncols(), SIDE * SIDE, "cnn_mnist takes 28x28 images");
    // Pixels as rows, examples as columns.
    let pixels: Vec<f32> = x.t().iter().copied().collect();
    let x = Tensor::from_vec(pixels, (SIDE * SIDE, x.nrows()), &Device::Cpu)?;
    let conv1 = conv_layer(&x, SIDE, 1, &p[0], &p[1], &index.0)?; // (20 * 144, n)
    let conv2 = conv_layer(&conv1.out, 12, 20, &p[2], &p[3], &index.1)?; // (50 * 16, n)
                                                                         // (50 * 16) rows channel-major: PyTorch's flattening of (50, 4, 4).
    let h3 = p[4].matmul(&conv2.out)?.broadcast_add(&p[5])?.relu()?;
    let logits = p[6].matmul(&h3)?.broadcast_add(&p[7])?;
    Ok(Forward {
        conv1,
        conv2,
        h3,
        logits,
    })
}

/// Logits, `examples x classes`, computed in chunks.
pub fn logits(params: &[f32], classes: usize, x: ArrayView2<f32>) -> Result<Array2<f32>> {
    let p = tensors(params, classes)?;
    let index = indexes()?;
    let mut out = Array2::zeros((x.nrows(), classes));
    for start in (0..x.nrows()).step_by(EVAL_CHUNK) {
        let end = (start + EVAL_CHUNK).min(x.nrows());
        let chunk = x.slice(ndarray::s![start..end, ..]);
        let l = forward(&p, chunk, &index)?.logits.to_vec2::<f32>()?;
        for (c, row) in l.iter().enumerate() {
            for (i, v) in row.iter().enumerate() {
                out[[start + i, c]] = *v;
            }
        }
    }
    Ok(out)
}

/// Mean softmax cross-entropy of `(classes, examples)` logits and its gradient with
/// respect to them, stable via log-sum-exp.
fn cross_entropy(logits: &Tensor, y: &[usize]) -> Result<(f64, Tensor)> {
    let (classes, n) = logits.dims2()?;
    let l = logits.t()?.to_vec2::<f32>()?;
    let mut grad = vec![0f32; classes * n];
    let mut loss = 0f64;
    for (i, (row, &label)) in l.iter().zip(y).enumerate() {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let exp: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        loss -= f64::from((exp[label] / sum).max(f32::MIN_POSITIVE).ln());
        for (c, e) in exp.iter().enumerate() {
            let target = if c == label { 1.0 } else { 0.0 };
            grad[c * n + i] = (e / sum - target) / n as f32;
        }
    }
    Ok((
        loss / n.max(1) as f64,
        Tensor::from_vec(grad, (classes, n), &Device::Cpu)?,
    ))
}

/// Mean cross-entropy of one batch and its gradient with respect to every parameter, in
/// the flat vector's order.
pub fn loss_and_gradient(
    params: &[f32],
    classes: usize,
    x: ArrayView2<f32>,
    y: &[usize],
) -> Result<(f64, Vec<f32>)> {
    let p = tensors(params, classes)?;
    let index = indexes()?;
    let f = forward(&p, x, &index)?;
    let (loss, grad_logits) = cross_entropy(&f.logits, y)?;
    // fc2, fc1.
    let grad_w4 = grad_logits.matmul(&f.h3.t()?)?;
    let grad_b4 = grad_logits.sum_keepdim(1)?;
    let grad_z3 = (p[6].t()?.matmul(&grad_logits)? * f.h3.sign()?)?;
    let grad_w3 = grad_z3.matmul(&f.conv2.out.t()?)?;
    let grad_b3 = grad_z3.sum_keepdim(1)?;
    let grad_h2 = p[4].t()?.matmul(&grad_z3)?;
    // conv2 (with its input's gradient), conv1 (the images need none).
    let rows1 = f.conv1.out.dim(0)?;
    let (grad_w2, grad_b2, grad_h1) =
        conv_backward(&f.conv2, &grad_h2, &p[2], &index.1, Some(rows1))?;
    let grad_h1 = grad_h1.expect("asked for");
    let (grad_w1, grad_b1, _) = conv_backward(&f.conv1, &grad_h1, &p[0], &index.0, None)?;
    let mut g = Vec::with_capacity(params.len());
    for t in [
        grad_w1, grad_b1, grad_w2, grad_b2, grad_w3, grad_b3, grad_w4, grad_b4,
    ] {
        g.extend(t.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok((loss, g))
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
        let p = tensors(params, 10)?;
        let pixels: Vec<f32> = x.iter().copied().collect();
        let x = Tensor::from_vec(pixels, (x.nrows(), 1, SIDE, SIDE), &Device::Cpu)?;
        let conv = |x: &Tensor, w: &Tensor, b: &Tensor, inputs: usize| -> Result<Tensor> {
            x.conv2d(&w.reshape((w.dim(0)?, inputs, 5, 5))?, 0, 1, 1, 1)?
                .broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?
                .relu()?
                .max_pool2d(2)
        };
        let h = conv(&conv(&x, &p[0], &p[1], 1)?, &p[2], &p[3], 20)?.flatten_from(1)?;
        let h = h
            .matmul(&p[4].t()?)?
            .broadcast_add(&p[5].flatten_all()?)?
            .relu()?;
        h.matmul(&p[6].t()?)?.broadcast_add(&p[7].flatten_all()?)
    }

    #[test]
    fn logits_in_chunks_are_each_examples_own() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let x = Array2::from_shape_fn((EVAL_CHUNK + 3, 784), |_| rng.random_range(0.0f32..1.0));
        let params = init(10, &mut rng);
        let all = logits(&params, 10, x.view()).unwrap();
        for i in [0, EVAL_CHUNK - 1, EVAL_CHUNK, EVAL_CHUNK + 2] {
            let one = logits(&params, 10, x.slice(ndarray::s![i..=i, ..])).unwrap();
            for (a, b) in all.row(i).iter().zip(one.row(0)) {
                assert!((a - b).abs() < 1e-5, "example {i}: {a} vs {b}");
            }
        }
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
