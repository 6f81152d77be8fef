"""scripts/common.py: what the benchmark scripts share."""

from __future__ import annotations

import argparse
import importlib

import pytest
from helpers import REPO


@pytest.fixture
def common(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    return importlib.import_module("common")


def test_a_model_spec_changes_the_named_fields_of_the_architecture(common):
    assert common.model_spec("fast:blocks=8,channels=24") == "fast:blocks=8,channels=24"
    net = common.build_network("fast:blocks=8,channels=24")
    assert (net.config.design, net.config.blocks, net.config.channels) == ("fast", 8, 24)
    assert len(net.fast.residuals) == 8
    assert common.build_network("fast").config.blocks == 5  # conf/model/fast.yaml as it is


@pytest.mark.parametrize(("text", "message"), [
    ("fastest", "'fastest': not one of"),
    ("fast:blocks", "'fast:blocks': fields are name=value"),
])
def test_a_bad_model_spec_is_an_argparse_error(common, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        common.model_spec(text)
