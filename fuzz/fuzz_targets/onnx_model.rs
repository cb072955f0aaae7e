#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qdq_fuzz::onnx_model(data));
