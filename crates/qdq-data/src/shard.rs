//! [`ModelData::shard`]: the K-th of N deterministic slices of a data set's items, for
//! calibration split over processes or machines.

use super::DataError;
use super::model_data::ModelData;

impl ModelData {
    /// Keeps slice `index` of `count` (0-based) of the items: contiguous runs of the
    /// item order (shape groups in turn, items in order), so each shard reads only its
    /// own items, and the N slices together are exactly the items one unsharded pass
    /// uses. The slices are cut in whole batches of the model's fixed batch size when
    /// it fixes one (of the items such a pass keeps: each shape group's tail is dropped
    /// as [`ModelData::batches`] drops it), else in items; they differ in length by at
    /// most one such unit. A slice may be empty (more shards than units).
    ///
    /// # Errors
    /// `count` is 0 or `index >= count`; inputs that fix different batch sizes.
    pub fn shard(mut self, index: usize, count: usize) -> Result<Self, DataError> {
        if count == 0 || index >= count {
            return Err(DataError::Inputs(format!(
                "shard {index}/{count}: the index must be below the count (0-based, 0..{count})"
            )));
        }
        let unit = self.fixed_batch()?.unwrap_or(1).max(1);
        // The units one pass uses, group by group.
        let groups: Vec<Vec<usize>> = (0..)
            .map_while(|g| self.group(g))
            .map(|g| g.take(0, g.len() - g.len() % unit))
            .collect();
        let units: usize = groups.iter().map(|g| g.len() / unit).sum();
        // u128: units * count cannot overflow.
        let cut = |k: usize| (units as u128 * k as u128 / count as u128) as usize * unit;
        let (lo, hi) = (cut(index), cut(index + 1));
        let mut at = 0;
        let mut kept = Vec::new();
        for g in groups {
            let (start, end) = (at, at + g.len());
            at = end;
            let (a, b) = (lo.max(start), hi.min(end));
            if a < b {
                kept.push(g[a - start..b - start].to_vec());
            }
        }
        self.len = hi - lo;
        self.groups = Some(kept);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Dataset, Input, ModelData, Preprocess};

    /// A float input `x` with items of 2 values, `batch` fixed or not, and `n` items
    /// whose values are their index.
    fn data(n: usize, batch: Option<usize>) -> ModelData {
        let input = Input::new("x", vec![batch, Some(2)]);
        let values: Vec<f32> = (0..n).flat_map(|i| [i as f32, i as f32]).collect();
        let set = Dataset::from_values(vec![n, 2], values, Preprocess::default()).unwrap();
        ModelData::from_dataset(input, set).unwrap()
    }

    /// The items of every batch of `d`, in order.
    fn items(d: &ModelData, batch: usize) -> Vec<usize> {
        d.batches(batch)
            .unwrap()
            .flat_map(|b| b.unwrap().0)
            .collect()
    }

    #[test]
    fn shards_are_contiguous_disjoint_and_cover_one_pass() {
        for (n, fixed) in [(10, None), (3, None), (23, Some(4)), (7, Some(8))] {
            let whole = items(&data(n, fixed), 3);
            for count in 1..=8 {
                let mut all = Vec::new();
                for k in 0..count {
                    let s = data(n, fixed).shard(k, count).unwrap();
                    let got = items(&s, 3);
                    assert_eq!(s.len(), got.len());
                    all.extend(got);
                }
                assert_eq!(all, whole, "{n} items, fixed {fixed:?}, {count} shards");
            }
        }
        // 10 items in 4 shards: 2, 3, 2, 3 (cuts at 10k/4).
        let lens: Vec<usize> = (0..4)
            .map(|k| data(10, None).shard(k, 4).unwrap().len())
            .collect();
        assert_eq!(lens, [2, 3, 2, 3]);
        // With a fixed batch of 4, 23 items are 5 batches (the last 3 items dropped).
        assert_eq!(
            items(&data(23, Some(4)).shard(1, 2).unwrap(), 1),
            (8..20).collect::<Vec<_>>()
        );
        let e = data(4, None).shard(2, 2).unwrap_err().to_string();
        assert!(e.contains("shard 2/2"), "{e}");
        assert!(data(4, None).shard(0, 0).is_err());
    }
}
