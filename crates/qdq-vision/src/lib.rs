//! # qdq-vision
//!
//! torchvision's ResNets on qdq's layers ([`resnet`]), and the seed's ResNet chapter
//! run end to end on Fashion-MNIST ([`chapter`]): train FP32, calibrate (PTQ with
//! every method from one collection), fine-tune (QAT, fixed and learned amax),
//! export to QDQ ONNX and score the file with ONNX Runtime ([`ort`]); a BERT-style
//! sentence encoder quantized as pytorch-quantization's BERT QAT models ([`bert`]).

#![deny(missing_docs)]

pub mod bert;
pub mod bert_flow;
pub mod chapter;
pub mod data;
pub mod ort;
pub mod resnet;
pub mod train;

pub use bert::{Bert, BertConfig};
pub use resnet::{BlockKind, QuantScheme, ResNet, ResNetConfig};
