"""clip2point: CLIP2Point (ICCV 2023) — image-depth pre-training for point cloud classification.

The library is pure: arrays, meshes and modules in; arrays and modules out. It knows no file layout
and no params.yaml (those live in ``pipeline/`` and ``stages/``).
"""

__version__ = "0.1.0"
