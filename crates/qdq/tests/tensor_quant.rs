//! `tensor_quant`, `fake_tensor_quant`, `scaled_e4m3` and `clip` on burn tensors,
//! against values worked out from the spec.

// The seed values are quoted digit for digit from the spec, beyond f32 precision.
#![allow(clippy::excessive_precision)]

mod common;

use burn::prelude::*;
use common::{Lcg, bits, dev, tensor, values};
use qdq::Error;
use qdq::tensor_quant::{
    IntRange, clip, fake_tensor_quant, kernel, layout::AmaxLayout, ops, scaled_e4m3, tensor_quant,
};

/// `torch.rand(10)` with seed 12345, as the seed document and spec 7 give them.
const SEED_X: [f32; 10] = [
    0.981718183,
    0.879606545,
    0.992143452,
    0.461067259,
    0.0832159519,
    0.178431094,
    0.367431521,
    0.567649722,
    0.337606728,
    0.211946607,
];

#[test]
fn seed_example_is_reproduced_exactly() {
    let d = dev();
    let x = Tensor::<1>::from_floats(SEED_X, &d);
    let amax = x.clone().abs().max();
    assert_eq!(amax.clone().into_scalar::<f32>(), 0.992143452);
    let (q, scale) = tensor_quant(x.clone(), amax.clone(), 8, false, true).unwrap();
    assert_eq!(
        values(q),
        vec![
            126.0, 113.0, 127.0, 59.0, 11.0, 23.0, 47.0, 73.0, 43.0, 27.0
        ]
    );
    let scale = scale.into_scalar::<f32>();
    assert_eq!(format!("{scale:.8}"), "128.00567627");
    assert_eq!(scale, 127.0f32 / 0.992143452f32);
    let fq = values(fake_tensor_quant(x, amax, 8, false, true).unwrap());
    let printed: Vec<String> = fq.iter().map(|v| format!("{v:.4}")).collect();
    assert_eq!(
        printed,
        [
            "0.9843", "0.8828", "0.9921", "0.4609", "0.0859", "0.1797", "0.3672", "0.5703",
            "0.3359", "0.2109"
        ]
    );
    // Each fake value is code / scale in f32.
    assert_eq!(fq[1], 113.0 / scale);
}

#[test]
fn rounds_half_to_even_and_keeps_negative_zero() {
    let d = dev();
    // amax 127 -> scale exactly 1, so x*scale == x.
    let x = Tensor::<1>::from_floats([0.5f32, 1.5, 2.5, -2.5, -0.5, -0.3, 3.5, -0.0], &d);
    let amax = Tensor::<1>::from_floats([127.0f32], &d);
    let out = values(fake_tensor_quant(x, amax, 8, false, true).unwrap());
    assert_eq!(
        bits(&out),
        bits(&[0.0, 2.0, 2.0, -2.0, -0.0, -0.0, 4.0, -0.0])
    );
}

#[test]
fn narrow_and_full_range_and_unsigned_bounds() {
    let d = dev();
    let amax = || Tensor::<1>::from_floats([1.0f32], &d);
    let x =
        || Tensor::<1>::from_floats([-1.01f32, -2.0, 2.0, f32::NEG_INFINITY, f32::INFINITY], &d);
    let (narrow, _) = tensor_quant(x(), amax(), 8, false, true).unwrap();
    assert_eq!(values(narrow), vec![-127.0, -127.0, 127.0, -127.0, 127.0]);
    let (full, _) = tensor_quant(x(), amax(), 8, false, false).unwrap();
    // -1.01 * 127 = -128.27 -> -128 fits the full range.
    assert_eq!(values(full), vec![-128.0, -128.0, 127.0, -128.0, 127.0]);
    // unsigned 4-bit: max_bound 15, amax 1.5 -> scale 10.
    let x = Tensor::<1>::from_floats([0.0f32, 0.04, 0.05, 0.15, 0.25, 1.6], &d);
    let (q, scale) = tensor_quant(x, Tensor::from_floats([1.5f32], &d), 4, true, false).unwrap();
    assert_eq!(scale.into_scalar::<f32>(), 10.0);
    // 0.05*10 = 0.5 -> 0 (even); 0.15*10 = 1.5 -> 2; 0.25*10 = 2.5 -> 2; 16 -> 15.
    assert_eq!(values(q), vec![0.0, 0.0, 0.0, 2.0, 2.0, 15.0]);
}

#[test]
fn per_channel_with_tiny_and_zero_channels() {
    let d = dev();
    // Spec 7: tiny amax [1, 1e-26, 1] per axis -> channel 1 all zeros; plus a zero channel.
    let x = tensor(vec![0.5, -0.25, 0.3, -0.7, 0.1, 0.9, -0.2, 0.4], [4, 2], &d);
    let amax = tensor(vec![1.0, 1e-26, 0.0, 0.5], [4, 1], &d);
    let (q, scale) = tensor_quant(x.clone(), amax.clone(), 8, false, true).unwrap();
    assert_eq!(values(scale), vec![127.0, 1.0, 1.0, 254.0]);
    let q = values(q);
    assert_eq!(
        bits(&q),
        bits(&[64.0, -32.0, 0.0, -0.0, 0.0, 0.0, -51.0, 102.0])
    );
    let fq = values(fake_tensor_quant(x, amax, 8, false, true).unwrap());
    assert_eq!(bits(&fq[2..6]), bits(&[0.0, -0.0, 0.0, 0.0]));
    assert_eq!(fq[0], 64.0 / 127.0);
    assert_eq!(fq[6], -51.0 / 254.0);
}

#[test]
fn nan_inputs_propagate_and_bad_arguments_are_typed_errors() {
    let d = dev();
    let x = Tensor::<1>::from_floats([f32::NAN, 1.0], &d);
    let out =
        values(fake_tensor_quant(x, Tensor::from_floats([1.0f32], &d), 8, false, true).unwrap());
    assert!(out[0].is_nan());
    assert_eq!(out[1], 1.0);

    let x = || Tensor::<1>::from_floats([0.5f32, -0.25], &d);
    let one = || Tensor::<1>::from_floats([1.0f32], &d);
    assert_eq!(
        fake_tensor_quant(x(), one(), 8, true, false).unwrap_err(),
        Error::NegativeInputUnsigned { min: -0.25 }
    );
    assert_eq!(
        fake_tensor_quant(x(), Tensor::from_floats([-1.0f32], &d), 8, false, true).unwrap_err(),
        Error::NegativeAmax { min: -1.0 }
    );
    assert_eq!(
        fake_tensor_quant(x(), Tensor::from_floats([f32::NAN], &d), 8, false, true).unwrap_err(),
        Error::NanAmax
    );
    assert!(matches!(
        fake_tensor_quant(
            x(),
            Tensor::from_floats([1.0f32, 2.0, 3.0], &d),
            8,
            false,
            true
        ),
        Err(Error::AmaxShape { .. })
    ));
    for (bits_, unsigned) in [(0, false), (17, false), (1, false), (0, true)] {
        assert_eq!(
            fake_tensor_quant(x(), one(), bits_, unsigned, true).unwrap_err(),
            Error::InvalidNumBits {
                num_bits: bits_,
                unsigned
            }
        );
    }
    // Unsigned 1-bit is a valid grid {0, 1}.
    let y = Tensor::<1>::from_floats([0.2f32, 0.6, 3.0], &d);
    assert_eq!(
        values(fake_tensor_quant(y, one(), 1, true, false).unwrap()),
        vec![0.0, 1.0, 1.0]
    );
}

/// Every format and layout: the fused kernel and the burn op chain agree bit for bit.
#[test]
fn fused_kernel_equals_op_chain_bit_for_bit() {
    let d = dev();
    let mut rng = Lcg(7);
    let shape = [6, 5, 3, 3];
    let n: usize = shape.iter().product();
    for (num_bits, unsigned, narrow) in [
        (8, false, true),
        (8, false, false),
        (4, false, false),
        (8, true, false),
        (3, true, true),
        (16, false, false),
        (2, false, true),
    ] {
        let lo = if unsigned { 0.0 } else { -3.0 };
        let mut x = rng.vec(n, lo, 3.0);
        x[0] = f32::NAN;
        x[1] = f32::INFINITY;
        x[2] = if unsigned { 0.0 } else { f32::NEG_INFINITY };
        x[3] = -0.0;
        let per_channel = vec![1.5, 0.0, 2.5, 1e-30, 0.7, 3.0];
        for amax in [
            tensor(vec![2.0], [1, 1, 1, 1], &d),
            tensor(per_channel, [6, 1, 1, 1], &d),
        ] {
            let range = IntRange::new(num_bits, unsigned, narrow).unwrap();
            let xt = tensor(x.clone(), shape, &d);
            let chain = values(ops::fake_quant_chain(xt.clone(), amax.clone(), range));
            let fused =
                values(fake_tensor_quant(xt, amax.clone(), num_bits, unsigned, narrow).unwrap());
            assert_eq!(
                bits(&chain),
                bits(&fused),
                "bits={num_bits} unsigned={unsigned} narrow={narrow}"
            );
            // And the slice kernel directly, out of place.
            let mut out = vec![0.0; n];
            let layout = AmaxLayout::new(&shape, &amax.dims()).unwrap();
            kernel::fake_quant_into(&x, &mut out, &values(amax), &layout, range).unwrap();
            assert_eq!(bits(&out), bits(&fused));
        }
    }
}

#[test]
fn ste_gradient_is_inclusive_mask_and_forward_is_unchanged() {
    let d = dev().autodiff();
    let x = Tensor::<1>::from_floats([-2.0f32, -1.0, -0.3, 0.0, 1.0, 1.000_000_1, 2.0], &d)
        .require_grad();
    let amax = Tensor::<1>::from_floats([1.0f32], &d);
    let out = fake_tensor_quant(x.clone(), amax.clone(), 8, false, true).unwrap();
    let plain = fake_tensor_quant(x.clone().detach(), amax, 8, false, true).unwrap();
    assert_eq!(bits(&values(out.clone())), bits(&values(plain)));
    let g = backward_weighted(out, &d);
    assert_eq!(
        values(x.grad(&g).unwrap()),
        vec![0.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]
    );
}

#[test]
fn ste_per_channel_and_real_quant_gradients() {
    let d = dev().autodiff();
    let x = Tensor::<2>::from_floats([[0.5f32, 1.5], [0.5, 1.5]], &d).require_grad();
    let amax = Tensor::<2>::from_floats([[1.0f32], [2.0]], &d);
    let (q, scale) = tensor_quant(x.clone(), amax, 8, false, true).unwrap();
    assert_eq!(values(scale), vec![127.0, 63.5]);
    assert_eq!(values(q.clone()), vec![64.0, 127.0, 32.0, 95.0]);
    let g = q.sum().backward();
    assert_eq!(values(x.grad(&g).unwrap()), vec![1.0, 0.0, 1.0, 1.0]);
}

#[test]
fn clip_matches_spec_example_gradients() {
    let d = dev().autodiff();
    let x = Tensor::<1>::from_floats([-2.0f32, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], &d).require_grad();
    let lo = Tensor::<1>::from_floats([-1.0f32], &d).require_grad();
    let hi = Tensor::<1>::from_floats([1.0f32], &d).require_grad();
    let out = clip(x.clone(), lo.clone(), hi.clone()).unwrap();
    assert_eq!(
        values(out.clone()),
        vec![-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0]
    );
    let g = backward_weighted(out, &d);
    assert_eq!(
        values(x.grad(&g).unwrap()),
        vec![0.0, 0.0, 3.0, 4.0, 5.0, 0.0, 0.0]
    );
    assert_eq!(values(lo.grad(&g).unwrap()), vec![3.0]);
    assert_eq!(values(hi.grad(&g).unwrap()), vec![13.0]);
    let wide = Tensor::<1>::from_floats([-1.0f32, 1.0], &d);
    assert!(matches!(clip(x, wide, hi), Err(Error::Unsupported { .. })));
}

#[test]
fn e4m3_scaled_and_unscaled_grid() {
    let d = dev();
    // Spec 7's grid: -2 .. 1.8 step 0.2 (as float32 values of k * 0.2).
    let grid: Vec<f32> = (-10..10).map(|k| k as f32 * 0.2).collect();
    let unscaled = values(scaled_e4m3(tensor(grid.clone(), [4, 5], &d), None).unwrap());
    // Plain cast: 0.2 lies in [0.125, 0.25) with quantum 2^-6: 12.8 quanta -> 13 -> 0.203125.
    assert_eq!(unscaled[11], 0.203125);
    // 1.8 in [1, 2), quantum 0.125: 14.4 -> 14 -> 1.75; -2 is exact; 0 stays +0.
    assert_eq!(unscaled[19], 1.75);
    assert_eq!(unscaled[0], -2.0);
    assert_eq!(unscaled[10].to_bits(), 0.0f32.to_bits());
    // -1.4 in [1, 2): 11.2 -> 11 -> -1.375; 0.6 in [0.5, 1) quantum 1/16: 9.6 -> 10 -> 0.625.
    assert_eq!(unscaled[3], -1.375);
    assert_eq!(unscaled[13], 0.625);
    let amax = tensor(vec![2.0], [1, 1], &d);
    let scaled = values(scaled_e4m3(tensor(grid.clone(), [4, 5], &d), Some(amax)).unwrap());
    // scale 224: 0.2*224 = 44.8 in [32, 64) quantum 4: 11.2 -> 11 -> 44, /224.
    assert_eq!(scaled[11], 44.0 / 224.0);
    // 1.8*224 = 403.2 in [256, 448] quantum 32: 12.6 -> 13 -> 416.
    assert_eq!(scaled[19], 416.0 / 224.0);
    assert_eq!(scaled[0], -2.0);
}

#[test]
fn e4m3_tiny_inputs_zero_amax_and_gradient() {
    let d = dev();
    let x = Tensor::<1>::from_floats([-1e-30f32, 1e-8, 0.0, 0.5, -3.0], &d);
    let out = values(scaled_e4m3(x.clone(), Some(Tensor::from_floats([1.0f32], &d))).unwrap());
    // |x| < 2^-24 -> +0.0, even for a negative input.
    assert_eq!(bits(&out[..3]), bits(&[0.0, 0.0, 0.0]));
    assert_eq!(out[3], 0.5);
    assert_eq!(out[4], -1.0); // saturates at 448/448
    // amax 0: scale inf, every output 0 with the input's sign (x = 0 masked to +0).
    let zero = values(scaled_e4m3(x, Some(Tensor::from_floats([0.0f32], &d))).unwrap());
    assert_eq!(bits(&zero), bits(&[0.0, 0.0, 0.0, 0.0, -0.0]));

    let a = dev().autodiff();
    let x = Tensor::<1>::from_floats([-3.0f32, 0.5, 2.0, 2.5], &a).require_grad();
    let out = scaled_e4m3(x.clone(), Some(Tensor::from_floats([2.0f32], &a))).unwrap();
    let g = out.sum().backward();
    assert_eq!(values(x.grad(&g).unwrap()), vec![0.0, 1.0, 1.0, 0.0]);
}

/// Backward of `sum(out · [1, 2, ..., n])`: the distinct weights show which element
/// each gradient entry comes from.
fn backward_weighted(out: Tensor<1>, d: &Device) -> burn::tensor::Gradients {
    let n = out.dims()[0];
    let weights: Vec<f32> = (1..=n).map(|i| i as f32).collect();
    out.mul(Tensor::from_floats(weights.as_slice(), d))
        .sum()
        .backward()
}
