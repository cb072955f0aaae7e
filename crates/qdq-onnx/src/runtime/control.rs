//! Control flow: If, Loop, Scan and SequenceMap run their subgraphs ([`Body`]) in a scope that sees
//! the enclosing graph's values. Observers see a subgraph's inputs and node outputs
//! under its scope's name ([`subgraph_scope`]: `If_0/then_branch/conv_out`), every time
//! the subgraph runs, so calibration collects tensors inside branches and loop bodies.
//!
//! A Loop stops after [`MAX_LOOP_ITERATIONS`] iterations (or the graph's own limit)
//! with an error naming the node,
//! so a model whose trip count and condition never end it cannot hang the runtime.

use std::collections::HashMap;

use onnx_ir::NodeProto;

use super::body::{Body, RunCtx, Scope, node_label};
use super::error::{RunResult, checked_numel, op_err};
use super::ops::Ctx;
use super::ops::sequence::sequence;
use super::ops::shape::{concat_values, empty, narrow};
use super::value::Value;

/// Most iterations one Loop node runs unless [`super::OnnxGraph::set_loop_limit`]
/// says otherwise (its `M` input may ask for up to 2^63): 65536, about a second for a
/// trivial body.
pub const MAX_LOOP_ITERATIONS: usize = 1 << 16;

/// The prefix under which observers see the values of subgraph `attr` of `node`:
/// `{node name, else its first output}/{attr}/`; nested subgraphs chain prefixes.
pub fn subgraph_scope(node: &NodeProto, attr: &str) -> String {
    format!("{}/{attr}/", node_label(node))
}

/// The observer of a run, as the control ops pass it down.
pub(crate) type Observer<'o> = &'o mut dyn FnMut(&str, &Value) -> RunResult<()>;

/// A subgraph as [`exec`] runs it: its attribute name and body.
type Sub<'b> = (&'b str, &'b Body);

/// Runs a node with subgraphs (If, Loop, Scan, SequenceMap); `subs` are its checked subgraphs by
/// attribute name, `scope` the values around it; `observe` sees the subgraphs' values.
pub(crate) fn run(
    ctx: &Ctx,
    subs: &[(String, Body)],
    scope: &Scope,
    loop_limit: usize,
    observe: Observer,
) -> RunResult<Vec<Value>> {
    let sub = |name: &'static str| {
        subs.iter()
            .find(|(a, _)| a == name)
            .map(|(_, b)| (name, b))
            .ok_or_else(|| op_err(format!("missing graph attribute `{name}`")))
    };
    match ctx.node.op_type.as_str() {
        "If" => {
            let branch = match truth(&ctx.input(0)?, "cond")? {
                true => sub("then_branch")?,
                false => sub("else_branch")?,
            };
            let outs = exec(ctx, loop_limit, branch, HashMap::new(), scope, observe)?;
            if outs.len() < ctx.node.output.len() {
                return Err(op_err(format!(
                    "the branch yields {} outputs for the node's {}",
                    outs.len(),
                    ctx.node.output.len()
                )));
            }
            Ok(outs)
        }
        "Loop" => run_loop(ctx, loop_limit, sub("body")?, scope, observe),
        "Scan" => run_scan(ctx, loop_limit, sub("body")?, scope, observe),
        "SequenceMap" => sequence_map(ctx, loop_limit, sub("body")?, scope, observe),
        o => Err(op_err(format!(
            "{o} with graph attributes is not supported"
        ))),
    }
}

/// Runs `body` on `feed` within `scope`, returning its outputs' values; `observe` sees
/// the fed values and every node output under the subgraph's scope prefix.
fn exec(
    ctx: &Ctx,
    loop_limit: usize,
    (attr, body): Sub,
    feed: HashMap<String, Value>,
    scope: &Scope,
    observe: Observer,
) -> RunResult<Vec<Value>> {
    let run = RunCtx {
        opset: ctx.opset,
        device: ctx.device,
        loop_limit,
    };
    let prefix = subgraph_scope(ctx.node, attr);
    let mut scoped = |name: &str, v: &Value| observe(&format!("{prefix}{name}"), v);
    for (name, v) in &feed {
        scoped(name, v)?;
    }
    let outs = body.exec(feed, Some(scope), run, &mut scoped)?;
    Ok(outs.into_iter().map(|(_, v)| v).collect())
}

/// The truth of a one-element condition tensor.
fn truth(v: &Value, what: &str) -> RunResult<bool> {
    let x = v.to_f32()?;
    match x.as_slice() {
        [c] => Ok(*c != 0.0),
        _ => Err(op_err(format!(
            "`{what}` must hold one value, got shape {:?}",
            v.shape()
        ))),
    }
}

/// Binds the body's formal inputs to `vals`, in order (unnamed ones skipped).
fn feed(body: &Body, vals: Vec<Value>) -> RunResult<HashMap<String, Value>> {
    if vals.len() != body.inputs.len() {
        return Err(op_err(format!(
            "the body takes {} inputs, given {}",
            body.inputs.len(),
            vals.len()
        )));
    }
    Ok(body
        .inputs
        .iter()
        .cloned()
        .zip(vals)
        .filter(|(n, _)| !n.is_empty())
        .collect())
}

/// Entry `idx` of `v` along `axis`, that axis removed.
fn take(v: Value, axis: usize, idx: usize) -> RunResult<Value> {
    let mut shape = v.shape();
    shape.remove(axis);
    Ok(match v {
        Value::Float(t) => Value::Float(narrow(t, axis, idx, 1)?.reshape(&shape)?),
        Value::Int(t, e) => Value::Int(narrow(t, axis, idx, 1)?.reshape(&shape)?, e),
        Value::Bool(t) => Value::Bool(narrow(t, axis, idx, 1)?.reshape(&shape)?),
        v => return Err(v.not_a_tensor()),
    })
}

/// Stacks same-shape values along a new `axis`; none gives an empty float `[0]`.
fn stack(vals: Vec<Value>, axis: usize, ctx: &Ctx) -> RunResult<Value> {
    let Some(first) = vals.first() else {
        return Ok(Value::Float(empty(vec![0], ctx.device)?));
    };
    let shape = first.shape();
    if axis > shape.len() {
        return Err(op_err(format!(
            "axis {axis} is out of range to stack values of shape {shape:?}"
        )));
    }
    let mut lifted = shape.clone();
    lifted.insert(axis, 1);
    let one = |t: Value| -> RunResult<Value> {
        if t.shape() != shape {
            return Err(op_err(format!(
                "scan outputs change shape across iterations: {shape:?} then {:?}",
                t.shape()
            )));
        }
        Ok(match t {
            Value::Float(t) => Value::Float(t.reshape(&lifted)?),
            Value::Int(t, e) => Value::Int(t.reshape(&lifted)?, e),
            Value::Bool(t) => Value::Bool(t.reshape(&lifted)?),
            v => return Err(v.not_a_tensor()),
        })
    };
    let vals = vals.into_iter().map(one).collect::<RunResult<Vec<_>>>()?;
    concat_values(vals, axis, ctx.device)
}

/// Checks that `count` stacked copies of `v` stay within the element limit.
fn check_stack(v: &Value, count: usize) -> RunResult<()> {
    let mut s = v.shape();
    s.insert(0, count);
    checked_numel("", "", &s).map(|_| ())
}

/// Loop: inputs `M` (trip count, optional), `cond` (optional), loop-carried values;
/// the body maps (iteration, cond, carried...) to (cond, carried..., scan outputs...).
/// Outputs: the final carried values, then each scan output stacked over iterations.
fn run_loop(
    ctx: &Ctx,
    loop_limit: usize,
    sub: Sub,
    scope: &Scope,
    observe: Observer,
) -> RunResult<Vec<Value>> {
    let body = sub.1;
    let trip = match ctx.opt(0) {
        Some(v) => Some(*v.to_i64()?.first().ok_or_else(|| op_err("`M` is empty"))?),
        None => None,
    };
    let mut cond = match ctx.opt(1) {
        Some(v) => truth(&v, "cond")?,
        None => true,
    };
    let mut carried: Vec<Value> = (2..ctx.inputs.len())
        .map(|i| ctx.input(i))
        .collect::<RunResult<_>>()?;
    let n = carried.len();
    if body.inputs.len() != n + 2 || body.outputs.len() < n + 1 {
        return Err(op_err(format!(
            "the body has {} inputs and {} outputs for {n} loop-carried values",
            body.inputs.len(),
            body.outputs.len()
        )));
    }
    let k = body.outputs.len() - 1 - n;
    let mut scans: Vec<Vec<Value>> = vec![Vec::new(); k];
    let mut i: i64 = 0;
    while cond && trip.is_none_or(|m| i < m) {
        if i as usize >= loop_limit {
            return Err(op_err(format!(
                "the loop is still running after {loop_limit} iterations (M = {}), the runtime's limit (OnnxGraph::set_loop_limit)",
                trip.map_or("none".to_string(), |m| m.to_string())
            )));
        }
        let mut vals = vec![
            Value::from_i64(vec![i], &[], ctx.device),
            Value::try_from_bool(vec![cond], &[], ctx.device)?,
        ];
        vals.extend(carried);
        let mut outs = exec(ctx, loop_limit, sub, feed(body, vals)?, scope, observe)?.into_iter();
        cond = truth(
            &outs.next().ok_or_else(|| op_err("no cond output"))?,
            "cond",
        )?;
        carried = outs.by_ref().take(n).collect();
        for (s, v) in scans.iter_mut().zip(outs) {
            check_stack(&v, s.len() + 1)?;
            s.push(v);
        }
        i += 1;
    }
    let mut out = carried;
    for s in scans {
        out.push(stack(s, 0, ctx)?);
    }
    Ok(out)
}

/// An axis attribute entry normalized for `rank`.
fn axis_of(list: &Option<Vec<i64>>, j: usize, rank: usize) -> RunResult<usize> {
    let a = list.as_ref().and_then(|l| l.get(j).copied()).unwrap_or(0);
    super::ops::norm_axis(a, rank)
}

/// Scan (opset 9+): `N` state values then `num_scan_inputs` sequences sliced along
/// `scan_input_axes` (reversed where `scan_input_directions` is 1); the body maps
/// (states..., slices...) to (states..., scan outputs...), stacked along
/// `scan_output_axes` (reversed where `scan_output_directions` is 1). Opset 8's form
/// (a leading batch axis and `sequence_lens`) runs once per batch entry.
fn run_scan(
    ctx: &Ctx,
    loop_limit: usize,
    sub: Sub,
    scope: &Scope,
    observe: Observer,
) -> RunResult<Vec<Value>> {
    if ctx.opset >= 9 {
        let ins = ctx.inputs.iter().cloned().collect::<Option<Vec<_>>>();
        let ins = ins.ok_or_else(|| op_err("Scan inputs cannot be omitted"))?;
        return scan9(ctx, loop_limit, sub, scope, ins, observe);
    }
    // opset 8: input 0 is sequence_lens, every other input has a leading batch axis
    if let Some(lens) = ctx.host_ints(0)? {
        let ins = ctx.inputs.get(1..).unwrap_or_default();
        let full = ins
            .iter()
            .flatten()
            .find(|v| v.shape().len() > 1)
            .map(|v| v.shape()[1]);
        if lens.iter().any(|&l| Some(l as usize) != full) {
            return Err(op_err(format!(
                "sequence_lens {lens:?} shorter than the sequences are not supported"
            )));
        }
    }
    let ins: Vec<Value> = ctx
        .inputs
        .iter()
        .skip(1)
        .cloned()
        .collect::<Option<_>>()
        .ok_or_else(|| op_err("Scan inputs cannot be omitted"))?;
    let batch = ins
        .first()
        .map_or(0, |v| v.shape().first().copied().unwrap_or(0));
    let mut per_batch: Vec<Vec<Value>> = Vec::new();
    for b in 0..batch {
        let slice = ins
            .iter()
            .map(|v| take(v.clone(), 0, b))
            .collect::<RunResult<Vec<_>>>()?;
        per_batch.push(scan9(ctx, loop_limit, sub, scope, slice, observe)?);
    }
    let outs = per_batch.first().map_or(0, Vec::len);
    let mut columns: Vec<Vec<Value>> = vec![Vec::new(); outs];
    for row in per_batch {
        for (c, v) in columns.iter_mut().zip(row) {
            c.push(v);
        }
    }
    columns.into_iter().map(|c| stack(c, 0, ctx)).collect()
}

fn scan9(
    ctx: &Ctx,
    loop_limit: usize,
    sub: Sub,
    scope: &Scope,
    ins: Vec<Value>,
    observe: Observer,
) -> RunResult<Vec<Value>> {
    let body = sub.1;
    let m = ctx.int_attr("num_scan_inputs", 0);
    if m < 1 || m as usize > ins.len() {
        return Err(op_err(format!(
            "num_scan_inputs {m} does not fit the node's {} inputs",
            ins.len()
        )));
    }
    let m = m as usize;
    let n = ins.len() - m;
    if body.inputs.len() != n + m || body.outputs.len() < n {
        return Err(op_err(format!(
            "the body has {} inputs and {} outputs for {n} states and {m} scan inputs",
            body.inputs.len(),
            body.outputs.len()
        )));
    }
    let k = body.outputs.len() - n;
    let mut states = ins;
    let seqs = states.split_off(n);
    let in_axes = ctx.ints_attr("scan_input_axes");
    let in_dirs = ctx
        .ints_attr("scan_input_directions")
        .or_else(|| ctx.ints_attr("directions"));
    let mut len = None;
    let mut axes = Vec::with_capacity(m);
    for (j, s) in seqs.iter().enumerate() {
        let a = axis_of(&in_axes, j, s.shape().len())?;
        let l = s.shape()[a];
        if len.is_some_and(|x| x != l) {
            return Err(op_err(format!(
                "scan input #{j} has {l} steps along axis {a}, the others {}",
                len.unwrap_or_default()
            )));
        }
        len = Some(l);
        axes.push(a);
    }
    let len = len.unwrap_or(0);
    let mut scans: Vec<Vec<Value>> = vec![Vec::new(); k];
    for t in 0..len {
        let mut vals = states;
        for (j, s) in seqs.iter().enumerate() {
            let rev = in_dirs.as_ref().and_then(|d| d.get(j)).copied() == Some(1);
            let idx = if rev { len - 1 - t } else { t };
            vals.push(take(s.clone(), axes[j], idx)?);
        }
        let mut outs = exec(ctx, loop_limit, sub, feed(body, vals)?, scope, observe)?.into_iter();
        states = outs.by_ref().take(n).collect();
        for (s, v) in scans.iter_mut().zip(outs) {
            check_stack(&v, s.len() + 1)?;
            s.push(v);
        }
    }
    let out_axes = ctx.ints_attr("scan_output_axes");
    let out_dirs = ctx.ints_attr("scan_output_directions");
    let mut out = states;
    for (j, mut s) in scans.into_iter().enumerate() {
        if out_dirs.as_ref().and_then(|d| d.get(j)).copied() == Some(1) {
            s.reverse();
        }
        let rank = s.first().map_or(0, |v| v.shape().len()) + 1;
        let a = axis_of(&out_axes, j, rank)?;
        out.push(stack(s, a, ctx)?);
    }
    Ok(out)
}

/// SequenceMap(input_sequence, additional_inputs...): runs `body` once per element of
/// the input sequence (at most `loop_limit` of them); an additional input that is a
/// sequence (of the same length) gives its element of that step, a tensor is passed
/// whole. Each body output, gathered over the steps, is one output sequence.
fn sequence_map(
    ctx: &Ctx,
    loop_limit: usize,
    sub: Sub,
    scope: &Scope,
    observe: Observer,
) -> RunResult<Vec<Value>> {
    let body = sub.1;
    let ins = (0..ctx.inputs.len())
        .map(|i| ctx.input(i))
        .collect::<RunResult<Vec<_>>>()?;
    let len = match ins.first() {
        Some(Value::Sequence(items, _)) => items.len(),
        Some(v) => {
            return Err(op_err(format!(
                "input #0 must be a sequence, got a {}",
                v.describe()
            )));
        }
        None => return Err(op_err("missing required input #0")),
    };
    for (j, v) in ins.iter().enumerate() {
        if let Value::Sequence(items, _) = v
            && items.len() != len
        {
            return Err(op_err(format!(
                "input #{j} is a sequence of {} tensors, input #0 of {len}",
                items.len()
            )));
        }
    }
    if len > loop_limit {
        return Err(op_err(format!(
            "{len} steps exceed the runtime's loop limit {loop_limit} (OnnxGraph::set_loop_limit)"
        )));
    }
    let mut outs: Vec<Vec<Value>> = vec![Vec::new(); body.outputs.len()];
    for i in 0..len {
        let vals = ins
            .iter()
            .map(|v| match v {
                Value::Sequence(items, _) => items
                    .get(i)
                    .cloned()
                    .ok_or_else(|| op_err(format!("no element #{i}"))),
                v => Ok(v.clone()),
            })
            .collect::<RunResult<Vec<_>>>()?;
        let res = exec(ctx, loop_limit, sub, feed(body, vals)?, scope, observe)?;
        for (o, v) in outs.iter_mut().zip(res) {
            o.push(v);
        }
    }
    outs.into_iter()
        .map(|items| {
            // an empty map's element type is unknown (0) until something is inserted
            let elem = items.first().map_or(0, Value::elem_type);
            sequence(items, elem)
        })
        .collect()
}
