//! The suite's short run of every fuzz target: each seed of `corpus/<target>/`, then
//! deterministic mutations of it (bit flips, extreme bytes, truncations, repeated and
//! inserted chunks), none of which may panic. The long, coverage-guided runs use
//! cargo-fuzz on the same functions (`fuzz/`, see RELIABILITY.md); every crash they
//! found is a seed here or a regression test next to the fix.

use std::cell::Cell;
use std::path::Path;
use std::sync::Once;

thread_local! {
    /// Panics seen by the hook on this thread, caught or not: the runtime turns a
    /// panic inside an op into an error as a last line of defence, and a fuzz run must
    /// still see it. Per thread, because the targets' tests run in parallel (a panic
    /// in a rayon worker reaches the caller as the runtime's "panicked" error, which
    /// the targets re-raise).
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            default(info);
        }));
    });
}

/// Runs `f` on `input`; a panic (even one caught inside) fails the test, showing
/// the input.
fn check(target: &str, f: fn(&[u8]), input: &[u8]) {
    let before = PANICS.with(Cell::get);
    let result = std::panic::catch_unwind(|| f(input));
    if result.is_err() || PANICS.with(Cell::get) != before {
        let path = std::env::temp_dir().join(format!("qdq-fuzz-{target}-crash.bin"));
        let _ = std::fs::write(&path, input);
        panic!(
            "{target} panicked on {} bytes (saved to {}): {input:02x?}",
            input.len(),
            path.display()
        );
    }
}

/// Mutants per seed: enough to reach past the headers of every format, cheap enough
/// for the suite (a few seconds per target).
const MUTANTS: usize = 300;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let len = v.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe][rng.below(6)];
            }
            2 => v.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                let chunk = v[a..b].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            4 => {
                let at = rng.below(len + 1);
                let junk: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                v.splice(at..at, junk);
            }
            _ if len >= 4 => {
                // A 32-bit field set to an extreme (sizes, lengths, dims).
                let i = rng.below(len - 3);
                let x = [u32::MAX, 0x8000_0000, 0x7fff_ffff, 0x0001_0000][rng.below(4)];
                v[i..i + 4].copy_from_slice(&x.to_le_bytes());
            }
            _ => {}
        }
    }
    v
}

/// Runs `f` on every seed of `corpus/<target>` and its mutants; returns the count of
/// seeds (every target has at least 3).
fn run_corpus(target: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    count_panics();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for path in &seeds {
        let seed = std::fs::read(path).unwrap();
        check(target, f, &seed);
        for _ in 0..MUTANTS {
            check(target, f, &mutate(&seed, &mut rng));
        }
    }
    seeds.len()
}

#[test]
fn onnx_model() {
    assert!(run_corpus("onnx_model", qdq_fuzz::onnx_model) >= 3);
}

#[test]
fn calibration_cache() {
    assert!(run_corpus("calibration_cache", qdq_fuzz::calibration_cache) >= 3);
}

#[test]
fn data_file() {
    assert!(run_corpus("data_file", qdq_fuzz::data_file) >= 3);
}

#[test]
fn runtime_graph() {
    assert!(run_corpus("runtime_graph", qdq_fuzz::runtime_graph) >= 3);
}
