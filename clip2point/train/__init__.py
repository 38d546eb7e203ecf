"""Training loops: miniature-CLIP bootstrap, CLIP2Point pre-training (§3.2.1), DDP and checkpoint helpers.

Submodules are imported on demand (``clip2point.train.pretrain``, ``.bootstrap``, ``.distributed``,
``.checkpoint``, ``.optim``) so that importing the package stays cheap.
"""
