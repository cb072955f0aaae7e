//! Module ops: convolutions (any rank, transposed too), pooling, normalization and
//! `Linear`.

use super::*;

impl Lowerer<'_> {
    /// Lowers a module op (convolution, pooling, normalization, linear).
    pub(super) fn module(&mut self, m: &ModuleOperationIr) -> std::result::Result<(), Lower> {
        use ModuleOperationIr as M;
        match m {
            M::Conv1d(c) => {
                let o = &c.options;
                let pads = [o.padding[0].0, o.padding[0].1];
                self.conv("Conv", &c.x, &c.weight, c.bias.as_ref(), &c.out)?;
                conv_attrs(self.last(), &o.stride, &pads, &o.dilation, o.groups);
            }
            M::Conv2d(c) => {
                let o = &c.options;
                let pads = [
                    o.padding[0].0,
                    o.padding[1].0,
                    o.padding[0].1,
                    o.padding[1].1,
                ];
                self.conv("Conv", &c.x, &c.weight, c.bias.as_ref(), &c.out)?;
                conv_attrs(self.last(), &o.stride, &pads, &o.dilation, o.groups);
            }
            M::Conv3d(c) => {
                let o = &c.options;
                let pads = sym_pads(&o.padding);
                self.conv("Conv", &c.x, &c.weight, c.bias.as_ref(), &c.out)?;
                conv_attrs(self.last(), &o.stride, &pads, &o.dilation, o.groups);
            }
            M::ConvTranspose1d(c) => conv_transpose!(self, c),
            M::ConvTranspose2d(c) => conv_transpose!(self, c),
            M::ConvTranspose3d(c) => conv_transpose!(self, c),
            M::AvgPool1d(p) => {
                let n = self.emit_t("AveragePool", &[&p.x], &p.out)?;
                pool_attrs(n, &[p.kernel_size], &[p.stride], &[p.padding], p.ceil_mode);
                n.attribute
                    .push(attr_int("count_include_pad", p.count_include_pad as i64));
            }
            M::AvgPool2d(p) => {
                let n = self.emit_t("AveragePool", &[&p.x], &p.out)?;
                pool_attrs(n, &p.kernel_size, &p.stride, &p.padding, p.ceil_mode);
                n.attribute
                    .push(attr_int("count_include_pad", p.count_include_pad as i64));
            }
            M::MaxPool1d(p) => {
                let n = self.emit_t("MaxPool", &[&p.x], &p.out)?;
                pool_attrs(n, &[p.kernel_size], &[p.stride], &[p.padding], p.ceil_mode);
                n.attribute
                    .push(attr_ints("dilations", [p.dilation as i64]));
            }
            M::MaxPool2d(p) => {
                let n = self.emit_t("MaxPool", &[&p.x], &p.out)?;
                pool_attrs(n, &p.kernel_size, &p.stride, &p.padding, p.ceil_mode);
                n.attribute.push(attr_ints("dilations", ints(&p.dilation)));
            }
            M::AdaptiveAvgPool1d(p) => self.adaptive(&p.x, &[p.output_size], &p.out)?,
            M::AdaptiveAvgPool2d(p) => self.adaptive(&p.x, &p.output_size, &p.out)?,
            M::AdaptiveAvgPool3d(p) => self.adaptive(&p.x, &p.output_size, &p.out)?,
            M::BatchNorm(b) => {
                let inputs = [&b.x, &b.gamma, &b.beta, &b.mean, &b.variance];
                let n = self.emit_t("BatchNormalization", &inputs, &b.out)?;
                n.attribute
                    .push(attr_float("epsilon", scalar_f32(&b.epsilon)));
            }
            M::LayerNorm(l) => {
                if self.options.opset < 17 {
                    return Err(Lower::Unsupported(
                        "LayerNormalization needs opset 17 or newer".into(),
                    ));
                }
                let mut inputs = vec![&l.input, &l.gamma];
                inputs.extend(l.beta.as_ref());
                let n = self.emit_t("LayerNormalization", &inputs, &l.out)?;
                n.attribute.push(attr_int("axis", -1));
                n.attribute
                    .push(attr_float("epsilon", scalar_f32(&l.epsilon)));
            }
            M::Linear(l) => match &l.bias {
                None => {
                    self.emit_t("MatMul", &[&l.x, &l.weight], &l.out)?;
                }
                Some(b) => {
                    let (x, w) = (self.value(l.x.id)?, self.value(l.weight.id)?);
                    let mm = self.emit_tmp("MatMul", &[&x, &w]);
                    let b = self.value(b.id)?;
                    self.emit("Add", &[&mm, &b], &l.out);
                }
            },
            _ => return Err(Lower::Unsupported(String::new())),
        }
        Ok(())
    }

    pub(super) fn conv(
        &mut self,
        op: &str,
        x: &TensorIr,
        w: &TensorIr,
        b: Option<&TensorIr>,
        out: &TensorIr,
    ) -> Result<()> {
        let mut inputs = vec![x, w];
        inputs.extend(b);
        let n = self.emit_t(op, &inputs, out)?;
        let kernel: Vec<i64> = w.shape.to_vec()[2..].iter().map(|&d| d as i64).collect();
        n.attribute.push(attr_ints("kernel_shape", kernel));
        Ok(())
    }

    pub(super) fn adaptive(
        &mut self,
        x: &TensorIr,
        output: &[usize],
        out: &TensorIr,
    ) -> std::result::Result<(), Lower> {
        let spatial = &x.shape.to_vec()[2..];
        if output.iter().all(|&o| o == 1) {
            self.emit_t("GlobalAveragePool", &[x], out)?;
            return Ok(());
        }
        if spatial
            .iter()
            .zip(output)
            .any(|(&i, &o)| o == 0 || i % o != 0)
        {
            return Err(Lower::Unsupported(format!(
                "adaptive average pooling from {spatial:?} to {output:?} (ONNX pools need the output size to divide the input)"
            )));
        }
        let kernel: Vec<usize> = spatial.iter().zip(output).map(|(&i, &o)| i / o).collect();
        let n = self.emit_t("AveragePool", &[x], out)?;
        pool_attrs(n, &kernel, &kernel, &vec![0; kernel.len()], false);
        Ok(())
    }
}

/// ConvTranspose of any rank: burn's 1/2/3-D ops differ only in their array lengths.
macro_rules! conv_transpose {
    ($self:ident, $c:ident) => {{
        let o = &$c.options;
        $self.conv(
            "ConvTranspose",
            &$c.x,
            &$c.weight,
            $c.bias.as_ref(),
            &$c.out,
        )?;
        let n = $self.last();
        conv_attrs(n, &o.stride, &sym_pads(&o.padding), &o.dilation, o.groups);
        n.attribute
            .push(attr_ints("output_padding", ints(&o.padding_out)));
    }};
}
use conv_transpose;

fn conv_attrs(
    n: &mut NodeProto,
    stride: &[usize],
    pads: &[usize],
    dilation: &[usize],
    groups: usize,
) {
    n.attribute.push(attr_ints("strides", ints(stride)));
    n.attribute.push(attr_ints("pads", ints(pads)));
    n.attribute.push(attr_ints("dilations", ints(dilation)));
    n.attribute.push(attr_int("group", groups as i64));
}

fn pool_attrs(
    n: &mut NodeProto,
    kernel: &[usize],
    stride: &[usize],
    padding: &[usize],
    ceil: bool,
) {
    n.attribute.push(attr_ints("kernel_shape", ints(kernel)));
    n.attribute.push(attr_ints("strides", ints(stride)));
    n.attribute
        .push(attr_ints("pads", ints(&sym_pads(padding))));
    n.attribute.push(attr_int("ceil_mode", ceil as i64));
}
