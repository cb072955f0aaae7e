//! Sequence and optional ops: SequenceConstruct, SequenceEmpty, SequenceInsert,
//! SequenceAt, SequenceErase, SequenceLength, SplitToSequence, ConcatFromSequence,
//! Optional, OptionalHasElement, OptionalGetElement. (SequenceMap runs a subgraph:
//! `runtime/control.rs`.) A sequence holds tensors of one element type; positions may
//! be negative (counted from the end) and are checked against the length; a sequence's
//! elements together stay within [`MAX_ELEMENTS`], and it holds at most
//! [`MAX_SEQUENCE_LEN`] of them (empty tensors count too).

use super::super::error::{RunResult, op_err, too_large};
use super::super::value::{MAX_ELEMENTS, Value};
use super::shape::{concat_values, narrow};
use super::{Ctx, norm_axis};
use crate::proto::elem::{self as dt, dtype_name};

/// Most tensors one sequence holds: 2^20. Bounds what a hostile model can ask for with
/// empty tensors, which [`MAX_ELEMENTS`] does not see (a SplitToSequence of an empty
/// axis into a billion empty pieces).
pub const MAX_SEQUENCE_LEN: usize = 1 << 20;

/// Ops that take or make sequences and optionals (the executor lets only these, and
/// Identity, If and Loop, see a non-tensor input).
pub(crate) const OPS: &[&str] = &[
    "ConcatFromSequence",
    "Optional",
    "OptionalGetElement",
    "OptionalHasElement",
    "SequenceAt",
    "SequenceConstruct",
    "SequenceEmpty",
    "SequenceErase",
    "SequenceInsert",
    "SequenceLength",
    "SequenceMap",
    "SplitToSequence",
];

/// Runs one sequence or optional op.
pub(crate) fn run(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let out = match op {
        "SequenceConstruct" => {
            let items = (0..ctx.inputs.len())
                .map(|i| ctx.input(i))
                .collect::<RunResult<Vec<_>>>()?;
            let elem = items.first().map_or(dt::FLOAT, Value::elem_type);
            sequence(items, elem)?
        }
        "SequenceEmpty" => Value::Sequence(Vec::new(), ctx.int_attr("dtype", 1) as i32),
        "SequenceInsert" => {
            let (mut items, elem) = seq_input(ctx, 0)?;
            let t = ctx.input(1)?;
            // an empty sequence of unknown type (elem 0, a SequenceMap of nothing) takes any
            let elem = if items.is_empty() && elem == 0 {
                t.elem_type()
            } else {
                elem
            };
            let at = match position(ctx, 2)? {
                Some(p) => index(p, items.len(), true)?,
                None => items.len(),
            };
            items.insert(at, t);
            sequence(items, elem)?
        }
        "SequenceAt" => {
            let (mut items, _) = seq_input(ctx, 0)?;
            let p = position(ctx, 1)?.ok_or_else(|| op_err("missing required input #1"))?;
            let at = index(p, items.len(), false)?;
            items.swap_remove(at)
        }
        "SequenceErase" => {
            let (mut items, elem) = seq_input(ctx, 0)?;
            let at = match position(ctx, 1)? {
                Some(p) => index(p, items.len(), false)?,
                None if items.is_empty() => return Err(op_err("erasing from an empty sequence")),
                None => items.len() - 1,
            };
            items.remove(at);
            Value::Sequence(items, elem)
        }
        "SequenceLength" => {
            let (items, _) = seq_input(ctx, 0)?;
            Value::from_i64(vec![items.len() as i64], &[], ctx.device)
        }
        "SplitToSequence" => split_to_sequence(ctx)?,
        "ConcatFromSequence" => concat_from_sequence(ctx)?,
        "Optional" => Value::Optional(ctx.opt(0).map(Box::new)),
        "OptionalHasElement" => {
            let has = match ctx.opt(0) {
                None | Some(Value::Optional(None)) => false,
                Some(_) => true,
            };
            Value::try_from_bool(vec![has], &[], ctx.device)?
        }
        "OptionalGetElement" => match ctx.input(0)? {
            Value::Optional(Some(v)) => *v,
            Value::Optional(None) => return Err(op_err("the optional input is empty")),
            // opset 18: a tensor or sequence is its own element
            v => v,
        },
        o => return Err(op_err(format!("{o} is not a sequence op"))),
    };
    Ok(vec![out])
}

/// A sequence of `items`, checking they share element type `elem` and together stay
/// within [`MAX_ELEMENTS`].
pub(crate) fn sequence(items: Vec<Value>, elem: i32) -> RunResult<Value> {
    check_len(items.len())?;
    let mut total: usize = 0;
    for (i, v) in items.iter().enumerate() {
        if !v.is_tensor() {
            return Err(op_err(format!(
                "sequence element #{i} is a {}; a sequence holds tensors",
                v.describe()
            )));
        }
        if v.elem_type() != elem {
            return Err(op_err(format!(
                "sequence element #{i} is {}, the sequence holds {}",
                dtype_name(v.elem_type()),
                dtype_name(elem)
            )));
        }
        total = total
            .checked_add(v.shape().iter().product())
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| too_large(&[total as u64, items.len() as u64]))?;
    }
    Ok(Value::Sequence(items, elem))
}

fn check_len(n: usize) -> RunResult<()> {
    if n > MAX_SEQUENCE_LEN {
        return Err(op_err(format!(
            "a sequence of {n} tensors exceeds the runtime's limit of {MAX_SEQUENCE_LEN}"
        )));
    }
    Ok(())
}

/// Input `i` as a sequence's items and element type.
fn seq_input(ctx: &Ctx, i: usize) -> RunResult<(Vec<Value>, i32)> {
    match ctx.input(i)? {
        Value::Sequence(items, elem) => Ok((items, elem)),
        v => Err(op_err(format!(
            "input #{i} must be a sequence, got a {}",
            v.describe()
        ))),
    }
}

/// Optional scalar integer input `i` (a position).
fn position(ctx: &Ctx, i: usize) -> RunResult<Option<i64>> {
    match ctx.host_ints(i)? {
        None => Ok(None),
        Some(v) if v.len() == 1 => Ok(Some(v[0])),
        Some(v) => Err(op_err(format!(
            "position (input #{i}) must hold one value, got {} values",
            v.len()
        ))),
    }
}

/// Position `p` in a sequence of `len`: `[-len, len - 1]`, or `[-len, len]` where
/// the end is a valid place (`insert`).
fn index(p: i64, len: usize, insert: bool) -> RunResult<usize> {
    let n = len as i64;
    let at = if p < 0 { p.saturating_add(n) } else { p };
    let hi = if insert { n } else { n - 1 };
    if at < 0 || at > hi {
        return Err(op_err(format!(
            "position {p} is out of range for a sequence of {len} tensors ([{}, {hi}])",
            -n
        )));
    }
    Ok(at as usize)
}

/// SplitToSequence(input, split?): `axis` (default 0); without `split`, pieces of 1
/// along the axis, squeezed unless `keepdims` is 0; a scalar `split` gives pieces of
/// that size (the last one shorter), a 1-D one the sizes of each piece.
fn split_to_sequence(ctx: &Ctx) -> RunResult<Value> {
    let x = ctx.input(0)?;
    let shape = x.shape();
    let axis = norm_axis(ctx.int_attr("axis", 0), shape.len())?;
    let dim = shape[axis];
    let split = ctx.host_ints(1)?;
    // a scalar `split` is one piece size (its one value); a 1-D one lists the sizes
    let piece = match (&split, ctx.opt(1).is_some_and(|v| v.shape().is_empty())) {
        (Some(s), true) => {
            let k = s.first().copied().unwrap_or(0);
            let k = usize::try_from(k)
                .ok()
                .filter(|&k| k > 0)
                .ok_or_else(|| op_err(format!("split {k} must be positive")))?;
            Some(k)
        }
        _ => None,
    };
    check_len(match (&split, piece) {
        (_, Some(k)) => dim / k,
        (Some(s), None) => s.len(),
        (None, None) => dim,
    })?;
    let sizes: Vec<usize> = match (&split, piece) {
        (_, Some(k)) => {
            let mut v = vec![k; dim / k];
            if dim % k != 0 {
                v.push(dim % k);
            }
            v
        }
        (None, None) => vec![1; dim],
        (Some(s), None) => {
            let v = s
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| op_err(format!("negative split {d}"))))
                .collect::<RunResult<Vec<_>>>()?;
            let sum = v.iter().try_fold(0usize, |a, &d| a.checked_add(d));
            if sum != Some(dim) {
                return Err(op_err(format!(
                    "split {s:?} does not add up to axis {axis}'s {dim}"
                )));
            }
            v
        }
    };
    let squeeze = split.is_none() && ctx.int_attr("keepdims", 1) == 0;
    let mut start = 0;
    let mut items = Vec::with_capacity(sizes.len());
    for len in sizes {
        let mut s = shape.clone();
        s[axis] = len;
        if squeeze {
            s.remove(axis);
        }
        let piece = match x.clone() {
            Value::Float(t) => Value::Float(narrow(t, axis, start, len)?.reshape(&s)?),
            Value::Int(t, e) => Value::Int(narrow(t, axis, start, len)?.reshape(&s)?, e),
            Value::Bool(t) => Value::Bool(narrow(t, axis, start, len)?.reshape(&s)?),
            v => return Err(v.not_a_tensor()),
        };
        items.push(piece);
        start += len;
    }
    sequence(items, x.elem_type())
}

/// ConcatFromSequence(seq): concatenates along `axis`, or stacks along a new `axis`
/// when `new_axis` is 1 (then `axis` may be `rank`, and `-rank - 1`).
fn concat_from_sequence(ctx: &Ctx) -> RunResult<Value> {
    let (items, _) = seq_input(ctx, 0)?;
    let first = items
        .first()
        .ok_or_else(|| op_err("ConcatFromSequence of an empty sequence"))?;
    let rank = first.shape().len();
    let stack = ctx.int_attr("new_axis", 0) == 1;
    let axis = norm_axis(ctx.int_attr("axis", 0), rank + usize::from(stack))?;
    let items = match stack {
        false => items,
        true => items
            .into_iter()
            .map(|v| {
                let mut s = v.shape();
                s.insert(axis.min(s.len()), 1);
                Ok(match v {
                    Value::Float(t) => Value::Float(t.reshape(&s)?),
                    Value::Int(t, e) => Value::Int(t.reshape(&s)?, e),
                    Value::Bool(t) => Value::Bool(t.reshape(&s)?),
                    v => return Err(v.not_a_tensor()),
                })
            })
            .collect::<RunResult<Vec<_>>>()?,
    };
    concat_values(items, axis, ctx.device)
}
