"""Language-model adapters: any OpenAI-compatible endpoint, or the embedded small model."""
