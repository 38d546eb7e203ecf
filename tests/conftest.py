import os
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402
import torch  # noqa: E402

# triton (loaded by torch._dynamo, which torchvision and open_clip import) and Mesa's OSMesa (loaded by
# pyrender) both carry LLVM; importing triton after libOSMesa is loaded segfaults, the other order works.
# Test modules import pyrender at collection time, so load triton first, once, for the whole session.
import torch._dynamo  # noqa: E402, F401, I001


@pytest.fixture(scope="module")
def tiny():
    """A random ``c2p-tiny`` CLIP and the text side of the four blob classes (``tests/pretrain_support.py``):
    class prompts ``image of a {}.``, captions ``a {}.``, logit scale 10."""
    from clip2point.models.clip import create_clip, text_features
    from clip2point.train.pretrain_run import TextSide

    torch.manual_seed(0)
    model, tok = create_clip("c2p-tiny", "")
    names = ["blob x", "blob y", "blob z", "ball"]
    return model, TextSide(classes=text_features(model, tok, names, ["image of a {}."]),
                           captions=text_features(model, tok, names, ["a {}."]), caption_labels=torch.arange(4),
                           logit_scale=10.0)


#: the repository's params.yaml (the embedded default), read once
REPO_PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture
def repo_params() -> dict:
    """A fresh mapping of the repository's ``params.yaml`` (edit it freely: each test gets its own)."""
    import yaml

    return yaml.safe_load(REPO_PARAMS_FILE.read_text())
