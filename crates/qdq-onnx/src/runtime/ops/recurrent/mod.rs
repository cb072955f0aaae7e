//! Recurrent layers: RNN, GRU and LSTM (ONNX up to opset 22). One driver reads the
//! common inputs and attributes (`direction`, `layout`, `sequence_lens`, `initial_h`,
//! `activations`, `clip`), projects the whole input sequence with one matmul
//! (`X·Wᵀ + Wb` over all time steps) and then runs the cell of each op per step.
//!
//! Shapes (layout 0; layout 1 swaps the first two dims of X, Y, Y_h, Y_c):
//! X `[seq, batch, input]`, W `[dirs, gates·hidden, input]`, R `[dirs, gates·hidden,
//! hidden]`, B `[dirs, 2·gates·hidden]`, sequence_lens `[batch]`, initial_h/initial_c
//! `[dirs, batch, hidden]`, P `[dirs, 3·hidden]`; Y `[seq, dirs, batch, hidden]`,
//! Y_h/Y_c `[dirs, batch, hidden]`. Steps past a batch entry's sequence length hold
//! its state and write zeros to Y (as ONNX Runtime does).

mod activation;
mod cell;

use burn::tensor::{Int, Tensor, TensorData};

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::Ctx;
use activation::{Activation, resolve};

/// Which recurrent op a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Plain RNN: one gate.
    Rnn,
    /// GRU: gates z, r, h.
    Gru,
    /// LSTM: gates i, o, f, c.
    Lstm,
}

impl Kind {
    fn gates(self) -> usize {
        match self {
            Kind::Rnn => 1,
            Kind::Gru => 3,
            Kind::Lstm => 4,
        }
    }
    /// The default `activations` of one direction.
    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Kind::Rnn => &["Tanh"],
            Kind::Gru => &["Sigmoid", "Tanh"],
            Kind::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        }
    }
}

/// One direction's weights and starting state.
pub(crate) struct Direction {
    /// `[gates·hidden, input]`.
    w: Tensor<2>,
    /// `[gates·hidden, hidden]`.
    r: Tensor<2>,
    /// `[gates·hidden]`, the input bias.
    wb: Tensor<1>,
    /// `[gates·hidden]`, the recurrence bias.
    rb: Tensor<1>,
    /// LSTM peepholes i, o, f, each `[1, hidden]`.
    p: Option<[Tensor<2>; 3]>,
    /// `[batch, hidden]`.
    h0: Tensor<2>,
    /// LSTM cell state `[batch, hidden]`.
    c0: Option<Tensor<2>>,
    /// The activations of this direction (f, g, h as the op uses them).
    acts: Vec<Activation>,
    /// Whether it runs the sequence backwards.
    reverse: bool,
}

/// Cell options shared by both directions.
pub(crate) struct CellOpts {
    pub kind: Kind,
    pub hidden: usize,
    /// Pre-activation clip threshold.
    pub clip: Option<f64>,
    /// LSTM `input_forget`: couple the forget gate to `1 - input gate`.
    pub input_forget: bool,
    /// GRU `linear_before_reset`.
    pub linear_before_reset: bool,
}

fn rank3(ctx: &Ctx, i: usize, what: &str) -> RunResult<Tensor<3>> {
    let t = ctx.float(i)?;
    if t.rank() != 3 {
        return Err(op_err(format!(
            "{what} (input #{i}) must be rank 3, got shape {:?}",
            t.shape()
        )));
    }
    t.to_rank::<3>()
}

fn expect_dims(what: &str, got: &[usize], want: &[usize]) -> RunResult<()> {
    if got != want {
        return Err(op_err(format!(
            "{what} has shape {got:?}, expected {want:?}"
        )));
    }
    Ok(())
}

/// Runs an RNN, GRU or LSTM node; returns `[Y, Y_h]` (and `Y_c` for LSTM).
pub(crate) fn run(ctx: &Ctx, kind: Kind) -> RunResult<Vec<Value>> {
    let layout = ctx.int_attr("layout", 0);
    if layout != 0 && layout != 1 {
        return Err(op_err(format!("layout must be 0 or 1, got {layout}")));
    }
    let batch_first = layout == 1;
    let x = rank3(ctx, 0, "X")?;
    let x = if batch_first { x.swap_dims(0, 1) } else { x };
    let [seq, batch, input] = x.dims();
    let w = rank3(ctx, 1, "W")?;
    let r = rank3(ctx, 2, "R")?;
    let dirs_attr = ctx.string_attr("direction", "forward");
    let reverse: &[bool] = match dirs_attr.as_str() {
        "forward" => &[false],
        "reverse" => &[true],
        "bidirectional" => &[false, true],
        o => return Err(op_err(format!("unknown direction `{o}`"))),
    };
    let nd = reverse.len();
    let g = kind.gates();
    let [_, rows, hidden] = r.dims();
    if hidden == 0 || rows != g * hidden {
        return Err(op_err(format!(
            "R has shape {:?}, expected [{nd}, {g}·hidden, hidden]",
            r.dims()
        )));
    }
    if ctx.has_attr("hidden_size") && ctx.int_attr("hidden_size", 0) != hidden as i64 {
        return Err(op_err(format!(
            "hidden_size {} does not match R's shape {:?}",
            ctx.int_attr("hidden_size", 0),
            r.dims()
        )));
    }
    let gh = g * hidden;
    expect_dims("W", &w.dims(), &[nd, gh, input])?;
    expect_dims("R", &r.dims(), &[nd, gh, hidden])?;
    if seq == 0 || batch == 0 {
        return Err(op_err(format!(
            "X has shape {:?}: empty sequences are not supported",
            ctx.float(0)?.shape()
        )));
    }
    checked_numel("", "", &[seq, nd, batch, hidden])?;
    checked_numel("", "", &[seq, batch, gh])?;
    let device = ctx.device;
    let b = match ctx.opt(3) {
        Some(_) => {
            let b = ctx.float(3)?;
            expect_dims("B", b.shape(), &[nd, 2 * gh])?;
            b.to_rank::<2>()?
        }
        None => Tensor::zeros([nd, 2 * gh], device),
    };
    let lens = match ctx.host_ints(4)? {
        Some(l) => {
            if l.len() != batch || l.iter().any(|&v| v < 0 || v as usize > seq) {
                return Err(op_err(format!(
                    "sequence_lens {l:?} must hold {batch} lengths in 0..={seq}"
                )));
            }
            let l: Vec<usize> = l.into_iter().map(|v| v as usize).collect();
            if l.iter().all(|&v| v == seq) {
                None
            } else {
                Some(l)
            }
        }
        None => None,
    };
    let state = |i: usize, what: &str| -> RunResult<Tensor<3>> {
        match ctx.opt(i) {
            None => Ok(Tensor::zeros([nd, batch, hidden], device)),
            Some(_) => {
                let t = rank3(ctx, i, what)?;
                let t = if batch_first { t.swap_dims(0, 1) } else { t };
                expect_dims(what, &t.dims(), &[nd, batch, hidden])?;
                Ok(t)
            }
        }
    };
    let h0 = state(5, "initial_h")?;
    let c0 = match kind {
        Kind::Lstm => Some(state(6, "initial_c")?),
        _ => None,
    };
    let p = match (kind, ctx.opt(7)) {
        (Kind::Lstm, Some(_)) => {
            let p = ctx.float(7)?;
            expect_dims("P", p.shape(), &[nd, 3 * hidden])?;
            Some(p.to_rank::<2>()?)
        }
        _ => None,
    };
    let per_dir = kind.default_activations().len();
    let names: Vec<String> = match ctx.attr("activations") {
        Some(a) => a
            .strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        None => kind
            .default_activations()
            .iter()
            .cycle()
            .take(per_dir * nd)
            .map(|s| s.to_string())
            .collect(),
    };
    if names.len() != per_dir * nd {
        return Err(op_err(format!(
            "activations {names:?}: expected {} names ({per_dir} per direction)",
            per_dir * nd
        )));
    }
    let acts = resolve(
        &names,
        &ctx.floats_attr("activation_alpha").unwrap_or_default(),
        &ctx.floats_attr("activation_beta").unwrap_or_default(),
    )?;
    let clip = ctx
        .attr("clip")
        .map(|a| a.f as f64)
        .filter(|c| c.is_finite() && *c > 0.0);
    let opts = CellOpts {
        kind,
        hidden,
        clip,
        input_forget: ctx.int_attr("input_forget", 0) != 0,
        linear_before_reset: ctx.int_attr("linear_before_reset", 0) != 0,
    };
    // the input projection of every time step at once: [seq·batch, input]
    let x2 = x.reshape([seq * batch, input]);
    let (mut ys, mut hs, mut cs) = (Vec::new(), Vec::new(), Vec::new());
    for (d, &rev) in reverse.iter().enumerate() {
        let pick = |t: &Tensor<3>| t.clone().narrow(0, d, 1).squeeze_dim::<2>(0);
        let bd = b.clone().narrow(0, d, 1).reshape([2 * gh]);
        let dir = Direction {
            w: pick(&w),
            r: pick(&r),
            wb: bd.clone().narrow(0, 0, gh),
            rb: bd.narrow(0, gh, gh),
            p: p.as_ref().map(|p| {
                let pd = p.clone().narrow(0, d, 1);
                std::array::from_fn(|k| pd.clone().narrow(1, k * hidden, hidden))
            }),
            h0: pick(&h0),
            c0: c0.as_ref().map(pick),
            acts: acts[d * per_dir..(d + 1) * per_dir].to_vec(),
            reverse: rev,
        };
        let (y, h, c) = run_direction(&opts, &dir, x2.clone(), seq, batch, lens.as_deref())?;
        ys.push(y);
        hs.push(h);
        if let Some(c) = c {
            cs.push(c);
        }
    }
    // Y [seq, dirs, batch, hidden]; Y_h, Y_c [dirs, batch, hidden]
    let y: Tensor<4> = Tensor::stack(ys, 1);
    let yh: Tensor<3> = Tensor::stack(hs, 0);
    let (y, yh) = match batch_first {
        true => (y.permute([2, 0, 1, 3]), yh.swap_dims(0, 1)),
        false => (y, yh),
    };
    let mut out = vec![Value::from_float_tensor(y), Value::from_float_tensor(yh)];
    if kind == Kind::Lstm {
        let yc: Tensor<3> = Tensor::stack(cs, 0);
        let yc = if batch_first { yc.swap_dims(0, 1) } else { yc };
        out.push(Value::from_float_tensor(yc));
    }
    Ok(out)
}

/// Row `t·batch + b` of the projected input that step `s` reads for batch entry `b`:
/// the reverse direction walks each entry's own valid prefix backwards, and leaves the
/// padding after it in place (a permutation that is its own inverse).
fn reverse_rows(seq: usize, batch: usize, lens: &[usize]) -> Vec<i64> {
    let mut rows = Vec::with_capacity(seq * batch);
    for s in 0..seq {
        for (b, &len) in lens.iter().enumerate() {
            let t = if s < len { len - 1 - s } else { s };
            rows.push((t * batch + b) as i64);
        }
    }
    rows
}

/// Runs one direction over the sequence: `(Y [seq, batch, hidden], Y_h, Y_c)`.
fn run_direction(
    opts: &CellOpts,
    dir: &Direction,
    x2: Tensor<2>,
    seq: usize,
    batch: usize,
    lens: Option<&[usize]>,
) -> RunResult<(Tensor<3>, Tensor<2>, Option<Tensor<2>>)> {
    let device = x2.device();
    let xw = x2
        .matmul(dir.w.clone().transpose())
        .add(dir.wb.clone().unsqueeze_dim::<2>(0));
    // step order: rows permuted for a reverse direction with ragged lengths
    let perm = match (dir.reverse, lens) {
        (true, Some(l)) => {
            let rows = reverse_rows(seq, batch, l);
            Some(Tensor::<1, Int>::from_data(
                TensorData::new(rows, [seq * batch]),
                &device,
            ))
        }
        _ => None,
    };
    let xw = match &perm {
        Some(p) => xw.select(0, p.clone()),
        None => xw,
    };
    // 1 where a step is inside the entry's sequence, as [batch, 1] per step
    let masks: Option<Vec<Tensor<2>>> = lens.map(|l| {
        (0..seq)
            .map(|s| {
                let m: Vec<f32> = l.iter().map(|&len| (s < len) as u8 as f32).collect();
                Tensor::from_data(TensorData::new(m, [batch, 1]), &device)
            })
            .collect()
    });
    let (mut h, mut c) = (dir.h0.clone(), dir.c0.clone());
    let mut ys = Vec::with_capacity(seq);
    for s in 0..seq {
        let t = match (dir.reverse, &perm) {
            (true, None) => seq - 1 - s,
            _ => s,
        };
        let xt = xw.clone().narrow(0, t * batch, batch);
        let (hn, cn) = cell::step(opts, dir, xt, h.clone(), c.clone());
        match &masks {
            None => {
                h = hn;
                c = cn;
                ys.push(h.clone());
            }
            Some(ms) => {
                let m = ms[s].clone();
                h = h.clone().add(hn.sub(h).mul(m.clone()));
                c = match (c, cn) {
                    (Some(c), Some(cn)) => Some(c.clone().add(cn.sub(c).mul(m.clone()))),
                    _ => None,
                };
                ys.push(h.clone().mul(m));
            }
        }
    }
    if dir.reverse && perm.is_none() {
        ys.reverse();
    }
    let y: Tensor<3> = Tensor::stack(ys, 0);
    let y = match perm {
        Some(p) => {
            y.reshape([seq * batch, opts.hidden])
                .select(0, p)
                .reshape([seq, batch, opts.hidden])
        }
        None => y,
    };
    Ok((y, h, c))
}
