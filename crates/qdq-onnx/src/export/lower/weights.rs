//! Constants: layout ops folded into initializers (a held-back weight quantizer
//! following along), and initializers from burn tensor data.

use super::*;

impl Lowerer<'_> {
    /// Folds a layout op on a constant (or a held-back weight quantizer) into a new
    /// constant. `axis_map` maps an old axis to the new one (None: not expressible).
    pub(super) fn fold_layout(
        &mut self,
        input: &TensorIr,
        out: &TensorIr,
        apply: impl Fn(Tensor<6>) -> Tensor<6>,
        axis_map: impl Fn(usize) -> Option<usize>,
    ) -> Result<bool> {
        let fold = |data: &TensorData| -> TensorData {
            // Rank-generic: pad to rank 6 with trailing ones, apply; the result's
            // row-major data is the output's (whose padded shape it has).
            let mut padded = data.shape().to_vec();
            padded.resize(6, 1);
            let values = data.clone().convert::<f32>().try_into_vec::<f32>();
            let t = Tensor::<6>::from_data(
                TensorData::new(values.unwrap_or_default(), padded),
                &Device::flex(),
            );
            let values = apply(t).into_data().try_into_vec::<f32>();
            TensorData::new(values.unwrap_or_default(), out.shape.to_vec())
        };
        if let Some(d) = self.deferred.get(&input.id) {
            let (data, name) = self
                .consts
                .get(&d.konst)
                .cloned()
                .expect("held-back constant");
            let mut site = d.site.clone();
            let axis = match site.lowering.axis {
                Some(a) => match axis_map(a) {
                    Some(b) => Some(b),
                    None => return Ok(false),
                },
                None => None,
            };
            site.lowering.axis = axis;
            let folded = fold(&data);
            let new_const = TensorId::new(u64::MAX - self.counter as u64 - 1);
            self.counter += 1;
            self.consts.insert(new_const, (folded, name));
            self.deferred.insert(
                out.id,
                Deferred {
                    konst: new_const,
                    site,
                },
            );
            return Ok(true);
        }
        if let Some((data, name)) = self.consts.get(&input.id).cloned() {
            if data.dtype() != DType::F32 {
                return Ok(false);
            }
            self.consts.insert(out.id, (fold(&data), name));
            return Ok(true);
        }
        Ok(false)
    }
}

/// An initializer from burn tensor data (float32, int64 or int32 -> int64).
pub(super) fn initializer(name: &str, data: &TensorData) -> Result<onnx_ir::TensorProto> {
    let dims = data.shape().to_vec();
    match data.dtype() {
        DType::F32 => Ok(tensor_f32(
            name,
            &dims,
            data.as_slice::<f32>().unwrap_or(&[]),
        )),
        DType::I64 | DType::I32 => {
            let v: Vec<i64> = data
                .clone()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .unwrap_or_default();
            Ok(tensor_i64(name, &dims, &v))
        }
        other => Err(Error::Capture(format!(
            "constant `{name}` has data type {other:?}; export supports float32 and integer constants"
        ))),
    }
}
