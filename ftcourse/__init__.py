"""ftcourse: the helper package of the course "When to fine-tune an LLM"."""

__version__ = "0.1.0"
