"""Where a source checkout's development data live: `../shared` beside the repository (or
`$FASTNST_SHARED`), holding the VGG19 weights, the training and evaluation photos and the
paintings. Only the tests and scripts/ read it; fastnst itself finds its files through
FASTNST_VGG19, FASTNST_STYLE_DIR and FASTNST_TRAIN_DIR."""

from __future__ import annotations

import os
from pathlib import Path

from fastnst.vgg import KERAS_H5_NAME

SHARED = Path(os.environ.get("FASTNST_SHARED") or Path(__file__).resolve().parents[2] / "shared")
VGG19_FILE = SHARED / "weights" / KERAS_H5_NAME
STYLE_DIR = SHARED / "data" / "styles"
TRAIN_DIR = SHARED / "data" / "train"
EVAL_DIR = SHARED / "data" / "eval"


def use_shared_data() -> None:
    """Point FASTNST_VGG19, FASTNST_STYLE_DIR and FASTNST_TRAIN_DIR at the shared data, unless
    they are set."""
    os.environ.setdefault("FASTNST_VGG19", str(VGG19_FILE))
    os.environ.setdefault("FASTNST_STYLE_DIR", str(STYLE_DIR))
    os.environ.setdefault("FASTNST_TRAIN_DIR", str(TRAIN_DIR))
