//! Entry points for fuzzing (cargo-fuzz, afl.rs or the deterministic test below): each
//! takes arbitrary bytes and must never panic, hang or allocate without bound.

use burn::tensor::Device;
use onnx_ir::{Message, ModelProto};

#[cfg(test)]
use crate::proto::elem as dt;
use crate::runtime::{OnnxGraph, ProbeFill, probe_values};

/// Largest graph [`run_small_graph`] runs: nodes, initializer elements, input elements.
const MAX_NODES: usize = 64;
const MAX_WEIGHTS: u64 = 1 << 16;
const MAX_INPUT: usize = 1 << 12;

/// Parses `bytes` as an ONNX model and runs everything that reads a file without
/// running it: the linter, `inspect`'s counts, type inference and placement.
pub fn read_inspect_lint(bytes: &[u8]) {
    let Ok(model) = ModelProto::parse_from_bytes(bytes) else {
        return;
    };
    inspect_lint(&model);
}

fn inspect_lint(model: &ModelProto) {
    let _ = crate::lint(model);
    let _ = crate::passes::model_opset(model);
    if let Some(graph) = model.graph.as_ref() {
        let _ = crate::weight_elements(graph);
        let _ = crate::passes::elem_types(graph);
        let _ = crate::passes::place(graph, &Default::default());
    }
}

/// Parses `bytes` and, when the graph is small, runs it on the CPU with inputs of its
/// declared types (unknown dims as 1). Returns the message of a kernel panic the
/// runtime caught (a bug to fix), `None` otherwise.
pub fn run_small_graph(bytes: &[u8]) -> Option<String> {
    let model = ModelProto::parse_from_bytes(bytes).ok()?;
    match run_model(&model)? {
        Err(e) if e.to_string().contains("panicked") => Some(e.to_string()),
        _ => None,
    }
}

/// The run of a small graph; `None` when it is too big or does not load.
fn run_model(model: &ModelProto) -> Option<Result<(), crate::runtime::RunError>> {
    let graph = model.graph.as_ref()?;
    if graph.node.len() > MAX_NODES || crate::weight_elements(graph) > MAX_WEIGHTS {
        return None;
    }
    let device = Device::flex();
    let g = OnnxGraph::from_model(model, &device).ok()?;
    let fill = ProbeFill {
        max_dim: 16,
        max_elements: MAX_INPUT,
        float: |_| 0.5,
        bool_value: true,
    };
    let inputs = probe_values(g.inputs(), &fill, &device).ok()?;
    Some(g.run(inputs).map(|_| ()))
}

#[cfg(test)]
/// A deterministic generator (xorshift64*): the fuzz test needs no RNG crate.
struct XorShift(u64);

#[cfg(test)]
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
/// Values that break size arithmetic.
const NASTY: [i64; 10] = [
    0,
    -1,
    1,
    3,
    1 << 31,
    1 << 32,
    1 << 62,
    i64::MAX,
    i64::MIN,
    -(1 << 40),
];

#[cfg(test)]
/// A structural mutation: a dim, an attribute or a node input/output replaced.
fn mutate_model(m: &mut ModelProto, rng: &mut XorShift) {
    let Some(g) = m.graph.as_mut() else { return };
    match rng.below(6) {
        0 if !g.initializer.is_empty() => {
            let t = rng.below(g.initializer.len());
            let dims = &mut g.initializer[t].dims;
            if !dims.is_empty() {
                let d = rng.below(dims.len());
                dims[d] = NASTY[rng.below(NASTY.len())];
            }
        }
        1 if !g.node.is_empty() => {
            let n = rng.below(g.node.len());
            let node = &mut g.node[n];
            if !node.attribute.is_empty() {
                let a = rng.below(node.attribute.len());
                let v = NASTY[rng.below(NASTY.len())];
                let attr = &mut node.attribute[a];
                attr.i = v;
                if !attr.ints.is_empty() {
                    let k = rng.below(attr.ints.len());
                    attr.ints[k] = v;
                }
            }
        }
        2 if g.node.len() > 1 => {
            // Rewire an input to another tensor: cycles, duplicates, type clashes.
            let (a, b) = (rng.below(g.node.len()), rng.below(g.node.len()));
            if let (Some(out), false) = (
                g.node[b].output.first().cloned(),
                g.node[a].input.is_empty(),
            ) {
                let k = rng.below(g.node[a].input.len());
                g.node[a].input[k] = out;
            }
        }
        3 if !g.node.is_empty() => {
            let n = rng.below(g.node.len());
            g.node.remove(n);
        }
        4 if !g.initializer.is_empty() => {
            let t = rng.below(g.initializer.len());
            let v = NASTY[rng.below(NASTY.len())];
            g.initializer[t].raw_data.truncate(rng.below(64));
            g.initializer[t].int64_data.push(v);
        }
        _ => {
            let v = NASTY[rng.below(NASTY.len())];
            if let Some(o) = m.opset_import.first_mut() {
                o.version = v;
            }
        }
    }
}

#[cfg(test)]
/// A byte-level mutation: bit flips, truncation, splices of 0xFF varints.
fn mutate_bytes(bytes: &mut Vec<u8>, rng: &mut XorShift) {
    if bytes.is_empty() {
        return;
    }
    match rng.below(4) {
        0 => {
            for _ in 0..=rng.below(4) {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let n = rng.below(bytes.len());
            bytes.truncate(n);
        }
        2 => {
            let i = rng.below(bytes.len());
            let run = [0xFF; 9];
            bytes.splice(i..i, run.iter().copied().chain([0x01]));
        }
        _ => {
            let i = rng.below(bytes.len());
            bytes[i] = rng.next() as u8;
        }
    }
}

#[cfg(test)]
/// Small valid models the mutations start from.
fn seeds() -> Vec<ModelProto> {
    use crate::proto::{attr_int, attr_ints, model, node, tensor_f32, tensor_i64, value_info};
    let conv = {
        let mut c = node("Conv", "conv", &["x", "w", "b"], &["c"]);
        c.attribute.push(attr_ints("pads", [1, 1, 1, 1]));
        c.attribute.push(attr_ints("strides", [1, 1]));
        let mut p = node("MaxPool", "pool", &["r"], &["p"]);
        p.attribute.push(attr_ints("kernel_shape", [2, 2]));
        p.attribute.push(attr_ints("strides", [2, 2]));
        let mut f = node("Flatten", "flat", &["p"], &["f"]);
        f.attribute.push(attr_int("axis", 1));
        let mut gemm = node("Gemm", "fc", &["f", "wf"], &["y"]);
        gemm.attribute.push(attr_int("transB", 1));
        model(
            vec![c, node("Relu", "relu", &["c"], &["r"]), p, f, gemm],
            vec![value_info("x", dt::FLOAT, &[1, 1, 4, 4])],
            &["y"],
            vec![
                tensor_f32("w", &[2, 1, 3, 3], &[0.1; 18]),
                tensor_f32("b", &[2], &[0.0, 1.0]),
                tensor_f32("wf", &[3, 8], &[0.2; 24]),
            ],
            13,
        )
    };
    let shapes = model(
        vec![
            node("Shape", "shape", &["x"], &["s"]),
            node("Gather", "gather", &["s", "i0"], &["n"]),
            node("Unsqueeze", "unsq", &["n", "axes"], &["nu"]),
            node("Concat", "cat", &["nu", "m1"], &["target"]),
            node("Reshape", "reshape", &["x", "target"], &["r"]),
            node("Expand", "expand", &["r", "e"], &["ex"]),
            node("Tile", "tile", &["ex", "reps"], &["t"]),
            node("Pad", "pad", &["t", "pads"], &["y"]),
        ],
        vec![value_info("x", dt::FLOAT, &[2, 3])],
        &["y"],
        vec![
            tensor_i64("i0", &[], &[0]),
            tensor_i64("axes", &[1], &[0]),
            tensor_i64("m1", &[1], &[-1]),
            tensor_i64("e", &[2], &[2, 3]),
            tensor_i64("reps", &[2], &[1, 2]),
            tensor_i64("pads", &[4], &[0, 1, 0, 1]),
        ],
        13,
    );
    let qdq = model(
        vec![
            node("QuantizeLinear", "q", &["x", "s", "z"], &["xq"]),
            node("DequantizeLinear", "dq", &["xq", "s", "z"], &["xd"]),
            node("Relu", "relu", &["xd"], &["y"]),
        ],
        vec![value_info("x", dt::FLOAT, &[2, 2])],
        &["y"],
        vec![
            tensor_f32("s", &[], &[0.1]),
            crate::proto::raw_tensor("z", &[], dt::INT8, vec![0]),
        ],
        13,
    );
    let mut cat = node("Concat", "cat", &["a", "b"], &["c"]);
    cat.attribute.push(attr_int("axis", 0));
    let resize = node("Resize", "resize", &["c", "", "sc"], &["y"]);
    let misc = model(
        vec![
            node("Relu", "a_op", &["x"], &["a"]),
            node("Sigmoid", "b_op", &["x"], &["b"]),
            cat,
            resize,
        ],
        vec![value_info("x", dt::FLOAT, &[1, 1, 2, 2])],
        &["y"],
        vec![tensor_f32("sc", &[4], &[1.0, 1.0, 2.0, 2.0])],
        13,
    );
    // the host kernels: every index, axis and depth here is a mutation target
    let mut ge = node("GatherElements", "ge", &["t", "gi"], &["g"]);
    ge.attribute.push(attr_int("axis", 1));
    let mut oh = node("OneHot", "oh", &["oi", "depth", "vals"], &["o"]);
    oh.attribute.push(attr_int("axis", -1));
    let host = model(
        vec![
            node("Trilu", "trilu", &["x", "k"], &["t"]),
            ge,
            node("CumSum", "cumsum", &["g", "ax"], &["c"]),
            oh,
            node("Mul", "mul", &["c", "o"], &["m"]),
            node("ScatterND", "snd", &["m", "si", "su"], &["y"]),
        ],
        vec![value_info("x", dt::FLOAT, &[2, 3])],
        &["y"],
        vec![
            tensor_i64("k", &[], &[0]),
            tensor_i64("gi", &[2, 3], &[0, 2, 1, 1, 0, 2]),
            tensor_i64("ax", &[], &[1]),
            tensor_i64("oi", &[2], &[0, 2]),
            tensor_i64("depth", &[], &[3]),
            tensor_f32("vals", &[2], &[0.0, 1.0]),
            tensor_i64("si", &[1, 1], &[1]),
            tensor_f32("su", &[1, 3], &[1.0, 2.0, 3.0]),
        ],
        13,
    );
    vec![conv, shapes, qdq, misc, host]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_valid_and_run() {
        for m in seeds() {
            assert_eq!(crate::lint(&m), vec![]);
            let bytes = m.write_to_bytes().unwrap();
            read_inspect_lint(&bytes);
            assert_eq!(run_small_graph(&bytes), None);
            assert!(matches!(run_model(&m), Some(Ok(()))));
        }
    }

    /// Thousands of deterministic mutations of the seeds, structural and byte-level:
    /// nothing may panic (a kernel panic the runtime catches counts as one too).
    #[test]
    fn mutated_models_never_panic() {
        let seeds = seeds();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut caught = Vec::new();
        for round in 0..3000 {
            let mut m = seeds[round % seeds.len()].clone();
            for _ in 0..=rng.below(3) {
                mutate_model(&mut m, &mut rng);
            }
            let mut bytes = m.write_to_bytes().unwrap_or_default();
            if round % 2 == 1 {
                mutate_bytes(&mut bytes, &mut rng);
            }
            read_inspect_lint(&bytes);
            if round % 3 == 0
                && let Some(p) = run_small_graph(&bytes)
            {
                caught.push(format!("round {round}: {p}"));
            }
        }
        assert!(caught.is_empty(), "{}", caught.join("\n"));
    }
}
