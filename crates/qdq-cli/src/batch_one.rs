//! Batch 1 for models that cannot run several items at once: exports often fix the
//! batch inside (khmersm reshapes its attention to `[seq, 1, ...]`) while declaring it
//! dynamic. A pass that fails at a node on a batch of several items runs again, once,
//! one item a batch, with a one-line notice naming the node; an item that fails on its
//! own fails as before. So does a pass whose batch would make a tensor larger than the
//! runtime allows (a speech CNN's convolution over 900 x 161 frames: 16 items need
//! 2^31 values of im2col where one needs a sixteenth).

use std::error::Error;
use std::fmt;

use qdq_onnx::runtime::RunError;
use qdq_vision::train::TrainConfig;

use crate::Fallible;

/// A node's runtime failure on a batch of `items` (at least 2) items.
#[derive(Debug)]
pub(crate) struct BatchFailure {
    items: usize,
    node: String,
    error: Box<dyn Error>,
    /// A tensor past the runtime's size limit, rather than a node that fails.
    too_large: bool,
}

impl fmt::Display for BatchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (on a batch of {} items)", self.error, self.items)
    }
}

impl Error for BatchFailure {}

/// `e`, raised on a batch of `items` items: a [`BatchFailure`] when it is a node's
/// runtime failure and the batch holds several items, else `e` as it is.
pub(crate) fn on_batch(e: impl Into<Box<dyn Error>>, items: usize) -> Box<dyn Error> {
    let e = e.into();
    let node = |r: &RunError| match r {
        RunError::Node { node, .. } => Some((node.clone(), false)),
        RunError::TooLarge { node, .. } => Some((node.clone(), true)),
        _ => None,
    };
    let failed_at = match e.downcast_ref::<qdq_onnx::Error>() {
        Some(qdq_onnx::Error::Run(r)) => node(r),
        _ => e.downcast_ref::<RunError>().and_then(node),
    };
    match failed_at {
        Some((node, too_large)) if items > 1 => Box::new(BatchFailure {
            items,
            node,
            error: e,
            too_large,
        }),
        _ => e,
    }
}

/// Runs `pass` on batches of `batch` items; when it fails with a [`BatchFailure`], runs
/// it again on batches of 1 after a notice on stderr. The result, with the batch size
/// that gave it.
///
/// # Errors
/// What `pass` returns: any other error at once, the batch-1 run's error after a
/// fallback.
pub(crate) fn with_fallback<T>(
    batch: usize,
    mut pass: impl FnMut(usize) -> Fallible<T>,
) -> Fallible<(T, usize)> {
    match pass(batch) {
        Err(e) if batch > 1 => match e.downcast::<BatchFailure>() {
            Ok(f) if f.too_large => {
                eprintln!(
                    "note: `{}` on a batch of {} items would pass the runtime's size limit; running one item at a time (--batch 1)",
                    f.node, f.items
                );
                Ok((pass(1)?, 1))
            }
            Ok(f) => {
                eprintln!(
                    "note: node `{}` fails on a batch of {} items although the batch dimension is dynamic; running one item at a time (--batch 1)",
                    f.node, f.items
                );
                Ok((pass(1)?, 1))
            }
            Err(e) => Err(e),
        },
        r => r.map(|t| (t, batch)),
    }
}

/// The training recipe once calibration ran `ran` items a batch where `asked` were
/// asked: a model that fell back to batch 1 ([`with_fallback`]) trains one item a step
/// too, with a note (its training batch would fail at the same node); otherwise
/// `recipe` as given.
pub(crate) fn training_recipe(recipe: &TrainConfig, ran: usize, asked: usize) -> TrainConfig {
    if ran == 1 && asked > 1 && recipe.batch_size > 1 {
        eprintln!(
            "note: training one item a step too (--train-batch 1), as the model runs one item at a time"
        );
        recipe.clone().with_batch_size(1)
    } else {
        recipe.clone()
    }
}
