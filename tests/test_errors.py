"""One kind of error is a line for the user, everything else a traceback for a bug report."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from helpers import smooth_image, tiny_model

import fastnst
from fastnst.errors import FastnstError, UsageError, exit_on_error, print_error
from fastnst.images import write_image
from fastnst.infer import main


def test_every_error_class_of_fastnst_is_a_fastnst_error():
    """An `...Error` class defined in fastnst that users can meet prints as one line."""
    classes = []
    for info in pkgutil.iter_modules(fastnst.__path__):
        module = importlib.import_module(f"fastnst.{info.name}")
        classes += [c for name, c in vars(module).items() if inspect.isclass(c)
                    and c.__module__ == module.__name__ and name.endswith("Error")]
    assert len(classes) >= 15
    assert [c.__name__ for c in classes if not issubclass(c, FastnstError)] == []


def test_print_error_gives_one_line_and_the_status(capsys):
    assert print_error("fastnst-x", FastnstError("a.jpg: bad\nforged line")) == 1
    assert print_error("fastnst-x", UsageError("style=x: unknown")) == 2
    assert capsys.readouterr().err.splitlines() == [
        "fastnst-x: error: a.jpg: bad\\nforged line", "fastnst-x: error: style=x: unknown"]
    with pytest.raises(SystemExit) as stop, exit_on_error("fastnst-x"):
        raise UsageError("nope")
    assert stop.value.code == 2
    with pytest.raises(ZeroDivisionError), exit_on_error("fastnst-x"):  # a bug stays a bug
        raise ZeroDivisionError


def test_a_bug_while_stylizing_keeps_its_traceback_and_the_other_inputs_finish(
        tmp_path, monkeypatch, capsys):
    from fastnst import infer

    model = tiny_model(tmp_path / "tiny.safetensors")
    for name in ("a.png", "b.png", "c.png"):
        write_image(smooth_image(24, 24), tmp_path / "in" / name)
    real = infer.stylize_file

    def buggy(backend, job, options, overwrite):
        if job.source.name == "b.png":
            raise KeyError("a bug")
        real(backend, job, options, overwrite)

    monkeypatch.setattr(infer, "stylize_file", buggy)
    status = main([str(tmp_path / "in"), "--style", str(model), "-o", str(tmp_path / "out"),
                   "-q"])
    err = capsys.readouterr().err
    assert status == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_tiny.png", "c_tiny.png"]
    assert "Traceback (most recent call last)" in err and "KeyError: 'a bug'" in err
    assert "b.png: internal error (traceback above)" in err


def test_a_model_option_out_of_range_is_the_error_itself_not_hydras_wrapper():
    from omegaconf import OmegaConf

    from fastnst.training.run import instantiate

    node = OmegaConf.create({"_target_": "fastnst.transformer.TransformerConfig",
                             "channels": 0})
    with pytest.raises(UsageError, match=r"^channels must be an integer in \[1, 512\], not 0$"):
        instantiate(node)


def test_log_lines_and_warnings_show_names_escaped_whoever_writes_them(capsys):
    import logging
    import warnings

    from fastnst.console import shown_in_logs

    shown_in_logs()
    shown_in_logs()  # once is enough; twice changes nothing
    logger = logging.getLogger("pytorch_lightning.test")  # a library's logger, not fastnst's
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        logger.warning("style %s at %d px", "\x1b[2Jevil\nforged line", 256)
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    # What Python prints for a warning (pytest records them instead of printing).
    err += warnings.formatwarning("painting \x1b]0;title\x07.jpg", UserWarning, "x.py", 1)
    assert "\x1b" not in err and "\x07" not in err and "forged line" in err
    assert "style \\x1b[2Jevil\\nforged line at 256 px" in err
    assert "painting \\x1b]0;title\\x07.jpg" in err
