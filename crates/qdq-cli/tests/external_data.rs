//! Models written with external data (`--external-data`, and automatically over
//! protobuf's limit): onnx loads and fully checks them, ONNX Runtime gives exactly
//! the outputs of the same model written inline, and a data file that would destroy
//! an input or replace a symbolic link is refused with nothing written.

mod common;
use common::{python, qdq, s, scratch};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/fashion-mnist")
        .join(file)
}

/// Runs the test Python on `-c script args` in `dir`, which must succeed; its stdout.
fn run_python_in(dir: &Path, script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .current_dir(dir)
        .args([&["-c", script], args].concat())
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The sorted names in `dir`.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// `qdq quantize` of `model` to `out` with `extra` flags; must succeed.
fn quantize(model: &Path, out: &Path, extra: &[&str]) -> Output {
    let calib = data("calib-images-idx3-ubyte.gz");
    let args = ["quantize", s(model), "--calib", s(&calib), "-o", s(out)];
    let o = qdq(&[&args[..], extra].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// Loads each external-data model with onnx (data included), runs the full checker,
/// counts its external tensors, and compares ONNX Runtime's outputs with the inline
/// model's, bit for bit, on the same random input.
const CHECK: &str = r#"
import sys, numpy as np, onnx, onnxruntime as ort
from onnx.external_data_helper import uses_external_data
inline = sys.argv[1]
def run(path):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    return s.run(None, {i.name: x})
want = run(inline)
for path in sys.argv[2:]:
    bare = onnx.load(path, load_external_data=False)
    external = [t.name for t in bare.graph.initializer if uses_external_data(t)]
    onnx.checker.check_model(path, full_check=True)
    m = onnx.load(path)
    assert all(t.HasField("raw_data") for t in m.graph.initializer if t.name in external)
    got = run(path)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and np.array_equal(g, w), (path, np.abs(g - w).max())
    print(path, len(external), "external")
"#;

#[test]
fn external_data_loads_checks_and_runs_as_the_inline_model_does() {
    let dir = scratch("external");
    let model = data("model.onnx");
    let inline = dir.join("inline.onnx");
    quantize(&model, &inline, &[]);
    assert_eq!(listing(&dir), ["inline.onnx"]);
    let forced = dir.join("forced.onnx");
    quantize(&model, &forced, &["--external-data"]);
    // The automatic switch, its limit lowered below this model's size.
    let auto = dir.join("auto.onnx");
    let o = quantize(&model, &auto, &["--max-inline-bytes", "1000"]);
    let e = stderr(&o);
    assert!(
        e.contains("over protobuf's limit of 1000 for one file: its weights go to")
            && e.contains("auto.onnx.data (as with --external-data)"),
        "{e}"
    );
    assert_eq!(
        listing(&dir),
        [
            "auto.onnx",
            "auto.onnx.data",
            "forced.onnx",
            "forced.onnx.data",
            "inline.onnx"
        ]
    );
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    // The weights moved: the model shrinks to its graph, the data holds the rest.
    assert!(size(&forced) * 10 < size(&inline), "{}", size(&forced));
    assert!(size(&forced) + size(&dir.join("forced.onnx.data")) >= size(&inline));
    let printed = run_python_in(&dir, CHECK, &[s(&inline), s(&forced), s(&auto)]);
    let counts: Vec<&str> = printed
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(counts.len(), 2, "{printed}");
    assert!(
        counts.iter().all(|c| c.parse::<u32>().unwrap() >= 2),
        "{printed}"
    );
    // qdq reads its own output back, data included.
    let o = qdq(&["lint", s(&forced)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // `export` writes external data the same way: from a cache, the same data file.
    let cache = dir.join("cache.json");
    let calib = data("calib-images-idx3-ubyte.gz");
    let o = qdq(&[
        "calibrate",
        s(&model),
        "--calib",
        s(&calib),
        "-o",
        s(&cache),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = dir.join("exported.onnx");
    let o = qdq(&[
        "export",
        s(&model),
        "--cache",
        s(&cache),
        "--external-data",
        "-o",
        s(&exported),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    run_python_in(&dir, CHECK, &[s(&inline), s(&exported)]);
    assert_eq!(
        std::fs::read(dir.join("exported.onnx.data")).unwrap(),
        std::fs::read(dir.join("forced.onnx.data")).unwrap()
    );
    // Written again, now inline: the old data file is left, with a note.
    let o = quantize(&model, &forced, &[]);
    assert!(
        stderr(&o).contains("forced.onnx.data is left as it was"),
        "{}",
        stderr(&o)
    );
    assert!(size(&forced) > size(&inline) / 2);
}

#[test]
fn a_data_file_that_is_an_input_or_a_symlink_is_refused() {
    let dir = scratch("external-refused");
    // An input model whose own external data file is `q.onnx.data` (onnx writes it).
    let model = dir.join("model.onnx");
    let save = "import sys, onnx\n\
                m = onnx.load(sys.argv[1])\n\
                onnx.save_model(m, 'model.onnx', save_as_external_data=True,\n\
                    all_tensors_to_one_file=True, location='q.onnx.data', size_threshold=0)\n";
    run_python_in(&dir, save, &[s(&data("model.onnx"))]);
    let calib = data("calib-images-idx3-ubyte.gz");
    let refused = |out: &str, extra: &[&str], needle: &str| {
        let before = listing(&dir);
        let bytes: Vec<Vec<u8>> = before
            .iter()
            .map(|n| std::fs::read(dir.join(n)).unwrap_or_default())
            .collect();
        let q = dir.join(out);
        let args = ["quantize", s(&model), "--calib", s(&calib), "-o", s(&q)];
        let o = qdq(&[&args[..], extra].concat());
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains(needle), "`{needle}` not in: {e}");
        assert_eq!(listing(&dir), before, "files left");
        for (n, b) in before.iter().zip(&bytes) {
            assert_eq!(&std::fs::read(dir.join(n)).unwrap_or_default(), b, "{n}");
        }
    };
    let clash = format!(
        "-o's external data {} is the same file as MODEL's external data",
        dir.join("q.onnx.data").display()
    );
    // Refused with or without --external-data: either may write `q.onnx.data`.
    refused("q.onnx", &["--external-data"], &clash);
    refused("q.onnx", &[], &clash);
    // A symbolic link where the data file goes (to a file no input uses).
    #[cfg(unix)]
    {
        std::fs::write(dir.join("shared.data"), b"weights of another model").unwrap();
        std::os::unix::fs::symlink(dir.join("shared.data"), dir.join("p.onnx.data")).unwrap();
        let link = format!(
            "-o's external data {}: it is a symbolic link",
            dir.join("p.onnx.data").display()
        );
        refused("p.onnx", &["--external-data"], &link);
        // Found only when the model turns out too big: refused then, nothing kept.
        refused("p.onnx", &["--max-inline-bytes", "1000"], &link);
    }
    // The input model with external data is read and quantized, written inline.
    quantize(&model, &dir.join("r.onnx"), &[]);
    assert!(dir.join("r.onnx").is_file() && !dir.join("r.onnx.data").exists());
}
