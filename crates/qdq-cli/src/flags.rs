//! Parsers for numeric flags: every value is checked when the command line is read,
//! so a bad one is refused with the flag's accepted range before any work starts
//! (clap prefixes the message with the flag's name).

/// The most passes `--epochs` accepts: far beyond any fine-tuning, and it keeps the
/// number of steps a finite, countable number.
pub(crate) const MAX_EPOCHS: f64 = 1e4;

/// A whole number >= 1 (batch sizes).
pub(crate) fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number >= 1")),
    }
}

fn number(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("`{s}` is not a finite number"))
    }
}

/// A finite `f32` (the preprocessing's scale and mean).
pub(crate) fn finite(s: &str) -> Result<f32, String> {
    let v = number(s)? as f32;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("`{s}` is outside the range of a float32"))
    }
}

/// A finite, non-zero `f32` (the preprocessing's divisor).
pub(crate) fn divisor(s: &str) -> Result<f32, String> {
    match finite(s)? {
        0.0 => Err("must not be 0 (it divides the data)".into()),
        v => Ok(v),
    }
}

/// A finite number >= 0 (`--keep-float-above`'s error threshold).
pub(crate) fn non_negative_finite(s: &str) -> Result<f64, String> {
    match number(s)? {
        v if v >= 0.0 => Ok(v),
        v => Err(format!("{v} is below 0")),
    }
}

/// `--epochs`: a finite number of passes in (0, MAX_EPOCHS].
pub(crate) fn epochs(s: &str) -> Result<f64, String> {
    match number(s)? {
        v if v > 0.0 && v <= MAX_EPOCHS => Ok(v),
        v => Err(format!("{v} is outside (0, {MAX_EPOCHS}]")),
    }
}

/// `--lr`: a learning rate in (0, 1] (what burn's cosine schedule accepts).
pub(crate) fn learning_rate(s: &str) -> Result<f64, String> {
    match number(s)? {
        v if v > 0.0 && v <= 1.0 => Ok(v),
        v => Err(format!("{v} is outside (0, 1]")),
    }
}

/// `--min-lr`: in [0, 1]; checked against `--lr` once both are known.
pub(crate) fn min_learning_rate(s: &str) -> Result<f64, String> {
    match number(s)? {
        v if (0.0..=1.0).contains(&v) => Ok(v),
        v => Err(format!("{v} is outside [0, 1]")),
    }
}

/// `--weight-decay`: an L2 penalty in [0, 1).
pub(crate) fn weight_decay(s: &str) -> Result<f32, String> {
    match number(s)? {
        v if (0.0..1.0).contains(&v) => Ok(v as f32),
        v => Err(format!("{v} is outside [0, 1)")),
    }
}

/// `--opset`: an opset the ONNX standard defines.
pub(crate) fn opset(s: &str) -> Result<i64, String> {
    let v: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    let max = qdq_onnx::passes::MAX_OPSET;
    if (1..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "opset {v} is not one the ONNX standard defines (1 to {max}); qdq writes opset 10 to {max}"
        ))
    }
}

/// `[NAME=]VALUE` with VALUE checked by `check` as the flag is read (a command-line
/// error, exit code 2); kept as given, to be resolved per model input later.
/// Bits of the weight quantizers: 8 or 4 (W4A8).
pub(crate) fn weight_bits(s: &str) -> Result<u32, String> {
    match s.trim() {
        "8" => Ok(8),
        "4" => Ok(4),
        _ => Err(format!(
            "`{s}`: expected 8 (INT8 weights) or 4 (INT4 weights, opset 21)"
        )),
    }
}

fn named<T>(s: &str, check: impl Fn(&str) -> Result<T, String>) -> Result<String, String> {
    let value = s.split_once('=').map_or(s, |(_, v)| v);
    check(value).map(|_| s.to_string())
}

/// `--scale [NAME=]S`.
pub(crate) fn named_finite(s: &str) -> Result<String, String> {
    named(s, finite)
}

/// `--mean [NAME=]M[,M...]`.
pub(crate) fn named_finites(s: &str) -> Result<String, String> {
    named(s, |v| {
        v.split(',')
            .map(|x| finite(x.trim()))
            .collect::<Result<Vec<_>, _>>()
    })
}

/// `--std [NAME=]S[,S...]`.
pub(crate) fn named_divisors(s: &str) -> Result<String, String> {
    named(s, |v| {
        v.split(',')
            .map(|x| divisor(x.trim()))
            .collect::<Result<Vec<_>, _>>()
    })
}

/// `--resize [NAME=]N|HxW`.
pub(crate) fn named_resize(s: &str) -> Result<String, String> {
    named(s, crate::parse_resize)
}

/// `--crop [NAME=]HxW`.
pub(crate) fn named_hw(s: &str) -> Result<String, String> {
    named(s, crate::parse_hw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(positive("32"), Ok(32));
        assert_eq!(positive("0"), Err("must be at least 1".into()));
        assert!(positive("-1").is_err());
        assert_eq!(epochs("0.5"), Ok(0.5));
        for bad in ["inf", "NaN", "-1", "0", "1e5"] {
            assert!(epochs(bad).is_err(), "{bad}");
        }
        assert_eq!(learning_rate("1e-3"), Ok(1e-3));
        for bad in ["NaN", "0", "1.5", "-0.1", "inf"] {
            assert!(learning_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(min_learning_rate("0"), Ok(0.0));
        assert!(min_learning_rate("NaN").is_err());
        assert_eq!(weight_decay("1e-4"), Ok(1e-4));
        assert!(weight_decay("NaN").is_err() && weight_decay("-1").is_err());
        assert_eq!(finite("-0.5"), Ok(-0.5));
        assert!(finite("NaN").is_err() && finite("1e39").is_err());
        assert!(divisor("0").is_err() && divisor("inf").is_err());
        assert_eq!(opset("17"), Ok(17));
        assert!(opset("-1").unwrap_err().contains("opset -1 is not one"));
        assert!(opset("999").is_err());
    }
}
