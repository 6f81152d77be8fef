"""VGG19 loss network: the weight mapping, where the weights come from, and clear errors."""

from __future__ import annotations

import hashlib
import pickle

import h5py
import numpy as np
import pytest
import torch
from hostile import PicklePayload
from torchvision.models import vgg19

from fastnst import vgg
from fastnst.download import download
from fastnst.vgg import LAYERS, VGGFeatures, VGGWeightsError, load_state, resolve_weights

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])


def test_layer_names_follow_torchvision_indices():
    features = vgg19(weights=None).features
    assert len(LAYERS) == len(features) == 37
    for name, module in zip(LAYERS, features, strict=True):
        kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}
        assert isinstance(module, kind[name[:4]]), name


# --- an independent float64 reference: h5py + numpy, no torch -------------------------------

def _np_conv_relu(x: np.ndarray, h5: h5py.File, name: str) -> np.ndarray:
    """3x3 'same' convolution + ReLU in float64; x is (C, H, W)."""
    group = h5[name]
    kernel = group[f"{name}_W_1:0"][()].astype(np.float64)  # (kh, kw, in, out)
    bias = group[f"{name}_b_1:0"][()].astype(np.float64)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))  # C,H,W,3,3
    out = np.einsum("chwij,ijco->ohw", windows, kernel) + bias[:, None, None]
    return np.maximum(out, 0.0)


def _np_maxpool(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))


def test_features_equal_an_independent_float64_computation(vgg_weights):
    rgb = np.random.default_rng(0).random((3, 14, 18))
    x = rgb[::-1] * 255.0 - CAFFE_MEAN_BGR[:, None, None]  # Caffe: BGR, 0..255, minus mean
    with h5py.File(vgg_weights, "r") as h5:
        relu1_1 = _np_conv_relu(x, h5, "block1_conv1")
        relu1_2 = _np_conv_relu(relu1_1, h5, "block1_conv2")
        relu2_1 = _np_conv_relu(_np_maxpool(relu1_2), h5, "block2_conv1")
    net = VGGFeatures(["relu1_1", "relu2_1"], weights=vgg_weights)
    got = net(torch.from_numpy(rgb.copy()).float().unsqueeze(0))
    for name, ref in (("relu1_1", relu1_1), ("relu2_1", relu2_1)):
        out = got[name][0].double().numpy()
        assert out.shape == ref.shape
        rel = np.linalg.norm(out - ref) / np.linalg.norm(ref)
        assert rel < 1e-4, f"{name}: relative error {rel:.2e}"


def test_runs_only_up_to_the_deepest_requested_layer(vgg_weights):
    net = VGGFeatures(["relu2_1", "conv1_1"])  # found through FASTNST_VGG19
    assert len(net.features) == LAYERS.index("relu2_1") + 1
    out = net(torch.rand(2, 3, 20, 20))
    assert list(out) == ["conv1_1", "relu2_1"]
    assert out["relu2_1"].shape == (2, 128, 10, 10)
    assert (out["conv1_1"] < 0).any()  # the pre-activation tap is not clobbered by the ReLU


def test_a_pass_for_some_taps_stops_at_the_deepest_of_them(vgg_weights):
    net = VGGFeatures(["relu1_1", "relu2_2", "relu5_1"])
    reached = []
    for name, layer in zip(LAYERS, net.features, strict=False):
        layer.register_forward_hook(lambda *_, name=name: reached.append(name))
    image = torch.rand(1, 3, 32, 32)
    full = net(image)
    assert reached[-1] == "relu5_1"
    reached.clear()
    part = net(image, layers=["relu2_2"])
    assert list(part) == ["relu2_2"] and reached[-1] == "relu2_2"  # relu5_1's pass not run
    assert torch.equal(part["relu2_2"], full["relu2_2"])
    with pytest.raises(ValueError, match=r"relu4_2.*not taps"):
        net(image, layers=["relu4_2"])


def test_building_networks_draws_nothing_from_the_global_generator(vgg_weights, tmp_path):
    """Library code must not consume torch's global generator as a side effect: a training run
    seeds it and then builds its network, so any draw here changes the network's first weights
    depending on what ran before (a test that only failed after other tests)."""
    from helpers import tiny_model

    from fastnst.model_files import load_model
    from fastnst.transformer import TransformerNet

    model = tiny_model(tmp_path / "m.safetensors")
    vgg._expected_shapes.cache_clear()
    vgg._load_file.cache_clear()
    before = torch.get_rng_state()
    VGGFeatures(["relu5_1"])
    load_model(model)
    TransformerNet.skeleton()
    assert torch.equal(torch.get_rng_state(), before)


def test_network_is_frozen_but_passes_gradients_to_the_image(vgg_weights):
    net = VGGFeatures(["relu3_1"])
    net.train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    net(image)["relu3_1"].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_average_pooling_option(vgg_weights):
    net = VGGFeatures(["relu2_1"], pooling="avg")
    assert isinstance(net.features[LAYERS.index("pool1")], torch.nn.AvgPool2d)
    with pytest.raises(ValueError, match="pooling"):
        VGGFeatures(["relu2_1"], pooling="median")


def test_unknown_layer_is_a_clear_error(vgg_weights):
    with pytest.raises(ValueError, match="relu9_9"):
        VGGFeatures(["relu9_9"])


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_plain_state_dict_gives_the_same_features(vgg_weights, tmp_path, suffix):
    state, convention = load_state(vgg_weights)
    assert convention == "caffe"
    named = {f"{LAYERS[int(k.split('.')[1])]}.{k.split('.')[2]}": v for k, v in state.items()}
    path = tmp_path / f"vgg{suffix}"
    if suffix == ".pth":
        torch.save(named, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in named.items()}, path)
    image = torch.rand(1, 3, 24, 24)
    a = VGGFeatures(["relu3_1"], weights=vgg_weights)(image)["relu3_1"]
    b = VGGFeatures(["relu3_1"], weights=path)(image)["relu3_1"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(VGGWeightsError, match=f"{missing}: VGG19 weights not found"):
        VGGFeatures(["relu1_1"], weights=missing)


def test_environment_variable_pointing_nowhere_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNST_VGG19", str(tmp_path / "gone.h5"))
    with pytest.raises(VGGWeightsError, match="given by FASTNST_VGG19"):
        resolve_weights()


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("text.h5", b"not hdf5", "cannot read VGG19 weights"),
    ("random.pth", None, "has shape"),
    ("empty.safetensors", b"", "cannot read VGG19 weights"),
])
def test_wrong_files_never_give_a_silent_random_network(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is None:  # right keys, wrong shapes
        torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(VGGWeightsError, match=problem) as info:
        VGGFeatures(["relu1_1"], weights=path)
    assert str(path) in str(info.value)


def test_h5_without_vgg_groups_is_rejected(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(VGGWeightsError, match="not VGG19 weights"):
        VGGFeatures(["relu1_1"], weights=path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_payload_in_a_weights_file_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"features.0.weight": PicklePayload(marker)}, f)
    with pytest.raises(VGGWeightsError):
        VGGFeatures(["relu1_1"], weights=path)
    assert not marker.exists()


def test_weights_are_found_in_the_cache_before_any_download(tmp_path, monkeypatch):
    cached = vgg.cache_dir() / vgg.KERAS_H5_NAME
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"placeholder")
    monkeypatch.setattr(vgg, "KERAS_H5_URL", "file:///nonexistent/never-used.h5")
    assert resolve_weights() == cached


def test_weights_are_downloaded_checked_and_cached(tmp_path, monkeypatch):
    source = tmp_path / "served.h5"
    source.write_bytes(b"pretend these are weights" * 1000)
    monkeypatch.setattr(vgg, "KERAS_H5_URL", source.as_uri())
    monkeypatch.setattr(vgg, "KERAS_H5_MD5", hashlib.md5(source.read_bytes()).hexdigest())
    path = resolve_weights()
    assert path == vgg.cache_dir() / vgg.KERAS_H5_NAME
    assert path.read_bytes() == source.read_bytes()


def test_failed_download_says_how_to_work_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(vgg, "KERAS_H5_URL", (tmp_path / "missing.h5").as_uri())
    with pytest.raises(VGGWeightsError, match="set FASTNST_VGG19"):
        resolve_weights()
    assert not (vgg.cache_dir() / vgg.KERAS_H5_NAME).exists()


def test_download_with_wrong_md5_leaves_nothing_behind(tmp_path):
    source = tmp_path / "file.bin"
    source.write_bytes(b"abc")
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(RuntimeError, match="md5"):
        download(source.as_uri(), dest, md5="0" * 32)
    assert list(dest.parent.iterdir()) == []
    good = hashlib.md5(b"abc").hexdigest()
    assert download(source.as_uri(), dest, md5=good).read_bytes() == b"abc"


def test_torchvision_weights_switch_to_the_torchvision_input_convention(monkeypatch):
    state = {f"features.{k}": torch.full_like(v, 0.01)
             for k, v in vgg19(weights=None).features.state_dict().items()}
    monkeypatch.setattr(vgg, "_load_torchvision", lambda: state)  # no download in tests
    net = VGGFeatures(["conv1_1"], weights="torchvision")
    assert net.convention == "torchvision" and net.order == [0, 1, 2]
    image = torch.rand(1, 3, 8, 8)
    expected = torch.nn.functional.conv2d(
        (image - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
        state["features.0.weight"], state["features.0.bias"], padding=1)
    torch.testing.assert_close(net(image)["conv1_1"], expected)
