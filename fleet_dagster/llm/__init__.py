"""Language-model adapters: an OpenAI-compatible or an Anthropic messages endpoint (backends.py), or the embedded
small model."""
