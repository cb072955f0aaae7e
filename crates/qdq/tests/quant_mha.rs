//! `QuantMultiHeadAttention`: equal, bit for bit and in its gradients, to the
//! functional ops on manually fake-quantized tensors; shape errors named.

mod common;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::linear;
use common::{Lcg, bits, desc, dev, tensor, values};
use qdq::Amax;
use qdq::nn::{QuantLinear, QuantMhaInput, QuantMultiHeadAttention, QuantMultiHeadAttentionConfig};
use qdq::tensor_quant::fake_tensor_quant;

fn fq<const D: usize>(x: Tensor<D>, amax: Tensor<D>, num_bits: u32) -> Tensor<D> {
    fake_tensor_quant(x, amax, num_bits, false, false).unwrap()
}

/// The dynamic per-tensor amax: max |x| (constant for autodiff, as the quantizer's).
fn tensor_amax<const D: usize>(x: &Tensor<D>) -> Tensor<D> {
    x.clone().detach().abs().max().reshape([1; D])
}

fn scalar<const D: usize>(v: f32, device: &Device) -> Tensor<D> {
    Tensor::<1>::from_floats([v], device).reshape([1; D])
}

fn rand<const D: usize>(seed: u64, shape: [usize; D], device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    tensor(Lcg(seed).vec(n, -1.5, 1.5), shape, device)
}

/// `QuantLinear` by hand: dynamic 8-bit input, 8-bit per-row weight.
fn qlinear(x: Tensor<3>, l: &QuantLinear) -> Tensor<3> {
    let w = l.weight.val();
    let [rows, _] = w.dims();
    let amax_w = w.clone().detach().abs().max_dim(1).reshape([rows, 1]);
    let wq = fq(w, amax_w, 8);
    linear(
        fq(x.clone(), tensor_amax(&x), 8),
        wq.transpose(),
        l.bias.as_ref().map(|b| b.val()),
    )
}

fn heads(x: Tensor<3>, h: usize) -> Tensor<4> {
    let [b, s, d] = x.dims();
    x.reshape([b, s, h, d / h]).swap_dims(1, 2)
}

/// The attention by hand, with the matmul quantizers' static amaxes `[q, k, v, a]`
/// at `bits`.
fn reference(
    m: &QuantMultiHeadAttention,
    q: Tensor<3>,
    kv: Tensor<3>,
    mask: Tensor<2, Bool>,
    amax: [f32; 4],
    bits: u32,
) -> Tensor<3> {
    let d = q.device();
    let [b, s_q, d_model] = q.dims();
    let s_k = kv.dims()[1];
    let h = m.n_heads;
    let qh = heads(qlinear(q, &m.query), h);
    let kh = heads(qlinear(kv.clone(), &m.key), h);
    let vh = heads(qlinear(kv, &m.value), h);
    let scores = fq(qh, scalar(amax[0], &d), bits)
        .matmul(fq(kh.transpose(), scalar(amax[1], &d), bits))
        .div_scalar(((d_model / h) as f32).sqrt())
        .mask_fill(mask.reshape([b, 1, 1, s_k]), -1.0e4);
    let probs = softmax(scores, 3);
    let ctx = fq(probs, scalar(amax[3], &d), bits)
        .matmul(fq(vh, scalar(amax[2], &d), bits))
        .swap_dims(1, 2)
        .reshape([b, s_q, d_model]);
    qlinear(ctx, &m.output)
}

fn layer(device: &Device, amax: [f32; 4], bits: u32) -> QuantMultiHeadAttention {
    let mut m = QuantMultiHeadAttentionConfig::new(8, 2)
        .init(device)
        .unwrap();
    let qs = [
        &mut m.matmul_q_input_quantizer,
        &mut m.matmul_k_input_quantizer,
        &mut m.matmul_v_input_quantizer,
        &mut m.matmul_a_input_quantizer,
    ];
    for (q, a) in qs.into_iter().zip(amax) {
        *q = qdq::nn::TensorQuantizer::new(&desc(bits, None), device).unwrap();
        q.set_amax(&Amax::scalar(a)).unwrap();
    }
    m
}

fn mask(device: &Device) -> Tensor<2, Bool> {
    // Batch 0 pads its last key, batch 1 none.
    Tensor::<2, Int>::from_ints([[0, 0, 0, 1], [0, 0, 0, 0]], device).bool()
}

#[test]
fn equals_functional_ops_on_fake_quantized_tensors() {
    let d = dev();
    // Amaxes that clip: Q and K beyond 0.8, probabilities beyond 0.3 (4-bit).
    for (amax, bits) in [([0.8, 0.8, 1.0, 0.3], 4), ([2.0, 2.5, 3.0, 1.0], 8)] {
        let m = layer(&d, amax, bits);
        let (q, kv) = (rand(1, [2, 3, 8], &d), rand(2, [2, 4, 8], &d));
        let got = m
            .forward(QuantMhaInput::new(q.clone(), kv.clone(), kv.clone()).mask_pad(mask(&d)))
            .unwrap();
        assert_eq!(got.weights.dims(), [2, 2, 3, 4]);
        // Padded keys get no attention.
        let w = values(got.weights.clone().slice([0..1, 0..2, 0..3, 3..4]));
        assert!(w.iter().all(|&p| p < 1e-30), "{w:?}");
        let want = reference(&m, q, kv, mask(&d), amax, bits);
        assert_eq!(got.context.dims(), [2, 3, 8]);
        assert_eq!(bits_of(got.context), bits_of(want));
    }
}

fn bits_of(t: Tensor<3>) -> Vec<u32> {
    bits(&values(t))
}

#[test]
fn gradients_equal_functional_ops_straight_through() {
    let ad = dev().autodiff();
    let amax = [0.8, 0.8, 1.0, 0.3];
    let m = layer(&ad, amax, 4);
    let q = rand(3, [2, 3, 8], &ad).require_grad();
    let kv = rand(4, [2, 4, 8], &ad).require_grad();
    let input = QuantMhaInput::new(q.clone(), kv.clone(), kv.clone()).mask_pad(mask(&ad));
    let g = m.forward(input).unwrap().context.sum().backward();
    let q2 = q.clone().detach().require_grad();
    let kv2 = kv.clone().detach().require_grad();
    let g2 = reference(&m, q2.clone(), kv2.clone(), mask(&ad), amax, 4)
        .sum()
        .backward();
    let grad = |t: &Tensor<3>, g| bits(&values(t.grad(g).unwrap()));
    assert_eq!(grad(&q, &g), grad(&q2, &g2));
    assert_eq!(grad(&kv, &g), grad(&kv2, &g2));
    // Every projection's weight and bias is trained.
    for l in [&m.query, &m.key, &m.value, &m.output] {
        let gw = values(l.weight.grad(&g).unwrap());
        assert!(gw.iter().any(|v| *v != 0.0));
        assert_eq!(
            bits(&gw),
            bits(&values(l.weight.grad(&g2).unwrap())),
            "weight gradient"
        );
    }
    // Clipping passes no gradient: with every quantizer clipping at a tiny amax,
    // the query gets none (scores are constant).
    let m = layer(&ad, [1e-3, 1e-3, 1e-3, 1e-3], 8);
    let x = rand(5, [1, 3, 8], &ad).require_grad();
    let g = m
        .forward(QuantMhaInput::self_attn(x.clone()))
        .unwrap()
        .context
        .sum()
        .backward();
    assert!(
        m.query
            .weight
            .grad(&g)
            .is_none_or(|t| values(t).iter().all(|v| *v == 0.0))
    );
}

#[test]
fn bad_shapes_and_heads_are_named_errors() {
    let d = dev();
    let err = QuantMultiHeadAttentionConfig::new(10, 4)
        .init(&d)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("d_model = 10 and n_heads = 4"),
        "{err}"
    );
    assert!(QuantMultiHeadAttentionConfig::new(8, 0).init(&d).is_err());
    let m = QuantMultiHeadAttentionConfig::new(8, 2).init(&d).unwrap();
    let err = m
        .forward(QuantMhaInput::new(
            rand(1, [2, 3, 8], &d),
            rand(2, [2, 4, 8], &d),
            rand(3, [2, 5, 8], &d),
        ))
        .err()
        .unwrap();
    assert!(err.to_string().contains("value [2, 5, 8]"), "{err}");
    let bad_mask = Tensor::<2, Int>::zeros([2, 3], &d).bool();
    let err = m
        .forward(QuantMhaInput::self_attn(rand(1, [2, 4, 8], &d)).mask_pad(bad_mask))
        .err()
        .unwrap();
    assert!(err.to_string().contains("mask_pad Some([2, 3])"), "{err}");
}
