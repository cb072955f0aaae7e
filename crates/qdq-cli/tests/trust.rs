//! What a user can rely on whatever they type: no input is ever overwritten, no
//! device or FIFO is replaced, every numeric flag is checked when it is read, flags
//! that would do nothing are refused, a closed pipe ends the command quietly, and a
//! refused command leaves no output and no temporary file.

mod common;
use common::{qdq, s, scratch};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/fashion-mnist")
        .join(file)
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

/// A copy of the bundled model and calibration images in `dir`, which the commands
/// below must leave byte for byte as they are.
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let model = dir.join("model.onnx");
    let calib = dir.join("calib.gz");
    std::fs::copy(data("model.onnx"), &model).unwrap();
    std::fs::copy(data("calib-images-idx3-ubyte.gz"), &calib).unwrap();
    (model, calib)
}

fn cat<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    [head, tail].concat()
}

/// Runs `args`, which must fail with exit code `code` and a message containing
/// every one of `needles`, leaving `dir` as `before` and the inputs unchanged.
fn refused(dir: &Path, args: &[&str], code: i32, needles: &[&str]) {
    let before = listing(dir);
    // Regular files only: reading a FIFO would wait for a writer.
    let read = |n: &String| {
        let p = dir.join(n);
        if p.is_file() {
            std::fs::read(p).unwrap()
        } else {
            Vec::new()
        }
    };
    let bytes: Vec<Vec<u8>> = before.iter().map(read).collect();
    let out = qdq(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(listing(dir), before, "{args:?} left files");
    for (n, b) in before.iter().zip(&bytes) {
        assert_eq!(&read(n), b, "{n} changed");
    }
}

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused() {
    let dir = scratch("same");
    let (model, calib) = inputs(&dir);
    let (m, c) = (s(&model), s(&calib));
    let dots = format!(
        "{}/../{}/model.onnx",
        s(&dir),
        dir.file_name().unwrap().to_str().unwrap()
    );
    refused(
        &dir,
        &["quantize", m, "--calib", c, "-o", m],
        1,
        &["-o ", "is the same file as MODEL", "choose another output"],
    );
    refused(
        &dir,
        &["quantize", m, "--calib", c, "-o", &dots],
        1,
        &["same file as MODEL"],
    );
    refused(
        &dir,
        &["quantize", m, "--calib", c, "-o", c],
        1,
        &["same file as --calib"],
    );
    refused(
        &dir,
        &[
            "quantize",
            m,
            "--calib",
            c,
            "-o",
            s(&dir.join("x.onnx")),
            "--cache",
            m,
        ],
        1,
        &["--cache ", "same file as MODEL"],
    );
    let x = dir.join("x.json");
    refused(
        &dir,
        &["quantize", m, "--calib", c, "-o", s(&x), "--cache", s(&x)],
        1,
        &["and --cache", "are the same file"],
    );
    refused(
        &dir,
        &["calibrate", m, "--calib", c, "-o", c],
        1,
        &["same file as --calib"],
    );
    let link = dir.join("link.onnx");
    std::fs::hard_link(&model, &link).unwrap();
    refused(
        &dir,
        &["quantize", m, "--calib", c, "-o", s(&link)],
        1,
        &["same file as MODEL"],
    );
    std::fs::write(dir.join("cache.json"), "{}").unwrap();
    let cache = dir.join("cache.json");
    refused(
        &dir,
        &["export", m, "--cache", s(&cache), "-o", s(&cache)],
        1,
        &["same file as --cache"],
    );
}

/// A model whose nodes are out of order (a converter appended some at the end; ONNX
/// Runtime sorts such graphs) is sorted, said so, and quantized exactly as the sorted
/// model is.
#[test]
fn a_model_whose_nodes_are_out_of_order_is_sorted() {
    use qdq_onnx::Message;
    let dir = scratch("unsorted");
    let (model, calib) = inputs(&dir);
    let mut m = qdq_onnx::read_model(&model).unwrap();
    m.graph.as_mut().unwrap().node.reverse();
    let unsorted = dir.join("unsorted.onnx");
    std::fs::write(&unsorted, m.write_to_bytes().unwrap()).unwrap();
    let quantize = |from: &Path, to: &str| {
        let out = qdq(&[
            "quantize",
            s(from),
            "--calib",
            s(&calib),
            "--method",
            "max",
            "-o",
            s(&dir.join(to)),
        ]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        err
    };
    let err = quantize(&unsorted, "from-unsorted.onnx");
    assert!(
        err.contains("unsorted.onnx: its nodes were not in topological order"),
        "{err}"
    );
    assert!(!quantize(&model, "from-sorted.onnx").contains("topological"));
    assert_eq!(
        std::fs::read(dir.join("from-unsorted.onnx")).unwrap(),
        std::fs::read(dir.join("from-sorted.onnx")).unwrap()
    );
    // A graph saved alone parses as a model without one: named and refused.
    let alone = dir.join("graph-alone.onnx");
    std::fs::write(&alone, m.graph.as_ref().unwrap().write_to_bytes().unwrap()).unwrap();
    let c = s(&calib);
    refused(
        &dir,
        &[
            "quantize",
            s(&alone),
            "--calib",
            c,
            "-o",
            s(&dir.join("q.onnx")),
        ],
        1,
        &["graph-alone.onnx: holds no model graph"],
    );
}

/// A file cut short inside an initializer parses, its last tensor without a name (ONNX
/// writes the name after the values): named as truncated, not as an empty-named tensor
/// of the wrong size.
#[test]
fn a_model_cut_short_inside_a_tensor_is_called_truncated() {
    use qdq_onnx::Message;
    let dir = scratch("truncated");
    let (model, calib) = inputs(&dir);
    let mut m = qdq_onnx::read_model(&model).unwrap();
    let g = m.graph.as_mut().unwrap();
    let last = g.initializer.len() - 1;
    g.initializer[last].name.clear();
    let dims = format!("{:?}", g.initializer[last].dims);
    let cut = dir.join("cut.onnx");
    std::fs::write(&cut, m.write_to_bytes().unwrap()).unwrap();
    refused(
        &dir,
        &[
            "quantize",
            s(&cut),
            "--calib",
            s(&calib),
            "-o",
            s(&dir.join("q.onnx")),
        ],
        1,
        &[&format!(
            "cut.onnx: initializer {last} (dims {dims}) has no name, which ONNX requires: the file looks truncated or corrupt"
        )],
    );
}

/// An attribute no version of its operator defines (a misspelt `dilations`) makes
/// ONNX Runtime and ONNX's checker refuse the model: refused on reading, naming the
/// node, rather than carried into a file called valid.
#[test]
fn a_misspelt_attribute_is_refused_naming_the_node() {
    use qdq_onnx::Message;
    let dir = scratch("attribute");
    let (model, calib) = inputs(&dir);
    let mut m = qdq_onnx::read_model(&model).unwrap();
    let g = m.graph.as_mut().unwrap();
    let conv = g.node.iter_mut().find(|n| n.op_type == "Conv").unwrap();
    let name = conv.name.clone();
    let mut a = onnx_ir::AttributeProto::new();
    a.name = "dBlations".into();
    a.ints = vec![1, 1];
    a.type_ = onnx_ir::AttributeType::INTS.into();
    conv.attribute.push(a);
    let bad = dir.join("bad-attr.onnx");
    std::fs::write(&bad, m.write_to_bytes().unwrap()).unwrap();
    refused(
        &dir,
        &[
            "quantize",
            s(&bad),
            "--calib",
            s(&calib),
            "-o",
            s(&dir.join("q.onnx")),
        ],
        1,
        &[&format!(
            "bad-attr.onnx: node `{name}` (Conv) has an attribute `dBlations`, which no version of Conv defines"
        )],
    );
}

/// A `value_info` whose shape the model does not compute (a stale export, a hand
/// edit) would make ONNX's checker refuse the file qdq writes: it is left out, with a
/// note naming it; declarations that fit, or give no shape, stay.
#[test]
fn a_shape_declaration_the_model_contradicts_is_left_out() {
    use qdq_onnx::Message;
    let dir = scratch("value-info");
    let (model, calib) = inputs(&dir);
    let mut m = qdq_onnx::read_model(&model).unwrap();
    let g = m.graph.as_mut().unwrap();
    let (wrong, typed) = (g.node[0].output[0].clone(), g.node[1].output[0].clone());
    g.value_info.push(qdq_onnx::proto::value_info(
        &wrong,
        qdq_onnx::proto::elem::FLOAT,
        &[7],
    ));
    let mut bare = qdq_onnx::proto::value_info(&typed, qdq_onnx::proto::elem::FLOAT, &[]);
    bare.type_.as_mut().unwrap().mut_tensor_type().shape.clear();
    g.value_info.push(bare);
    let declared = dir.join("declared.onnx");
    std::fs::write(&declared, m.write_to_bytes().unwrap()).unwrap();
    let out = dir.join("q.onnx");
    let run = qdq(&[
        "quantize",
        s(&declared),
        "--calib",
        s(&calib),
        "--method",
        "max",
        "-o",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "note: 1 value_info entry of the model declares a shape it does not compute (`{wrong}`: declared [7], computed ["
        )),
        "{err}"
    );
    let written = qdq_onnx::read_model(&out).unwrap();
    let names: Vec<&str> = written
        .graph
        .as_ref()
        .unwrap()
        .value_info
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert!(
        !names.contains(&wrong.as_str()) && names.contains(&typed.as_str()),
        "{names:?}"
    );
}

#[test]
fn devices_fifos_folders_and_links_are_not_replaced() {
    let dir = scratch("special");
    let (model, calib) = inputs(&dir);
    let (m, c) = (s(&model), s(&calib));
    refused(
        &dir,
        &["quantize", m, "--calib", c, "-o", "/dev/null"],
        1,
        &["/dev/null: it is a device"],
    );
    assert!(Path::new("/dev/null").exists());
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    refused(
        &dir,
        &["quantize", m, "--calib", c, "-o", s(&fifo)],
        1,
        &["it is a FIFO"],
    );
    refused(&dir, &["demo", "-o", s(&dir)], 1, &["it is a folder"]);
    // A link to a file: renaming the new file into place would replace the link.
    let target = dir.join("target.onnx");
    std::fs::write(&target, b"keep").unwrap();
    let link = dir.join("link.onnx");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    refused(
        &dir,
        &["quantize", m, "--calib", c, "-o", s(&link)],
        1,
        &["link.onnx: it is a symbolic link, which writing would replace with a plain file"],
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // A folder that does not exist is found before calibrating, not after.
    let nowhere = dir.join("no-such").join("q.onnx");
    refused(
        &dir,
        &["quantize", m, "--calib", c, "-o", s(&nowhere)],
        1,
        &["the folder `", "no-such` does not exist; create it first"],
    );
}

#[test]
fn numeric_flags_are_checked_when_read() {
    let dir = scratch("flags");
    let (model, calib) = inputs(&dir);
    let (m, c) = (s(&model), s(&calib));
    let never = dir.join("never.onnx");
    let quantize = ["quantize", m, "--calib", c, "-o", s(&never)];
    let finetune = ["finetune", m, "--calib", c, "--train", c, "-o", s(&never)];
    let q = |extra: &[&'static str]| cat(&quantize, extra);
    let ft = |extra: &[&'static str]| cat(&finetune, extra);
    for (args, needles) in [
        (q(&["--batch", "0"]), vec!["--batch", "at least 1"]),
        (
            q(&["--opset", "-1"]),
            vec!["--opset", "opset -1 is not one the ONNX standard defines"],
        ),
        (q(&["--opset", "999"]), vec!["--opset", "opset 999"]),
        (q(&["--mean", "NaN"]), vec!["--mean", "not a finite number"]),
        (
            q(&["--scale", "inf"]),
            vec!["--scale", "not a finite number"],
        ),
        (q(&["--std", "0"]), vec!["--std", "must not be 0"]),
        (
            ft(&["--epochs", "inf"]),
            vec!["--epochs", "not a finite number"],
        ),
        (ft(&["--epochs", "NaN"]), vec!["--epochs"]),
        (
            ft(&["--epochs", "-1"]),
            vec!["--epochs", "outside (0, 10000]"],
        ),
        (ft(&["--lr", "NaN"]), vec!["--lr", "not a finite number"]),
        (ft(&["--lr", "2"]), vec!["--lr", "outside (0, 1]"]),
        (ft(&["--lr", "0"]), vec!["--lr", "outside (0, 1]"]),
        (ft(&["--min-lr", "NaN"]), vec!["--min-lr"]),
        (ft(&["--weight-decay", "NaN"]), vec!["--weight-decay"]),
        (
            ft(&["--train-batch", "0"]),
            vec!["--train-batch", "at least 1"],
        ),
    ] {
        refused(&dir, &args, 2, &needles);
    }
    refused(
        &dir,
        &ft(&["--lr", "0.01", "--min-lr", "0.1"]),
        2,
        &["--min-lr 0.1 is above --lr 0.01"],
    );
    refused(
        &dir,
        &["eval", m, m, "--data", c, "--batch", "0"],
        2,
        &["--batch", "at least 1"],
    );
}

#[test]
fn flags_that_would_do_nothing_are_refused() {
    let dir = scratch("noop");
    let (model, calib) = inputs(&dir);
    let (m, c) = (s(&model), s(&calib));
    let never = dir.join("never.onnx");
    let quantize = ["quantize", m, "--calib", c, "-o", s(&never)];
    let q = |extra: &[&'static str]| cat(&quantize, extra);
    refused(
        &dir,
        &q(&["--skip-op", "NoSuchOp"]),
        1,
        &[
            "--skip-op NoSuchOp: the model has no node of this op type",
            "Conv",
        ],
    );
    refused(
        &dir,
        &q(&["--skip-op", "conv"]),
        1,
        &["--skip-op conv", "case-sensitive"],
    );
    refused(
        &dir,
        &q(&["--skip", "nothing_like_this*"]),
        1,
        &["--skip nothing_like_this*: matches no node"],
    );
    refused(
        &dir,
        &q(&["--skip", "*"]),
        1,
        &["no quantizer to place", "--skip"],
    );
    refused(
        &dir,
        &q(&["--method-for", "NOSUCH=max"]),
        1,
        &[
            "--method-for NOSUCH=...",
            "not a calibrated activation tensor",
            "input",
        ],
    );
}

#[test]
fn an_output_name_as_long_as_the_filesystem_allows_is_written() {
    let dir = scratch("long");
    let out = dir.join("q".repeat(250) + ".onnx");
    let o = qdq(&["demo", "-o", s(&out), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(listing(&dir), [out.file_name().unwrap().to_str().unwrap()]);
    let lint = qdq(&["lint", s(&out)]);
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );
}

#[test]
fn a_closed_pipe_ends_inspect_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qdq"))
        .args(["inspect", s(&data("model.onnx"))])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before qdq prints: its first write meets a closed pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "{err}");
    assert_ne!(out.status.code(), Some(101), "a panic");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // Ended by SIGPIPE, as `cat` or `ls` would be; or done before the pipe closed.
        assert!(
            out.status.signal() == Some(13) || out.status.success(),
            "{:?}",
            out.status
        );
    }
}
