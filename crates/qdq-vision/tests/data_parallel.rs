//! Data-parallel QAT through burn's own collectives (issue 20): what burn 0.22.1 gives
//! the backends qdq trains on.
//!
//! burn's data parallelism (burn-train's DDP strategy and `burn::tensor::distributed`)
//! needs three things from a backend: a communication server for its devices
//! (`DistributedContext::init`), parameters marked for gradient sync
//! (`Tensor::set_distributed`, which burn-train's `ModuleSharder` applies to every
//! parameter) and `all_reduce`. In 0.22.1 Flex (qdq's CPU backend) has none of them:
//! `burn-backend-extension/src/catalog.rs` lists Flex (and NdArray, LibTorch) with
//! `distributed: false`, so burn-dispatch has no arm for it and panics; underneath,
//! `impl DistributedOps<Flex> for Flex {}` keeps the trait's defaults, whose `all_reduce`
//! and `sync_collective` are `unimplemented!()`. Only cubecl's CUDA runtime and burn's
//! Remote backend implement collectives.
//!
//! The first test pins that refusal (it fails, with what to do, the day burn accepts
//! collectives on Flex); the second is the check data-parallel QAT would rest on, kept
//! `#[ignore]`d until then.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::module::ParamId;
use burn::prelude::*;
use burn::tensor::distributed::{
    DistributedConfig, DistributedContext, ReduceOperation, all_reduce,
};

/// What to do when burn starts accepting collectives on Flex.
const UPGRADE: &str = "burn now runs collectives on Flex: run \
    `two_replicas_all_reduce_and_average_gradients` with --ignored and, if it passes, make the \
    chapter's QAT and `qdq finetune` data-parallel through it (issue 20)";

/// The text of the panic `f` raises.
///
/// # Panics
/// `f` returned normally: burn accepted the collective (see [`UPGRADE`]).
fn panic_text(what: &str, f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f))
        .err()
        .unwrap_or_else(|| panic!("{what} succeeded: {UPGRADE}"));
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_default()
}

fn mean() -> DistributedConfig {
    DistributedConfig {
        all_reduce_op: ReduceOperation::Mean,
    }
}

#[test]
fn flex_refuses_every_collective_of_burn() {
    let cpu = Device::flex();
    let trainer = cpu.clone().autodiff();

    // burn-dispatch src/ops/distributed.rs, `dispatch_distributed_devices_arms`: no arm
    // for a Flex device inside the autodiff one.
    let init = panic_text("DistributedContext::init on two Flex devices", || {
        drop(DistributedContext::init(vec![trainer.clone(); 2], mean()));
    });
    assert_eq!(
        init, "Distributed operations are not supported for device Flex(Cpu)",
        "{UPGRADE}"
    );

    // The same file, `dispatch_distributed_float_arms`: no arm for a Flex tensor.
    let reduce = panic_text("all_reduce of a Flex tensor", || {
        let x = Tensor::<1>::from_floats([1.0, 2.0], &cpu);
        drop(all_reduce(x, ReduceOperation::Sum, vec![cpu.clone(); 2]).resolve());
    });
    assert!(
        reduce.starts_with("Distributed operations are not supported for tensor kind Flex("),
        "{UPGRADE}: {reduce}"
    );

    // burn-dispatch src/backend.rs, `set_distributed_params`: a parameter on Flex
    // cannot be marked for gradient sync (what burn-train's `ModuleSharder` does).
    let shard = panic_text("set_distributed on a Flex parameter", || {
        let w = Tensor::<1>::from_floats([0.5], &trainer).require_grad();
        drop(w.set_distributed(ParamId::new()));
    });
    assert!(
        shard.starts_with("Distributed operations are not supported for tensor kind Flex("),
        "{UPGRADE}: {shard}"
    );

    // And two replicas on the one CPU would be one device to burn: Flex has a single
    // device whose id is always (0, 0), while burn-backend's sync server
    // (`distributed/server.rs`, `collective_sync`) keys each replica by its device id.
    assert_eq!(Device::flex(), Device::flex());
}

/// Two replicas on two threads: `all_reduce` sums their tensors, and a backward pass
/// with the parameter marked for sync leaves each replica the mean of the two local
/// gradients. All values are small integers and halves, so the checks are exact.
#[test]
#[ignore = "burn 0.22.1 has no collectives on Flex (see flex_refuses_every_collective_of_burn)"]
fn two_replicas_all_reduce_and_average_gradients() {
    let cpu = Device::flex().autodiff();
    let devices = vec![cpu.clone(), cpu.clone()];
    let _server = DistributedContext::init(devices.clone(), mean());
    let id = ParamId::new();
    let halves = [[1.0f32, 2.0], [3.0, 4.0]];
    let results: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|s| {
        let workers: Vec<_> = halves
            .iter()
            .map(|x| {
                let (devices, cpu) = (devices.clone(), cpu.clone());
                s.spawn(move || {
                    let x = Tensor::<1>::from_floats(*x, &cpu);
                    let sum = all_reduce(x.clone(), ReduceOperation::Sum, devices).resolve();
                    let w = Tensor::<1>::from_floats([0.5, -0.5], &cpu)
                        .require_grad()
                        .set_distributed(id);
                    // d/dw sum(w * x) = x, this replica's half of the batch.
                    let grads = (w.clone() * x).sum().backward();
                    let g = w.grad(&grads).expect("w takes part in the loss");
                    (
                        sum.into_data().try_to_vec::<f32>().unwrap(),
                        g.into_data().try_to_vec::<f32>().unwrap(),
                    )
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for (sum, grad) in results {
        assert_eq!(sum, [4.0, 6.0]);
        assert_eq!(grad, [2.0, 3.0]);
    }
}
