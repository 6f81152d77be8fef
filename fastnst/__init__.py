"""fastnst: fast neural style transfer (Johnson networks, a Gatys baseline, ONNX export).

    import fastnst
    fastnst.stylize("photo.jpg", style="starry_night").save("photo_starry_night.jpg")

See fastnst.api for `stylize`, `load` (a reusable model for frames) and `list_styles`.
"""

from importlib import metadata

from fastnst.api import Stylizer, list_styles, load, stylize

try:
    __version__ = metadata.version("fastnst")  # one source: pyproject.toml
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Stylizer", "__version__", "list_styles", "load", "stylize"]
