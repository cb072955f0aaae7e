//! torch's parameter names for multi-layer recurrent layers: cell `k = layer ·
//! num_directions + direction` of `QuantLSTM`, `QuantGRU` and `QuantRNN` holds
//! `weight_ih_l{layer}`, `weight_hh_l{layer}`, `bias_ih_l{layer}`, `bias_hh_l{layer}`,
//! with `_reverse` appended for the backward direction, at the layer's top level, as
//! in a torch state dict (`lstm.weight_ih_l1_reverse`).
//!
//! burn's derive names a `Vec` field's items `cells.{k}.weight_ih`, so these layers
//! implement `Module` by hand ([`recurrent_module`]): `visit` and `map` enter torch's
//! names; the quantizers keep the derive's `_input_quantizers.{k}`, which is already
//! the reference's. Every walk (safetensors, burn records, calibration, the exporter)
//! goes through `visit`/`map`, so they all see torch's names.

use burn::module::{Module, ModuleMapper, ModuleVisitor};

use super::rnn_cell::RnnCellWeights;

/// torch's suffix of cell `k`: `_l{layer}`, plus `_reverse` for the backward direction.
pub fn torch_suffix(k: usize, bidirectional: bool) -> String {
    let dirs = if bidirectional { 2 } else { 1 };
    let reverse = if k % dirs == 1 { "_reverse" } else { "" };
    format!("_l{}{reverse}", k / dirs)
}

/// The four parameters of each cell by torch's name, as fields of `container`
/// (burn's `Struct:Name`).
pub(crate) fn visit_cells<V: ModuleVisitor>(
    cells: &[RnnCellWeights],
    bidirectional: bool,
    container: &str,
    v: &mut V,
) {
    for (k, cell) in cells.iter().enumerate() {
        let suffix = torch_suffix(k, bidirectional);
        let name = |param: &str| format!("{param}{suffix}");
        field(v, &name("weight_ih"), container, |v| {
            Module::visit(&cell.weight_ih, v)
        });
        field(v, &name("weight_hh"), container, |v| {
            Module::visit(&cell.weight_hh, v)
        });
        field(v, &name("bias_ih"), container, |v| {
            Module::visit(&cell.bias_ih, v)
        });
        field(v, &name("bias_hh"), container, |v| {
            Module::visit(&cell.bias_hh, v)
        });
    }
}

/// [`visit_cells`] for a mapper: the cells rebuilt from the mapped parameters.
pub(crate) fn map_cells<M: ModuleMapper>(
    cells: Vec<RnnCellWeights>,
    bidirectional: bool,
    container: &str,
    m: &mut M,
) -> Vec<RnnCellWeights> {
    let mut out = Vec::with_capacity(cells.len());
    for (k, cell) in cells.into_iter().enumerate() {
        let suffix = torch_suffix(k, bidirectional);
        let name = |param: &str| format!("{param}{suffix}");
        out.push(RnnCellWeights {
            weight_ih: mapped(m, &name("weight_ih"), container, |m| {
                Module::map(cell.weight_ih, m)
            }),
            weight_hh: mapped(m, &name("weight_hh"), container, |m| {
                Module::map(cell.weight_hh, m)
            }),
            bias_ih: mapped(m, &name("bias_ih"), container, |m| {
                Module::map(cell.bias_ih, m)
            }),
            bias_hh: mapped(m, &name("bias_hh"), container, |m| {
                Module::map(cell.bias_hh, m)
            }),
        });
    }
    out
}

/// `visit` inside field `name` of `container`, as the derive does.
pub(crate) fn field<V: ModuleVisitor>(
    v: &mut V,
    name: &str,
    container: &str,
    visit: impl FnOnce(&mut V),
) {
    v.enter_module(name, container);
    visit(v);
    v.exit_module(name, container);
}

/// `map` inside field `name` of `container`, as the derive does.
pub(crate) fn mapped<M: ModuleMapper, T>(
    m: &mut M,
    name: &str,
    container: &str,
    map: impl FnOnce(&mut M) -> T,
) -> T {
    m.enter_module(name, container);
    let t = map(m);
    m.exit_module(name, container);
    t
}

/// `Module` and display for a multi-layer recurrent class, with torch's names (see
/// the module documentation). Fields other than the cells and quantizers are plain
/// `Copy` settings.
macro_rules! recurrent_module {
    ($name:ident) => {
        impl burn::module::Module for $name {
            fn collect_devices(&self, devices: burn::module::Devices) -> burn::module::Devices {
                let devices = self.cells.collect_devices(devices);
                let devices = self._input_quantizers.collect_devices(devices);
                self._weight_quantizers.collect_devices(devices)
            }

            fn fork(self, device: &Device) -> Self {
                Self {
                    cells: self.cells.fork(device),
                    _input_quantizers: self._input_quantizers.fork(device),
                    _weight_quantizers: self._weight_quantizers.fork(device),
                    ..self
                }
            }

            fn to_device(self, device: &Device) -> Self {
                Self {
                    cells: self.cells.to_device(device),
                    _input_quantizers: self._input_quantizers.to_device(device),
                    _weight_quantizers: self._weight_quantizers.to_device(device),
                    ..self
                }
            }

            fn train(self) -> Self {
                Self {
                    cells: self.cells.train(),
                    _input_quantizers: self._input_quantizers.train(),
                    _weight_quantizers: self._weight_quantizers.train(),
                    ..self
                }
            }

            fn valid(&self) -> Self {
                Self {
                    cells: self.cells.valid(),
                    _input_quantizers: self._input_quantizers.valid(),
                    _weight_quantizers: self._weight_quantizers.valid(),
                    ..*self
                }
            }

            fn materialize(self) -> Self {
                Self {
                    cells: self.cells.materialize(),
                    _input_quantizers: self._input_quantizers.materialize(),
                    _weight_quantizers: self._weight_quantizers.materialize(),
                    ..self
                }
            }

            fn visit<V: burn::module::ModuleVisitor>(&self, v: &mut V) {
                const CONTAINER: &str = concat!("Struct:", stringify!($name));
                use super::rnn_names::{field, visit_cells};
                visit_cells(&self.cells, self.bidirectional, CONTAINER, v);
                field(v, "_input_quantizers", CONTAINER, |v| {
                    self._input_quantizers.visit(v)
                });
                field(v, "_weight_quantizers", CONTAINER, |v| {
                    self._weight_quantizers.visit(v)
                });
            }

            fn map<M: burn::module::ModuleMapper>(self, m: &mut M) -> Self {
                const CONTAINER: &str = concat!("Struct:", stringify!($name));
                use super::rnn_names::{map_cells, mapped};
                Self {
                    cells: map_cells(self.cells, self.bidirectional, CONTAINER, m),
                    _input_quantizers: mapped(m, "_input_quantizers", CONTAINER, |m| {
                        burn::module::Module::map(self._input_quantizers, m)
                    }),
                    _weight_quantizers: mapped(m, "_weight_quantizers", CONTAINER, |m| {
                        burn::module::Module::map(self._weight_quantizers, m)
                    }),
                    ..self
                }
            }
        }

        impl burn::module::ModuleDisplayDefault for $name {
            fn content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
                content
                    .add_debug_attribute("mode", &self.mode)
                    .add_debug_attribute("d_hidden", &self.d_hidden)
                    .add_debug_attribute("num_layers", &self.num_layers)
                    .add_debug_attribute("bidirectional", &self.bidirectional)
                    .add_debug_attribute("batch_first", &self.batch_first)
                    .optional()
            }
        }

        impl burn::module::ModuleDisplay for $name {}
    };
}

pub(crate) use recurrent_module;
