//! NonMaxSuppression: per batch and class, greedily keeps the highest-scoring boxes
//! whose IoU with every kept box is at most `iou_threshold`, skipping scores at or
//! below `score_threshold`, at most `max_output_boxes_per_class` per class.
//!
//! boxes `[batches, boxes, 4]` (`center_point_box` 0: `[y1, x1, y2, x2]`, any corner
//! order; 1: `[x_center, y_center, width, height]`), scores `[batches, classes,
//! boxes]`; output selected_indices `[selected, 3]` int64 rows `[batch, class, box]`.
//! On the host: the work is `boxes × kept` comparisons per class, bounded by the limit.

use std::cmp::Ordering;

use super::super::error::{RunResult, op_err};
use super::super::value::Value;
use super::Ctx;

/// `[y1, x1, y2, x2]` with y1 ≤ y2 and x1 ≤ x2.
fn corners(b: &[f32], center: bool) -> [f32; 4] {
    if center {
        let (xc, yc, w, h) = (b[0], b[1], b[2], b[3]);
        [yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0]
    } else {
        [
            b[0].min(b[2]),
            b[1].min(b[3]),
            b[0].max(b[2]),
            b[1].max(b[3]),
        ]
    }
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |c: &[f32; 4]| (c[2] - c[0]) * (c[3] - c[1]);
    let (aa, ab) = (area(a), area(b));
    if aa <= 0.0 || ab <= 0.0 {
        return 0.0;
    }
    let h = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let w = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = h * w;
    inter / (aa + ab - inter)
}

pub(crate) fn nms(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let boxes = ctx.float(0)?;
    let scores = ctx.float(1)?;
    let (bs, ss) = (boxes.shape().to_vec(), scores.shape().to_vec());
    if bs.len() != 3 || bs[2] != 4 || ss.len() != 3 || ss[0] != bs[0] || ss[2] != bs[1] {
        return Err(op_err(format!(
            "boxes {bs:?} and scores {ss:?} must be [batches, boxes, 4] and [batches, classes, boxes]"
        )));
    }
    let max_out = ctx
        .host_ints(2)?
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    let max_out = max_out.max(0) as usize;
    let iou_t = ctx.host_scalar(3)?.unwrap_or(0.0) as f32;
    let score_t = ctx.host_scalar(4)?.map(|v| v as f32);
    let center = ctx.int_attr("center_point_box", 0) != 0;
    let (nb, nc, n) = (ss[0], ss[1], ss[2]);
    let bx = boxes.to_vec()?;
    let sc = scores.to_vec()?;
    let mut out: Vec<i64> = Vec::new();
    for b in 0..nb {
        let cs: Vec<[f32; 4]> = (0..n)
            .map(|i| corners(&bx[(b * n + i) * 4..(b * n + i) * 4 + 4], center))
            .collect();
        for c in 0..nc {
            let s = &sc[(b * nc + c) * n..(b * nc + c + 1) * n];
            let mut cand: Vec<usize> = (0..n)
                .filter(|&i| score_t.is_none_or(|t| s[i] > t))
                .collect();
            // highest score first; equal scores by lower index
            cand.sort_by(|&i, &j| s[j].partial_cmp(&s[i]).unwrap_or(Ordering::Equal));
            let mut kept: Vec<usize> = Vec::new();
            for i in cand {
                if kept.len() >= max_out {
                    break;
                }
                if kept.iter().all(|&k| iou(&cs[k], &cs[i]) <= iou_t) {
                    kept.push(i);
                }
            }
            out.extend(kept.iter().flat_map(|&i| [b as i64, c as i64, i as i64]));
        }
    }
    let rows = out.len() / 3;
    Ok(vec![Value::try_from_i64(
        out,
        &[rows, 3],
        ctx.device,
        crate::proto::elem::INT64,
    )?])
}
