//! ResNet definitions: torchvision's parameter counts, the seed's quantized layout
//! (residual quantizers included), and torchvision checkpoints loading by name.

use std::collections::HashMap;

use burn::module::Module;
use burn::prelude::*;
use qdq::nn::named_quantizers;
use qdq_vision::{BlockKind, QuantScheme, ResNetConfig};
use safetensors::tensor::{Dtype, TensorView};

#[test]
fn parameter_counts_are_torchvisions() {
    let device = Device::flex();
    // `sum(p.numel() for p in torchvision.models.resnetXX().parameters())`, plus the
    // BatchNorm running mean and variance, which burn counts and torchvision keeps
    // as buffers (2 x the BatchNorm channels: 4800, 8512 and 26560).
    for (cfg, params, bn_channels) in [
        (ResNetConfig::resnet18(1000), 11_689_512, 4800),
        (ResNetConfig::resnet34(1000), 21_797_672, 8512),
        (ResNetConfig::resnet50(1000), 25_557_032, 26_560),
    ] {
        let got = cfg.init(&device).unwrap().num_params();
        assert_eq!(got, params + 2 * bn_channels, "{cfg:?}");
    }
}

#[test]
fn quantized_resnet50_has_the_seeds_quantizers_and_runs() {
    let device = Device::flex();
    let model = ResNetConfig::resnet50(10)
        .with_width(8)
        .with_quantize(Some(QuantScheme::seed()))
        .init(&device)
        .unwrap();
    let names: Vec<String> = named_quantizers(&model)
        .into_iter()
        .map(|q| q.name)
        .collect();
    // 53 convolutions and the classifier: input + weight each; the pool's input; one
    // residual quantizer per block (3 + 4 + 6 + 3).
    assert_eq!(names.len(), 2 * 54 + 1 + 16);
    for name in [
        "conv1._input_quantizer",
        "conv1._weight_quantizer",
        "layer1.0.conv3._weight_quantizer",
        "layer1.0.downsample.conv._input_quantizer",
        "layer1.0.residual_quantizer",
        "layer4.2.residual_quantizer",
        "avgpool._input_quantizer",
        "fc._weight_quantizer",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    // Quantizers without amax quantize with the input's own max: the model runs and
    // differs from the float build only by quantization.
    let x = Tensor::<4>::random([2, 3, 64, 64], burn::tensor::Distribution::Default, &device);
    assert_eq!(model.forward(x).dims(), [2, 10]);
}

/// Values that identify their tensor: `base + i / 1000`.
fn marked(base: f32, n: usize) -> Vec<f32> {
    (0..n).map(|i| base + i as f32 / 1000.0).collect()
}

#[test]
fn torchvision_checkpoints_load_by_name() {
    // A torchvision-style state dict of a BasicBlock ResNet [1, 1, 1, 1], width 8, one
    // input channel, 10 classes, with torchvision's own names (BatchNorm weight/bias,
    // downsample.0/1, num_batches_tracked) and PyTorch's Linear layout [out, in].
    let mut tensors: Vec<(String, Vec<usize>)> = vec![("conv1.weight".into(), vec![8, 1, 3, 3])];
    let bn = |p: &str, c: usize| {
        ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .map(|n| (format!("{p}.{n}"), vec![c]))
            .collect::<Vec<_>>()
    };
    tensors.extend(bn("bn1", 8));
    let mut cin = 8;
    for (l, c) in [(1, 8), (2, 16), (3, 32), (4, 64)] {
        let p = format!("layer{l}.0");
        tensors.push((format!("{p}.conv1.weight"), vec![c, cin, 3, 3]));
        tensors.extend(bn(&format!("{p}.bn1"), c));
        tensors.push((format!("{p}.conv2.weight"), vec![c, c, 3, 3]));
        tensors.extend(bn(&format!("{p}.bn2"), c));
        if l > 1 {
            tensors.push((format!("{p}.downsample.0.weight"), vec![c, cin, 1, 1]));
            tensors.extend(bn(&format!("{p}.downsample.1"), c));
        }
        cin = c;
    }
    tensors.push(("fc.weight".into(), vec![10, 64]));
    tensors.push(("fc.bias".into(), vec![10]));
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n = shape.iter().product();
            let bytes = marked(i as f32, n)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (name.clone(), shape.clone(), bytes)
        })
        .collect();
    let mut views: Vec<(String, TensorView)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let tracked = 7i64.to_le_bytes();
    views.push((
        "bn1.num_batches_tracked".into(),
        TensorView::new(Dtype::I64, vec![], &tracked).unwrap(),
    ));
    let dir = std::env::temp_dir().join(format!("qdq-vision-tv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("resnet.safetensors");
    safetensors::serialize_to_file(views, None, &path).unwrap();

    let device = Device::flex();
    let cfg = ResNetConfig::new(BlockKind::Basic, [1, 1, 1, 1])
        .with_num_classes(10)
        .with_in_channels(1)
        .with_width(8)
        .with_small_input(true);
    let model = cfg.init(&device).unwrap().load_torchvision(&path).unwrap();
    let index: HashMap<&str, usize> = tensors
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    let vals = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(
        vals(model.bn1.gamma.val()),
        marked(index["bn1.weight"] as f32, 8)
    );
    assert_eq!(
        vals(model.bn1.beta.val()),
        marked(index["bn1.bias"] as f32, 8)
    );
    assert_eq!(
        vals(model.bn1.running_var.value()),
        marked(index["bn1.running_var"] as f32, 8)
    );
    let ds = model.layer3[0].downsample.as_ref().unwrap();
    let w = ds.conv.as_float().unwrap().weight.val();
    assert_eq!(w.dims(), [32, 16, 1, 1]);
    assert_eq!(
        w.into_data().try_to_vec::<f32>().unwrap(),
        marked(index["layer3.0.downsample.0.weight"] as f32, 32 * 16)
    );
    assert_eq!(
        vals(ds.bn.gamma.val()),
        marked(index["layer3.0.downsample.1.weight"] as f32, 32)
    );
    // burn's Linear is [in, out]: torchvision's [10, 64] arrives transposed.
    let fc = model.fc.as_float().unwrap().weight.val();
    assert_eq!(fc.dims(), [64, 10]);
    let base = index["fc.weight"] as f32;
    let fc = fc.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(fc[1], base + 64.0 / 1000.0); // [in 0, out 1] = torch [1, 0]
    assert_eq!(fc[10], base + 1.0 / 1000.0); // [in 1, out 0] = torch [0, 1]

    // Saving writes torchvision's names back; the round trip is exact.
    let again = dir.join("again.safetensors");
    model.save_torchvision(&again).unwrap();
    let bytes = std::fs::read(&again).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, shape) in &tensors {
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.shape(), &shape[..], "{name}");
    }
    let reloaded = cfg.init(&device).unwrap().load_torchvision(&again).unwrap();
    let x = Tensor::<4>::random([2, 1, 28, 28], burn::tensor::Distribution::Default, &device);
    assert_eq!(
        model
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
        reloaded.forward(x).into_data().try_to_vec::<f32>().unwrap()
    );

    // A checkpoint of another architecture names what it lacks.
    let wider = cfg.clone().with_width(16).init(&device).unwrap();
    let err = wider.load_torchvision(&path).unwrap_err().to_string();
    assert!(err.contains("resnet.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
