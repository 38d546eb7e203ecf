"""Models: the open_clip factory (:mod:`clip2point.models.clip`) and the downstream adapters."""
