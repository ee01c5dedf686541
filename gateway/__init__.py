"""gym-gateway: an OpenAI-compatible gateway for RL training and evals."""

__version__ = "0.1.0"
