//! The data flags: sources (`--calib`, `--data`, `--train`: `FILE`, `FOLDER/` or
//! `NAME=FILE`/`NAME=NUMBER`, repeatable) and the float inputs' preprocessing
//! (`--scale`, `--mean`, `--std`, `--resize`, `--crop`: `VALUE` or `NAME=VALUE`), and
//! the data they give for a graph's inputs.

use std::path::{Path, PathBuf};

use qdq_cli::data::{ElemType, Input, InputPrep, ModelData, Sources};
use qdq_cli::feed::model_inputs;
use qdq_onnx::runtime::OnnxGraph;

use crate::{Fallible, PreArgs};

/// The sources a data flag's values give: one unnamed source (a file or folder), and
/// `NAME=FILE` or `NAME=NUMBER` per input. A value that is an existing path is a path
/// even if it holds `=`.
pub(crate) fn sources(flag: &str, values: &[String], labels: Option<&Path>) -> Fallible<Sources> {
    let mut s = Sources {
        labels: labels.map(Path::to_path_buf),
        ..Sources::default()
    };
    for v in values {
        match v.split_once('=') {
            Some((name, source)) if !Path::new(v).exists() && !name.is_empty() => {
                s.named.push((name.to_string(), source.to_string()));
            }
            _ if s.whole.is_some() => {
                return Err(format!(
                    "{flag} {v}: one unnamed source at most (the other is {}); name the \
                     input each file feeds: {flag} NAME=FILE",
                    s.whole
                        .as_ref()
                        .map_or(String::new(), |p| p.display().to_string())
                )
                .into());
            }
            _ => s.whole = Some(PathBuf::from(v)),
        }
    }
    if s.whole.is_none() && s.named.is_empty() {
        return Err(format!("{flag}: no data given").into());
    }
    Ok(s)
}

/// The files named by a data flag's values (for the check that no output overwrites
/// them).
pub(crate) fn source_paths(values: &[String]) -> Vec<&Path> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((_, p)) if !Path::new(v).exists() => Path::new(p),
            _ => Path::new(v.as_str()),
        })
        .collect()
}

/// One preprocessing flag's values: the plain one, and one per named input.
struct PerInput<T> {
    flag: &'static str,
    plain: Option<T>,
    named: Vec<(String, T)>,
}

impl<T: Clone> PerInput<T> {
    /// Parses `[NAME=]VALUE` values with `parse`.
    fn parse(
        flag: &'static str,
        values: &[String],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Fallible<Self> {
        let mut p = Self {
            flag,
            plain: None,
            named: Vec::new(),
        };
        for v in values {
            let bad = |e: String| format!("{flag} {v}: {e}");
            match v.split_once('=') {
                Some((name, value)) => p.named.push((name.to_string(), parse(value).map_err(bad)?)),
                None if p.plain.is_some() => {
                    return Err(format!("{flag} {v}: given twice without an input name").into());
                }
                None => p.plain = Some(parse(v).map_err(bad)?),
            }
        }
        Ok(p)
    }

    /// Checks the names against the model's float inputs; the plain value is for a
    /// model with one float input (or applies to all, for `all`).
    fn check(&self, inputs: &[Input], all: bool) -> Fallible<()> {
        let floats: Vec<&str> = inputs
            .iter()
            .filter(|i| i.elem == ElemType::Float)
            .map(|i| i.name.as_str())
            .collect();
        for (name, _) in &self.named {
            match inputs.iter().find(|i| i.name == *name) {
                None => {
                    return Err(format!(
                        "{} {name}=...: the model has no input `{name}` (its float inputs: {})",
                        self.flag,
                        floats.join(", ")
                    )
                    .into());
                }
                Some(i) if i.elem != ElemType::Float => {
                    return Err(format!(
                        "{} {name}=...: input `{name}` is {}; preprocessing applies to float \
                         inputs ({})",
                        self.flag,
                        i.describe(),
                        floats.join(", ")
                    )
                    .into());
                }
                Some(_) => {}
            }
        }
        if self.plain.is_some() && !all && floats.len() != 1 {
            return Err(format!(
                "{}: the model has {} float inputs ({}); say which one: {} NAME=VALUE",
                self.flag,
                floats.len(),
                floats.join(", "),
                self.flag
            )
            .into());
        }
        Ok(())
    }

    fn get(&self, input: &Input) -> Option<T> {
        if input.elem != ElemType::Float {
            return None;
        }
        self.named
            .iter()
            .find(|(n, _)| *n == input.name)
            .map(|(_, v)| v.clone())
            .or_else(|| self.plain.clone())
    }
}

/// Comma-separated values, each parsed by `one`.
fn list(one: fn(&str) -> Result<f32, String>) -> impl Fn(&str) -> Result<Vec<f32>, String> {
    move |s| s.split(',').map(|v| one(v.trim())).collect()
}

/// The preprocessing flags resolved per input: a function giving each input's
/// [`InputPrep`].
///
/// # Errors
/// A value that does not parse (naming the flag), a name that is no float input of
/// the model, a plain value for a model with several float inputs (except `--resize`
/// and `--crop`, which apply to every image folder).
pub(crate) fn preprocessing(
    pre: &PreArgs,
    inputs: &[Input],
) -> Fallible<impl Fn(&Input) -> InputPrep + use<>> {
    let scale = PerInput::parse("--scale", &pre.scale, crate::flags::finite)?;
    let mean = PerInput::parse("--mean", &pre.mean, list(crate::flags::finite))?;
    let std = PerInput::parse("--std", &pre.std, list(crate::flags::divisor))?;
    let resize = PerInput::parse("--resize", &pre.resize, crate::parse_resize)?;
    let crop = PerInput::parse("--crop", &pre.crop, crate::parse_hw)?;
    scale.check(inputs, false)?;
    mean.check(inputs, false)?;
    std.check(inputs, false)?;
    resize.check(inputs, true)?;
    crop.check(inputs, true)?;
    Ok(move |i: &Input| InputPrep {
        scale: scale.get(i),
        mean: mean.get(i).unwrap_or_default(),
        std: std.get(i).unwrap_or_default(),
        resize: resize.get(i),
        crop: crop.get(i),
    })
}

/// Opens the data a flag's values give for `graph`'s inputs, preprocessed as `pre`
/// says.
pub(crate) fn load(
    graph: &OnnxGraph,
    (flag, values): (&str, &[String]),
    labels: Option<&Path>,
    pre: &PreArgs,
) -> Fallible<ModelData> {
    let inputs = model_inputs(graph)?;
    let prep = preprocessing(pre, &inputs)?;
    let sources = sources(flag, values, labels)?;
    Ok(ModelData::load(inputs, &sources, &prep)?)
}
