//! Elementwise ops, reductions, matmul and activations.

use super::*;

impl Lowerer<'_> {
    pub(super) fn numeric(&mut self, n: &NumericOperationIr) -> std::result::Result<(), Lower> {
        use NumericOperationIr as N;
        match n {
            N::MulScalar(s) if self.quant_marker(&s.lhs, &s.out)? => {}
            N::Add(b) | N::Sub(b) | N::Mul(b) | N::Div(b) => {
                let op = match n {
                    N::Add(_) => "Add",
                    N::Sub(_) => "Sub",
                    N::Mul(_) => "Mul",
                    _ => "Div",
                };
                self.emit_t(op, &[&b.lhs, &b.rhs], &b.out)?;
            }
            N::AddScalar(s) | N::SubScalar(s) | N::MulScalar(s) | N::DivScalar(s) => {
                let op = match n {
                    N::AddScalar(_) => "Add",
                    N::SubScalar(_) => "Sub",
                    N::MulScalar(_) => "Mul",
                    _ => "Div",
                };
                let c = self.scalar(&s.rhs, &s.lhs)?;
                let x = self.value(s.lhs.id)?;
                self.emit(op, &[&x, &c], &s.out);
            }
            N::Abs(u) => {
                self.emit_t("Abs", &[&u.input], &u.out)?;
            }
            N::Neg(u) => {
                self.emit_t("Neg", &[&u.input], &u.out)?;
            }
            N::ClampMin(s) | N::ClampMax(s) => {
                let op = if matches!(n, N::ClampMin(_)) {
                    "Max"
                } else {
                    "Min"
                };
                let c = self.scalar(&s.rhs, &s.lhs)?;
                let x = self.value(s.lhs.id)?;
                self.emit(op, &[&x, &c], &s.out);
            }
            N::Clamp(c) if self.options.opset < 11 => {
                let n = self.emit_t("Clip", &[&c.tensor], &c.out)?;
                n.attribute.push(attr_float("min", scalar_f32(&c.min)));
                n.attribute.push(attr_float("max", scalar_f32(&c.max)));
            }
            N::Clamp(c) => {
                let lo = self.scalar(&c.min, &c.tensor)?;
                let hi = self.scalar(&c.max, &c.tensor)?;
                let x = self.value(c.tensor.id)?;
                self.emit("Clip", &[&x, &lo, &hi], &c.out);
            }
            N::MeanDim(r) | N::SumDim(r) => {
                let op = if matches!(n, N::MeanDim(_)) {
                    "ReduceMean"
                } else {
                    "ReduceSum"
                };
                let y = self.reduce(op, &r.input, &[r.axis], true)?;
                self.names.insert(r.out.id, y);
            }
            N::Mean(r) | N::Sum(r) => {
                let op = if matches!(n, N::Mean(_)) {
                    "ReduceMean"
                } else {
                    "ReduceSum"
                };
                let axes: Vec<usize> = (0..r.input.shape.to_vec().len()).collect();
                // burn's full reductions give shape [1]: reduce keeping dims, reshape.
                let kept = self.reduce(op, &r.input, &axes, true)?;
                let shape = self.const_i64(&ints(&r.out.shape.to_vec()));
                self.emit("Reshape", &[&kept, &shape], &r.out);
            }
            N::Pad(p) => {
                let PadModeIr::Constant(v) = &p.mode else {
                    return Err(Lower::Unsupported(format!("{:?} padding", p.mode)));
                };
                if self.options.opset < 11 {
                    return Err(Lower::Unsupported("Pad needs opset 11 or newer".into()));
                }
                let rank = p.input.shape.to_vec().len();
                // burn lists (before, after) from the last dimension backwards.
                let mut begins = vec![0i64; rank];
                let mut ends = vec![0i64; rank];
                for (i, (b, e)) in p.padding.iter().enumerate() {
                    begins[rank - 1 - i] = *b as i64;
                    ends[rank - 1 - i] = *e as i64;
                }
                let pads = self.const_i64(&[begins, ends].concat());
                let value = self.scalar(v, &p.input)?;
                let x = self.value(p.input.id)?;
                self.emit("Pad", &[&x, &pads, &value], &p.out);
            }
            _ => return Err(Lower::Unsupported(String::new())),
        }
        Ok(())
    }

    pub(super) fn reduce(
        &mut self,
        op: &str,
        input: &TensorIr,
        axes: &[usize],
        keepdims: bool,
    ) -> Result<String> {
        let axes = ints(axes);
        // Axes became an input in opset 13 for ReduceSum and 18 for the others.
        let as_input = self.options.opset >= if op == "ReduceSum" { 13 } else { 18 };
        let x = self.value(input.id)?;
        let y = if as_input {
            let a = self.const_i64(&axes);
            self.emit_tmp(op, &[&x, &a])
        } else {
            let y = self.emit_tmp(op, &[&x]);
            self.last().attribute.push(attr_ints("axes", axes));
            y
        };
        self.last()
            .attribute
            .push(attr_int("keepdims", keepdims as i64));
        Ok(y)
    }

    pub(super) fn float(&mut self, f: &FloatOperationIr) -> std::result::Result<(), Lower> {
        use FloatOperationIr as F;
        let unary = match f {
            F::Exp(u) => Some(("Exp", u)),
            F::Log(u) => Some(("Log", u)),
            F::Erf(u) => Some(("Erf", u)),
            F::Sqrt(u) => Some(("Sqrt", u)),
            F::Tanh(u) => Some(("Tanh", u)),
            F::Cos(u) => Some(("Cos", u)),
            F::Sin(u) => Some(("Sin", u)),
            F::Round(u) => Some(("Round", u)),
            F::Floor(u) => Some(("Floor", u)),
            F::Ceil(u) => Some(("Ceil", u)),
            F::Recip(u) => Some(("Reciprocal", u)),
            _ => None,
        };
        if let Some((op, u)) = unary {
            self.emit_t(op, &[&u.input], &u.out)?;
            return Ok(());
        }
        match f {
            F::Matmul(m) => {
                self.emit_t("MatMul", &[&m.lhs, &m.rhs], &m.out)?;
            }
            F::Powf(b) => {
                self.emit_t("Pow", &[&b.lhs, &b.rhs], &b.out)?;
            }
            F::PowfScalar(s) => {
                let c = self.scalar(&s.rhs, &s.lhs)?;
                let x = self.value(s.lhs.id)?;
                self.emit("Pow", &[&x, &c], &s.out);
            }
            _ => return Err(Lower::Unsupported(String::new())),
        }
        Ok(())
    }

    pub(super) fn activation(
        &mut self,
        a: &ActivationOperationIr,
    ) -> std::result::Result<(), Lower> {
        use ActivationOperationIr as A;
        match a {
            A::Relu(u) => {
                self.emit_t("Relu", &[&u.input], &u.out)?;
            }
            A::Sigmoid(u) => {
                self.emit_t("Sigmoid", &[&u.input], &u.out)?;
            }
            A::LeakyRelu(s) => {
                self.emit_t("LeakyRelu", &[&s.lhs], &s.out)?
                    .attribute
                    .push(attr_float("alpha", scalar_f32(&s.rhs)));
            }
            A::HardSigmoid(h) => {
                let n = self.emit_t("HardSigmoid", &[&h.tensor], &h.out)?;
                n.attribute.push(attr_float("alpha", scalar_f32(&h.alpha)));
                n.attribute.push(attr_float("beta", scalar_f32(&h.beta)));
            }
            A::Softmax(d) | A::LogSoftmax(d)
                if self.options.opset < 13 && d.axis + 1 != d.input.shape.len() =>
            {
                return Err(Lower::Unsupported(
                    "softmax over a non-last axis needs opset 13 or newer".into(),
                ));
            }
            A::Softmax(d) | A::LogSoftmax(d) => {
                let op = if matches!(a, A::Softmax(_)) {
                    "Softmax"
                } else {
                    "LogSoftmax"
                };
                self.emit_t(op, &[&d.input], &d.out)?
                    .attribute
                    .push(attr_int("axis", d.axis as i64));
            }
            A::Gelu(u) => {
                if self.options.opset >= 20 {
                    self.emit_t("Gelu", &[&u.input], &u.out)?;
                } else {
                    // 0.5 * x * (1 + erf(x / sqrt(2)))
                    let x = self.value(u.input.id)?;
                    let sqrt2 = self.const_f32(&[], &[std::f32::consts::SQRT_2]);
                    let one = self.const_f32(&[], &[1.0]);
                    let half = self.const_f32(&[], &[0.5]);
                    let d = self.emit_tmp("Div", &[&x, &sqrt2]);
                    let e = self.emit_tmp("Erf", &[&d]);
                    let p = self.emit_tmp("Add", &[&e, &one]);
                    let m = self.emit_tmp("Mul", &[&x, &p]);
                    self.emit("Mul", &[&m, &half], &u.out);
                }
            }
            _ => return Err(Lower::Unsupported(String::new())),
        }
        Ok(())
    }
}
