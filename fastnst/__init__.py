"""fastnst: fast neural style transfer (Johnson networks, a Gatys baseline, ONNX export)."""

__version__ = "0.1.0"
