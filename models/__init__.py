"""Shipped style models, installed as the package `fastnst.models`.

Each style is `<style>.safetensors` (float16 weights with metadata) and `<style>.md` (its model
card), both written by scripts/ship_style.py.
"""
