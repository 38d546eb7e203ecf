import os

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("OMP_NUM_THREADS", "2")

# triton (loaded by torch._dynamo, which torchvision and open_clip import) and Mesa's OSMesa (loaded by
# pyrender) both carry LLVM; importing triton after libOSMesa is loaded segfaults, the other order works.
# Test modules import pyrender at collection time, so load triton first, once, for the whole session.
import torch._dynamo  # noqa: E402, F401
