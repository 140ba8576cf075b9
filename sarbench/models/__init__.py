"""Models: the paper's self-attentive recommender (sar.py), its speed kernels (kernels.py), losses, and the
interface any model implements to run through sarbench (interface.py; gru4rec.py is the worked example).
"""

from .interface import ModelSpec, SequentialRecommender, build_model, get_spec, register, registered

__all__ = ["ModelSpec", "SequentialRecommender", "build_model", "get_spec", "register", "registered"]
