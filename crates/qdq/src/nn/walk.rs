//! The one path-tracking walk over a model: burn's `ModuleVisitor` / `ModuleMapper`
//! wrapped so that each float parameter comes with its dotted path in the model
//! (`layer1.0.conv1._weight_quantizer._amax`), the names pytorch-quantization's
//! `named_modules()` and state dicts use. Quantizer listing, calibration, checkpoints
//! and export all walk through here.

use std::collections::HashMap;
use std::fmt;

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
    Param,
};
use burn::prelude::*;

use super::handle::QuantizerHandle;
use super::scope;
use crate::tensor_quant::{amax_is_set, host_values};

/// Where a walk is in a model: the field names from the root, e.g.
/// `["layer1", "0", "conv1", "_weight_quantizer", "_amax"]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ModulePath(Vec<String>);

impl ModulePath {
    /// The field names from the root (empty at the root).
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// The innermost field name (`_amax`); `None` at the root.
    pub fn last(&self) -> Option<&str> {
        self.0.last().map(String::as_str)
    }

    /// The path of the enclosing module (the root's parent is the root).
    pub fn parent(&self) -> ModulePath {
        let n = self.0.len().saturating_sub(1);
        ModulePath(self.0[..n].to_vec())
    }

    /// The dotted name, `layer1.0.conv1._weight_quantizer._amax` (`""` at the root).
    pub fn dotted(&self) -> String {
        self.0.join(".")
    }
}

impl fmt::Display for ModulePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dotted())
    }
}

/// A model visitor told the path of what it visits (see [`visit_paths`]).
pub trait PathVisitor {
    /// A float parameter at `path` (its field name is `path.last()`).
    fn visit_float<const D: usize>(&mut self, path: &ModulePath, param: &Param<Tensor<D>>) {
        let _ = (path, param);
    }

    /// The walk leaves the module at `path`, after visiting everything inside it.
    fn exit(&mut self, path: &ModulePath) {
        let _ = path;
    }
}

/// A model mapper told the path of what it maps (see [`map_paths`]).
pub trait PathMapper {
    /// The new value of the float parameter at `path`; `param` unchanged by default.
    fn map_float<const D: usize>(
        &mut self,
        path: &ModulePath,
        param: Param<Tensor<D>>,
    ) -> Param<Tensor<D>> {
        let _ = path;
        param
    }
}

/// burn's visitor/mapper hooks, keeping the path for `inner`.
struct Paths<T> {
    path: ModulePath,
    inner: T,
}

impl<V: PathVisitor> ModuleVisitor for Paths<&mut V> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.0.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.inner.exit(&self.path);
        self.path.0.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.inner.visit_float(&self.path, param);
    }
}

impl<P: PathMapper> ModuleMapper for Paths<&mut P> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.0.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.0.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        self.inner.map_float(&self.path, param)
    }
}

/// Visits every float parameter of `model` with its path, in field order.
pub fn visit_paths<M: Module, V: PathVisitor>(model: &M, visitor: &mut V) {
    model.visit(&mut Paths {
        path: ModulePath::default(),
        inner: visitor,
    });
}

/// Maps every float parameter of `model` with its path, in field order.
pub fn map_paths<M: Module, P: PathMapper>(model: M, mapper: &mut P) -> M {
    model.map(&mut Paths {
        path: ModulePath::default(),
        inner: mapper,
    })
}

// The handle is a module with no parameters. Its `visit` reports it to a running
// `named_quantizers` walk (through `scope`, since `visit` takes any visitor): that
// is how a walk finds quantizers inside any model.
impl Module for QuantizerHandle {
    fn visit<V: ModuleVisitor>(&self, _visitor: &mut V) {
        scope::walked(self);
    }

    fn map<M: ModuleMapper>(self, _mapper: &mut M) -> Self {
        self
    }

    fn to_device(self, _: &Device) -> Self {
        self
    }

    fn fork(self, _: &Device) -> Self {
        self
    }

    fn collect_devices(&self, devices: Devices) -> Devices {
        devices
    }

    fn materialize(self) -> Self {
        self
    }

    fn valid(&self) -> Self {
        self.clone()
    }

    fn train(self) -> Self {
        self
    }
}

impl ModuleDisplayDefault for QuantizerHandle {
    fn content(&self, content: Content) -> Option<Content> {
        content.add_formatted(&"QuantizerHandle").optional()
    }
}

impl ModuleDisplay for QuantizerHandle {}

/// One quantizer found in a model: its name (`layer1.0.conv1._input_quantizer`),
/// its shared state, and its amax when the walk ran.
#[derive(Clone, Debug)]
pub struct NamedQuantizer {
    /// Dotted path of the quantizer in the model.
    pub name: String,
    /// Switches and calibrator.
    pub handle: QuantizerHandle,
    /// Amax at the time of the walk (`None`: dynamic).
    pub amax: Option<Vec<f32>>,
}

impl fmt::Display for NamedQuantizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.handle.describe(self.amax.as_deref()))
    }
}

/// Collects quantizer handles (as the `handle` field of each quantizer is left) and
/// `_amax` values, both by the quantizer's path.
#[derive(Default)]
struct Finder {
    found: Vec<(String, QuantizerHandle)>,
    amaxes: HashMap<String, Option<Vec<f32>>>,
}

impl PathVisitor for Finder {
    fn visit_float<const D: usize>(&mut self, path: &ModulePath, param: &Param<Tensor<D>>) {
        if D == 1 && path.last() == Some("_amax") {
            let values = host_values(&param.val()).ok().filter(|v| amax_is_set(v));
            self.amaxes.insert(path.parent().dotted(), values);
        }
    }

    fn exit(&mut self, path: &ModulePath) {
        // `path` ends with the quantizer's `handle` field: the quantizer is its parent.
        let name = path.parent().dotted();
        for handle in scope::take_walked() {
            self.found.push((name.clone(), handle));
        }
    }
}

/// Every [`super::TensorQuantizer`] in `model`, by name, in field order — the
/// analogue of filtering `model.named_modules()` for `TensorQuantizer`.
pub fn named_quantizers<M: Module>(model: &M) -> Vec<NamedQuantizer> {
    let mut finder = Finder::default();
    scope::walking(|| {
        visit_paths(model, &mut finder);
        // A bare handle walked as the model itself has no field to leave.
        for handle in scope::take_walked() {
            finder.found.push((String::new(), handle));
        }
    });
    let Finder { found, amaxes } = finder;
    found
        .into_iter()
        .map(|(name, handle)| NamedQuantizer {
            amax: amaxes.get(&name).cloned().flatten(),
            name,
            handle,
        })
        .collect()
}
