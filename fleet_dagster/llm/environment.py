"""Where a deployment's model settings come from: environment variables (the key from a Kubernetes Secret).
Kept free of heavy imports: the CLI reads it before it loads anything else."""

LLM_ENV = {
    "base_url": "FLEET_LLM_URL",
    "api_key": "FLEET_LLM_API_KEY",
    "model_override": "FLEET_LLM_MODEL",
    "model_urls": "FLEET_LLM_MODEL_URLS",
}
