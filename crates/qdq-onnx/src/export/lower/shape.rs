//! Layout ops: reshape, transpose, expand, concat, repeat, slice, cast, fills.

use super::*;

impl Lowerer<'_> {
    pub(super) fn base(&mut self, b: &BaseOperationIr) -> std::result::Result<(), Lower> {
        use BaseOperationIr as B;
        match b {
            B::Reshape(r) => {
                let (from, to) = (r.input.shape.to_vec().clone(), r.out.shape.to_vec().clone());
                // A per-channel axis survives a reshape that keeps it and everything before.
                let keep =
                    move |a: usize| (from[..=a] == to.get(..=a).unwrap_or(&[])[..]).then_some(a);
                if !self.fold_layout(&r.input, &r.out, |t| t, keep)? {
                    let mut dims = ints(&r.out.shape.to_vec());
                    if self.keeps_batch(&r.input, &r.out) {
                        dims[0] = 0; // copy the (dynamic) batch from the input
                    }
                    let shape = self.const_i64(&dims);
                    let x = self.value(r.input.id)?;
                    self.emit("Reshape", &[&x, &shape], &r.out);
                }
            }
            B::SwapDims(s) => {
                let rank = s.input.shape.to_vec().len();
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.swap(s.dim1, s.dim2);
                self.transpose(&s.input, &s.out, perm)?;
            }
            B::Permute(p) => self.transpose(&p.input, &p.out, p.axes.clone())?,
            B::Expand(e) => {
                let mut dims = ints(&e.out.shape.to_vec());
                if self.keeps_batch(&e.input, &e.out) {
                    dims[0] = 1; // broadcasting keeps the input's batch
                }
                let shape = self.const_i64(&dims);
                let x = self.value(e.input.id)?;
                self.emit("Expand", &[&x, &shape], &e.out);
            }
            B::Cat(c) => {
                let inputs: Vec<&TensorIr> = c.tensors.iter().collect();
                let n = self.emit_t("Concat", &inputs, &c.out)?;
                n.attribute.push(attr_int("axis", c.dim as i64));
            }
            B::RepeatDim(r) => {
                let mut reps = vec![1i64; r.tensor.shape.to_vec().len()];
                reps[r.dim] = r.times as i64;
                let reps = self.const_i64(&reps);
                let x = self.value(r.tensor.id)?;
                self.emit("Tile", &[&x, &reps], &r.out);
            }
            B::Slice(s) => {
                let dims = &s.tensor.shape.to_vec();
                let (mut starts, mut ends, mut axes, mut steps) = (vec![], vec![], vec![], vec![]);
                for (axis, r) in s.ranges.iter().enumerate() {
                    let len = dims[axis] as i64;
                    let norm = |v: isize| if v < 0 { v as i64 + len } else { v as i64 };
                    let (start, mut end) = (norm(r.start), r.end.map_or(len, norm));
                    if axis == 0 && start == 0 && end == len && self.keeps_batch(&s.tensor, &s.out)
                    {
                        end = i64::MAX; // the whole (dynamic) batch
                    }
                    if r.step < 0 {
                        return Err(Lower::Unsupported("a slice with a negative step".into()));
                    }
                    starts.push(start);
                    ends.push(end);
                    axes.push(axis as i64);
                    steps.push(r.step as i64);
                }
                let names = [starts, ends, axes, steps].map(|v| self.const_i64(&v));
                let x = self.value(s.tensor.id)?;
                let inputs = [x.as_str(), &names[0], &names[1], &names[2], &names[3]];
                self.emit("Slice", &inputs, &s.out);
            }
            B::Cast(c) if c.input.dtype == c.out.dtype => {
                self.emit_t("Identity", &[&c.input], &c.out)?;
            }
            B::Zeros(c) | B::Ones(c) => {
                let v = if matches!(b, B::Zeros(_)) { 0.0 } else { 1.0 };
                let n = c.out.shape.num_elements();
                let data = TensorData::new(vec![v; n], c.out.shape.to_vec().clone());
                self.consts
                    .insert(c.out.id, (data, format!("const_{}", c.out.id.value())));
            }
            _ => return Err(Lower::Unsupported(String::new())),
        }
        Ok(())
    }

    pub(super) fn transpose(
        &mut self,
        input: &TensorIr,
        out: &TensorIr,
        perm: Vec<usize>,
    ) -> std::result::Result<(), Lower> {
        let rank = perm.len();
        let p = perm.clone();
        let apply = move |t: Tensor<6>| {
            let mut full: Vec<usize> = p.clone();
            full.extend(rank..6);
            t.permute(<[usize; 6]>::try_from(full).expect("rank 6"))
        };
        let q = perm.clone();
        let axis_map = move |a: usize| q.iter().position(|&d| d == a);
        if !self.fold_layout(input, out, apply, axis_map)? {
            let x = self.value(input.id)?;
            self.emit("Transpose", &[&x], out)
                .attribute
                .push(attr_ints("perm", ints(&perm)));
        }
        Ok(())
    }
}
