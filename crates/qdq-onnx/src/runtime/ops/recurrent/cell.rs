//! One time step of each recurrent cell, on `[batch, ·]` tensors (ONNX's equations;
//! `xt` is the step's input projection `Xt·Wᵀ + Wb`, `[batch, gates·hidden]`).

use burn::tensor::Tensor;

use super::{CellOpts, Direction, Kind};

/// The step's new `(H, C)` from the previous ones (`C` only for LSTM).
pub(crate) fn step(
    o: &CellOpts,
    d: &Direction,
    xt: Tensor<2>,
    h: Tensor<2>,
    c: Option<Tensor<2>>,
) -> (Tensor<2>, Option<Tensor<2>>) {
    let hs = o.hidden;
    let clip = |t: Tensor<2>| match o.clip {
        Some(v) => t.clamp(-v, v),
        None => t,
    };
    let gate = |t: &Tensor<2>, k: usize| t.clone().narrow(1, k * hs, hs);
    let rec = |h: Tensor<2>, from: usize, n: usize| {
        let r = d.r.clone().narrow(0, from * hs, n * hs);
        let rb = d.rb.clone().narrow(0, from * hs, n * hs);
        h.matmul(r.transpose()).add(rb.unsqueeze_dim::<2>(0))
    };
    match o.kind {
        Kind::Rnn => {
            let a = xt.add(rec(h, 0, 1));
            (d.acts[0].apply(clip(a)), None)
        }
        Kind::Gru => {
            let (f, g) = (d.acts[0], d.acts[1]);
            let hr = rec(h.clone(), 0, 2);
            let z = f.apply(clip(gate(&xt, 0).add(gate(&hr, 0))));
            let r = f.apply(clip(gate(&xt, 1).add(gate(&hr, 1))));
            let xh = gate(&xt, 2);
            let hh = if o.linear_before_reset {
                xh.add(r.mul(rec(h.clone(), 2, 1)))
            } else {
                xh.add(rec(r.mul(h.clone()), 2, 1))
            };
            let hh = g.apply(clip(hh));
            // H = (1 - z)·h̃ + z·H
            let hn = hh.clone().add(z.mul(h.sub(hh)));
            (hn, None)
        }
        Kind::Lstm => {
            let (f, g, hact) = (d.acts[0], d.acts[1], d.acts[2]);
            let c = c.unwrap_or_else(|| h.zeros_like());
            let a = xt.add(rec(h, 0, 4));
            let peep = |t: Tensor<2>, k: usize, c: &Tensor<2>| match &d.p {
                Some(p) => t.add(c.clone().mul(p[k].clone())),
                None => t,
            };
            // gate order i, o, f, c; peepholes i, o, f
            let i = f.apply(clip(peep(gate(&a, 0), 0, &c)));
            let fg = match o.input_forget {
                true => i.ones_like().sub(i.clone()),
                false => f.apply(clip(peep(gate(&a, 2), 2, &c))),
            };
            let ct = g.apply(clip(gate(&a, 3)));
            let cn = fg.mul(c).add(i.mul(ct));
            let og = f.apply(clip(peep(gate(&a, 1), 1, &cn)));
            let hn = og.mul(hact.apply(cn.clone()));
            (hn, Some(cn))
        }
    }
}
