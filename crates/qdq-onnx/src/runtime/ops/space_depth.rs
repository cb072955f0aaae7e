//! DepthToSpace (modes DCR and CRD) and SpaceToDepth on NCHW tensors: pure index
//! permutations with a `blocksize` read from the node.

use super::super::error::{RunResult, op_err};
use super::super::value::Value;
use super::Ctx;
use super::host::Host;

fn nchw(x: &Host, b: usize) -> RunResult<[usize; 4]> {
    match x.shape.as_slice() {
        &[n, c, h, w] if b > 0 => Ok([n, c, h, w]),
        _ => Err(op_err(format!(
            "input must be NCHW with blocksize >= 1, got {:?} and blocksize {b}",
            x.shape
        ))),
    }
}

fn blocksize(ctx: &Ctx) -> RunResult<usize> {
    usize::try_from(ctx.int_attr("blocksize", 0))
        .ok()
        .filter(|&b| b > 0 && b <= 1 << 16)
        .ok_or_else(|| op_err("blocksize must be in [1, 65536]"))
}

/// DepthToSpace(`[N, C·b², H, W]`) → `[N, C, H·b, W·b]`; mode `DCR` (default) takes
/// the block offset from the channel's high part, `CRD` from its low part.
pub(crate) fn depth_to_space(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&ctx.input(0)?)?;
    let b = blocksize(ctx)?;
    let [n, c, h, w] = nchw(&x, b)?;
    if c % (b * b) != 0 {
        return Err(op_err(format!(
            "channels {c} are not a multiple of blocksize² ({})",
            b * b
        )));
    }
    let co = c / (b * b);
    let crd = ctx.string_attr("mode", "DCR") == "CRD";
    let mut idx = Vec::with_capacity(x.len());
    for ni in 0..n {
        for ci in 0..co {
            for y in 0..h * b {
                for xx in 0..w * b {
                    let (bi, bj) = (y % b, xx % b);
                    let src_c = if crd {
                        ci * b * b + bi * b + bj
                    } else {
                        (bi * b + bj) * co + ci
                    };
                    idx.push(((ni * c + src_c) * h + y / b) * w + xx / b);
                }
            }
        }
    }
    Ok(vec![
        x.take(&idx, vec![n, co, h * b, w * b])
            .into_value(ctx.device)?,
    ])
}

/// SpaceToDepth(`[N, C, H·b, W·b]`) → `[N, C·b², H, W]` (the inverse of DCR).
pub(crate) fn space_to_depth(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&ctx.input(0)?)?;
    let b = blocksize(ctx)?;
    let [n, c, h, w] = nchw(&x, b)?;
    if h % b != 0 || w % b != 0 {
        return Err(op_err(format!(
            "spatial dims {h}x{w} are not multiples of blocksize {b}"
        )));
    }
    let (ho, wo) = (h / b, w / b);
    let mut idx = Vec::with_capacity(x.len());
    for ni in 0..n {
        for oc in 0..c * b * b {
            let (blk, ci) = (oc / c, oc % c);
            let (bi, bj) = (blk / b, blk % b);
            for y in 0..ho {
                for xx in 0..wo {
                    idx.push(((ni * c + ci) * h + y * b + bi) * w + xx * b + bj);
                }
            }
        }
    }
    Ok(vec![
        x.take(&idx, vec![n, c * b * b, ho, wo])
            .into_value(ctx.device)?,
    ])
}
