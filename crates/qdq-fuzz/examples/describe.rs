//! Prints what the `runtime_graph` fuzz target builds from each file given:
//! `cargo run -p qdq-fuzz --example describe -- fuzz/artifacts/runtime_graph/crash-*`.
fn main() {
    for path in std::env::args().skip(1) {
        match std::fs::read(&path) {
            Ok(bytes) => println!("{path}: {}", qdq_fuzz::describe_runtime_graph(&bytes)),
            Err(e) => eprintln!("{path}: {e}"),
        }
    }
}
