"""Style model files: safetensors with metadata; round trip, and clear errors for bad files."""

from __future__ import annotations

import pickle
import resource

import pytest
import torch
from helpers import smooth_image
from hostile import PicklePayload

from fastnst.model_files import MODEL_FORMAT, ModelFileError, load_model, read_metadata, save_model
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
    assert meta["architecture"] == {"channels": 8, "blocks": 2, "design": "johnson"}
    assert meta["steps"] == 12 and meta["losses"] == {"total": 1.5}
    assert "[0, 1]" in meta["io"]
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temporary file


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match=r"nothing\.safetensors: no such file"):
        load_model(tmp_path / "nothing.safetensors")


def test_pickle_renamed_safetensors_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(PicklePayload(marker)))
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


def _rewrite(path, tensors=None, **meta_changes) -> None:
    """Rewrite a model file with some tensors or metadata entries replaced (None: removed)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        old = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta.update(meta_changes)
    save_file(tensors(old) if tensors else old, str(path),
              metadata={k: v for k, v in meta.items() if v is not None})


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _huge_header(path) -> None:
    data = path.read_bytes()
    path.write_bytes((2**62).to_bytes(8, "little") + data[8:])


BAD_MODELS = {  # name: (how the file is spoiled, what the one-line error says)
    "truncated": (_truncate, "not a safetensors model"),
    "huge header": (_huge_header, "not a safetensors model"),
    "no architecture": (lambda p: _rewrite(p, architecture=None), "bad architecture metadata"),
    "wider architecture": (lambda p: _rewrite(p, architecture='{"channels": 16, "blocks": 2}'),
                           r"encoder.0.0.1.weight is \[8, 3, 9, 9\], the architecture needs"
                           r" \[16, 3, 9, 9\]"),
    "absurd width": (lambda p: _rewrite(p, architecture='{"channels": 1000000000, "blocks": 2}'),
                     r"channels must be an integer in \[1, 512\]"),
    "negative blocks": (lambda p: _rewrite(p, architecture='{"channels": 8, "blocks": -1}'),
                        "blocks must be an integer"),
    "unknown design": (lambda p: _rewrite(
        p, architecture='{"channels": 8, "blocks": 2, "design": "../../evil"}'),
        "design must be one of johnson, fast"),
    "another design": (lambda p: _rewrite(
        p, architecture='{"channels": 8, "blocks": 2, "design": "fast"}'),
        "does not fit|unexpected|missing"),
    "unknown field": (lambda p: _rewrite(p, architecture='{"width": 8}'),
                      "bad architecture metadata.*width"),
    "not JSON": (lambda p: _rewrite(p, steps="{oops"), "malformed metadata"),
    "JSON nested too deep": (lambda p: _rewrite(p, steps="[" * 100_000 + "]" * 100_000),
                             "malformed metadata \\(RecursionError"),
    "an integer of 5,000 digits": (lambda p: _rewrite(p, steps="9" * 5000),
                                   "malformed metadata \\(ValueError: Exceeds the limit"),
    "other io": (lambda p: _rewrite(p, io="BGR in [0, 255]"),
                 "unknown input/output convention 'BGR in \\[0, 255\\]'"),
    "missing tensor": (lambda p: _rewrite(p, lambda t: {k: v for k, v in t.items()
                                                        if "residuals.1" not in k}),
                       "residuals.1.body.0.0.1.weight missing"),
    "extra tensor": (lambda p: _rewrite(p, lambda t: {**t, "backdoor": torch.zeros(3)}),
                     "backdoor unexpected"),
    "wrong shape": (lambda p: _rewrite(p, lambda t: {**t, "decoder.2.1.bias": torch.zeros(4)}),
                    r"decoder.2.1.bias is \[4\], the architecture needs \[3\]"),
    "NaN weights": (lambda p: _rewrite(p, lambda t: {**t, "decoder.2.1.bias":
                                                     torch.tensor([0.0, float("nan"), 0.0])}),
                    "weights hold NaN or inf: decoder.2.1.bias"),
    "float64 beyond float32": (lambda p: _rewrite(p, lambda t: {**t, "decoder.2.1.bias":
                                                                torch.tensor([0.0, 1e300, 0.0],
                                                                             dtype=torch.float64)}),
                               "weights hold NaN or inf: decoder.2.1.bias"),
    "int8 weights": (lambda p: _rewrite(p, lambda t: {**t, "decoder.2.1.weight": t[
        "decoder.2.1.weight"].to(torch.int8)}), "decoder.2.1.weight is I8, not floating point"),
    "bool weights": (lambda p: _rewrite(p, lambda t: {**t, "decoder.2.1.bias": torch.ones(
        3, dtype=torch.bool)}), "decoder.2.1.bias is BOOL, not floating point"),
    "styles without a multi-style architecture": (
        lambda p: _rewrite(p, styles='["a", "b"]'),
        "the architecture has 0 styles, the metadata names 2"),
    "a multi-style architecture without its styles": (
        lambda p: _rewrite(p, architecture='{"channels": 8, "blocks": 2, "styles": 2}'),
        "the architecture has 2 styles, the metadata names 0"),
    "too many styles": (
        lambda p: _rewrite(p, architecture='{"channels": 8, "blocks": 2, "styles": 100000}'),
        r"styles must be an integer in \[0, 256\]"),
    "styles not a list": (lambda p: _rewrite(p, styles='"a"'),
                          "styles must be a list of at most 256 names"),
    "styles named twice": (lambda p: _rewrite(p, styles='["a", "a"]'),
                           "the style names repeat"),
    "widest architecture, small file": (
        lambda p: _rewrite(p, architecture='{"channels": 512, "blocks": 64}'),
        r"encoder.0.0.1.weight is \[8, 3, 9, 9\], the architecture needs \[512, 3, 9, 9\]"),
}


@pytest.mark.parametrize("case", BAD_MODELS)
def test_a_model_file_that_does_not_fit_is_a_clear_error(case, tmp_path, capsys):
    from fastnst import export, infer
    from fastnst.images import write_image

    spoil, message = BAD_MODELS[case]
    net = _trained_looking_net(TransformerConfig(channels=8, blocks=2))
    path = save_model(net, tmp_path / "m.safetensors", "m")
    spoil(path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with pytest.raises(ModelFileError, match=f"^{path}: .*{message}") as error:
        load_model(path)
    # Checked before anything is built: 512 channels x 64 blocks would take 19 GB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 500_000
    assert "\n" not in str(error.value) and len(str(error.value)) < 600
    # The command-line tools say the same in one line and exit 1, writing nothing.
    photo = write_image(smooth_image(16, 16), tmp_path / "photo.png")
    capsys.readouterr()
    assert infer.main([str(photo), "--style", str(path), "-o", str(tmp_path / "out"), "-q"]) == 1
    assert export.main(["--style", str(path), "-o", str(tmp_path / "m.onnx")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"fastnst-{tool}: error: {error.value}" for tool in ("infer", "export")]
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.onnx").exists()


def test_shipped_style_names_resolve_to_their_files(tmp_path, monkeypatch):
    from fastnst import model_files, styles

    model = save_model(TransformerNet(TransformerConfig(channels=8, blocks=1)),
                       tmp_path / "ink.safetensors", "ink")
    monkeypatch.setattr(model_files, "shipped_models", lambda suffix=".safetensors": {"ink": model})
    assert styles.find_model("ink") == model
    assert styles.find_model(str(model)) == model  # a path is taken as it is
    with pytest.raises(ModelFileError, match="shipped styles: ink"):
        styles.find_model("oil")
    # A folder named like the style where the command runs (a run folder `ink/`) is no model.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ink").mkdir()
    assert styles.find_model("ink") == model
    # The fast variant of a style is `<style>-fast`, when one ships.
    assert styles.fast_variant(str(model)) == str(model)
    with pytest.raises(ModelFileError, match=r"python -m fastnst\.distill style=ink"):
        styles.fast_variant("ink")
