"""Shipped style models, installed as the package `fastnst.checkpoints`.

Each style is `<style>.safetensors` (float16 weights with metadata), `<style>.onnx` (verified
export) and `<style>.md` (its model card), all written by scripts/ship_style.py.
"""
