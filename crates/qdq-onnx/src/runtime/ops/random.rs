//! RandomNormal, RandomUniform and their `Like` forms, seeded and deterministic: the
//! calibration pass, `auto`'s measurements and the check of the written model see the
//! same draws on every run (a VITS text-to-speech model draws its noise inside the
//! graph). ONNX leaves the generator to the runtime: ONNX Runtime draws other numbers
//! from the same seed, so outputs that follow the draws differ from its, as its own
//! unseeded runs differ from each other.

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::Ctx;
use super::host::{Data, Host};
use crate::proto::elem as dt;

/// The seed of a node that gives none.
const DEFAULT_SEED: u64 = 0x5eed;

/// Runs `op` (RandomNormal, RandomNormalLike, RandomUniform, RandomUniformLike): the
/// shape from the `shape` attribute or the input's, values from the `seed` attribute's
/// bits through SplitMix64; normals by Box-Muller, `mean + scale · z`; uniforms in
/// `[low, high)`. The output type is `dtype`, else the input's (`Like`), else float32;
/// only float types (held as f32, as the runtime holds every float).
pub(crate) fn random(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let like = op.ends_with("Like");
    let shape: Vec<usize> = if like {
        ctx.input(0)?.shape()
    } else {
        ctx.ints_attr("shape")
            .ok_or_else(|| op_err(format!("{op} needs a `shape` attribute")))?
            .into_iter()
            .map(|d| {
                usize::try_from(d).map_err(|_| op_err(format!("negative dimension {d} in `shape`")))
            })
            .collect::<RunResult<_>>()?
    };
    let elem = match ctx.attr("dtype").map(|a| a.i as i32).filter(|&e| e != 0) {
        Some(e) => e,
        None if like => ctx.input(0)?.elem_type(),
        None => dt::FLOAT,
    };
    if !matches!(elem, dt::FLOAT | dt::FLOAT16 | dt::BFLOAT16 | dt::DOUBLE) {
        return Err(op_err(format!(
            "dtype {} is not a float type",
            dt::dtype_name(elem)
        )));
    }
    let n = checked_numel(
        &ctx.node.name,
        ctx.node.output.first().map_or("", |o| o),
        &shape,
    )?;
    let mut state = ctx
        .attr("seed")
        .map_or(DEFAULT_SEED, |a| u64::from(a.f.to_bits()));
    // 24 random bits: a float in [0, 1) with every value exact.
    let mut unit = || (splitmix64(&mut state) >> 40) as f32 / (1u64 << 24) as f32;
    let values: Vec<f32> = if op.starts_with("RandomNormal") {
        let (mean, scale) = (ctx.float_attr("mean", 0.0), ctx.float_attr("scale", 1.0));
        (0..n)
            .map(|_| {
                // 1 - u is in (0, 1]: the logarithm stays finite.
                let (u1, u2) = (1.0 - unit(), unit());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                mean + scale * z
            })
            .collect()
    } else {
        let (low, high) = (ctx.float_attr("low", 0.0), ctx.float_attr("high", 1.0));
        (0..n).map(|_| low + (high - low) * unit()).collect()
    };
    Ok(vec![
        Host {
            data: Data::F32(values),
            shape,
        }
        .into_value(ctx.device)?,
    ])
}

/// SplitMix64's next value (Steele, Lea and Flood's mixer), advancing `state`.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use crate::proto::{attr_float, attr_int, attr_ints, model, node, value_info_named};
    use crate::runtime::{OnnxGraph, Value};

    /// Runs a one-node model of `n` on `x` (`[2, 3]` zeros) and returns its output.
    fn run(n: onnx_ir::NodeProto) -> Result<Value, String> {
        let device = Device::flex();
        let m = model(
            vec![n],
            vec![value_info_named(
                "x",
                crate::proto::elem::FLOAT,
                &[2, 3],
                None,
            )],
            &["y"],
            vec![],
            17,
        );
        let g = OnnxGraph::from_model(&m, &device).map_err(|e| e.to_string())?;
        let x = Value::from_f32(vec![0.0; 6], &[2, 3], &device);
        g.run(vec![("x".into(), x)])
            .map(|o| o[0].1.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn draws_are_seeded_shaped_and_distributed_as_asked() {
        let normal = |seed: f32| {
            let mut n = node("RandomNormal", "noise", &[], &["y"]);
            n.attribute.push(attr_ints("shape", [100, 100]));
            n.attribute.push(attr_float("mean", 2.0));
            n.attribute.push(attr_float("scale", 0.5));
            n.attribute.push(attr_float("seed", seed));
            run(n).unwrap().to_f32().unwrap()
        };
        let (a, b, c) = (normal(1.0), normal(1.0), normal(2.0));
        assert_eq!(a.len(), 10_000);
        assert_eq!(a, b, "the same seed, the same draws");
        assert_ne!(a, c);
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / 1e4;
        let var = a
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / 1e4;
        // 10 000 draws: the mean within 4 standard errors (0.005), the spread within 3 %.
        assert!((mean - 2.0).abs() < 0.02, "{mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.015, "{}", var.sqrt());

        let mut u = node("RandomUniformLike", "u", &["x"], &["y"]);
        u.attribute.push(attr_float("low", -3.0));
        u.attribute.push(attr_float("high", -1.0));
        let v = run(u).unwrap();
        assert_eq!(v.shape(), [2, 3]);
        let v = v.to_f32().unwrap();
        assert!(v.iter().all(|&x| (-3.0..-1.0).contains(&x)), "{v:?}");
        assert!(v.windows(2).any(|w| w[0] != w[1]));

        let mut like = node("RandomNormalLike", "n", &["x"], &["y"]);
        like.attribute
            .push(attr_int("dtype", i64::from(crate::proto::elem::INT64)));
        assert!(run(like).unwrap_err().contains("is not a float type"));
        let e = run(node("RandomUniform", "u", &[], &["y"])).unwrap_err();
        assert!(e.contains("needs a `shape` attribute"), "{e}");
    }
}
