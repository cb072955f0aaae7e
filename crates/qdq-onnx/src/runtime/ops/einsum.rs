//! Einsum through burn's `Tensor::einsum`, after checking the equation against the
//! inputs here (burn panics on a mismatch): one term per input, each term's labels
//! (and `...`) covering its input's rank, a label's dims equal wherever it appears,
//! `...` dims broadcastable, and the output (and the product of all labels' dims, the
//! largest intermediate burn may form) within the element limit. The implicit
//! output (no `->`) is numpy's: `...` dims, then the labels used once, alphabetically.

use std::collections::BTreeMap;

use burn::tensor::{EinsumOperand, Float, Tensor};

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::{DynTensor, MAX_RANK, Value, const_rank, dyn_apply};
use super::Ctx;

/// A term's labels, with `None` standing for the `...` position.
fn labels(term: &str) -> RunResult<Vec<Option<char>>> {
    let mut out = Vec::new();
    let mut rest = term;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("...") {
            if out.contains(&None) {
                return Err(op_err(format!("`{term}` has two ellipses")));
            }
            out.push(None);
            rest = r;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            if !c.is_ascii_alphabetic() {
                return Err(op_err(format!("`{term}`: `{c}` is not a label")));
            }
            out.push(Some(c));
            rest = &rest[1..];
        }
    }
    Ok(out)
}

/// Broadcasts two `...` shapes (right-aligned, 1 stretches).
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let x = if i + a.len() >= n {
                a[i + a.len() - n]
            } else {
                1
            };
            let y = if i + b.len() >= n {
                b[i + b.len() - n]
            } else {
                1
            };
            match (x, y) {
                (x, y) if x == y || y == 1 => Some(x),
                (1, y) => Some(y),
                _ => None,
            }
        })
        .collect()
}

/// Output shape of `equation` for inputs of `shapes`, and the equation with its output
/// made explicit (so burn computes exactly the output described here).
fn out_shape(equation: &str, shapes: &[Vec<usize>]) -> RunResult<(Vec<usize>, String)> {
    let (lhs, rhs) = match equation.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (equation, None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != shapes.len() {
        return Err(op_err(format!(
            "`{equation}` has {} terms for {} inputs",
            terms.len(),
            shapes.len()
        )));
    }
    let mut dims: BTreeMap<char, usize> = BTreeMap::new();
    let mut uses: BTreeMap<char, usize> = BTreeMap::new();
    let mut ell: Vec<usize> = Vec::new();
    for (term, shape) in terms.iter().zip(shapes) {
        let ls = labels(term)?;
        let named = ls.iter().filter(|l| l.is_some()).count();
        let has_ell = ls.contains(&None);
        if named > shape.len() || (!has_ell && named != shape.len()) {
            return Err(op_err(format!(
                "`{term}` does not fit an input of shape {shape:?}"
            )));
        }
        let ell_rank = shape.len() - named;
        let mut pos = 0;
        for l in ls {
            match l {
                None => {
                    ell = broadcast(&ell, &shape[pos..pos + ell_rank]).ok_or_else(|| {
                        op_err(format!(
                            "`...` dims of {shape:?} do not broadcast with {ell:?}"
                        ))
                    })?;
                    pos += ell_rank;
                }
                Some(c) => {
                    let d = shape[pos];
                    if *dims.entry(c).or_insert(d) != d {
                        return Err(op_err(format!(
                            "label `{c}` is {} in one place and {d} in another",
                            dims[&c]
                        )));
                    }
                    *uses.entry(c).or_default() += 1;
                    pos += 1;
                }
            }
        }
    }
    let out_labels: Vec<Option<char>> = match rhs {
        Some(r) => {
            let ls = labels(r)?;
            if let Some(c) = ls.iter().flatten().find(|c| !dims.contains_key(c)) {
                return Err(op_err(format!("output label `{c}` is not in any input")));
            }
            ls
        }
        None => (lhs.contains("...").then_some(None).into_iter())
            .chain(uses.iter().filter(|(_, n)| **n == 1).map(|(c, _)| Some(*c)))
            .collect(),
    };
    // burn may multiply before it sums: bound the product of every label's dim too
    let mut every: Vec<usize> = dims.values().copied().collect();
    every.extend(&ell);
    checked_numel("", "", &every)?;
    let mut shape = Vec::new();
    let mut rhs = String::new();
    for l in out_labels {
        match l {
            None => {
                shape.extend(&ell);
                rhs.push_str("...");
            }
            Some(c) => {
                shape.push(dims[&c]);
                rhs.push(c);
            }
        }
    }
    Ok((shape, format!("{lhs}->{rhs}")))
}

pub(crate) fn einsum(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let equation: String = ctx
        .string_attr("equation", "")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let ins: Vec<DynTensor<Float>> = (0..ctx.inputs.len())
        .map(|i| ctx.float(i))
        .collect::<RunResult<_>>()?;
    let shapes: Vec<Vec<usize>> = ins.iter().map(|t| t.shape().to_vec()).collect();
    let (shape, equation) = out_shape(&equation, &shapes)?;
    if shape.len() > MAX_RANK {
        return Err(op_err(format!(
            "output rank {} exceeds {MAX_RANK}",
            shape.len()
        )));
    }
    checked_numel("", "", &shape)?;
    let ops: Vec<EinsumOperand<Float>> = ins
        .into_iter()
        .map(|t| dyn_apply!(t.t, |x, R| EinsumOperand::from(x)))
        .collect();
    let rank = shape.len().max(1);
    let out = const_rank!(rank, |R| DynTensor::from_tensor_as(
        Tensor::<R>::einsum(&equation, ops),
        shape.clone()
    ))?;
    Ok(vec![Value::Float(out)])
}
