//! Quantized instance norm and recurrent layers: each equals the float op on manually
//! fake-quantized tensors bit for bit (the recurrent ones with the reference's fused
//! `cat([x, h])` / `cat([W_ih, W_hh])` scheme), equals burn's float layer with its
//! quantizers disabled, passes straight-through gradients, calibrates per layer and
//! direction under the reference's names, and round-trips through safetensors.

mod common;

use burn::module::{Module, Param};
use burn::nn::{
    BiLstmConfig, GruConfig, InstanceNormConfig, LstmConfig, LstmState, RnnConfig,
    activation::ActivationConfig,
};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::module::linear;
use common::{Lcg, bits, desc, dev, tensor, values};
use qdq::calib::HistogramMethod;
use qdq::nn::*;
use qdq::tensor_quant::fake_tensor_quant;
use qdq::{Amax, Error};

// ---------------------------------------------------------------- helpers

/// The replacement table is process-wide: tests that switch it run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn fq<const D: usize>(x: Tensor<D>, amax: Tensor<D>, num_bits: u32) -> Tensor<D> {
    fake_tensor_quant(x, amax, num_bits, false, false).unwrap()
}

fn tensor_amax<const D: usize>(x: &Tensor<D>) -> Tensor<D> {
    x.clone().abs().max().reshape([1; D])
}

/// Per-row amax of a matrix, `[rows, 1]`.
fn row_amax(x: &Tensor<2>) -> Tensor<2> {
    x.clone().abs().max_dim(1)
}

fn rand<const D: usize>(seed: u64, shape: [usize; D], lo: f32, hi: f32) -> Tensor<D> {
    let n = shape.iter().product();
    tensor(Lcg(seed).vec(n, lo, hi), shape, &dev())
}

fn assert_bits<const D: usize>(got: Tensor<D>, want: Tensor<D>) {
    assert_eq!(got.dims(), want.dims());
    assert_eq!(bits(&values(got)), bits(&values(want)));
}

fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    values(a)
        .iter()
        .zip(values(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// How the test's reference quantizes: static per-tensor amaxes, or dynamic (max |·|,
/// per row for the weight).
#[derive(Clone, Copy)]
enum Q {
    Static { input: f32, weight: f32, bits: u32 },
    Dynamic,
}

/// One step of torch's recurrence on `q(cat[x, h])` and `q(cat[W_ih, W_hh])`, written
/// from torch's equations.
fn ref_step(
    mode: RnnMode,
    w: &RnnCellWeights,
    q: Q,
    x: Tensor<2>,
    h: Tensor<2>,
    c: Tensor<2>,
) -> (Tensor<2>, Tensor<2>) {
    let (di, dh) = w.sizes();
    let xh = Tensor::cat(vec![x, h.clone()], 1);
    let wc = Tensor::cat(vec![w.weight_ih.val(), w.weight_hh.val()], 1);
    let (xh, wc) = match q {
        Q::Static {
            input,
            weight,
            bits,
        } => (
            fq(xh, tensor(vec![input], [1, 1], &dev()), bits),
            fq(wc, tensor(vec![weight], [1, 1], &dev()), bits),
        ),
        Q::Dynamic => {
            let a = tensor_amax(&xh);
            let r = row_amax(&wc);
            (fq(xh, a, 8), fq(wc, r, 8))
        }
    };
    let gi = linear(
        xh.clone().narrow(1, 0, di),
        wc.clone().narrow(1, 0, di).transpose(),
        w.bias_ih.as_ref().map(|b| b.val()),
    );
    let gh = linear(
        xh.narrow(1, di, dh),
        wc.narrow(1, di, dh).transpose(),
        w.bias_hh.as_ref().map(|b| b.val()),
    );
    let g = |t: &Tensor<2>, k: usize| t.clone().narrow(1, k * dh, dh);
    match mode {
        RnnMode::Lstm => {
            let s = gi + gh;
            let c2 = sigmoid(g(&s, 1)) * c + sigmoid(g(&s, 0)) * tanh(g(&s, 2));
            (sigmoid(g(&s, 3)) * tanh(c2.clone()), c2)
        }
        RnnMode::Gru => {
            let r = sigmoid(g(&gi, 0) + g(&gh, 0));
            let z = sigmoid(g(&gi, 1) + g(&gh, 1));
            let n = tanh(g(&gi, 2) + r * g(&gh, 2));
            (n * z.clone().neg().add_scalar(1.0) + z * h, c)
        }
        RnnMode::RnnTanh => (tanh(gi + gh), c),
        RnnMode::RnnRelu => (relu(gi + gh), c),
    }
}

/// torch's multi-layer recurrence over `[seq, batch, d_input]` from zero state.
fn ref_run(
    mode: RnnMode,
    cells: &[RnnCellWeights],
    layers: usize,
    dirs: usize,
    q: Q,
    x: Tensor<3>,
) -> Tensor<3> {
    let [seq, batch, _] = x.dims();
    let mut input = x;
    for l in 0..layers {
        let mut outs = Vec::new();
        for d in 0..dirs {
            let w = &cells[l * dirs + d];
            let dh = w.sizes().1;
            let mut h = Tensor::<2>::zeros([batch, dh], &dev());
            let mut c = h.clone();
            let mut ys = vec![None; seq];
            let order: Vec<usize> = if d == 0 {
                (0..seq).collect()
            } else {
                (0..seq).rev().collect()
            };
            for t in order {
                let xt: Tensor<2> = input.clone().narrow(0, t, 1).squeeze_dim(0);
                (h, c) = ref_step(mode, w, q, xt, h, c);
                ys[t] = Some(h.clone());
            }
            outs.push(Tensor::<2>::stack::<3>(
                ys.into_iter().map(Option::unwrap).collect(),
                0,
            ));
        }
        input = Tensor::cat(outs, 2);
    }
    input
}

// ------------------------------------------------------- instance norm

#[test]
fn instance_norm_2d_equals_float_norm_on_quantized_input() {
    let d = dev();
    let mut m = QuantInstanceNorm2dConfig::new(3)
        .with_quant_desc_input(desc(4, None))
        .init(&d)
        .unwrap();
    // torch's default: no affine parameters.
    assert!(m.norm.gamma.is_none() && !m.norm.affine);
    let x = rand(1, [2, 3, 4, 5], -2.0, 2.0);
    let float = InstanceNormConfig::new(3).with_affine(false).init(&d);
    // Dynamic amax first, then a static one that clips.
    assert_bits(
        m.forward(x.clone()),
        float.forward(fq(x.clone(), tensor_amax(&x), 4)),
    );
    m._input_quantizer.set_amax(&Amax::scalar(1.0)).unwrap();
    let want = float.forward(fq(x.clone(), tensor(vec![1.0], [1; 4], &d), 4));
    assert_bits(m.try_forward(x.clone()).unwrap(), want.clone());
    // A clipping amax changes the output.
    assert!(max_diff(want, float.forward(x)) > 1e-2);
}

#[test]
fn instance_norm_1d_3d_affine_and_shape_errors() {
    let d = dev();
    let mut m1 = QuantInstanceNorm1dConfig::new(2)
        .with_affine(true)
        .init(&d)
        .unwrap();
    m1.norm.gamma = Some(Param::from_tensor(tensor(vec![0.5, 2.0], [2], &d)));
    m1.norm.beta = Some(Param::from_tensor(tensor(vec![-1.0, 0.25], [2], &d)));
    let x = rand(2, [3, 2, 7], -1.0, 3.0);
    let want = m1.norm.forward(fq(x.clone(), tensor_amax(&x), 8));
    assert_bits(m1.forward(x), want);

    let m3 = QuantInstanceNorm3dConfig::new(2)
        .with_epsilon(1e-3)
        .init(&d)
        .unwrap();
    let y = rand(3, [1, 2, 3, 4, 2], -5.0, 5.0);
    let want = InstanceNormConfig::new(2)
        .with_affine(false)
        .with_epsilon(1e-3)
        .init(&d)
        .forward(fq(y.clone(), tensor_amax(&y), 8));
    assert_bits(m3.forward(y), want);

    let err = m3
        .try_forward(rand(4, [1, 3, 2, 2, 2], 0.0, 1.0))
        .unwrap_err();
    assert!(
        matches!(&err, Error::InputShape { layer: "QuantInstanceNorm3d", got, .. } if got == &[1, 3, 2, 2, 2]),
        "{err}"
    );
}

#[test]
fn instance_norm_gradient_is_straight_through_and_masked() {
    let ad = dev().autodiff();
    let mut m = QuantInstanceNorm1dConfig::new(2).init(&ad).unwrap();
    m._input_quantizer.set_amax(&Amax::scalar(1.0)).unwrap();
    let xv = Lcg(5).vec(12, -1.6, 1.6);
    let x = tensor(xv.clone(), [1, 2, 6], &ad).require_grad();
    let w = tensor(Lcg(6).vec(12, -1.0, 1.0), [1, 2, 6], &ad);
    let g = (m.forward(x.clone()) * w.clone()).sum().backward();
    let gx = values(x.grad(&g).unwrap());

    let xq = Tensor::<3>::from_data(
        fq(x.clone().detach(), tensor(vec![1.0], [1, 1, 1], &ad), 8).into_data(),
        &ad,
    )
    .require_grad();
    let gr = (m.norm.forward(xq.clone()) * w).sum().backward();
    let want: Vec<f32> = values(xq.grad(&gr).unwrap())
        .iter()
        .zip(&xv)
        .map(|(g, x)| if x.abs() <= 1.0 { *g } else { 0.0 })
        .collect();
    assert_eq!(gx, want);
    assert!(xv.iter().zip(&gx).any(|(x, g)| x.abs() > 1.0 && *g == 0.0));
    assert!(xv.iter().zip(&gx).any(|(x, g)| x.abs() <= 1.0 && *g != 0.0));
}

#[derive(Module, Debug)]
struct Styler {
    norm: InstanceNorm2d,
}

#[test]
fn instance_norm_drop_in_is_replaced_only_as_a_custom_replacement() {
    let _s = serial();
    use qdq::quant_modules::{self, LayerKind, Replacement, ReplacementOptions};
    let d = dev();
    let build = || Styler {
        norm: InstanceNorm2dConfig::new(3).init(&d),
    };
    // Not in the default map, as in the reference.
    quant_modules::initialize();
    assert!(!build().norm.is_quantized());
    quant_modules::deactivate();
    quant_modules::initialize_with(ReplacementOptions {
        custom_quant_modules: vec![(
            LayerKind::InstanceNorm2d,
            Replacement::new().with_quant_desc_input(desc(4, None)),
        )],
        ..Default::default()
    })
    .unwrap();
    let model = build();
    // A float model converts too; both read burn's defaults (affine).
    quant_modules::deactivate();
    let float = build();
    assert!(!float.norm.is_quantized());
    quant_modules::initialize_with(ReplacementOptions {
        custom_quant_modules: vec![(
            LayerKind::InstanceNorm2d,
            Replacement::new().with_quant_desc_input(desc(4, None)),
        )],
        ..Default::default()
    })
    .unwrap();
    let converted = quant_modules::quantize(float).unwrap();
    quant_modules::deactivate();
    let names: Vec<String> = named_quantizers(&model)
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["norm._input_quantizer"]);
    let x = rand(60, [2, 3, 4, 4], -2.0, 2.0);
    for m in [&model, &converted] {
        let q = m.norm.as_quant().unwrap();
        assert!(q.norm.affine);
        let want = q.norm.forward(fq(x.clone(), tensor_amax(&x), 4));
        assert_bits(m.norm.forward(x.clone()), want);
    }
}

// ------------------------------------------------------- recurrent layers

#[test]
fn disabled_quantizers_equal_burn_float_layers() {
    let d = dev();
    let x = rand(10, [2, 5, 3], -1.0, 1.0); // burn's layers are batch-first
    let disable = |qs: &[TensorQuantizer]| qs.iter().for_each(|q| q.disable());

    let lstm = LstmConfig::new(3, 4, true).init(&d);
    let q = QuantLSTM::from_float(lstm.clone(), None, None).unwrap();
    assert!(q.batch_first);
    disable(&q._input_quantizers);
    disable(&q._weight_quantizers);
    let (want, state) = lstm.forward(x.clone(), None);
    let (got, st) = q.forward(x.clone(), None);
    assert!(max_diff(got, want) < 1e-6);
    assert!(max_diff(st.hidden.squeeze_dim::<2>(0), state.hidden) < 1e-6);
    assert!(max_diff(st.cell.unwrap().squeeze_dim::<2>(0), state.cell) < 1e-6);

    // Two stacked layers: burn runs them one after the other.
    let l0 = LstmConfig::new(3, 4, true).init(&d);
    let l1 = LstmConfig::new(4, 4, false).init(&d);
    let q = QuantLSTM::from_float_layers(vec![l0.clone(), l1.clone()], None, None).unwrap();
    disable(&q._input_quantizers);
    disable(&q._weight_quantizers);
    let want = l1.forward(l0.forward(x.clone(), None).0, None).0;
    assert!(max_diff(q.forward(x.clone(), None).0, want) < 1e-6);

    // Bidirectional: [forward, reverse] halves of the last dim.
    let bi = BiLstmConfig::new(3, 4, true).init(&d);
    let q = QuantLSTM::from_float_bidirectional(bi.clone(), None, None).unwrap();
    disable(&q._input_quantizers);
    disable(&q._weight_quantizers);
    let (want, _) = bi.forward(x.clone(), None);
    assert!(max_diff(q.forward(x.clone(), None).0, want) < 1e-6);

    let gru = GruConfig::new(3, 4, true).init(&d);
    let q = QuantGRU::from_float(gru.clone(), None, None).unwrap();
    disable(&q._input_quantizers);
    disable(&q._weight_quantizers);
    assert!(max_diff(q.forward(x.clone(), None).0, gru.forward(x.clone(), None)) < 1e-6);

    for (act, mode) in [
        (ActivationConfig::Tanh, RnnMode::RnnTanh),
        (ActivationConfig::Relu, RnnMode::RnnRelu),
    ] {
        let rnn = RnnConfig::new(3, 4, true)
            .with_hidden_activation(act)
            .init(&d);
        let q = QuantRNN::from_float(rnn.clone(), None, None).unwrap();
        assert_eq!(q.mode, mode);
        disable(&q._input_quantizers);
        disable(&q._weight_quantizers);
        let want = rnn.forward(x.clone(), None).0;
        assert!(max_diff(q.forward(x.clone(), None).0, want) < 1e-6);
    }
}

#[test]
fn lstm_equals_fused_fake_quant_reference_bit_exact() {
    let d = dev();
    // Two bidirectional layers, dynamic per-tensor input, per-row weights (defaults).
    let m = QuantLSTMConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&d)
        .unwrap();
    assert_eq!(m.cells.len(), 4);
    assert_eq!(m.cells[2].weight_ih.dims(), [16, 8]);
    let x = rand(11, [5, 2, 3], -1.5, 1.5);
    let (y, state) = m.forward(x.clone(), None);
    assert_eq!(y.dims(), [5, 2, 8]);
    assert_eq!(state.hidden.dims(), [4, 2, 4]);
    assert_bits(
        y,
        ref_run(RnnMode::Lstm, &m.cells, 2, 2, Q::Dynamic, x.clone()),
    );

    // Static 4-bit per-tensor amaxes, one layer, batch first, no bias.
    let mut m = QuantLSTMConfig::new(3, 5)
        .with_bias(false)
        .with_batch_first(true)
        .with_quant_desc_input(desc(4, None))
        .with_quant_desc_weight(desc(4, None))
        .init(&d)
        .unwrap();
    m._input_quantizers[0]
        .set_amax(&Amax::scalar(0.75))
        .unwrap();
    m._weight_quantizers[0]
        .set_amax(&Amax::scalar(0.3))
        .unwrap();
    let xb = rand(12, [2, 6, 3], -1.5, 1.5);
    let q = Q::Static {
        input: 0.75,
        weight: 0.3,
        bits: 4,
    };
    let want = ref_run(RnnMode::Lstm, &m.cells, 1, 1, q, xb.clone().swap_dims(0, 1));
    assert_bits(m.forward(xb, None).0.swap_dims(0, 1), want);
}

#[test]
fn gru_and_rnn_equal_fused_fake_quant_reference_bit_exact() {
    let d = dev();
    let x = rand(13, [4, 3, 2], -2.0, 2.0);
    let gru = QuantGRUConfig::new(2, 3)
        .with_bidirectional(true)
        .init(&d)
        .unwrap();
    assert_eq!(gru.cells[0].weight_ih.dims(), [9, 2]);
    assert_bits(
        gru.forward(x.clone(), None).0,
        ref_run(RnnMode::Gru, &gru.cells, 1, 2, Q::Dynamic, x.clone()),
    );
    for relu in [false, true] {
        let rnn = QuantRNNConfig::new(2, 3)
            .with_num_layers(2)
            .with_relu(relu)
            .init(&d)
            .unwrap();
        let mode = if relu {
            RnnMode::RnnRelu
        } else {
            RnnMode::RnnTanh
        };
        assert_bits(
            rnn.forward(x.clone(), None).0,
            ref_run(mode, &rnn.cells, 2, 1, Q::Dynamic, x.clone()),
        );
    }
}

#[test]
fn lstm_cell_step_and_state() {
    let d = dev();
    let cell = QuantLSTMCellConfig::new(3, 2).init(&d).unwrap();
    assert_eq!(cell.weight_ih.dims(), [8, 3]);
    let x = rand(20, [4, 3], -1.0, 1.0);
    let h = rand(21, [4, 2], -0.5, 0.5);
    let c = rand(22, [4, 2], -0.5, 0.5);
    let s = cell.forward(x.clone(), Some(LstmState::new(c.clone(), h.clone())));
    let w = RnnCellWeights {
        weight_ih: cell.weight_ih.clone(),
        weight_hh: cell.weight_hh.clone(),
        bias_ih: cell.bias_ih.clone(),
        bias_hh: cell.bias_hh.clone(),
    };
    let (h2, c2) = ref_step(RnnMode::Lstm, &w, Q::Dynamic, x.clone(), h, c);
    assert_bits(s.hidden, h2);
    assert_bits(s.cell, c2);

    // A state of the wrong size is a typed error.
    let err = cell
        .try_forward(
            x,
            Some(LstmState::new(
                Tensor::zeros([4, 3], &d),
                Tensor::zeros([4, 3], &d),
            )),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::InputShape { layer: "QuantLSTMCell", got, .. } if got == &[4, 3]),
        "{err}"
    );
}

#[test]
fn lstm_cell_gradients_are_straight_through_and_masked() {
    let ad = dev().autodiff();
    let mut cell = QuantLSTMCellConfig::new(3, 2).init(&ad).unwrap();
    cell._input_quantizer.set_amax(&Amax::scalar(0.8)).unwrap();
    cell._weight_quantizer.set_amax(&Amax::scalar(0.4)).unwrap();
    let xv = Lcg(30).vec(12, -1.2, 1.2);
    let hv = Lcg(31).vec(8, -1.2, 1.2);
    let x = tensor(xv.clone(), [4, 3], &ad).require_grad();
    let h = tensor(hv.clone(), [4, 2], &ad).require_grad();
    let c = tensor(Lcg(32).vec(8, -1.0, 1.0), [4, 2], &ad);
    let s = cell.forward(x.clone(), Some(LstmState::new(c.clone(), h.clone())));
    let g = (s.hidden * 2.0 + s.cell).sum().backward();

    // Reference: torch's cell on leaves holding the quantized values.
    let leaf = |t: Tensor<2>| Tensor::<2>::from_data(t.into_data(), &ad).require_grad();
    let amax = |a: f32| tensor(vec![a], [1, 1], &ad);
    let xq = leaf(fq(x.clone().detach(), amax(0.8), 8));
    let hq = leaf(fq(h.clone().detach(), amax(0.8), 8));
    let wih = leaf(fq(cell.weight_ih.val().detach(), amax(0.4), 8));
    let whh = leaf(fq(cell.weight_hh.val().detach(), amax(0.4), 8));
    let bih = Tensor::<1>::from_data(cell.bias_ih.as_ref().unwrap().val().into_data(), &ad)
        .require_grad();
    let gates = linear(xq.clone(), wih.clone().transpose(), Some(bih.clone()))
        + linear(
            hq.clone(),
            whh.clone().transpose(),
            cell.bias_hh.as_ref().map(|b| b.val().detach()),
        );
    let gate = |k: usize| gates.clone().narrow(1, 2 * k, 2);
    let c2 = sigmoid(gate(1)) * c + sigmoid(gate(0)) * tanh(gate(2));
    let h2 = sigmoid(gate(3)) * tanh(c2.clone());
    let gr = (h2 * 2.0 + c2).sum().backward();

    let masked = |g: Vec<f32>, v: &[f32], a: f32| -> Vec<f32> {
        g.iter()
            .zip(v)
            .map(|(g, v)| if v.abs() <= a { *g } else { 0.0 })
            .collect()
    };
    let close = |a: Vec<f32>, b: Vec<f32>| {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-6 * (1.0 + y.abs()), "{a:?} vs {b:?}");
        }
    };
    // The split of one quantized cat: input and hidden get their own slices' gradients.
    let gx = values(x.grad(&g).unwrap());
    close(gx.clone(), masked(values(xq.grad(&gr).unwrap()), &xv, 0.8));
    close(
        values(h.grad(&g).unwrap()),
        masked(values(hq.grad(&gr).unwrap()), &hv, 0.8),
    );
    let wv = values(cell.weight_ih.val().detach());
    close(
        values(cell.weight_ih.grad(&g).unwrap()),
        masked(values(wih.grad(&gr).unwrap()), &wv, 0.4),
    );
    let wv = values(cell.weight_hh.val().detach());
    close(
        values(cell.weight_hh.grad(&g).unwrap()),
        masked(values(whh.grad(&gr).unwrap()), &wv, 0.4),
    );
    close(
        values(cell.bias_ih.as_ref().unwrap().grad(&g).unwrap()),
        values(bih.grad(&gr).unwrap()),
    );
    assert!(xv.iter().zip(&gx).any(|(x, g)| x.abs() > 0.8 && *g == 0.0));
    assert!(xv.iter().zip(&gx).any(|(x, g)| x.abs() <= 0.8 && *g != 0.0));

    // A whole QuantLSTM trains too: every cell's weights get gradients.
    let m = QuantLSTMConfig::new(3, 2)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&ad)
        .unwrap();
    let g = m
        .forward(tensor(Lcg(33).vec(18, -1.0, 1.0), [3, 2, 3], &ad), None)
        .0
        .sum()
        .backward();
    for cell in &m.cells {
        assert!(
            values(cell.weight_hh.grad(&g).unwrap())
                .iter()
                .any(|v| *v != 0.0)
        );
        assert!(cell.bias_ih.as_ref().unwrap().grad(&g).is_some());
    }
}

#[derive(Module, Debug)]
struct Encoder {
    lstm: Lstm,
}

#[test]
fn lstm_drop_in_is_in_the_default_map_and_keeps_burns_forward() {
    let _s = serial();
    use qdq::quant_modules;
    let d = dev();
    let build = || Encoder {
        lstm: qdq::nn::LstmConfig::new(3, 4, true).init(&d),
    };
    let float = build();
    quant_modules::initialize();
    let model = build();
    let converted = quant_modules::quantize(float.clone()).unwrap();
    quant_modules::deactivate();
    assert!(!float.lstm.is_quantized());
    let names: Vec<String> = named_quantizers(&model)
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(
        names,
        ["lstm._input_quantizers.0", "lstm._weight_quantizers.0"]
    );
    let x = rand(70, [2, 5, 3], -1.0, 1.0);
    let h0 = rand(71, [2, 4], -0.5, 0.5);
    let c0 = rand(72, [2, 4], -0.5, 0.5);
    for m in [&model, &converted] {
        let q = m.lstm.as_quant().unwrap();
        let (out, state) = m
            .lstm
            .forward(x.clone(), Some(LstmState::new(c0.clone(), h0.clone())));
        let (want, ws) = q.forward(
            x.clone(),
            Some(RecurrentState {
                hidden: h0.clone().unsqueeze_dim(0),
                cell: Some(c0.clone().unsqueeze_dim(0)),
            }),
        );
        assert_bits(out, want);
        assert_bits(state.hidden, ws.hidden.squeeze_dim(0));
        assert_bits(state.cell, ws.cell.unwrap().squeeze_dim(0));
    }
    // The converted float layer keeps its weights: with quantizers off it is burn's.
    let q = converted.lstm.as_quant().unwrap();
    q._input_quantizers[0].disable();
    q._weight_quantizers[0].disable();
    let (want, _) = float.lstm.forward(x.clone(), None);
    assert!(max_diff(converted.lstm.forward(x, None).0, want) < 1e-6);
}

#[derive(Module, Debug)]
struct Tagger {
    lstm: QuantLSTM,
}

#[test]
fn calibration_names_and_safetensors_round_trip() {
    let d = dev();
    let model = Tagger {
        lstm: QuantLSTMConfig::new(3, 4)
            .with_bidirectional(true)
            .init(&d)
            .unwrap(),
    };
    let names: Vec<String> = named_quantizers(&model)
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(
        names,
        [
            "lstm._input_quantizers.0",
            "lstm._input_quantizers.1",
            "lstm._weight_quantizers.0",
            "lstm._weight_quantizers.1",
        ]
    );
    let x = rand(40, [6, 2, 3], -2.0, 2.0);
    let float_out = {
        model
            .lstm
            ._input_quantizers
            .iter()
            .for_each(|q| q.disable());
        model
            .lstm
            ._weight_quantizers
            .iter()
            .for_each(|q| q.disable());
        let y = model.lstm.forward(x.clone(), None).0;
        model.lstm._input_quantizers.iter().for_each(|q| q.enable());
        model
            .lstm
            ._weight_quantizers
            .iter()
            .for_each(|q| q.enable());
        y
    };
    collect_stats(&model, |m| {
        let _ = m.lstm.forward(x.clone(), None);
    })
    .unwrap();
    let model = compute_amax(model, HistogramMethod::percentile(99.99)).unwrap();

    // Calibration runs the float recurrence: the forward cell saw x and the forward
    // hidden states h_0..h_4, the reverse one x and h_5..h_1.
    let xmax = values(x.clone().abs().max())[0];
    let fwd = values(
        float_out
            .clone()
            .narrow(0, 0, 5)
            .narrow(2, 0, 4)
            .abs()
            .max(),
    )[0];
    let bwd = values(float_out.narrow(0, 1, 5).narrow(2, 4, 4).abs().max())[0];
    let amax = |k: usize| model.lstm._input_quantizers[k].amax().unwrap();
    assert_eq!(amax(0), vec![xmax.max(fwd)]);
    assert_eq!(amax(1), vec![xmax.max(bwd)]);
    for k in 0..2 {
        let cell = &model.lstm.cells[k];
        let wc = Tensor::cat(vec![cell.weight_ih.val(), cell.weight_hh.val()], 1);
        assert_eq!(
            model.lstm._weight_quantizers[k].amax().unwrap(),
            values(row_amax(&wc))
        );
    }

    let dir = std::env::temp_dir().join(format!("qdq-rnn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tagger.safetensors");
    save_safetensors(&model, &file).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let shape = |n: &str| st.tensor(n).unwrap().shape().to_vec();
    assert_eq!(shape("lstm.weight_ih_l0_reverse"), vec![16, 3]);
    assert_eq!(shape("lstm.bias_hh_l0_reverse"), vec![16]);
    assert_eq!(shape("lstm._input_quantizers.1._amax"), Vec::<usize>::new());
    assert_eq!(shape("lstm._weight_quantizers.0._amax"), vec![16, 1]);
    let fresh = Tagger {
        lstm: QuantLSTMConfig::new(3, 4)
            .with_bidirectional(true)
            .init(&d)
            .unwrap(),
    };
    let fresh = load_safetensors(fresh, &file).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_bits(
        fresh.lstm.forward(x.clone(), None).0,
        model.lstm.forward(x, None).0,
    );
}

#[test]
fn refusals_are_typed_and_named() {
    let d = dev();
    let err = QuantLSTMConfig::new(3, 4)
        .with_proj_size(2)
        .init(&d)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { what: "proj_size > 0", format } if format.contains("QuantLSTM")),
        "{err}"
    );
    let coupled = LstmConfig::new(3, 4, true).with_input_forget(true).init(&d);
    let err = QuantLSTM::from_float(coupled, None, None).unwrap_err();
    assert!(err.to_string().contains("input_forget"), "{err}");
    let err = QuantGRU::from_float(
        GruConfig::new(3, 4, true).with_reset_after(false).init(&d),
        None,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("reset_after"), "{err}");

    let m = QuantGRUConfig::new(3, 4).init(&d).unwrap();
    let err = m
        .try_forward(rand(50, [5, 2, 4], 0.0, 1.0), None)
        .unwrap_err();
    assert!(
        matches!(&err, Error::InputShape { layer: "QuantGRU", got, .. } if got == &[2, 4]),
        "{err}"
    );
    let err = m
        .try_forward(
            rand(51, [5, 2, 3], 0.0, 1.0),
            Some(RecurrentState {
                hidden: Tensor::zeros([2, 2, 4], &d),
                cell: None,
            }),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InputShape { .. }), "{err}");
    let err = m
        .try_forward(Tensor::zeros([0, 2, 3], &d), None)
        .unwrap_err();
    assert!(matches!(err, Error::InputShape { .. }), "{err}");
}
