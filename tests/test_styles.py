"""Style model files: safetensors with metadata; round trip, and clear errors for bad files."""

from __future__ import annotations

import pickle

import pytest
import torch
from conftest import smooth_image

from fastnst.styles import MODEL_FORMAT, ModelFileError, load_model, read_metadata, save_model
from fastnst.transformer import TransformerConfig, TransformerNet


def _trained_looking_net(config: TransformerConfig) -> TransformerNet:
    net = TransformerNet(config)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # move off the default init, norms included
    return net


def test_saved_model_reloads_into_an_identical_network(tmp_path):
    net = _trained_looking_net(TransformerConfig(channels=8, blocks=2)).eval()
    path = save_model(net, tmp_path / "mine.safetensors", "mine",
                      extra={"steps": 12, "losses": {"total": 1.5}})
    loaded, meta = load_model(path)
    assert loaded.config == net.config
    x = smooth_image(37, 45)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert meta["format"] == MODEL_FORMAT and meta["style"] == "mine"
    assert meta["architecture"] == {"channels": 8, "blocks": 2}
    assert meta["steps"] == 12 and meta["losses"] == {"total": 1.5}
    assert "[0, 1]" in meta["io"]
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temporary file


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match=r"nothing\.safetensors: no such file"):
        load_model(tmp_path / "nothing.safetensors")


def test_pickle_renamed_safetensors_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelFileError,
                       match=r"evil\.safetensors: a PyTorch \(pickle\) file, refused"):
        load_model(path)
    assert not marker.exists()


def test_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ModelFileError, match="not a fastnst style model"):
        read_metadata(path)


def test_weights_that_do_not_fit_the_architecture_are_a_clear_error(tmp_path):
    path = save_model(TransformerNet(TransformerConfig(channels=8, blocks=2)),
                      tmp_path / "m.safetensors", "m")
    # Rewrite the metadata to claim a wider network than the tensors hold.
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta["architecture"] = '{"channels": 16, "blocks": 2}'
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ModelFileError, match="weights do not fit architecture"):
        load_model(path)


def test_shipped_style_names_resolve_to_their_files(tmp_path, monkeypatch):
    from fastnst import styles

    model = save_model(TransformerNet(TransformerConfig(channels=8, blocks=1)),
                       tmp_path / "ink.safetensors", "ink")
    monkeypatch.setattr(styles, "shipped_models", lambda suffix=".safetensors": {"ink": model})
    assert styles.find_model("ink") == model
    assert styles.find_model(str(model)) == model  # a path is taken as it is
    with pytest.raises(ModelFileError, match="shipped styles: ink"):
        styles.find_model("oil")
