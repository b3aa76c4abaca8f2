"""Domain Zoo: train, adapt, evaluate and publish domain-specific foundation models.

Importing `zoo` is cheap on purpose (no torch, no transformers): the CLI must start fast.
"""

__version__ = "0.1.0"
