"""The procedural shape benchmark: the embedded stand-in for ShapeNet (pre-training pool, §5.1) and ModelNet
(downstream benchmark, §5.1) when no real 3D data can be downloaded.

Each class is a generator (``CLASSES``: name → function, registered with :func:`register`;
:mod:`~clip2point.synth.shapes`) that assembles a shape from trimesh primitives
(:mod:`~clip2point.synth.primitives`: boxes, cylinders, cones, spheres, surfaces of revolution, swept tubes) with
randomized proportions, part counts and per-part colours (face colours). Conventions:

* **y-up** (as ShapeNet), front facing +z, roughly axis-aligned (a small random yaw), centred on the
  bounding-box centre. ``params.yaml`` declares synthetic datasets with ``up_axis: y``.
* every part is a closed primitive, so each shape is watertight part-wise (parts may interpenetrate);
* deterministic per seed: :func:`generate_pool` derives one ``numpy`` generator per shape from
  ``(seed..., crc32(class), index)``, so a shape does not change when other classes or counts change;
* categories are not separable by bounding-box proportions alone: each generator spans broad aspect
  ratios (coffee tables and bar tables, stubby and tall bottles, wide low bookcases and tall narrow ones)
  and every shape gets a random anisotropic stretch and overall scale (``tests/test_synth.py`` checks a
  1-nearest-neighbour classifier on bounding-box extents stays below 70% accuracy).

trimesh features used: ``creation.box/cylinder/cone/icosphere/revolve`` (numpy only) and
``creation.sweep_polygon`` (needs shapely, for cup handles).
"""

from clip2point.synth.pool import generate_pool, shape_rng
from clip2point.synth.shapes import CLASSES, Generator, make_shape, register

__all__ = ["CLASSES", "Generator", "generate_pool", "make_shape", "register", "shape_rng"]
