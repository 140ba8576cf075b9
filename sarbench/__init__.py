"""sarbench: AE vs AR self-attention for sequential recommendation, as a pytest benchmark suite."""

__version__ = "0.1.0"
